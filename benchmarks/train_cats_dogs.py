"""``python -m benchmarks train cats-dogs``: seconds per epoch of Chollet's ch. 5.2 convnet on image folders, miniconv against Keras.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train cats-dogs            # the real run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train cats-dogs --augment  # with augmentation
    python -m benchmarks train cats-dogs --limit 40 --epochs 1 --rounds 1 --out /tmp/bench      # a smoke test

The recipe on both sides (``miniconv.train_cats_dogs``): ``--data``/train and /validation read by
``image_dataset_from_directory`` (150x150 RGB, binary labels, batch 20, seed ``--seed``, decoded
images cached in memory: miniconv's ``cache=True``, Keras's ``dataset.cache()``), the same model
(``cats_dogs_convnet``; with ``--augment`` flip / rotation 40 deg / translation 0.2 / zoom 0.2 and
dropout 0.5), RMSprop 1e-4, binary crossentropy, accuracy. Contestants, each in its own process
(Numba's and TensorFlow's thread pools slow each other in one), alternating over ``--rounds``
rounds in a rotated order:

    miniconv-cpu   ``Sequential.fit`` on the dataset, cpu backend (``--backends`` for others)
    tf             Keras 3 on TensorFlow, ``model.fit`` on its tf.data dataset

A worker builds its datasets and model, then, untimed: ``--warmup-steps`` training steps (kernel
compilation, tracing) and one pass over the training and validation sets, which decodes every image
into the cache. Then it trains ``--epochs`` epochs, timing each with ``time.perf_counter`` twice:
training only (epoch start to the end of its last step) and with validation (to the end of the
epoch's validation pass). Afterwards it reads its peak resident memory (``ru_maxrss``: the cached
images, library and model) and reports the last validation accuracy (only a check that it trained).
With ``--limit N`` both sides use ceil(N / 20) batches of each split (Keras: ``dataset.take``, so a
different sample each epoch; miniconv: the first N files): a smoke test, not the measurement.

Results go to ``<out>/train_cats_dogs[_augment].json`` and ``.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

from .common import blas_env, machine_info
from .train import MINICONV_PREFIX, Unavailable, _label, _ratios, _results, _run_worker, _split, ratio_lines

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cats_and_dogs_small"
REFERENCES = ("tf",)
HELP = "seconds per epoch of Chollet's ch. 5.2 cats-vs-dogs convnet on image folders: miniconv vs Keras"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks train cats-dogs`` options."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder with train/ and validation/ (default {DEFAULT_DATA})")
    parser.add_argument("--augment", action="store_true", help="the augmented model (flip, rotation, translation, "
                                                               "zoom, dropout)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per worker (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all contestants; the best is kept (default 3)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="about N images of each split (smoke tests; see the module docstring)")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed training steps first (default 3)")
    parser.add_argument("--backends", default="cpu", help="comma-separated miniconv backends (default cpu)")
    parser.add_argument("--references", default=",".join(REFERENCES), help="tf, or empty for miniconv alone (default tf)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, file order, shuffling (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")


def _name(args) -> str:
    return "train_cats_dogs" + ("_augment" if args.augment else "")


def run(args) -> int:
    """Run the rounds, write the JSON and markdown, print the markdown; 0 unless nothing could run."""
    for name in ("epochs", "rounds"):
        if getattr(args, name) < 1:
            print(f"benchmarks train cats-dogs: --{name} must be at least 1", file=sys.stderr)
            return 2
    if not (args.data / "train").is_dir() or not (args.data / "validation").is_dir():
        print(f"benchmarks train cats-dogs: --data {args.data} must hold train/ and validation/", file=sys.stderr)
        return 2
    were_set = [name for name, value in blas_env().items() if value is not None]
    if were_set:
        print(f"warning: {', '.join(were_set)} set: BLAS runs slower; for real numbers run "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train cats-dogs`", file=sys.stderr)
    contestants = [MINICONV_PREFIX + b for b in _split(args.backends)]
    contestants += [r for r in _split(args.references) if r in REFERENCES]
    worker_args = ["--data", str(args.data.resolve()), "--epochs", str(args.epochs),
                   "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed)]
    worker_args += ["--augment"] if args.augment else []
    worker_args += ["--limit", str(args.limit)] if args.limit is not None else []

    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    status: dict[str, dict] = {name: {"available": False} for name in contestants}
    for r in range(args.rounds):
        shift = r % len(contestants)
        for name in contestants[shift:] + contestants[:shift]:
            print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            out = _run_worker(name, worker_args, module="benchmarks.train_cats_dogs")
            if "epoch_seconds" not in out:
                status[name].setdefault("reason", out.get("unavailable") or out.get("failed", "no output"))
                continue
            status[name] = {"available": True, "info": out["info"]}
            runs[name].append({key: out[key] for key in (
                "epoch_seconds", "seconds_per_epoch", "epoch_seconds_with_validation",
                "seconds_per_epoch_with_validation", "peak_rss_mb", "test_accuracy", "train_samples", "test_samples")})

    data = {
        "benchmark": _name(args),
        "machine": machine_info(),
        "settings": {"augment": args.augment, "epochs": args.epochs, "rounds": args.rounds, "limit": args.limit,
                     "batch_size": 20, "warmup_steps": args.warmup_steps, "seed": args.seed,
                     "data": str(args.data.resolve()), "contestants": contestants,
                     "worker_env": {"OPENBLAS_THREAD_TIMEOUT": "4"}},
        "contestants": status,
        "results": _results(runs),  # "test_*" are the validation split's
    }
    for name, result in data["results"].items():
        result["seconds_per_epoch_with_validation"] = min(r["seconds_per_epoch_with_validation"] for r in runs[name])
    data["ratios"] = _ratios(data["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / _name(args)
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(data)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}", file=sys.stderr)
    return 0 if any(s["available"] for s in status.values()) else 1


def markdown(data: dict) -> str:
    """The .md: when and where, how, the table and the ratio."""
    m, s = data["machine"], data["settings"]
    v = m["versions"]
    versions = ", ".join(f"{label} {v[key]}" for label, key in (
        ("NumPy", "numpy"), ("Numba", "numba"), ("TensorFlow", "tensorflow"), ("TensorFlow", "tensorflow-cpu"))
        if key in v and not (key == "tensorflow-cpu" and "tensorflow" in v))
    blas = ("`OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` were unset." if m["blas_env_unset"] else
            "**BLAS variables were set: " + ", ".join(f"`{k}={val}`" for k, val in m["blas_env"].items()
                                                         if val is not None) + "** (they slow BLAS).")
    samples = next((r["train_samples"] for r in data["results"].values()), s["limit"])
    model = "with augmentation and dropout" if s["augment"] else "without augmentation"
    lines = [
        f"# Cats vs dogs training benchmark: Chollet's ch. 5.2 convnet, {model}",
        "",
        (f"Measured {m['date']} on {m['cpu_model']} ({m['usable_cores']} usable cores of {m['cpu_count']}), "
         f"Python {m['python']}; {versions}. {blas} Workers ran with `OPENBLAS_THREAD_TIMEOUT=4`."),
        "",
        (f"Seconds per epoch ({samples} training images, batch {s['batch_size']}, RMSprop 1e-4, 150x150 RGB from "
         f"{s['data']}, decoded images cached in memory before timing), mean of {s['epochs']} timed epoch(s) after "
         f"an untimed warm-up ({s['warmup_steps']} steps and one pass over the data); training only, and with the "
         f"validation pass. Each contestant in its own process, alternating over {s['rounds']} round(s); the best "
         "round is kept. Peak memory is the worker's maximum resident set (cached images, library, model). "
         "Validation accuracy only shows that each contestant trained."
         + (" **`--limit`: a smoke test, not the real measurement.**" if s["limit"] is not None else "")),
        "",
        ("| contestant | version | s / epoch, training (best) | every round | s / epoch with validation "
         "| peak memory (MB) | validation accuracy |"),
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in data["results"].items():
        info = data["contestants"][name].get("info", {})
        rounds = ", ".join(f"{t:.2f}" for t in result["round_seconds_per_epoch"])
        lines.append(f"| {_label(name)} | {info.get('version', '')} | {result['seconds_per_epoch']:.2f} | {rounds} | "
                     f"{result['seconds_per_epoch_with_validation']:.2f} | {result['peak_rss_mb']:.0f} | "
                     f"{result['test_accuracy']:.4f} |")
    return "\n".join(lines + ratio_lines(data, "Seconds per training epoch")) + "\n"


# --- workers: one contestant per process ---------------------------------------------------------
def _miniconv_worker(backend: str, args) -> dict:
    import miniconv
    from miniconv import callbacks, optimizers, utils
    from miniconv.recipes.cats_dogs import convnet, load_splits

    if backend not in miniconv.available_backends():
        raise Unavailable(f"miniconv backend {backend!r} is not available here")
    train, validation = load_splits(args.data, 20, args.seed, args.limit, cache=True, verbose=False)
    clock = _Clock()
    with miniconv.use_backend(backend):
        utils.set_random_seed(args.seed)
        model = convnet(augment=args.augment)
        model.compile(optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
        model.fit(train.first(args.warmup_steps * 20), epochs=1, verbose=0)
        for dataset in (train, validation):  # decode everything into the caches, untimed
            for _ in dataset:
                pass
        history = model.fit(train, epochs=args.epochs, validation_data=validation, verbose=0,
                            callbacks=[clock.callback(callbacks.Callback)])
    return {"info": {"version": miniconv.__version__, "backend": backend, "threads": _numba_threads()},
            "test_accuracy": float(history.history["val_accuracy"][-1]),
            "train_samples": train.num_samples, "test_samples": validation.num_samples, **clock.result()}


def _numba_threads():
    import numba

    return numba.get_num_threads()


def _keras_worker(args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as error:
        raise Unavailable(f"TensorFlow / Keras is not installed ({error})") from None
    from keras import layers

    from miniconv.recipes.cats_dogs import IMAGE_SIZE, ROTATION

    def load(name):
        ds = keras.utils.image_dataset_from_directory(args.data / name, label_mode="binary", image_size=IMAGE_SIZE,
                                                      batch_size=20, seed=args.seed, verbose=False)
        if args.limit is not None:
            ds = ds.take(math.ceil(args.limit / 20))
        return ds.cache()

    train, validation = load("train"), load("validation")
    keras.utils.set_random_seed(args.seed)
    front = [keras.Input((*IMAGE_SIZE, 3))]
    if args.augment:
        front += [layers.RandomFlip("horizontal"), layers.RandomRotation(ROTATION), layers.RandomTranslation(0.2, 0.2),
                  layers.RandomZoom(0.2)]
    body = [layers.Rescaling(1.0 / 255)]
    for filters in (32, 64, 128, 128):
        body += [layers.Conv2D(filters, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2))]
    head = [layers.Flatten(), *([layers.Dropout(0.5)] if args.augment else []), layers.Dense(512, activation="relu"),
            layers.Dense(1, activation="sigmoid")]
    model = keras.Sequential(front + body + head)
    model.compile(keras.optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
    model.fit(train.take(args.warmup_steps), epochs=1, verbose=0)
    for dataset in (train, validation):  # fill the caches, untimed
        for _ in dataset:
            pass
    clock = _Clock()
    history = model.fit(train, epochs=args.epochs, validation_data=validation, verbose=0,
                        callbacks=[clock.callback(keras.callbacks.Callback)])
    count = lambda ds: int(sum(int(tf.shape(y)[0]) for _, y in ds))
    info = {"version": f"{keras.__version__} (TF {tf.__version__})",
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
    return {"info": info, "test_accuracy": float(history.history["val_accuracy"][-1]),
            "train_samples": count(train), "test_samples": count(validation), **clock.result()}


class _Clock:
    """Per epoch: training seconds (start to the last step's end) and seconds with validation (start to epoch end)."""

    def __init__(self):
        self.training, self.with_validation = [], []

    def callback(self, base):
        clock = self

        class EpochClock(base):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = self.stop = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.stop = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock.training.append(self.stop - self.start)
                clock.with_validation.append(time.perf_counter() - self.start)

        return EpochClock()

    def result(self) -> dict:
        return {"epoch_seconds": self.training, "epoch_seconds_with_validation": self.with_validation,
                "seconds_per_epoch_with_validation": sum(self.with_validation) / len(self.with_validation)}


def worker_main(args) -> int:
    """Entry of ``python -m benchmarks.train_cats_dogs --worker NAME``: print the result as one JSON line."""
    name = args.worker
    try:
        if name == "tf":
            result = _keras_worker(args)
        elif name.startswith(MINICONV_PREFIX):
            result = _miniconv_worker(name[len(MINICONV_PREFIX):], args)
        else:
            raise Unavailable(f"unknown contestant {name!r}: expected tf or {MINICONV_PREFIX}<backend>")
    except Unavailable as error:
        print(json.dumps({"contestant": name, "unavailable": str(error)}), flush=True)
        return 0
    seconds = result["epoch_seconds"]
    result.update(contestant=name, seconds_per_epoch=sum(seconds) / len(seconds),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux
    print(json.dumps(result), flush=True)
    return 0


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_cats_dogs", description="One worker (internal).")
    parser.add_argument("--worker", required=True, help="tf or miniconv-<backend>")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    sys.exit(worker_main(_worker_parser().parse_args()))
