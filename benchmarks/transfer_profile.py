"""Where miniconv's time goes in the transfer benchmark, by kind of step: the base's predict and a fine-tuning step.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.transfer_profile [--batches 10] [--size 224]

miniconv only, one process, cpu backend, batch 20, seeded random images in [0, 255] (the time does
not depend on the pixels). The models are those of ``benchmarks.transfer``: the recipe's
EfficientNet-Lite0 base (compiled for inference, as ``predict`` runs it: every batch normalization
folded into its convolution) and the fine-tuning model (the base unfrozen from block7a, frozen
batch normalizations, RMSprop 1e-5), run by ``TrainStep.train``, the code ``fit`` runs. As in
``benchmarks.step_profile``, each step of the compiled plan has its ``forward`` wrapped to time
it and the pullback it returns; the loss and the optimizer are wrapped too. Steps are grouped by
kind: the stem convolution, depthwise convolutions (3x3, 5x5), 1x1 convolutions (each with its batch
normalization folded in, and the ReLU6 after it where there is one: ``conv_bn_folded_relu6``), ReLU6
(only one not fused into a convolution's step; EfficientNet-Lite0 has none), the residual additions, the preprocessing layer, the global
average pooling and the head. Printed per kind: ms per batch (the kind's steps summed, the mean
over ``--batches`` batches after one untimed batch), its share of the whole batch (the mean
batch: the wrappers' own cost and the loop between steps are in it, in no part), and GFLOP/s for
convolutions (2 * N * P * Q * K * R * S * C; depthwise 2 * N * P * Q * C * R * S; backward: the
input gradient where one is needed plus the filter gradient, one forward's FLOPs each).
"""

from __future__ import annotations  # noqa: I001  (miniconv is imported before NumPy on purpose)

import argparse
import sys
import time
from collections import defaultdict

import miniconv
import numpy as np

BATCH = 20
KINDS = ("stem conv 3x3 s2 (+BN)", "depthwise 3x3 (+BN)", "depthwise 5x5 (+BN)", "1x1 conv (+BN)", "relu6", "add (residual)",
         "preprocessing", "global average pooling", "head (flatten, dense, dropout)", "batch norm (not folded)", "other")


def kind(step) -> str:
    """The kind of a plan step, by its first layer (a fused conv + BN is its convolution)."""
    layer = type(step.layers[0]).__name__
    if layer == "DepthwiseConv2D":
        R, S = step.layers[0].kernel_size
        return f"depthwise {R}x{S} (+BN)"
    if layer == "Conv2D":
        return "1x1 conv (+BN)" if tuple(step.layers[0].kernel_size) == (1, 1) else "stem conv 3x3 s2 (+BN)"
    return {"ReLU": "relu6", "Add": "add (residual)", "ImageNetPreprocessing": "preprocessing",
            "GlobalAveragePooling2D": "global average pooling", "Flatten": "head (flatten, dense, dropout)",
            "Dense": "head (flatten, dense, dropout)", "Dropout": "head (flatten, dense, dropout)",
            "BatchNormalization": "batch norm (not folded)"}.get(layer, "other")


def flops(step, y_shape) -> int:
    """Forward FLOPs of a convolution step (0 for the others): 2 * output size * R * S (* C for a full conv)."""
    layer = step.layers[0]
    name = type(layer).__name__
    if name not in ("Conv2D", "DepthwiseConv2D"):
        return 0
    R, S, C = layer.params[0].shape[:3]
    return 2 * int(np.prod(y_shape)) * R * S * (C if name == "Conv2D" else 1)


def instrument(plan, record: dict, work: dict) -> None:
    """Wrap each step's forward (and the pullback it returns) to add its seconds to record[(kind, pass)]."""
    for step in plan.steps:
        forward, group = step.forward, kind(step)

        def run(x, training=False, forward=forward, group=group, step=step):
            start = time.perf_counter()
            y, pullback = forward(x, training)
            record[(group, "forward")].append(time.perf_counter() - start)
            work.setdefault((id(step), "forward"), (group, flops(step, y.shape)))

            def timed_pullback(dy, input_gradient=True):
                start = time.perf_counter()
                dx = pullback(dy, input_gradient=input_gradient)
                record[(group, "backward")].append(time.perf_counter() - start)
                work.setdefault((id(step), "backward"), (group, flops(step, y.shape) * (1 + bool(input_gradient))))
                return dx

            return y, timed_pullback

        step.forward = run


