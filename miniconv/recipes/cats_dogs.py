"""``miniconv train cats-dogs``: the small convnet of Chollet's ch. 5.2 on 2,000 cats-and-dogs photos.

    miniconv train cats-dogs --data ../shared/data/cats_and_dogs_small            # 30 epochs, plain
    miniconv train cats-dogs --data ../shared/data/cats_and_dogs_small --augment  # 100 epochs, augmented
    miniconv train cats-dogs --data DIR --epochs 1 --limit 200 --out /tmp/smoke    # a smoke test
    miniconv train cats-dogs --data DIR --augment --resume                          # continue a run
    miniconv train cats-dogs --data DIR --base efficientnet-lite0 --transfer features|frozen|fine-tune [--augment]

``--base NAME --transfer MODE`` trains a new head on a pretrained base instead (Chollet 5.3, Kaggle's
lesson 1); the modes and their models are in ``recipes/transfer.py``.

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

from .base import Data, Phase, Recipe, UsageError

IMAGE_SIZE = (150, 150)
ROTATION = 40 / 360  # the book's 40 degrees, as a fraction of a turn (Keras's RandomRotation factor)
FILL = "nearest"  # the book's fill_mode


def convnet(lib=None, augment: bool = False):
    """Chollet's ch. 5.2 convnet (uncompiled) for 150x150 RGB in [0, 255], in ``lib``: miniconv
    (default) or keras; see the module docstring."""
    if lib is None:
        import miniconv as lib
    L = lib.layers
    front = [lib.Input((*IMAGE_SIZE, 3))] + (augmentation_layers(lib) if augment else [])
    body = [L.Rescaling(1.0 / 255)]
    for filters in (32, 64, 128, 128):
        body += [L.Conv2D(filters, (3, 3), activation="relu"), L.MaxPooling2D((2, 2))]
    head = [L.Flatten(), *([L.Dropout(0.5)] if augment else []), L.Dense(512, activation="relu"),
            L.Dense(1, activation="sigmoid")]
    return lib.Sequential(front + body + head, name="cats_dogs_convnet" + ("_augmented" if augment else ""))


def load_splits(data: Path, batch_size: int, seed: int, limit=None, cache=True, verbose=True, image_size=IMAGE_SIZE):
    """(train, validation) ImageDatasets of ``data``/train and ``data``/validation (binary labels, RGB of
    ``image_size``, 150x150 by default)."""
    from ..data import ImageFolderError, image_dataset_from_directory

    missing = [name for name in ("train", "validation") if not (data / name).is_dir()]
    if missing:
        raise UsageError(f"--data {data}: expected the folders train/ and validation/ (one sub-folder per class "
                         f"inside each); missing: {', '.join(missing)}")
    try:
        splits = [image_dataset_from_directory(data / name, label_mode="binary", image_size=tuple(image_size),
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


def augmentation_layers(lib=None) -> list:
    """The augmented model's random layers, new ones at each call: the book's ImageDataGenerator settings,
    fill_mode="nearest" (see the module docstring)."""
    if lib is None:
        import miniconv as lib
    L = lib.layers
    return [L.RandomFlip("horizontal"), L.RandomRotation(ROTATION, fill_mode=FILL),
            L.RandomTranslation(0.2, 0.2, fill_mode=FILL), L.RandomShear(x_factor=0.2, fill_mode=FILL),
            L.RandomZoom(0.2, 0.2, fill_mode=FILL)]


TRANSFER_EPOCHS = {"features": 30, "frozen": 10, "fine-tune": 10}
HEAD_EPOCHS = 5  # fine-tune: epochs of the head alone before the base's last block is unfrozen


class CatsDogs(Recipe):
    name = "cats-dogs"
    help = ("train Chollet's ch. 5.2 convnet on cats vs dogs photos (image folders), optionally with augmentation, "
            "or a head on a pretrained base (--base, --transfer)")
    description = __doc__
    model_file = "cats_dogs.miniconv"
    defaults = {"epochs": None, "batch_size": 20, "out": None}  # epochs and out depend on --augment and --base
    resume_keys = ("augment", "batch_size", "seed", "limit", "data", "base", "transfer", "weights")

    def add_arguments(self, parser):
        from .transfer import BASES, MODES

        parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                            help="folder with train/ and validation/, one sub-folder per class "
                                 "(e.g. ../shared/data/cats_and_dogs_small)")
        parser.add_argument("--augment", action="store_true",
                            help="flip, rotation 40 deg, translation 0.2, shear 0.2, zoom 0.2 (fill 'nearest') and dropout 0.5 "
                                 "(the book's 2nd model); with --base --transfer frozen|fine-tune, the same "
                                 "random layers before the base")
        parser.add_argument("--limit", type=int, default=None, metavar="N",
                            help="use the first N files of each split only (smoke tests)")
        parser.add_argument("--no-cache", dest="cache", action="store_false",
                            help="decode the images again every epoch instead of keeping them in memory")
        parser.add_argument("--base", default=None, metavar="NAME",
                            help=f"a pretrained base under a new head: {', '.join(BASES)} (Chollet 5.3, Kaggle lesson 1)")
        parser.add_argument("--transfer", default=None, metavar="MODE",
                            help=f"with --base: {', '.join(MODES)} (default features)")
        parser.add_argument("--weights", default="imagenet", metavar="PATH",
                            help="with --base: 'imagenet' (the published weights) or a weight file")

    def check(self, args):
        from .transfer import MODES, get_base

        if args.base is None:
            if args.transfer is not None:
                raise UsageError("--transfer needs --base (the pretrained base to transfer from)")
            default_epochs, default_out = (100, "cats-dogs-augment") if args.augment else (30, "cats-dogs")
        else:
            get_base(args.base)
            args.transfer = args.transfer or "features"
            if args.transfer not in MODES:
                raise UsageError(f"--transfer must be one of {', '.join(MODES)}, got {args.transfer!r}")
            if args.transfer == "features" and args.augment:
                raise UsageError("--augment does not apply to --transfer features: the features are computed once "
                                 "(Chollet 5.3.1); use --transfer frozen for a base with augmentation")
            default_epochs = TRANSFER_EPOCHS[args.transfer]
            default_out = f"cats-dogs-{args.base}-{args.transfer}" + ("-augment" if args.augment else "")
        if args.epochs is None:
            args.epochs = default_epochs
        if args.out is None:
            args.out = Path("runs") / default_out
        if args.limit is not None and args.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {args.limit}")
        if args.base is not None and args.transfer == "fine-tune" and args.epochs <= HEAD_EPOCHS:
            raise UsageError(f"--transfer fine-tune trains the head alone for {HEAD_EPOCHS} epochs first: give --epochs "
                             f"above {HEAD_EPOCHS}, got {args.epochs}")

    def _image_size(self, args):
        from .transfer import get_base

        return IMAGE_SIZE if args.base is None else get_base(args.base).image_size

    def settings(self, args):
        common = {"augment": args.augment, "image_size": list(self._image_size(args)), "limit": args.limit,
                  "data": str(args.data.resolve()), "cache": args.cache, "base": args.base, "transfer": args.transfer,
                  "weights": None if args.base is None else str(args.weights)}
        if args.base is None:
            return {**common, "optimizer": "rmsprop", "learning_rate": 1e-4}
        return common

    def load_data(self, args) -> Data:
        train, validation = load_splits(args.data, args.batch_size, args.seed, args.limit, args.cache,
                                        image_size=self._image_size(args))
        facts = {"class_names": train.class_names, "train_samples": train.num_samples,
                 "validation_samples": validation.num_samples}
        if args.base is not None and args.transfer == "features":
            return self._feature_data(args, train, validation, facts)
        what = ("augmented + dropout" if args.augment else "no augmentation") if args.base is None else \
            f"base {args.base}, transfer {args.transfer}" + (", augmented" if args.augment else "")
        return Data(train, validation=validation, facts=facts,
                    description=(f"Cats vs dogs: {train.num_samples} training images, {validation.num_samples} "
                                 f"validation images, classes {train.class_names}; {what}"),
                    state=train.state, restore=train.restore, warm_up=first_batch(train, args.batch_size))

    def _feature_data(self, args, train, validation, facts) -> Data:
        """Chollet 5.3.1's fast feature extraction: the base once over both splits, then arrays."""
        from .transfer import build_base, cached_features, extract_features, get_base

        base = get_base(args.base)
        key = {"base": base.name, "weights": str(args.weights), "image_size": list(base.image_size),
               "train": train.file_paths, "validation": validation.file_paths}

        def compute():
            model = build_base(base, args.weights, (*base.image_size, 3))
            x, y = extract_features(model, train, "training")
            x_val, y_val = extract_features(model, validation, "validation")
            return {"x": x, "y": y, "x_val": x_val, "y_val": y_val}

        arrays = cached_features(args.out, key, compute)
        self.feature_shape = arrays["x"].shape[1:]
        n = min(len(arrays["x"]), args.batch_size)
        return Data(arrays["x"], arrays["y"], validation=(arrays["x_val"], arrays["y_val"]), facts=facts,
                    description=(f"Cats vs dogs, features of {base.name} ({arrays['x'].shape[1:]} per image): "
                                 f"{len(arrays['x'])} training, {len(arrays['x_val'])} validation"),
                    warm_up=(arrays["x"][:n], arrays["y"][:n]))

    def build_model(self, args):
        from .. import optimizers

        if getattr(args, "base", None) is None:  # the course's convnet, also for a caller's partial Namespace
            model = convnet(augment=args.augment)
            model.compile(optimizers.RMSprop(learning_rate=1e-4), "binary_crossentropy", metrics=["accuracy"])
            return model
        from .transfer import build_base, features_head, frozen_model, get_base

        if args.transfer == "features":
            model = features_head(self.feature_shape)
            model.compile(optimizers.RMSprop(learning_rate=2e-5), "binary_crossentropy", metrics=["accuracy"])
            return model
        base = get_base(args.base)
        base_model = build_base(base, args.weights, (*base.image_size, 3))
        augmentation = augmentation_layers() if args.augment else []
        if args.transfer == "frozen":  # Kaggle's lesson 1: its head, adam, binary_accuracy
            model = frozen_model(base_model, augmentation, head="kaggle")
            model.compile("adam", "binary_crossentropy", metrics=["binary_accuracy"])
        else:
            model = frozen_model(base_model, augmentation, head="chollet")
            model.compile(optimizers.RMSprop(learning_rate=2e-5), "binary_crossentropy", metrics=["accuracy"])
        return model

    def phases(self, args):
        if args.base is None or args.transfer != "fine-tune":
            return super().phases(args)
        from .. import optimizers
        from .transfer import find_base, get_base, unfreeze_from

        def fine_tune(model):
            names = unfreeze_from(find_base(model), get_base(args.base).fine_tune_from)
            model.compile(optimizers.RMSprop(learning_rate=1e-5), "binary_crossentropy", metrics=["accuracy"])
            print(f"Fine-tuning from epoch {HEAD_EPOCHS + 1}: {len(names)} layers of the base unfrozen "
                  f"({names[0]} ... {names[-1]}), RMSprop 1e-5, batch normalization kept in inference mode")

        return [Phase(HEAD_EPOCHS), Phase(args.epochs, begin=fine_tune)]

    def report_fields(self, history):
        key = "val_accuracy" if "val_accuracy" in history else "val_binary_accuracy"
        accuracy = history[key]
        best = max(range(len(accuracy)), key=accuracy.__getitem__)
        return {"validation_accuracy": accuracy[-1], "validation_loss": history["val_loss"][-1],
                "best_validation_accuracy": accuracy[best], "best_epoch": best + 1}

    def summary_lines(self, report):
        return [f"Validation accuracy: {report['validation_accuracy']:.4f} after epoch {report['epochs']} "
                f"(best {report['best_validation_accuracy']:.4f} at epoch {report['best_epoch']}; "
                f"{report['settings']['validation_samples']} images)"]
