"""``python -m benchmarks train mnist``: seconds per training epoch of the course convnet, miniconv against Keras and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train mnist          # the real run
    python -m benchmarks train mnist --limit 640 --rounds 1 --out /tmp/bench             # a smoke test

The model is Chollet's ch. 5.1 convnet (``miniconv.train_cli.mnist_convnet``), batch 64, RMSprop
(lr 1e-3, rho 0.9, eps 1e-7), sparse categorical crossentropy with an accuracy metric, on MNIST
scaled to [0, 1] float32. Contestants, each in its own process (Numba's, TensorFlow's and PyTorch's
thread pools slow each other when they share one), alternating over ``--rounds`` rounds in a
rotated order:

    miniconv-cpu   ``Sequential.fit`` on the cpu backend (``--backends`` for others)
    tf             the same model in Keras 3 on TensorFlow, ``model.fit`` with Keras's defaults
    torch          the same layers in PyTorch, channels-last, a plain training loop (torch.optim.RMSprop)

A worker loads the data, builds the model, runs an untimed warm-up (``--warmup-steps`` steps plus
one batch of the last, partial size, so Keras traces both shapes), then trains ``--epochs`` epochs
timed per epoch with ``time.perf_counter``: from the start of the epoch (shuffle) to the end of its
last step, no validation. Afterwards (untimed) it evaluates the test set, a check that every
contestant really trained, and reads its peak resident memory (``ru_maxrss``: data, library and
model together). Workers run with ``OPENBLAS_THREAD_TIMEOUT=4`` (see ``miniconv/_threads.py``).

Reported per contestant: the best round's mean seconds per epoch (noise on a shared machine only
adds time), every round's, the peak memory and the test accuracy; and the ratio miniconv / Keras
of the best rounds. Results go to ``<out>/train_mnist.json`` and ``<out>/train_mnist.md``
(default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .common import blas_env, machine_info

ROOT = Path(__file__).resolve().parent.parent  # the repository: workers run from here
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
MINICONV_PREFIX = "miniconv-"
REFERENCES = ("tf", "torch")
WORKER_TIMEOUT_S = 3600
LABELS = {"tf": "Keras (TensorFlow)", "torch": "PyTorch"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``benchmarks train DATASET``: one sub-parser per dataset, mnist (here) and cats-dogs (``benchmarks.train_cats_dogs``)."""
    from . import train_cats_dogs

    targets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    add_mnist_arguments(targets.add_parser("mnist", help="Chollet's ch. 5.1 convnet on MNIST: miniconv vs Keras and "
                                                         "PyTorch", description=__doc__.split("\n\n")[0].replace("``", "")))
    train_cats_dogs.add_arguments(targets.add_parser(
        "cats-dogs", help=train_cats_dogs.HELP, description=train_cats_dogs.__doc__.split("\n\n")[0].replace("``", "")))