def per_batch(record: dict, work: dict, batches: int) -> dict:
    """{(kind, pass): (ms per batch, GFLOP per batch)}: each kind's seconds over all steps and batches / batches."""
    gflop = defaultdict(float)
    for (_, which), (group, amount) in work.items():
        gflop[(group, which)] += amount / 1e9
    return {key: (1e3 * sum(times) / batches, gflop[key]) for key, times in record.items()}


def profile_predict(base, x, batches: int) -> tuple[dict, float]:
    """{(kind, "forward"): (ms, GFLOP) per batch} of the inference plan, and the mean ms of a whole batch."""
    from miniconv.engine.execute import forward
    from miniconv.engine.plan import compile_plan

    plan = compile_plan(base)
    forward(plan, [x], False, keep_tape=False)  # untimed: kernel compilation, first allocations
    record, work, wholes = defaultdict(list), {}, []
    instrument(plan, record, work)
    for _ in range(batches):
        start = time.perf_counter()
        forward(plan, [x], False, keep_tape=False)
        wholes.append(time.perf_counter() - start)
    return per_batch(record, work, batches), 1e3 * float(np.mean(wholes))


def profile_fine_tune(model, x, y, batches: int) -> tuple[dict, float]:
    """{(kind, pass): (ms, GFLOP) per step} of the fine-tuning step (loss and optimizer as kinds), and its mean ms."""
    from miniconv.training import step as step_module

    train_step = step_module.TrainStep(model)
    train_step.train([x], y)  # untimed
    record, work, wholes = defaultdict(list), {}, []
    instrument(train_step.plan, record, work)
    apply, loss = train_step.optimizer.apply, step_module.loss_value_and_gradient

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            record[key].append(time.perf_counter() - start)
            return out
        return wrapper

    train_step.optimizer.apply = timed(("optimizer (RMSprop)", "update"), apply)
    step_module.loss_value_and_gradient = timed(("loss", "forward"), loss)
    try:
        for _ in range(batches):
            start = time.perf_counter()
            train_step.train([x], y)
            wholes.append(time.perf_counter() - start)
    finally:
        step_module.loss_value_and_gradient = loss
        del train_step.optimizer.apply
    return per_batch(record, work, batches), 1e3 * float(np.mean(wholes))


def table(title: str, parts: dict, whole_ms: float) -> list[str]:
    lines = [f"## {title}: {whole_ms:.0f} ms per batch of {BATCH} (mean)", "",
             "| kind | pass | ms / batch | share | GFLOP / batch | GFLOP/s |", "|---|---|---:|---:|---:|---:|"]
    order = {k: i for i, k in enumerate(KINDS)}
    for (group, which), (ms, gflop) in sorted(parts.items(), key=lambda kv: (kv[0][1] != "forward", kv[0][1],
                                                                             order.get(kv[0][0], 99))):
        rate = f"{gflop / ms * 1e3:.0f}" if gflop else ""
        lines.append(f"| {group} | {which} | {ms:.1f} | {100 * ms / whole_ms:.1f}% | "
                     f"{gflop:.3g} | {rate} |" if gflop else f"| {group} | {which} | {ms:.1f} | "
                     f"{100 * ms / whole_ms:.1f}% | | |")
    inside = sum(ms for ms, _ in parts.values())
    lines.append(f"| (sum of the parts) | | {inside:.1f} | {100 * inside / whole_ms:.1f}% | | |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="timed batches of each part (default 10)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.batches < 1 or args.size < 32:
        parser.error("--batches must be at least 1 and --size at least 32")
    from miniconv.recipes import transfer

    miniconv.set_backend("cpu")
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0, 255, (BATCH, args.size, args.size, 3)).astype(np.float32)
    y = (rng.random((BATCH, 1)) < 0.5).astype(np.float32)
    spec = transfer.BASES["efficientnet-lite0"]
    miniconv.utils.set_random_seed(args.seed)
    parts, whole = profile_predict(spec.build("imagenet", (args.size, args.size, 3)), x, args.batches)
    lines = [f"# miniconv, EfficientNet-Lite0 at {args.size}x{args.size}, batch {BATCH}, cpu backend", ""]
    lines += table("Feature extraction (predict's inference plan)", parts, whole) + [""]
    model = transfer.frozen_model(spec.build("imagenet", (args.size, args.size, 3)), [], head="chollet")
    transfer.unfreeze_from(transfer.find_base(model), spec.fine_tune_from)
    model.compile(miniconv.optimizers.RMSprop(learning_rate=1e-5), "binary_crossentropy", metrics=["accuracy"])
    parts, whole = profile_fine_tune(model, x, y, args.batches)
    lines += table("A fine-tuning step (TrainStep.train)", parts, whole)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
