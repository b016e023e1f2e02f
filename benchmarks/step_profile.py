"""Where one training step of the MNIST convnet goes, part by part: batching, each layer's forward and backward, loss, optimizer.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.step_profile [--steps 400]

miniconv only, one process, batch 64, RMSprop, the shuffled training set. The step is
``training.train_step`` itself: each layer's ``forward`` (and ``forward_with_next``, the fused
Conv2D(relu) + MaxPooling2D pair) is wrapped on the instance to time it and the backward it
returns, so the profile runs exactly the code that ``fit`` runs. Printed per part: minimum and
median ms over the steps, and the median's share of the median step (batch + step). The parts
do not add up to the step exactly: the wrappers' own cost and the loop between them are in the
step, not in a part.
"""

from __future__ import annotations  # noqa: I001  (miniconv is imported before NumPy on purpose)

import argparse
import sys
import time

import miniconv  # noqa: F401  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT before OpenBLAS loads)
import numpy as np


def _timed(record: dict, key: str, fn):
    """fn, appending its wall time in seconds to record[key] at each call."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        record.setdefault(key, []).append(time.perf_counter() - start)
        return result

    return wrapper


def _instrument_layer(record: dict, layer, following) -> None:
    """Time the layer's forward and, through the closures it returns, its backward."""

    def with_timed_backward(key, forward):
        def run(*args, **kwargs):
            start = time.perf_counter()
            result = forward(*args, **kwargs)
            if result is None:  # forward_with_next declined to fuse: the layer's own forward runs next
                return None
            record.setdefault(f"{key} forward", []).append(time.perf_counter() - start)
            h, back = result
            return h, _timed(record, f"{key} backward", back)

        return run

    layer.forward = with_timed_backward(layer.name, layer.forward)
    fuse = getattr(layer, "forward_with_next", None)
    if fuse is not None and following is not None:
        layer.forward_with_next = with_timed_backward(f"{layer.name}+{following.name}", fuse)


def profile(steps: int, batch_size: int = 64, seed: int = 0) -> tuple[list[str], dict]:
    """Run ``steps`` training steps; (part names in step order, {part: seconds per call})."""
    from miniconv import optimizers, training, utils
    from miniconv.train_cli import mnist_convnet, prepare_mnist

    (x, y), _ = prepare_mnist(None, None)
    utils.set_random_seed(seed)
    model = mnist_convnet()
    model.compile(optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[: 4 * batch_size], y[: 4 * batch_size], batch_size=batch_size, epochs=1, verbose=0)  # build, compile kernels
    plan = training.make_plan(model)

    record: dict[str, list[float]] = {}
    for i, layer in enumerate(plan.layers):
        _instrument_layer(record, layer, plan.layers[i + 1] if i + 1 < len(plan.layers) else None)
    plan.optimizer.apply = _timed(record, "optimizer", plan.optimizer.apply)
    loss_and_prediction = training.loss_and_prediction
    training.loss_and_prediction = _timed(record, "loss", loss_and_prediction)
    try:
        order = np.random.default_rng(seed).permutation(len(x))
        batches = list(training.batch_indices(len(x), batch_size, order))
        for step in range(steps):
            start = time.perf_counter()
            index = batches[step % len(batches)]
            xb, yb = training.take(x, index), y[index]
            record.setdefault("batch (gather + float32)", []).append(time.perf_counter() - start)
            training.train_step(plan, xb, yb)
            record.setdefault("whole step", []).append(time.perf_counter() - start)
    finally:
        training.loss_and_prediction = loss_and_prediction
    forwards = [k for k in record if k.endswith(" forward")]  # in the order they first ran
    backwards = [k for k in record if k.endswith(" backward")]
    order_of_parts = ["batch (gather + float32)", *forwards, "loss", *backwards, "optimizer", "whole step"]
    return [k for k in order_of_parts if k in record], record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed training steps (default 400)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    parts, record = profile(args.steps)
    step_median = float(np.median(record["whole step"]))
    print(f"MNIST convnet, batch 64, RMSprop: {args.steps} steps")
    for part in parts:
        ms = np.asarray(record[part]) * 1e3
        share = np.median(ms) / (step_median * 1e3) * 100
        print(f"{part:40s} min {ms.min():7.3f}  median {np.median(ms):7.3f} ms  {share:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