def add_mnist_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks train mnist`` options."""
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per worker (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all contestants; the best is kept (default 3)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N images (smoke tests)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before timing (default 5)")
    parser.add_argument("--backends", default="cpu", help="comma-separated miniconv backends (default cpu)")
    parser.add_argument("--references", default=",".join(REFERENCES),
                        help="comma-separated among tf,torch (default both; missing ones are skipped)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"directory for train_mnist.json and .md (default {DEFAULT_OUT})")


def run(args) -> int:
    """Run the rounds, write train_mnist.json and .md, print the markdown; 0 unless nothing could run."""
    if args.dataset == "cats-dogs":
        from . import train_cats_dogs

        return train_cats_dogs.run(args)
    for name in ("epochs", "rounds", "batch_size"):
        if getattr(args, name) < 1:
            print(f"benchmarks train: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    were_set = [name for name, value in blas_env().items() if value is not None]
    if were_set:
        print(f"warning: {', '.join(were_set)} set: BLAS runs slower; for real numbers run "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train mnist`", file=sys.stderr)
    contestants = [MINICONV_PREFIX + b for b in _split(args.backends)]
    contestants += [r for r in _split(args.references) if r in REFERENCES]
    worker_args = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                   "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed)]
    if args.limit is not None:
        worker_args += ["--limit", str(args.limit)]

    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    status: dict[str, dict] = {name: {"available": False} for name in contestants}
    for r in range(args.rounds):
        shift = r % len(contestants)
        for name in contestants[shift:] + contestants[:shift]:
            print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            out = _run_worker(name, worker_args)
            if "epoch_seconds" not in out:
                status[name].setdefault("reason", out.get("unavailable") or out.get("failed", "no output"))
                continue
            status[name] = {"available": True, "info": out["info"]}
            runs[name].append({key: out[key] for key in ("epoch_seconds", "seconds_per_epoch", "peak_rss_mb",
                                                         "test_accuracy", "train_samples", "test_samples")})

    data = {
        "benchmark": "train_mnist",
        "machine": machine_info(),
        "settings": {"epochs": args.epochs, "rounds": args.rounds, "limit": args.limit, "batch_size": args.batch_size,
                     "warmup_steps": args.warmup_steps, "seed": args.seed, "contestants": contestants,
                     "worker_env": {"OPENBLAS_THREAD_TIMEOUT": "4"}},
        "contestants": status,
        "results": _results(runs),
    }
    data["ratios"] = _ratios(data["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_mnist.json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(data)
    (args.out / "train_mnist.md").write_text(text)
    print(text)
    print(f"wrote {args.out / 'train_mnist.json'} and {args.out / 'train_mnist.md'}", file=sys.stderr)
    return 0 if any(s["available"] for s in status.values()) else 1


def _results(runs: dict[str, list[dict]]) -> dict:
    """Per contestant: the best round (lowest mean s/epoch), every round's mean, peak memory, accuracy."""
    results = {}
    for name, rounds in runs.items():
        if not rounds:
            continue
        best = min(rounds, key=lambda r: r["seconds_per_epoch"])
        results[name] = {
            "seconds_per_epoch": best["seconds_per_epoch"],
            "round_seconds_per_epoch": [r["seconds_per_epoch"] for r in rounds],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
            "test_accuracy": best["test_accuracy"],
            "train_samples": best["train_samples"],
            "test_samples": best["test_samples"],
            "rounds": rounds,
        }
    return results


def _ratios(results: dict) -> dict:
    """miniconv / Keras (and miniconv / PyTorch) seconds per epoch, best rounds."""
    ratios = {}
    for name, result in results.items():
        if name.startswith(MINICONV_PREFIX):
            for ref in REFERENCES:
                if ref in results:
                    ratios[f"{name}/{ref}"] = result["seconds_per_epoch"] / results[ref]["seconds_per_epoch"]
    return ratios


def _label(name: str) -> str:
    return LABELS.get(name, name.replace(MINICONV_PREFIX, "miniconv "))


