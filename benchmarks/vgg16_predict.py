"""``python -m benchmarks.vgg16_predict``: VGG16's convolutional base (Chollet 5.3) predicting 150x150 images, miniconv against Keras.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.vgg16_predict            # the real run
    python -m benchmarks.vgg16_predict --images 2 --rounds 1 --out /tmp/bench                  # a smoke test

Each contestant builds ``VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))`` (the
numbers do not depend on the weights; no weight file is needed) and predicts ``--images`` seeded
random images in [0, 255] (preprocessed by ``vgg16.preprocess_input``) as one batch
(``predict(x, batch_size=N)``): one untimed call (kernel compilation, tracing), then
``common.time_call`` (``--repeats`` timed calls, the median reported). Contestants, each in its
own process, alternating over ``--rounds`` rounds, the best round kept (``benchmarks.harness``):

    miniconv-cpu   miniconv.applications.VGG16, cpu backend (``--backends`` for others)
    tf             keras.applications.VGG16 on TensorFlow (oneDNN as installed)

Results go to ``<out>/vgg16_predict.json`` and ``.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import common, harness

SHAPE = (150, 150, 3)
#: (filters, convolutions) of VGG16's five blocks, each closed by a 2x2 pooling of stride 2
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def base_flops(n: int, height: int = SHAPE[0], width: int = SHAPE[1]) -> int:
    """Forward FLOPs of the 13 SAME 3x3 convolutions of VGG16's base on n images (pooling not counted)."""
    total, channels = 0, 3
    for filters, convolutions in BLOCKS:
        for _ in range(convolutions):
            total += common.conv2d_flops(n, height, width, filters, 3, 3, channels)
            channels = filters
        height, width = height // 2, width // 2
    return total


def measure(name: str, images: int, repeats: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, *SHAPE)).astype(np.float32)
    if name == "tf":
        import keras

        model = keras.applications.VGG16(weights=None, include_top=False, input_shape=SHAPE)
        x = keras.applications.vgg16.preprocess_input(raw.copy())
    else:
        import miniconv
        from miniconv.applications import VGG16, vgg16

        miniconv.set_backend(name.removeprefix(harness.MINICONV_PREFIX))
        model = VGG16(weights=None, include_top=False, input_shape=SHAPE)
        x = vgg16.preprocess_input(raw)
    timing = common.time_call(lambda: model.predict(x, batch_size=images, verbose=0), warmup=1, repeats=repeats)
    return {"info": common.machine_info(), **timing}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=20, help="images in the batch (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed predict calls per worker (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all contestants; the best is kept (default 3)")
    parser.add_argument("--backends", default="cpu", help="miniconv backends, comma-separated (default cpu)")
    parser.add_argument("--references", default="tf", help="'tf' for Keras, or '' for none (default tf)")
    parser.add_argument("--out", type=Path, default=harness.DEFAULT_OUT, help="results directory")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def run(args) -> int:
    if args.worker:
        return harness.worker_main(args.worker, lambda: measure(args.worker, args.images, args.repeats))
    harness.warn_if_blas_set("python -m benchmarks.vgg16_predict")
    names = harness.contestants(args.backends, args.references, known=("tf",))
    rounds = harness.run_rounds("benchmarks.vgg16_predict", names, ["--images", str(args.images), "--repeats",
                                                                    str(args.repeats)], args.rounds)
    if not rounds.any_ran():
        print("no contestant ran", file=sys.stderr)
        return 1
    flops = base_flops(args.images)
    rows, best = [], {}
    for name in names:
        runs = rounds.runs[name]
        if not runs:
            rows.append(f"| {harness.label(name, {'tf': 'Keras (TF)'})} | {rounds.status[name]['reason']} | | | |")
            continue
        top = harness.best_round(runs, "median_s")
        best[name] = top["median_s"]
        every = ", ".join(f"{run['median_s']:.3f}" for run in runs)
        rows.append(f"| {harness.label(name, {'tf': 'Keras (TF)'})} | {top['median_s']:.3f} | {top['min_s']:.3f} | "
                    f"{every} | {flops / top['median_s'] / 1e9:.0f} |")
    ratios = harness.ratios(best, ["tf"])
    info = next(s["info"] for s in rounds.status.values() if s["available"])
    markdown = "\n".join([
        f"# VGG16 base, predict of {args.images} images of 150x150x3 (one batch)",
        "",
        (f"{info['date']}, {info['cpu_model']}, {info['usable_cores']} usable cores; best of {args.rounds} rounds, "
        f"each the median of {args.repeats} calls after one untimed call; {flops / 1e9:.1f} GFLOP per call "
        f"(the 13 convolutions). BLAS variables: {common.blas_env()}."),
        "",
        "| contestant | s per call (best round's median) | its minimum | every round's median | GFLOP/s |",
        "|---|---:|---:|---|---:|",
        *rows,
        "",
        *(f"- {key}: {value:.2f}x" for key, value in ratios.items()),
        "",
    ])
    harness.write_results(args.out, "vgg16_predict", {"images": args.images, "flops": flops, "status": rounds.status,
                                                       "runs": rounds.runs, "ratios": ratios}, markdown)
    print(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vgg16_predict", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
