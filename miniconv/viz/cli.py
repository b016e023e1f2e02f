"""``miniconv viz``: write the whole gallery of pictures (``miniconv.viz``) as PNG files.

    miniconv viz --out gallery/                                  # trains a small MNIST model first
    miniconv viz --model runs/mnist/mnist.miniconv --out gallery/   # a trained model (its report.json
                                                                 # beside it gives the learning curves)
    miniconv viz --model m.miniconv --image cat.jpg --out gallery/  # your own picture

Without ``--model`` it trains Chollet's MNIST convnet on ``--limit`` images for ``--epochs`` epochs
(a few seconds on the cpu backend); without ``--image`` it uses an MNIST test digit (and the
course's circle), so the plain command always writes every picture. See ``miniconv.viz.gallery``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPORT_NAMES = ("report.json", "checkpoint.json")  # what `miniconv train` writes beside its model
# gallery.GALLERY's keys, repeated here so that building the parser imports neither NumPy's users nor matplotlib
GALLERY_NAMES = ("kernels", "extraction_circle", "extraction_image", "translation_invariance", "two_dots",
                 "global_average_pooling", "augmented_variants", "feature_maps", "filter_patterns", "learning_curves",
                 "timeseries_conv1d", "receptive_field", "grad_cam")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``miniconv viz`` options."""
    parser.add_argument("--out", type=Path, required=True, help="directory to write the PNG files to")
    parser.add_argument("--model", type=Path, default=None, metavar="FILE",
                        help="a saved model (miniconv.load_model); default: train a small MNIST model first")
    parser.add_argument("--image", type=Path, default=None, metavar="FILE",
                        help="a PNG / JPEG to look at, resized to the model's input; default: an MNIST digit")
    parser.add_argument("--history", type=Path, default=None, metavar="FILE",
                        help="training report (report.json) for the learning curves; default: the one beside --model")
    parser.add_argument("--layer", default=None, help="layer whose filter patterns to draw (default: the last Conv2D)")
    parser.add_argument("--filters", type=int, default=16, help="how many filter patterns (default 16)")
    parser.add_argument("--steps", type=int, default=40, help="gradient-ascent steps per filter pattern (default 40)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the model trained without --model (default 3)")
    parser.add_argument("--limit", type=int, default=2000, help="MNIST images it trains on (default 2000)")
    parser.add_argument("--backend", default="cpu", help="miniconv backend to compute on (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and of the random pictures (default 0)")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated pictures to write (default all): " + ", ".join(GALLERY_NAMES))
    parser.add_argument("--smooth", nargs="?", type=float, const=0.8, default=None, metavar="FACTOR",
                        help="draw the learning curves smoothed, Chollet's exponential moving average (factor 0.8 "
                             "when given without a value)")
    parser.add_argument("--dpi", type=int, default=80, help="resolution of the PNG files (default 80)")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="MNIST .npz file or directory (default: $MINICONV_DATA, else the copy shipped with miniconv)")


def _history_beside(model_path: Path):
    for name in REPORT_NAMES:
        candidate = model_path.parent / name
        if candidate.is_file():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    """Load or train the model, then write the gallery; exit code 2 on a bad option or file."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("miniconv viz: matplotlib is not installed (pip install 'miniconv[viz]')", file=sys.stderr)
        return 2
    import miniconv

    from .gallery import load_image, save_gallery, train_default_model

    started = time.perf_counter()
    for option in ("filters", "steps", "epochs", "limit", "dpi"):
        if getattr(args, option) < 1:
            print(f"miniconv viz: --{option} must be at least 1, got {getattr(args, option)}", file=sys.stderr)
            return 2
    if args.smooth is not None and not 0 <= args.smooth < 1:
        print(f"miniconv viz: --smooth must be in [0, 1), got {args.smooth:g}", file=sys.stderr)
        return 2
    only = None if args.only is None else [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only or ()) - set(GALLERY_NAMES))
    if unknown:
        print(f"miniconv viz: unknown picture(s) {', '.join(unknown)} in --only; choose from {', '.join(GALLERY_NAMES)}",
              file=sys.stderr)
        return 2
    try:
        with miniconv.use_backend(args.backend):
            history = args.history
            if args.model is None:
                model, history = train_default_model(args.limit, args.epochs, seed=args.seed, backend=args.backend,
                                                     data=args.data)
            else:
                model = miniconv.load_model(args.model)
                history = history or _history_beside(args.model)
            if model.input_shape is None or len(model.input_shape) != 4:
                print(f"miniconv viz: the model must take images (None, h, w, c), got input {model.input_shape}",
                      file=sys.stderr)
                return 2
            image = load_image(args.image, model.input_shape) if args.image is not None else None
            paths = save_gallery(args.out, model, image, history, layer=args.layer, filters=args.filters,
                                 steps=args.steps, seed=args.seed, dpi=args.dpi, data=args.data, only=only,
                                 smooth=False if args.smooth is None else args.smooth)
    except (OSError, ValueError) as error:  # unreadable files, bad layer names, ModelFileError, DatasetError
        print(f"miniconv viz: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {len(paths)} pictures to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0