def markdown(data: dict) -> str:
    """train_mnist.md: when and where, how, the table and the ratio."""
    m, s = data["machine"], data["settings"]
    v = m["versions"]
    versions = ", ".join(f"{label} {v[key]}" for label, key in (
        ("NumPy", "numpy"), ("Numba", "numba"), ("TensorFlow", "tensorflow"), ("TensorFlow", "tensorflow-cpu"),
        ("PyTorch", "torch")) if key in v and not (key == "tensorflow-cpu" and "tensorflow" in v))
    if m["blas_env_unset"]:
        blas = "`OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` were unset (`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`)."
    else:
        were = ", ".join(f"`{k}={val}`" for k, val in m["blas_env"].items() if val is not None)
        blas = f"**BLAS variables were set: {were}** (they slow BLAS; unset them for real numbers)."
    samples = next((r["train_samples"] for r in data["results"].values()), s["limit"])
    lines = [
        "# MNIST training benchmark: Chollet's ch. 5.1 convnet",
        "",
        (
            f"Measured {m['date']} on {m['cpu_model']} ({m['usable_cores']} usable cores of {m['cpu_count']}), "
            f"Python {m['python']}; {versions}. {blas} Workers ran with `OPENBLAS_THREAD_TIMEOUT=4`."
        ),
        "",
        f"Seconds per epoch of training only ({samples} images, batch {s['batch_size']}, RMSprop; from the start "
        f"of an epoch to the end of its last step, no validation), mean of {s['epochs']} timed epoch(s) after an "
        f"untimed warm-up of {s['warmup_steps']} steps; each contestant in its own process, contestants "
        f"alternating over {s['rounds']} round(s); the best round is kept, every round is listed. Peak memory is "
        "the worker's maximum resident set (data, library and model). Test accuracy (all test images, after the "
        "timed epochs) only shows that each contestant trained."
        + (" **Subset of the training set (`--limit`): a smoke test, not the real measurement.**"
           if s["limit"] is not None else ""),
        "",
        "| contestant | version | s / epoch (best) | every round | peak memory (MB) | test accuracy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, result in data["results"].items():
        info = data["contestants"][name].get("info", {})
        rounds = ", ".join(f"{t:.2f}" for t in result["round_seconds_per_epoch"])
        lines.append(f"| {_label(name)} | {info.get('version', '')} | {result['seconds_per_epoch']:.2f} | {rounds} | "
                     f"{result['peak_rss_mb']:.0f} | {result['test_accuracy']:.4f} |")
    return "\n".join(lines + ratio_lines(data, "Seconds per epoch")) + "\n"


def ratio_lines(data: dict, what: str) -> list[str]:
    """The markdown lines after a results table: the ratios of the best rounds, and who did not run."""
    lines = []
    if data["ratios"]:
        lines += ["", f"{what}, best rounds (below 1: miniconv is faster):", ""]
        lines += [f"- **{_label(k.split('/')[0])} / {_label(k.split('/')[1])}: {ratio:.2f}x**"
                  for k, ratio in data["ratios"].items()]
    missing = [f"{_label(n)} ({st.get('reason', 'did not run')})" for n, st in data["contestants"].items()
               if not st.get("available")]
    if missing:
        lines += ["", "Not run: " + "; ".join(missing) + "."]
    return lines


def _run_worker(name: str, extra: list[str], module: str = "benchmarks.train") -> dict:
    """One worker subprocess (``python -m module --worker name``); its last stdout line is JSON. A crash becomes {"failed": why}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    env["OPENBLAS_THREAD_TIMEOUT"] = "4"  # read once, when NumPy loads (miniconv/_threads.py)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", module, "--worker", name, *extra]
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"failed": f"worker {name} timed out after {WORKER_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"worker {name} failed (exit {done.returncode}): {tail}", file=sys.stderr)
    return {"failed": f"exit {done.returncode}: {tail}"}


def _split(text: str) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


# --- workers: one contestant per process ---------------------------------------------------------
class Unavailable(Exception):
    """The contestant cannot run here (the message says why)."""


def _load(limit):
    """MNIST as the book prepares it, through miniconv's checked loader (plain NumPy: no Numba loaded)."""
    from miniconv.recipes.mnist import prepare_mnist

    return prepare_mnist(None, limit)


def _warmup_size(n: int, batch: int, steps: int) -> int:
    """``steps`` full batches plus one of the epoch's last, partial size (if any): every shape is seen."""
    return min(n, steps * batch + n % batch)


def _miniconv_worker(backend: str, data, args) -> dict:
    import miniconv
    from miniconv import callbacks, optimizers, utils
    from miniconv.recipes.mnist import convnet as mnist_convnet

    if backend not in miniconv.available_backends():
        raise Unavailable(f"miniconv backend {backend!r} is not available here")
    (x, y), (x_test, y_test) = data
    times = []

    class Timer(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    with miniconv.use_backend(backend):
        utils.set_random_seed(args.seed)
        model = mnist_convnet()
        model.compile(optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
        k = _warmup_size(len(x), args.batch_size, args.warmup_steps)
        model.fit(x[:k], y[:k], batch_size=args.batch_size, epochs=1, verbose=0)
        model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[Timer()])
        accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
    return {"info": {"version": miniconv.__version__, "backend": backend,
                     "threads": _numba_threads()}, "epoch_seconds": times, "test_accuracy": float(accuracy)}


def _numba_threads():
    import numba

    return numba.get_num_threads()


def _keras_worker(data, args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as error:
        raise Unavailable(f"TensorFlow / Keras is not installed ({error})") from None
    from keras import layers

    (x, y), (x_test, y_test) = data
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    k = _warmup_size(len(x), args.batch_size, args.warmup_steps)
    model.fit(x[:k], y[:k], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[Timer()])
    accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
    info = {"version": f"{keras.__version__} (TF {tf.__version__})",
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
    return {"info": info, "epoch_seconds": times, "test_accuracy": float(accuracy)}


def _torch_worker(data, args) -> dict:
    try:
        import torch
        from torch import nn
    except ImportError as error:
        raise Unavailable(f"PyTorch is not installed ({error})") from None
    import numpy as np

    (x, y), (x_test, y_test) = data
    torch.manual_seed(args.seed)
    cl = torch.channels_last

    def images(array):  # NHWC memory viewed as NCHW: torch's channels-last layout, no copy
        return torch.from_numpy(array).permute(0, 3, 1, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3), nn.ReLU(),
            )
            self.head = nn.Sequential(nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            h = self.features(x)
            return self.head(h.permute(0, 2, 3, 1).flatten(1))  # flatten NHWC, as Keras

    model = Net().to(memory_format=cl)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()  # on the logits: softmax + crossentropy, as Keras fuses them
    x_all, y_all = images(x), torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(args.seed)

    def epoch(n: int, shuffle: bool = True):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        correct = 0
        model.train()
        for start in range(0, n, args.batch_size):
            index = order[start:start + args.batch_size]
            xb = x_all[index].contiguous(memory_format=cl)
            yb = y_all[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == yb).sum())  # the accuracy metric the others keep
        return correct

    epoch(_warmup_size(len(x), args.batch_size, args.warmup_steps), shuffle=False)
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        epoch(len(x))
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(images(x_test[i:i + 256]).contiguous(memory_format=cl))
                            for i in range(0, len(x_test), 256)])
    accuracy = float((logits.argmax(1).numpy() == y_test).mean())
    return {"info": {"version": torch.__version__, "threads": torch.get_num_threads()}, "epoch_seconds": times,
            "test_accuracy": accuracy}


def worker_main(args) -> int:
    """Entry of ``python -m benchmarks.train --worker NAME``: print the result as one JSON line."""
    name = args.worker
    try:
        data = _load(args.limit)
        if name == "tf":
            result = _keras_worker(data, args)
        elif name == "torch":
            result = _torch_worker(data, args)
        elif name.startswith(MINICONV_PREFIX):
            result = _miniconv_worker(name[len(MINICONV_PREFIX):], data, args)
        else:
            raise Unavailable(f"unknown contestant {name!r}: expected tf, torch or {MINICONV_PREFIX}<backend>")
    except Unavailable as error:
        print(json.dumps({"contestant": name, "unavailable": str(error)}), flush=True)
        return 0
    seconds = result["epoch_seconds"]
    result.update(contestant=name, seconds_per_epoch=sum(seconds) / len(seconds),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
                  train_samples=len(data[0][0]), test_samples=len(data[1][0]))
    print(json.dumps(result), flush=True)
    return 0


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description="One benchmark worker (internal).")
    parser.add_argument("--worker", required=True, help="tf, torch or miniconv-<backend>")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    sys.exit(worker_main(_worker_parser().parse_args()))
