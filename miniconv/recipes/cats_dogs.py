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

The model (``convnet``):

    [--augment: RandomFlip("horizontal"), RandomRotation(40 / 360) (up to 40 degrees either way),
     RandomTranslation(0.2, 0.2), RandomShear(0.2), RandomZoom(0.2, 0.2)]
                                                         active in training only, fill "nearest"
    Rescaling(1 / 255)
    Conv2D 32 3x3 relu, MaxPooling2D 2; Conv2D 64; MaxPooling2D; Conv2D 128; MaxPooling2D; Conv2D 128; MaxPooling2D
    Flatten, [--augment: Dropout(0.5)], Dense 512 relu, Dense 1 sigmoid

compiled with RMSprop(learning_rate=1e-4), binary crossentropy and accuracy; validated on the
whole validation split after every epoch. The augmentation is the book's
``ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
zoom_range=0.2, horizontal_flip=True, fill_mode='nearest')`` in Keras 3's layers: the rotation is the
book's 40 degrees (Chollet's 2nd edition uses ``RandomRotation(0.1)``, 36); the zoom draws height and
width independently, as the generator's ``zx, zy``; the shear slants along x (rows slide sideways,
as the generator does since Keras put its matrix in (x, y) order) by a factor up to 0.2, the book's
0.2 rad (x - sin(0.2) y = x - 0.199 y; later Keras reads ``shear_range`` in degrees). Keras 3 shears
about the top-left corner, the generator about the centre, and the generator made one warp of all
its transforms where the layers warp one after another.
The report adds ``validation_accuracy`` (last epoch), ``best_validation_accuracy`` and its epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Data, Recipe, UsageError

IMAGE_SIZE = (150, 150)
ROTATION = 40 / 360  # the book's 40 degrees, as a fraction of a turn (Keras's RandomRotation factor)
FILL = "nearest"  # the book's fill_mode


def convnet(lib=None, augment: bool = False):
    """Chollet's ch. 5.2 convnet (uncompiled) for 150x150 RGB in [0, 255], in ``lib``: miniconv
    (default) or keras; see the module docstring."""
    if lib is None:
        import miniconv as lib
    L = lib.layers
    front = [lib.Input((*IMAGE_SIZE, 3))]
    if augment:  # the book's ImageDataGenerator settings, fill_mode="nearest" (see the module docstring)
        front += [L.RandomFlip("horizontal"), L.RandomRotation(ROTATION, fill_mode=FILL),
                  L.RandomTranslation(0.2, 0.2, fill_mode=FILL), L.RandomShear(x_factor=0.2, fill_mode=FILL),
                  L.RandomZoom(0.2, 0.2, fill_mode=FILL)]
    body = [L.Rescaling(1.0 / 255)]
    for filters in (32, 64, 128, 128):
        body += [L.Conv2D(filters, (3, 3), activation="relu"), L.MaxPooling2D((2, 2))]
    head = [L.Flatten(), *([L.Dropout(0.5)] if augment else []), L.Dense(512, activation="relu"),
            L.Dense(1, activation="sigmoid")]
    return lib.Sequential(front + body + head, name="cats_dogs_convnet" + ("_augmented" if augment else ""))


def load_splits(data: Path, batch_size: int, seed: int, limit=None, cache=True, verbose=True):
    """(train, validation) ImageDatasets of ``data``/train and ``data``/validation (binary labels, 150x150 RGB)."""
    from ..data import ImageFolderError, image_dataset_from_directory

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


def first_batch(dataset, batch_size: int):
    """(x, y) of the first ``batch_size`` files, decoded without touching the dataset's cache or order."""
    first = dataset.first(batch_size)
    first.cache = first.shuffle = False
    batches = list(first)
    if not batches:
        return None
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


class CatsDogs(Recipe):
    name = "cats-dogs"
    help = "train Chollet's ch. 5.2 convnet on cats vs dogs photos (image folders), optionally with augmentation"
    description = __doc__
    model_file = "cats_dogs.miniconv"
    defaults = {"epochs": None, "batch_size": 20, "out": None}  # epochs and out depend on --augment
    resume_keys = ("augment", "batch_size", "seed", "limit", "data")

    def add_arguments(self, parser):
        parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                            help="folder with train/ and validation/, one sub-folder per class "
                                 "(e.g. ../shared/data/cats_and_dogs_small)")
        parser.add_argument("--augment", action="store_true",
                            help="flip, rotation 40 deg, translation 0.2, zoom 0.2 and dropout 0.5 (the book's 2nd model)")
        parser.add_argument("--limit", type=int, default=None, metavar="N",
                            help="use the first N files of each split only (smoke tests)")
        parser.add_argument("--no-cache", dest="cache", action="store_false",
                            help="decode the images again every epoch instead of keeping them in memory")

    def check(self, args):
        if args.epochs is None:
            args.epochs = 100 if args.augment else 30
        if args.out is None:
            args.out = Path("runs") / ("cats-dogs-augment" if args.augment else "cats-dogs")
        if args.limit is not None and args.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {args.limit}")

    def settings(self, args):
        return {"augment": args.augment, "optimizer": "rmsprop", "learning_rate": 1e-4, "image_size": list(IMAGE_SIZE),
                "limit": args.limit, "data": str(args.data.resolve()), "cache": args.cache}

    def load_data(self, args) -> Data:
        train, validation = load_splits(args.data, args.batch_size, args.seed, args.limit, args.cache)
        return Data(train, validation=validation,
                    facts={"class_names": train.class_names, "train_samples": train.num_samples,
                           "validation_samples": validation.num_samples},
                    description=(f"Cats vs dogs: {train.num_samples} training images, {validation.num_samples} "
                                 f"validation images, classes {train.class_names}; RMSprop 1e-4, "
                                 f"{'augmented + dropout' if args.augment else 'no augmentation'}"),
                    state=train.state, restore=train.restore, warm_up=first_batch(train, args.batch_size))

    def build_model(self, args):
        from .. import optimizers

        model = convnet(augment=args.augment)
        model.compile(optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
        return model

    def report_fields(self, history):
        accuracy = history["val_accuracy"]
        best = max(range(len(accuracy)), key=accuracy.__getitem__)
        return {"validation_accuracy": accuracy[-1], "validation_loss": history["val_loss"][-1],
                "best_validation_accuracy": accuracy[best], "best_epoch": best + 1}

    def summary_lines(self, report):
        return [f"Validation accuracy: {report['validation_accuracy']:.4f} after epoch {report['epochs']} "
                f"(best {report['best_validation_accuracy']:.4f} at epoch {report['best_epoch']}; "
                f"{report['settings']['validation_samples']} images)"]
