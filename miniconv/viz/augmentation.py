"""Augmented variants of one training image, as Chollet shows them in ch. 5.2.5.

    figure = show_augmented_variants(image)              # the cats-vs-dogs recipe's augmentation
    figure = show_augmented_variants(image, model=m)     # the random layers m starts with
    figure = show_augmented_variants(image, [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])

The augmentation layers run with ``training=True`` on copies of the image, in the range the model
takes (``value_range``), and the variants are drawn back in [0, 1]. The layers are copies (made from
their configs), so drawing never moves the random state of a model's own layers; their draws come
from ``seed``, the global generator being put back afterwards.
"""

from __future__ import annotations

import math

import numpy as np

from ._figures import new_figure, shape_text, show_array
from .value_range import input_range, to_model_range, to_unit_range


def augmentation_front(model) -> list:
    """The random augmentation layers (``Random*``) a model starts with, in order (input layers skipped)."""
    front = []
    for layer in getattr(model, "layers", []):
        name = type(layer).__name__
        if name in ("InputLayer", "Input"):
            continue
        if not name.startswith("Random"):
            break
        front.append(layer)
    return front


def default_augmentation() -> list:
    """The augmentation of ``miniconv train cats-dogs --augment`` (the seed's ``ImageDataGenerator`` settings)."""
    from ..recipes.cats_dogs import convnet

    return augmentation_front(convnet(augment=True))


def augmented_variants(image, augmentation=None, count=8, seed=0) -> np.ndarray:
    """(count, h, w', c) float32: ``count`` random variants of ``image`` (h, w[, c]), each the layers of
    ``augmentation`` (a list of layers or a ``Sequential``; default ``default_augmentation()``) applied
    in order with ``training=True`` to a batch of ``count`` copies (``RandomWidth`` draws one width for
    the batch). Values stay in the image's range."""
    from .. import utils
    from ..layers import registered_class

    layers = default_augmentation() if augmentation is None else list(getattr(augmentation, "layers", augmentation))
    x = np.asarray(image, np.float32)
    x = x[..., None] if x.ndim == 2 else x
    batch = np.repeat(x[None], count, axis=0)
    saved = utils.get_rng_state()
    try:
        utils.set_random_seed(seed)
        for k, layer in enumerate(layers):
            config = layer.get_config()
            if config.get("seed") is not None:  # a seeded layer: a seed of its own, derived from ``seed``
                config["seed"] = int(seed) * 1000 + k
            copy = registered_class(type(layer).__name__).from_config(config)
            batch = np.asarray(copy(batch, training=True), np.float32)
    finally:
        utils.set_rng_state(saved)
    return batch


def show_augmented_variants(image, augmentation=None, model=None, count=8, seed=0, cols=3, figsize=None):
    """The image and ``count`` augmented variants of it in a grid (the original first).

    image: (h, w[, c]) in [0, 1]. augmentation: layers or a ``Sequential``; default the random layers
    ``model`` starts with, else the cats-vs-dogs recipe's (``default_augmentation``). With a model, the
    layers see the image in the range the model takes (times 255 after a ``Rescaling(1 / 255)``). The
    arrays are ``figure.original`` (h, w, c) and ``figure.variants`` (count, h, w', c), both in [0, 1],
    and the layers' names ``figure.layer_names``.
    """
    layers = augmentation
    if layers is None:
        layers = augmentation_front(model) if model is not None else []
        layers = layers or default_augmentation()
    layers = list(getattr(layers, "layers", layers))
    value_range = input_range(model) if model is not None else (0.0, 1.0)
    original = np.asarray(image, np.float32)
    original = original[..., None] if original.ndim == 2 else original
    variants = augmented_variants(to_model_range(original, None, value_range), layers, count, seed)
    variants = to_unit_range(variants, None, value_range)
    cols = min(cols, count + 1)
    rows = math.ceil((count + 1) / cols)
    figure = new_figure(figsize or (2.6 * cols, 2.7 * rows + 0.6))
    cmap = "gray" if original.shape[-1] == 1 else None
    show_array(figure.add_subplot(rows, cols, 1), original, f"original {shape_text(original.shape[:2])}",
               cmap=cmap or "viridis", vmin=0, vmax=1)
    for k, variant in enumerate(variants):
        show_array(figure.add_subplot(rows, cols, k + 2), variant, f"variant {k + 1} {shape_text(variant.shape[:2])}",
                   cmap=cmap or "viridis", vmin=0, vmax=1)
    names = [type(layer).__name__ for layer in layers]
    figure.suptitle("Augmented variants: " + ", ".join(names), fontsize=10)
    figure.original, figure.variants, figure.layer_names = original, variants, names
    return figure
