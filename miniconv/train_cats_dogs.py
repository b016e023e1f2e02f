"""``miniconv train cats-dogs``: the small convnet of Chollet's ch. 5.2 on 2,000 cats-and-dogs photos.

    miniconv train cats-dogs --data ../shared/data/cats_and_dogs_small            # 30 epochs, plain
    miniconv train cats-dogs --data ../shared/data/cats_and_dogs_small --augment  # 100 epochs, augmented
    miniconv train cats-dogs --data DIR --epochs 1 --limit 200 --out /tmp/smoke    # a smoke test
    miniconv train cats-dogs --data DIR --augment --resume                          # continue a run

``--data DIR`` holds ``train/`` and ``validation/``, each with one sub-folder per class
(``cats/``, ``dogs/``), read with ``miniconv.data.image_dataset_from_directory``: 150x150 RGB,
bilinear resize, binary labels (classes in sorted folder order: cats 0, dogs 1), batch 20, the
training files reshuffled every epoch; decoded images are cached in memory after the first epoch
(``--no-cache`` keeps memory bounded instead: every epoch decodes again). ``--limit N`` uses the
first N files of each split in the seed's shuffled order (both classes appear).

The model (``cats_dogs_convnet``):

    [--augment: RandomFlip("horizontal"), RandomRotation(40 / 360) (up to 40 degrees either way),
     RandomTranslation(0.2, 0.2), RandomZoom(0.2)]       active in training only, fill "reflect"
    Rescaling(1 / 255)
    Conv2D 32 3x3 relu, MaxPooling2D 2; Conv2D 64; MaxPooling2D; Conv2D 128; MaxPooling2D; Conv2D 128; MaxPooling2D
    Flatten, [--augment: Dropout(0.5)], Dense 512 relu, Dense 1 sigmoid

compiled with RMSprop(learning_rate=1e-4), binary crossentropy and accuracy; validated on the
whole validation split after every epoch. The rotation is the issue's 40 degrees (the book's
``ImageDataGenerator(rotation_range=40)``); Chollet's 2nd edition uses ``RandomRotation(0.1)`` (36).

Written to ``--out`` (default ``runs/cats-dogs``, or ``runs/cats-dogs-augment``): the model
``cats_dogs.miniconv`` (saved after each epoch: the checkpoint, then the result), ``checkpoint.json``
(for ``--resume``), ``history.png`` and ``report.json`` as ``miniconv train mnist`` writes them,
with ``validation_accuracy`` (last epoch), ``best_validation_accuracy`` and its epoch, and two
clocks per epoch: training only (as MNIST's; the first epoch includes decoding the images) and
with validation.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

from .train_cli import (
    PLOT_FILE,
    REPORT_FILE,
    STATE_FILE,
    TIMING_NOTE,
    UsageError,
    _make_callbacks,
    _sigint_deferred,
    _versions,
    _warm_up,
    _write_json,
    fresh_or_resumed,
    plot_history,
    report_interrupted,
    report_written,
)

HELP = "train Chollet's ch. 5.2 convnet on cats vs dogs photos (image folders), optionally with augmentation"
IMAGE_SIZE = (150, 150)
MODEL_FILE = "cats_dogs.miniconv"
ROTATION = 40 / 360  # the 40 degrees, as a fraction of a turn (Keras's RandomRotation factor)
RESUME_KEYS = ("dataset", "augment", "batch_size", "seed", "limit", "data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``miniconv train cats-dogs`` options."""
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder with train/ and validation/, one sub-folder per class "
                             "(e.g. ../shared/data/cats_and_dogs_small)")
    parser.add_argument("--augment", action="store_true",
                        help="flip, rotation 40 deg, translation 0.2, zoom 0.2 and dropout 0.5 (the book's 2nd model)")
    parser.add_argument("--epochs", type=int, default=None, help="total epochs (default 30; 100 with --augment)")
    parser.add_argument("--batch-size", type=int, default=20, help="samples per step (default 20)")
    parser.add_argument("--backend", default="cpu", help="miniconv backend to compute on (default cpu)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialisation, file order, shuffling, augmentation and dropout (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default runs/cats-dogs, or runs/cats-dogs-augment)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use the first N files of each split only (smoke tests)")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="decode the images again every epoch instead of keeping them in memory")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")


