"""Per-step times of the MNIST convnet's ``fit``, miniconv against Keras: a view that survives a noisy machine.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.step_times [--steps 400] [--rounds 3]

Epoch times on a shared machine swing by 30-50% from one run to the next; the distribution of
single training steps inside one epoch shows more: its minimum is the work a step costs when
nothing else runs, its median what a typical step costs. Each side trains ``--steps`` batches of
64 (after 10 untimed steps) in its own process, alternating, ``--rounds`` times; a callback
stamps the end of every batch. Printed: min / p10 / median / p90 / mean in ms per side and
round, and the ratios of the best minimum and the best median.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("miniconv", "keras")


def _keras_model(keras):
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
    ])  # fmt: skip


def worker(side: str, steps: int) -> dict:
    """Train ``steps`` batches on one side; the statistics of the gaps between batch ends, in ms."""
    from miniconv.recipes.mnist import prepare_mnist

    (x, y), _ = prepare_mnist(None, None)
    x, y = x[: (steps + 1) * 64], y[: (steps + 1) * 64]  # one more batch: steps gaps between stamps
    stamps: list[float] = []
    if side == "miniconv":
        from miniconv import callbacks, optimizers, utils
        from miniconv.recipes.mnist import convnet as mnist_convnet

        base = callbacks.Callback
        utils.set_random_seed(0)
        model = mnist_convnet()
        model.compile(optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        base = keras.callbacks.Callback
        keras.utils.set_random_seed(0)
        model = _keras_model(keras)
        model.compile(keras.optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])

    class Stamp(base):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0)  # untimed: compilation, tracing
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[Stamp()])
    gaps = np.diff(np.array(stamps)) * 1e3
    return {"side": side, "steps": int(gaps.size), "min": float(gaps.min()), "p10": float(np.percentile(gaps, 10)),
            "median": float(np.median(gaps)), "p90": float(np.percentile(gaps, 90)), "mean": float(gaps.mean())}


def run(steps: int, rounds: int, sides=SIDES) -> list[dict]:
    results = []
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4")}
    for round_ in range(rounds):
        for side in sides:
            out = subprocess.run([sys.executable, "-m", "benchmarks.step_times", "--worker", side, "--steps", str(steps)],
                                 cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"{side} worker failed:\n{out.stderr[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["round"] = round_ + 1
            results.append(result)
            print(f"round {round_ + 1} {side:9s} " + "  ".join(f"{k} {result[k]:.2f}" for k in
                                                            ("min", "p10", "median", "p90", "mean")) + " ms")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_times", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed training steps per run (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--sides", default=",".join(SIDES), help="miniconv,keras (default both)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be at least 2, got {args.steps}")
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)), flush=True)
        return 0
    sides = [s for s in args.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"--sides: expected miniconv and/or keras, got {sorted(unknown)}")
    results = run(args.steps, args.rounds, sides)
    if set(sides) == set(SIDES):
        best = {side: {k: min(r[k] for r in results if r["side"] == side) for k in ("min", "median")} for side in SIDES}
        print(f"miniconv / Keras: best minimum {best['miniconv']['min'] / best['keras']['min']:.2f}x, "
              f"best median {best['miniconv']['median'] / best['keras']['median']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
