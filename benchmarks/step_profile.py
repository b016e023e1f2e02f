"""Where one training step of a course convnet goes, part by part: batching, each layer's forward and backward, loss, optimizer.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.step_profile [--steps 400] [--model mnist|cats]

miniconv only, one process, RMSprop. ``mnist``: the MNIST convnet, batch 64, the shuffled training
set. ``cats``: Chollet's cats-vs-dogs convnet (``recipes.cats_dogs.convnet``), batch 20, RMSprop 1e-4,
binary crossentropy, on 400 random 150 x 150 x 3 images in [0, 255] (the kernels' time does not
depend on the pixels, and no JPEG decoding is in a step: the trainer caches decoded images). The step is
``TrainStep.train`` itself (``miniconv/training/step.py``): each step of the compiled plan (a
layer, or a fused group such as Conv2D(relu) + MaxPooling2D) has its ``forward`` wrapped on the
instance to time it and the pullback it returns, and so do the loss and the optimizer, so the
profile runs exactly the code that ``fit`` runs. Printed per part: minimum and median ms over the
steps, and the median's share of the median step (batch + step). The parts do not add up to the
step exactly: the wrappers' own cost and the loop between them are in the step, not in a part.
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


def _instrument_step(record: dict, step) -> None:
    """Time a plan step's forward and, through the pullback it returns, its backward."""
    forward = step.forward

    def run(x, training=False):
        start = time.perf_counter()
        y, pullback = forward(x, training)
        record.setdefault(f"{step.name} forward", []).append(time.perf_counter() - start)
        return y, _timed(record, f"{step.name} backward", pullback)

    step.forward = run


def _mnist(seed: int):
    """(x, y, model, loss name) of the MNIST convnet on the training set (``seed`` unused: real data)."""
    from miniconv.recipes.mnist import convnet, prepare_mnist

    (x, y), _ = prepare_mnist(None, None)
    return x, y, convnet(), "sparse_categorical_crossentropy"


def _cats(seed: int, images: int = 400):
    """(x, y, model, loss name) of the cats-vs-dogs convnet on random 150x150 RGB images in [0, 255]."""
    from miniconv.recipes.cats_dogs import IMAGE_SIZE, convnet

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (images, *IMAGE_SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, (images, 1)).astype(np.float32)
    return x, y, convnet(), "binary_crossentropy"


MODELS = {  # name: (data and model, batch size, RMSprop's learning rate, title)
    "mnist": (_mnist, 64, 1e-3, "MNIST convnet, batch 64"),
    "cats": (_cats, 20, 1e-4, "cats-vs-dogs convnet, batch 20, random 150x150 images"),
}


def profile(steps: int, model_name: str = "mnist", seed: int = 0) -> tuple[list[str], dict]:
    """Run ``steps`` training steps; (part names in step order, {part: seconds per call})."""
    from miniconv import optimizers, utils
    from miniconv.training import data
    from miniconv.training import step as step_module

    if model_name not in MODELS:
        raise ValueError(f"step_profile: model_name must be one of {sorted(MODELS)}, got {model_name!r}")
    make, batch_size, learning_rate, _ = MODELS[model_name]
    utils.set_random_seed(seed)
    x, y, model, loss_name = make(seed)
    model.compile(optimizers.RMSprop(learning_rate), loss_name, metrics=["accuracy"])
    model.fit(x[: 4 * batch_size], y[: 4 * batch_size], batch_size=batch_size, epochs=1, verbose=0)  # build, compile kernels
    train_step = step_module.TrainStep(model)

    record: dict[str, list[float]] = {}
    for plan_step in train_step.plan.steps:
        _instrument_step(record, plan_step)
    train_step.optimizer.apply = _timed(record, "optimizer", train_step.optimizer.apply)
    loss = step_module.loss_value_and_gradient
    step_module.loss_value_and_gradient = _timed(record, "loss", loss)
    targets = model.loss.check_targets(y, model.output_shape, len(y))
    try:
        order = np.random.default_rng(seed).permutation(len(x))
        batches = list(data.batch_indices(len(x), batch_size, order))
        for i in range(steps):
            start = time.perf_counter()
            index = batches[i % len(batches)]
            xb, yb = data.take(x, index), targets[index]
            record.setdefault("batch (gather + float32)", []).append(time.perf_counter() - start)
            train_step.train([xb], yb)
            record.setdefault("whole step", []).append(time.perf_counter() - start)
    finally:
        step_module.loss_value_and_gradient = loss
        del train_step.optimizer.apply  # the optimizer's own method again
    forwards = [k for k in record if k.endswith(" forward")]  # in the order they first ran
    backwards = [k for k in record if k.endswith(" backward")]
    order_of_parts = ["batch (gather + float32)", *forwards, "loss", *backwards, "optimizer", "whole step"]
    return [k for k in order_of_parts if k in record], record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed training steps (default 400)")
    parser.add_argument("--model", choices=sorted(MODELS), default="mnist", help="which course convnet (default mnist)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    parts, record = profile(args.steps, args.model)
    step_median = float(np.median(record["whole step"]))
    print(f"{MODELS[args.model][-1]}, RMSprop: {args.steps} steps")
    for part in parts:
        ms = np.asarray(record[part]) * 1e3
        share = np.median(ms) / (step_median * 1e3) * 100
        print(f"{part:40s} min {ms.min():7.3f}  median {np.median(ms):7.3f} ms  {share:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