# --- the model and the data ----------------------------------------------------------------------
def cats_dogs_convnet(augment: bool = False):
    """Chollet's ch. 5.2 convnet (uncompiled) for 150x150 RGB in [0, 255]; see the module docstring."""
    import miniconv
    from miniconv import layers

    front = [layers.Input(shape=(*IMAGE_SIZE, 3))]
    if augment:
        front += [layers.RandomFlip("horizontal"), layers.RandomRotation(ROTATION),
                  layers.RandomTranslation(0.2, 0.2), layers.RandomZoom(0.2)]
    body = [layers.Rescaling(1.0 / 255)]
    for filters in (32, 64, 128, 128):
        body += [layers.Conv2D(filters, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2))]
    head = [layers.Flatten(), *([layers.Dropout(0.5)] if augment else []), layers.Dense(512, activation="relu"),
            layers.Dense(1, activation="sigmoid")]
    return miniconv.Sequential(front + body + head, name="cats_dogs_convnet" + ("_augmented" if augment else ""))


def load_splits(data: Path, batch_size: int, seed: int, limit=None, cache=True, verbose=True):
    """(train, validation) ImageDatasets of ``data``/train and ``data``/validation (binary labels, 150x150 RGB)."""
    from miniconv.data import ImageFolderError, image_dataset_from_directory

    missing = [name for name in ("train", "validation") if not (data / name).is_dir()]
    if missing:
        raise UsageError(f"--data {data}: expected the folders train/ and validation/ (one sub-folder per class "
                         f"inside each); missing: {', '.join(missing)}")
    try:
        splits = [image_dataset_from_directory(data / name, label_mode="binary", image_size=IMAGE_SIZE,
                                               batch_size=batch_size, seed=seed, cache=cache, verbose=verbose)
                  for name in ("train", "validation")]
    except (FileNotFoundError, ImageFolderError) as error:
        raise UsageError(str(error)) from None
    train, validation = splits
    if train.class_names != validation.class_names:
        raise UsageError(f"--data {data}: train/ has classes {train.class_names} but validation/ has "
                         f"{validation.class_names}")
    if limit is not None:
        train, validation = train.first(limit), validation.first(limit)
    validation.shuffle = False  # files in the seed's order (both classes even with --limit); never reshuffled
    return train, validation


# --- the run -------------------------------------------------------------------------------------
def _check_args(args) -> None:
    import miniconv

    if args.epochs is None:
        args.epochs = 100 if args.augment else 30
    if args.out is None:
        args.out = Path("runs") / ("cats-dogs-augment" if args.augment else "cats-dogs")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative int, got {args.seed}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    available = miniconv.available_backends()
    if args.backend not in available:
        raise UsageError(f"backend {args.backend!r} is not available here; available: {', '.join(available)}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")


def _settings(args, train, validation) -> dict:
    return {"dataset": "cats-dogs", "augment": args.augment, "epochs": args.epochs, "batch_size": args.batch_size,
            "optimizer": "rmsprop", "learning_rate": 1e-4, "image_size": list(IMAGE_SIZE), "seed": args.seed,
            "limit": args.limit, "data": str(args.data.resolve()), "cache": args.cache, "backend": args.backend,
            "class_names": train.class_names, "train_samples": train.num_samples,
            "validation_samples": validation.num_samples}


def _resume_command(args) -> str:
    parts = ["miniconv", "train", "cats-dogs", "--data", str(args.data), "--resume", "--out", str(args.out),
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
             "--backend", args.backend]
    parts += ["--augment"] if args.augment else []
    parts += ["--limit", str(args.limit)] if args.limit is not None else []
    parts += [] if args.cache else ["--no-cache"]
    return shlex.join(parts)


