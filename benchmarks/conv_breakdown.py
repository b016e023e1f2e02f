"""Where a convolution pass's time goes on the cpu backend: products, im2col, col2im, transforms, pooling, waiting.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.conv_breakdown [--cases mnist|cats|all]
                                                                                   [--repeats 7] [--out DIR]

For each convolution of the course models (``benchmarks.cases``: the plain ``conv2d`` layers and the
fused conv + bias + ReLU + pool pairs), each pass is called through the cpu backend's own entry
points: plain conv2d forward, backward-input and backward-filter, and both gradients as the op
asks for them (``conv2d_backward``: one pass where Winograd's adjoint applies, else the two); the
fused op forward and backward (input, filter and bias gradients in one pass). During the calls every
Numba kernel that Python code of ``miniconv.backend.cpu`` calls, and ``np.matmul`` (the BLAS
products), is wrapped by a timer that adds its seconds to the calling thread's account, by kind:

    products          np.matmul (single-threaded OpenBLAS inside a chunk)
    im2col            laying out patches (im2col_rows, im2col_rows_patch_major)
    col2im            scattering patch gradients back (col2im_*)
    transforms        Winograd's input and output tiles (the adjoint input gradient's patches too)
    direct loops      the direct kernels (direct_kernels: forward, backward and filter-gradient units,
                      and the forward and filter-gradient rows)
    pooling           the fused max pooling's epilogue and its gradient's routing
    bias + activation bias, ReLU / ReLU6 epilogues and their gradients
    partials' sum     adding the per-chunk filter-gradient partials in order
    waiting + Python  threads x wall time minus all of the above: a thread idle at the end of a
                      pass (load imbalance), the work-sharing loop, allocation, Python between kernels

Kernels called from inside other Numba kernels are counted in their caller. The table gives, per
layer and pass, the wall time of the fastest of ``--repeats`` instrumented calls (after one untimed
call) and its thread-milliseconds per kind, as a share of threads x wall. The timers cost about a
microsecond a call, so the wall times are a little above ``python -m benchmarks ops``'s.
"""

from __future__ import annotations  # noqa: I001  (miniconv is imported before NumPy on purpose)

import argparse
import importlib
import pkgutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import miniconv
import numpy as np

from .cases import FUSED, OpCase, select
from .common import machine_info
from .harness import write_results
from .report import blas_sentence, measured_sentence

KINDS = (
    "products",
    "im2col",
    "col2im",
    "transforms",
    "direct loops",
    "pooling",
    "bias + activation",
    "partials' sum",
    "other kernels",
    "waiting + Python",
)


def kind_of(name: str) -> str:
    """The kind of a cpu kernel, from its name (see the module docstring)."""
    rules = (
        ("im2col", "im2col"),
        ("col2im", "col2im"),
        ("tiles", "transforms"),
        ("transform", "transforms"),
        ("patch", "transforms"),  # the adjoint input gradient's patch_gradients and add_patches
        ("_units", "direct loops"),
        ("plain_forward_rows", "direct loops"),  # direct_kernels' loops by rows of conv cells
        ("pooled_forward_rows", "direct loops"),
        ("filter_gradient_rows", "direct loops"),
        ("pool", "pooling"),
        ("pooled", "pooling"),
        ("_add_in_order", "partials' sum"),
        ("bias", "bias + activation"),
        ("relu", "bias + activation"),
        ("activation", "bias + activation"),
    )
    return next((kind for key, kind in rules if key in name), "other kernels")


