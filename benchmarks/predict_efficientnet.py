"""``python -m benchmarks.predict_efficientnet``: seconds to run EfficientNet-Lite0's base over images.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.predict_efficientnet \\
        [--images 200] [--batch-size 32] [--size 224] [--rounds 2] [--references keras]

The base (``EfficientNetLite0(include_top=False, weights="imagenet")``, the feature extractor of
the transfer recipes) predicts ``--images`` random images of ``--size`` x ``--size`` x 3 in batches
of ``--batch-size`` on miniconv's cpu backend, after one untimed batch (JIT compilation, the
compiled plan). The reference, Keras, runs the same network from the same converted weights
(``model.to_keras()``). Each contestant runs in its own process, contestants alternate, and each
keeps its best round (``benchmarks/harness.py``). Writes
``benchmarks/results/predict_efficientnet.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time

from .common import machine_info
from .harness import DEFAULT_OUT, best_round, run_rounds, warn_if_blas_set, worker_main, write_results

MODULE = "benchmarks.predict_efficientnet"
CONTESTANTS = ("miniconv", "keras")


def _measure(name: str, images: int, batch_size: int, size: int) -> dict:
    import miniconv  # noqa: I001  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT first)
    import numpy as np
    from miniconv.applications import EfficientNetLite0

    base = EfficientNetLite0(include_top=False, weights="imagenet", input_shape=(size, size, 3))
    x = np.random.default_rng(0).uniform(-2.0, 2.0, (images, size, size, 3)).astype(np.float32)
    if name == "keras":
        model = base.to_keras()

        def predict(data):
            return model.predict(data, batch_size=batch_size, verbose=0)
    else:
        miniconv.set_backend("cpu")

        def predict(data):
            return base.predict(data, batch_size=batch_size, verbose=0)

    predict(x[:batch_size])  # warm-up: compilation, thread pools, first allocation
    start = time.perf_counter()
    out = predict(x)
    seconds = time.perf_counter() - start
    return {"info": machine_info(), "seconds": seconds, "ms_per_image": 1000 * seconds / images,
            "output_shape": list(np.shape(out))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--references", default="keras", help="'keras' or '' (miniconv only)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def run(args) -> int:
    options = ["--images", str(args.images), "--batch-size", str(args.batch_size), "--size", str(args.size)]
    if args.worker:
        return worker_main(args.worker, lambda: _measure(args.worker, args.images, args.batch_size, args.size))
    warn_if_blas_set(f"python -m {MODULE}")
    names = ["miniconv"] + [n for n in args.references.split(",") if n]
    rounds = run_rounds(MODULE, names, options, args.rounds)
    rows, data = [], {"images": args.images, "batch_size": args.batch_size, "size": args.size, "results": {}}
    for name in names:
        runs = rounds.runs.get(name) or []
        if not runs:
            rows.append(f"| {name} | not run: {rounds.status.get(name, {}).get('reason', '?')} | | |")
            continue
        best = best_round(runs, "seconds")
        data["results"][name] = {"best": best, "rounds": [r["seconds"] for r in runs]}
        every = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        rows.append(f"| {name} | {best['seconds']:.2f} ({every}) | {best['ms_per_image']:.1f} | "
                    f"{best['info']['date']} |")
    info = next((r[0]["info"] for r in rounds.runs.values() if r), {})
    markdown = (f"# EfficientNet-Lite0 base, predict\n\n{args.images} images of {args.size}x{args.size}x3, batch "
                f"{args.batch_size}, include_top=False, best of {args.rounds} rounds (each contestant in its own "
                f"process, alternating). CPU: {info.get('cpu_model', '?')}, {info.get('usable_cores', '?')} cores; "
                f"BLAS variables unset: {info.get('blas_env_unset', '?')}.\n\n"
                f"| contestant | seconds: best (every round) | ms / image | date (UTC) |\n|---|---:|---:|---|\n"
                + "\n".join(rows) + "\n")
    print(markdown)
    write_results(args.out, "predict_efficientnet", data, markdown)
    return 0 if rounds.any_ran() else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
