"""Shared benchmark tools: the timer, FLOP counts, the machine's sgemm peak and copy bandwidth, machine information.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size,
M I O dense rows / inputs / outputs.

FLOP counts (a multiply-add is 2 FLOPs):
    conv2d forward       2 * N * P * Q * K * R * S * C
    dense forward        2 * M * I * O
    forward + backward   3 x forward (input gradient and filter gradient cost one forward each)
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import statistics
import time

BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
VERSIONED = ("numpy", "numba", "tensorflow", "tensorflow-cpu", "torch", "miniconv")


def time_call(fn, *, warmup: int = 2, repeats: int = 7, min_repeats: int = 3, budget_s: float = 20.0) -> dict:
    """Call ``fn()`` ``warmup`` times untimed, then time up to ``repeats`` calls with perf_counter.

    Stops early (after at least ``min_repeats`` timed calls) once the timed calls exceed
    ``budget_s`` seconds, so a slow contestant cannot stall the run. Returns
    {"median_s", "min_s", "repeats"}: the median is the number reported, the minimum is kept
    as a sanity check.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < min_repeats or spent < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def conv2d_flops(N: int, P: int, Q: int, K: int, R: int, S: int, C: int) -> int:
    """Forward FLOPs of a 2-D convolution: 2 * N * P * Q * K * R * S * C."""
    return 2 * N * P * Q * K * R * S * C


def dense_flops(M: int, I: int, O: int) -> int:
    """Forward FLOPs of x (M, I) @ kernel (I, O): 2 * M * I * O (the bias add is not counted)."""
    return 2 * M * I * O


def fwd_bwd_flops(forward: int) -> int:
    """Forward + backward = 3 x forward: dx and dw each cost one forward."""
    return 3 * forward


def sgemm_peak(n: int = 4096, repeats: int = 3) -> dict:
    """The machine's practical float32 matrix-multiply speed: NumPy (its BLAS) on n x n @ n x n.

    GFLOP/s = 2 n^3 / best time. Run it in a process without TensorFlow or Numba thread pools.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    timing = time_call(lambda: np.matmul(a, b, out=out), warmup=1, repeats=repeats, min_repeats=repeats)
    return {"n": n, "gflops": 2 * n**3 / timing["min_s"] / 1e9, "seconds": timing["min_s"]}


def copy_bandwidth(mebibytes: int = 256, repeats: int = 5) -> dict:
    """The machine's practical memory bandwidth: one thread per usable core, each copying its share of a
    float32 array of ``mebibytes`` MiB into another (``np.copyto`` releases the GIL; the destination's
    pages touched first). GB/s = (bytes read + bytes written) / best time, the accounting of
    ``cases.OpCase.traffic``.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    source = np.ones(mebibytes << 18, np.float32)
    destination = np.zeros_like(source)
    parts = list(zip(np.array_split(source, threads), np.array_split(destination, threads)))
    with ThreadPoolExecutor(threads) as pool:

        def copy():
            for future in [pool.submit(np.copyto, dst, src) for src, dst in parts]:
                future.result()

        timing = time_call(copy, warmup=1, repeats=repeats, min_repeats=repeats)
    moved = 2 * source.nbytes
    return {"bytes": moved, "threads": threads, "gbps": moved / timing["min_s"] / 1e9, "seconds": timing["min_s"]}


def cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that matter, read from metadata (nothing imported)."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def blas_env() -> dict[str, str | None]:
    """The BLAS-slowing variables: their values, None where unset (as they should be)."""
    return {name: os.environ.get(name) for name in BLAS_ENV_VARS}


def machine_info() -> dict:
    """Date, CPU, cores, Python and package versions, and the state of the BLAS variables."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "blas_env": blas_env(),
        "blas_env_unset": all(v is None for v in blas_env().values()),
    }
