"""``python -m benchmarks train cats-dogs``: seconds per epoch of Chollet's ch. 5.2 convnet on image folders, miniconv against Keras.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train cats-dogs            # the real run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train cats-dogs --augment  # with augmentation
    python -m benchmarks train cats-dogs --limit 40 --epochs 1 --rounds 1 --out /tmp/bench      # a smoke test

The recipe on both sides (``miniconv.recipes.cats_dogs``): ``--data``/train and /validation read by
``image_dataset_from_directory`` (150x150 RGB, binary labels, batch 20, seed ``--seed``, decoded
images cached in memory: miniconv's ``cache=True``, Keras's ``dataset.cache()``), the same model
built by the same code, ``convnet(lib, augment=...)`` with ``lib`` miniconv or keras (with
``--augment``: flip / rotation 40 deg / translation 0.2 / zoom 0.2 and dropout 0.5), RMSprop 1e-4,
binary crossentropy, accuracy. Contestants, each in its own process (Numba's and TensorFlow's
thread pools slow each other in one), alternating over ``--rounds`` rounds in a rotated order
(``benchmarks.harness``):

    miniconv-cpu   ``model.fit`` on the dataset, cpu backend (``--backends`` for others)
    tf             Keras 3 on TensorFlow, ``model.fit`` on its tf.data dataset

A worker builds its datasets and model, then, untimed: ``--warmup-steps`` training steps (kernel
compilation, tracing) and one pass over the training and validation sets, which decodes every image
into the cache. Then it trains ``--epochs`` epochs timed by ``miniconv.callbacks.EpochClock``, two
ways: training only (epoch start to the end of its last step) and with validation (to the end of
the epoch's validation pass). Afterwards it reads its peak resident memory (``ru_maxrss``: the
cached images, library and model) and reports the last validation accuracy (only a check that it
trained). With ``--limit N`` both sides use ceil(N / 20) batches of each split (Keras:
``dataset.take``, so a different sample each epoch; miniconv: the first N files): a smoke test,
not the measurement.

Results go to ``<out>/train_cats_dogs[_augment].json`` and ``.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import engines, harness, training
from .report import LIBRARIES, blas_sentence, measured_sentence

DEFAULT_DATA = harness.ROOT.parent / "shared" / "data" / "cats_and_dogs_small"
REFERENCES = ("tf",)
BATCH = 20
HELP = "seconds per epoch of Chollet's ch. 5.2 cats-vs-dogs convnet on image folders: miniconv vs Keras"
COMMAND = "python -m benchmarks train cats-dogs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks train cats-dogs`` options."""
    out = harness.DEFAULT_OUT
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
    parser.add_argument("--out", type=Path, default=out, help=f"output directory (default {out})")


def run(args) -> int:
    """Run the rounds, write the JSON and markdown, print the markdown; 0 unless nothing could run."""
    if not training.check_counts(args, "benchmarks train cats-dogs", ("epochs", "rounds")):
        return 2
    if not (args.data / "train").is_dir() or not (args.data / "validation").is_dir():
        print(f"benchmarks train cats-dogs: --data {args.data} must hold train/ and validation/", file=sys.stderr)
        return 2
    data = str(args.data.resolve())
    worker_args = ["--data", data, "--epochs", str(args.epochs), "--warmup-steps", str(args.warmup_steps),
                   "--seed", str(args.seed)]
    worker_args += ["--augment"] if args.augment else []
    worker_args += ["--limit", str(args.limit)] if args.limit is not None else []
    settings = {"augment": args.augment, "epochs": args.epochs, "limit": args.limit, "batch_size": BATCH,
                "warmup_steps": args.warmup_steps, "seed": args.seed, "data": data}
    return training.run_training(args, command=COMMAND, module="benchmarks.train_cats_dogs",
                                 stem="train_cats_dogs" + ("_augment" if args.augment else ""), references=REFERENCES,
                                 worker_args=worker_args, settings=settings, markdown=markdown, with_validation=True)


def markdown(data: dict) -> str:
    """The .md: when and where, how, the table and the ratio ("test_*" are the validation split's)."""
    m, s = data["machine"], data["settings"]
    samples = next((r["train_samples"] for r in data["results"].values()), s["limit"])
    model = "with augmentation and dropout" if s["augment"] else "without augmentation"
    lines = [
        f"# Cats vs dogs training benchmark: Chollet's ch. 5.2 convnet, {model}",
        "",
        (f"{measured_sentence(m, [lib for lib in LIBRARIES if lib[1] != 'torch'])} {blas_sentence(m)} "
         "Workers ran with `OPENBLAS_THREAD_TIMEOUT=4`."),
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
    lines += training.table_rows(data, lambda r: [f"{r['seconds_per_epoch_with_validation']:.2f}",
                                                  f"{r['peak_rss_mb']:.0f}", f"{r['test_accuracy']:.4f}"])
    return "\n".join(lines + training.ratio_lines(data, "Seconds per training epoch")) + "\n"


# --- workers: one contestant per process ---------------------------------------------------------


def _miniconv_data(args):
    """miniconv's (train, validation, warm-up set, count of samples)."""
    from miniconv.recipes.cats_dogs import load_splits

    train, validation = load_splits(args.data, BATCH, args.seed, args.limit, cache=True, verbose=False)
    return train, validation, train.first(args.warmup_steps * BATCH), lambda ds: ds.num_samples


def _keras_data(args):
    """Keras's (train, validation, warm-up set, count of samples): tf.data datasets, cached."""
    import keras
    import tensorflow as tf

    from miniconv.recipes.cats_dogs import IMAGE_SIZE

    def load(name):
        ds = keras.utils.image_dataset_from_directory(args.data / name, label_mode="binary", image_size=IMAGE_SIZE,
                                                      batch_size=BATCH, seed=args.seed, verbose=False)
        if args.limit is not None:
            ds = ds.take(math.ceil(args.limit / BATCH))
        return ds.cache()

    train, validation = load("train"), load("validation")
    return train, validation, train.take(args.warmup_steps), lambda ds: int(sum(int(tf.shape(y)[0]) for _, y in ds))


def _measure(args) -> dict:
    """One worker's result: the recipe's model on this engine, the warm-up, the clocked epochs."""
    from miniconv.recipes.cats_dogs import convnet

    engine = engines.engine(args.worker)
    lib = engine.lib
    train, validation, warmup, count = (_keras_data if engine.is_keras else _miniconv_data)(args)
    clock = engines.epoch_clock()
    with engine.scope():
        lib.utils.set_random_seed(args.seed)
        model = convnet(lib, augment=args.augment)
        model.compile(lib.optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
        model.fit(warmup, epochs=1, verbose=0)
        for dataset in (train, validation):  # decode everything into the caches, untimed
            for _ in dataset:
                pass
        history = model.fit(train, epochs=args.epochs, validation_data=validation, verbose=0,
                            callbacks=[engine.callback(clock)])
    return {"info": engine.info, "test_accuracy": float(history.history["val_accuracy"][-1]),
            "train_samples": count(train), "test_samples": count(validation), "peak_rss_mb": engines.peak_rss_mb(),
            **engines.clock_result(clock, with_validation=True)}


def worker(argv: list[str] | None = None) -> int:
    """Entry of ``python -m benchmarks.train_cats_dogs --worker NAME``: one JSON line (``benchmarks.harness``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_cats_dogs", description="One worker (internal).")
    parser.add_argument("--worker", required=True, help="tf or miniconv-<backend>")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return harness.worker_main(args.worker, lambda: _measure(args))


if __name__ == "__main__":
    sys.exit(worker())