class Accounts:
    """Seconds per (thread, kind) while ``installed``; kernels are wrapped in every cpu backend module."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._patched: list[tuple[object, str, object]] = []

    def _timed(self, function, kind):
        seconds = self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[(threading.get_ident(), kind)] += time.perf_counter() - start

        return timed

    def install(self) -> None:
        from numba.core.registry import CPUDispatcher

        from miniconv.backend import cpu

        wrappers = {}
        for info in pkgutil.iter_modules(cpu.__path__):
            module = importlib.import_module(f"{cpu.__name__}.{info.name}")
            for name, value in list(vars(module).items()):
                if isinstance(value, CPUDispatcher):
                    if id(value) not in wrappers:
                        wrappers[id(value)] = self._timed(value, kind_of(value.__name__))
                    self._patched.append((module, name, value))
                    setattr(module, name, wrappers[id(value)])
        self._patched.append((np, "matmul", np.matmul))
        np.matmul = self._timed(np.matmul, "products")

    def uninstall(self) -> None:
        for module, name, value in reversed(self._patched):
            setattr(module, name, value)
        self._patched.clear()

    def take(self) -> dict[str, float]:
        """Seconds per kind summed over threads since the last take."""
        total = defaultdict(float)
        for (_, kind), seconds in list(self.seconds.items()):
            total[kind] += seconds
        self.seconds.clear()
        return dict(total)


def passes(case: OpCase, backend):
    """[(pass name, call)] of a case through the backend's entry points, arrays and geometry prepared."""
    from miniconv.shapes import conv_geometry, normalize_conv_padding, pool_geometry

    a = case.arrays()
    x, w, dy = a["x"], a["w"], a["dy"]
    g = conv_geometry(x.shape, w.shape, (1, 1), normalize_conv_padding("VALID", case.op), (1, 1), case.op)
    if case.op == "conv2d":
        return [
            ("forward", lambda: backend.conv2d_forward(x, w, g)),
            ("backward-input", lambda: backend.conv2d_backward_input(dy, w, g)),
            ("backward-filter", lambda: backend.conv2d_backward_filter(x, dy, g)),
            ("backward (dx + dw)", lambda: backend.conv2d_backward(x, w, dy, g)),
        ]
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID", case.op)
    y, argmax = backend.conv2d_bias_relu_max_pool_forward(x, w, a["bias"], g, pg)
    first = case.layer.startswith("conv1")  # training skips a first layer's input gradient
    return [
        ("forward", lambda: backend.conv2d_bias_relu_max_pool_forward(x, w, a["bias"], g, pg)),
        (
            "backward" + (" (no dx)" if first else ""),
            lambda: backend.conv2d_bias_relu_max_pool_backward(x, w, y, argmax, dy, g, pg, not first),
        ),
    ]


def measure(cases, repeats: int) -> list[dict]:
    from miniconv.backend import get_backend
    from miniconv.backend.cpu.work_sharing import thread_count

    backend = get_backend("cpu")
    threads = thread_count()
    rows = []
    accounts = Accounts()
    for case in cases:
        for name, call in passes(case, backend):
            call()  # untimed: compilation, scratch buffers
            accounts.install()
            try:
                accounts.take()
                best = None
                for _ in range(repeats):
                    start = time.perf_counter()
                    call()
                    wall = time.perf_counter() - start
                    parts = accounts.take()
                    if best is None or wall < best[0]:
                        best = (wall, parts)
            finally:
                accounts.uninstall()
            wall, parts = best
            parts["waiting + Python"] = max(0.0, threads * wall - sum(parts.values()))
            rows.append(
                {
                    "case": case.id,
                    "op": case.op,
                    "input": case.describe(),
                    "pass": name,
                    "threads": threads,
                    "wall_ms": 1e3 * wall,
                    "thread_ms": {k: 1e3 * v for k, v in parts.items()},
                }
            )
    return rows


def table(rows: list[dict]) -> list[str]:
    used = [k for k in KINDS if any(r["thread_ms"].get(k, 0) >= 0.005 * r["threads"] * r["wall_ms"] for r in rows)]
    lines = ["| layer | pass | wall ms | " + " | ".join(used) + " |", "|---|---|---:|" + "---:|" * len(used)]
    for r in rows:
        budget = r["threads"] * r["wall_ms"]
        cells = [f"{100 * r['thread_ms'].get(k, 0) / budget:.0f}%" if r["thread_ms"].get(k) else "" for k in used]
        layer = r["case"].split("/", 1)[1] + (" (fused)" if r["op"] == FUSED else "")
        lines.append(
            f"| {r['case'].split('/')[0]}/{layer} | {r['pass']} | {r['wall_ms']:.2f} | " + " | ".join(cells) + " |"
        )
    return lines


def markdown(data: dict) -> str:
    """The report: what was measured, where and how, then the table."""
    rows, machine = data["rows"], data["machine"]
    threads = rows[0]["threads"] if rows else 0
    lines = [f"# Where the cpu backend's convolution time goes ({threads} threads; share of threads x wall)", "",
             f"{measured_sentence(machine)} {blas_sentence(machine)}", "",
             (f"`python -m benchmarks.conv_breakdown --repeats {data['repeats']}`: each pass called through the "
             "cpu backend's entry points, the fastest of the instrumented calls shown (module docstring)."), ""]
    return "\n".join(lines + table(rows)) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="all", choices=("mnist", "cats", "mobile", "all"),
                        help="which model's convolutions (default all; mobile: the 1x1 ones)")
    parser.add_argument("--repeats", type=int, default=7, help="instrumented calls per pass; the fastest is shown")
    parser.add_argument("--out", type=Path, default=None, help="write conv_breakdown.json and .md there")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    miniconv.set_backend("cpu")
    cases = [c for c in select(args.cases) if c.op in ("conv2d", FUSED)]
    data = {"machine": machine_info(), "repeats": args.repeats, "rows": measure(cases, args.repeats)}
    text = markdown(data)
    print(text)
    if args.out is not None:
        write_results(args.out, "conv_breakdown", data, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
