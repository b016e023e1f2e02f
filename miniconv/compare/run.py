"""One run of a study in this process: ``python -m miniconv.compare.run --engine E --seed S -- TRAIN_ARGV``.

``TRAIN_ARGV`` is what follows ``miniconv train`` (the recipe and its options, e.g. ``mnist --epochs 5
--limit 600``), without --seed and --out. The run prints one JSON line on stdout and exits 0:

    {"engine", "seed", "accuracy", "loss", "history", "epoch_seconds", "seconds_per_epoch", "facts", "info", ...}

accuracy and loss are the validation set's after the last epoch (MNIST: the test set), as
fractions; seconds_per_epoch is the mean of the epoch clock's training seconds (from an epoch's start
to the end of its last step, after an untimed warm-up). Everything else the run prints goes to
stderr. A usage error (bad option, missing data) exits 2 with one line; any other failure exits 1.

Engines: ``miniconv`` is ``miniconv train TRAIN_ARGV --seed S --out TMP`` itself (the runner, in a
temporary directory); ``keras`` is ``keras_side.train`` on the same parsed options. One engine per
process: TensorFlow and Numba never share one.

``--threads T`` sets NUMBA_NUM_THREADS (miniconv) or TensorFlow's intra- and inter-op threads (Keras).
``--watch-pid P`` (repeatable): exit at once when process P ends (the Dask worker that started this
run, or the study itself on a local cluster), so no run outlives the study that wanted it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT",
                  "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS")


def watch(pids: list[int]) -> None:
    """End this process when any of ``pids`` (or, on Linux, the parent) dies."""
    if not pids:
        return
    if sys.platform.startswith("linux"):
        try:  # the kernel kills us with the thread that started us; the poll below covers the rest
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    parent = os.getppid()

    def poll():
        while True:
            if os.getppid() != parent or not all(alive(pid) for pid in pids):
                os._exit(3)
            time.sleep(0.5)

    if not all(alive(pid) for pid in pids):
        os._exit(3)
    threading.Thread(target=poll, daemon=True, name="watch-parent").start()


def train_args(train_argv: list[str], seed: int, out: str):
    """The namespace ``miniconv train TRAIN_ARGV --seed S --out OUT`` parses to."""
    from ..cli import build_parser

    return build_parser().parse_args(["train", *train_argv, "--seed", str(seed), "--out", out])


def run_miniconv(train_argv: list[str], seed: int) -> dict:
    """``miniconv train`` in a temporary --out; its report.json's history and epoch clock."""
    with tempfile.TemporaryDirectory(prefix="miniconv-compare-") as out:
        args = train_args(train_argv, seed, out)
        code = args.run(args)
        if code:
            raise RunError(code, f"miniconv train exited with status {code}")
        report = json.loads((Path(out) / "report.json").read_text())
    import numba

    settings = report.get("settings", {})
    facts = {k: v for k, v in settings.items() if k.endswith("_samples") or k == "class_names"}
    return {"history": report["history"], "epoch_seconds": report["epoch_seconds"],
            "epoch_seconds_with_validation": report["epoch_seconds_with_validation"], "facts": facts,
            "info": {"miniconv": report.get("versions", {}).get("miniconv"), "backend": report.get("backend"),
                     "numba": report.get("versions", {}).get("numba"), "threads": numba.get_num_threads()}}


def run_keras(train_argv: list[str], seed: int, threads: int | None) -> dict:
    """The same recipe and options through Keras 3 (``keras_side``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .. import recipes
    from . import keras_side

    with tempfile.TemporaryDirectory(prefix="miniconv-compare-") as out:
        args = train_args(train_argv, seed, out)
        recipe = recipes.get(args.recipe)
        recipe.check(args)
        return keras_side.train(recipe, args, threads)


class RunError(Exception):
    """The run could not finish; ``status`` is the exit status to use."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def machine() -> dict:
    """Where the run ran: host, CPU count, the BLAS and oneDNN variables, NumPy's BLAS library."""
    found = {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
             "env": {k: os.environ[k] for k in BLAS_VARIABLES if k in os.environ}}
    try:
        from threadpoolctl import threadpool_info

        found["blas"] = [{k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                         for pool in threadpool_info() if pool.get("user_api") == "blas"]
    except ImportError:
        pass
    return found


def run(engine: str, seed: int, train_argv: list[str], threads: int | None) -> dict:
    """One run; the dict of its JSON line."""
    start = time.time()
    if engine == "miniconv":
        if threads:
            os.environ["NUMBA_NUM_THREADS"] = str(threads)
        out = run_miniconv(train_argv, seed)
    elif engine == "keras":
        out = run_keras(train_argv, seed, threads)
    else:
        raise RunError(2, f"unknown engine {engine!r}; choose from miniconv, keras")
    history = out.pop("history")
    seconds = out["epoch_seconds"]
    return {"engine": engine, "seed": seed, "accuracy": history["val_accuracy"][-1], "loss": history["val_loss"][-1],
            "train_accuracy": history["accuracy"][-1], "train_loss": history["loss"][-1], "epochs": len(seconds),
            "seconds_per_epoch": sum(seconds) / len(seconds), "history": history, **out,
            "machine": machine(), "wall_seconds": time.time() - start, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("miniconv.compare.run: error: expected '-- RECIPE [train options]' after the run's options",
              file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m miniconv.compare.run", description="One run of a study (internal).")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--watch-pid", type=int, action="append", default=[])
    parser.add_argument("--tag", default="", help="a label only (finds this study's runs in a process list)")
    args = parser.parse_args(argv[:cut])
    watch(args.watch_pid)
    stdout = os.fdopen(os.dup(1), "w")  # the JSON line's; anything printed during the run goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from ..recipes.base import UsageError

    try:
        result = run(args.engine, args.seed, argv[cut + 1:], args.threads)
    except (UsageError, RunError) as error:
        print(f"miniconv compare: {args.engine} seed {args.seed}: error: {error}", file=sys.stderr)
        return getattr(error, "status", 2)
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