def _load_checkpoint(args, settings: dict, train):
    """(model, state) from --out with every random state restored; UsageError if it cannot continue this run."""
    import miniconv

    model_path, state_path = args.out / MODEL_FILE, args.out / STATE_FILE
    if not model_path.is_file() or not state_path.is_file():
        raise UsageError(f"--resume: no checkpoint in {args.out} ({MODEL_FILE} and {STATE_FILE}); start without --resume")
    try:
        state = json.loads(state_path.read_text())
        saved = state["settings"]
        completed = int(state["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"--resume: {state_path} is unreadable ({type(error).__name__}: {error})") from None
    different = [f"{k} {saved.get(k)!r} (now {settings[k]!r})" for k in RESUME_KEYS if saved.get(k) != settings[k]]
    if different:
        raise UsageError(f"--resume: the checkpoint in {args.out} was trained with " + ", ".join(different)
                         + "; resume with the same options, or start afresh in another --out")
    try:
        model = miniconv.load_model(model_path, restore_random_state=True)
    except (miniconv.ModelFileError, OSError) as error:
        raise UsageError(f"--resume: cannot read the checkpoint: {error}") from None
    if model.epochs_completed != completed:
        raise UsageError(f"--resume: {model_path} holds epoch {model.epochs_completed} but {state_path} epoch "
                         f"{completed}; the checkpoint is inconsistent, start afresh")
    if state.get("train_order_state") is not None:
        train._rng.bit_generator.state = state["train_order_state"]
    state["settings"] = {**saved, "epochs": settings["epochs"], "backend": settings["backend"],
                         "cache": settings["cache"]}
    return model, state


def _extra_callbacks(state: dict, train):
    """Before the checkpoint writer: the epoch clock with validation, and the training order's random state."""
    from miniconv.callbacks import Callback

    class WithValidation(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            state["epoch_seconds_with_validation"].append(time.perf_counter() - self.start)
            state["train_order_state"] = train._rng.bit_generator.state

    return WithValidation()


def _warm_up_batch(model, train, batch_size: int) -> None:
    """One untimed step (kernel compilation) on a throwaway copy, drawing nothing from the global generator."""
    import numpy as np

    from miniconv import utils

    first = train.first(batch_size)
    first.cache = False
    first.shuffle = False
    batches = [batch for batch in first]
    if not batches:
        return
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    saved = utils.get_rng_state()  # the copy's dropout / augmentation draw from the global generator
    try:
        _warm_up(model, x, y, batch_size)
    finally:
        utils.set_rng_state(saved)


def run(args) -> int:
    """Train, write the outputs; 0 on success, 2 for a usage error, 130 when interrupted (Ctrl-C)."""
    try:
        return _run(args)
    except UsageError as error:
        print(f"miniconv train cats-dogs: error: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import miniconv
    from miniconv import optimizers, utils

    _check_args(args)
    train, validation = load_splits(args.data, args.batch_size, args.seed, args.limit, args.cache)
    settings = _settings(args, train, validation)
    with miniconv.use_backend(args.backend):

        def build():
            utils.set_random_seed(args.seed)  # initialisation, augmentation and dropout draw from this generator
            model = cats_dogs_convnet(args.augment)
            model.compile(optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
            return model

        fresh_state = {"settings": settings, "epochs_completed": 0, "history": {}, "epoch_seconds": [],
                       "epoch_seconds_with_validation": []}
        model, state = fresh_or_resumed(args, MODEL_FILE, lambda: _load_checkpoint(args, settings, train), build,
                                        fresh_state)
        model.summary()
        print(f"Cats vs dogs: {train.num_samples} training images, {validation.num_samples} validation images, "
              f"classes {train.class_names}; batch {args.batch_size}, RMSprop 1e-4, "
              f"{'augmented + dropout' if args.augment else 'no augmentation'}, backend {args.backend}, seed {args.seed}")
        try:
            start_epoch = state["epochs_completed"]
            if start_epoch >= args.epochs:
                print("Nothing to train: the checkpoint has all the epochs asked for.")
            else:
                _warm_up_batch(model, train, args.batch_size)
                timer, checkpoint = _make_callbacks(state, args.out, MODEL_FILE)
                args.out.mkdir(parents=True, exist_ok=True)
                model.fit(train, epochs=args.epochs, initial_epoch=start_epoch, validation_data=validation,
                          callbacks=[_extra_callbacks(state, train), timer, checkpoint])
            plotted = _write_outputs(args, state)
        except KeyboardInterrupt:
            return report_interrupted(args, state, MODEL_FILE, _resume_command(args))
    report = json.loads((args.out / REPORT_FILE).read_text())
    print(f"\nValidation accuracy: {report['validation_accuracy']:.4f} after epoch {report['epochs']} "
          f"(best {report['best_validation_accuracy']:.4f} at epoch {report['best_epoch']}; "
          f"{validation.num_samples} images)")
    print(f"Seconds per epoch: {report['seconds_per_epoch']:.2f} training only, "
          f"{report['seconds_per_epoch_with_validation']:.2f} with validation (mean of {report['epochs']})")
    report_written(args.out, MODEL_FILE, plotted)
    return 0


def _write_outputs(args, state: dict) -> bool:
    """report.json and history.png from the checkpoint state; False if matplotlib is missing."""
    history, seconds = state["history"], state["epoch_seconds"]
    with_validation = state["epoch_seconds_with_validation"]
    accuracy = history["val_accuracy"]
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    report = {
        "history": history,
        "validation_accuracy": accuracy[-1],
        "validation_loss": history["val_loss"][-1],
        "best_validation_accuracy": accuracy[best],
        "best_epoch": best + 1,
        "epochs": len(accuracy),
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "seconds_per_epoch_with_validation": sum(with_validation) / len(with_validation),
        "epoch_seconds": seconds,
        "epoch_seconds_with_validation": with_validation,
        "timing": TIMING_NOTE + "; the first epoch also decodes every image (later ones read the cache unless "
                                "--no-cache); 'with validation' runs from epoch start to after validation",
        "backend": args.backend,
        "versions": _versions(),
        "seed": args.seed,
        "settings": state["settings"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
        "cpu_count": os.cpu_count(),
    }
    with _sigint_deferred():
        _write_json(args.out / REPORT_FILE, report)
    return plot_history(history, args.out / PLOT_FILE)
