"""The pixel values a model takes: [0, 1], or [0, 255] for a model that rescales its input itself.

    input_range(model)                 # (0.0, 255.0) for Chollet's cats-vs-dogs convnet, (0.0, 1.0) for MNIST's
    x = to_model_range(image, model)   # an image in [0, 1] (what the pictures load) as the model takes it

A model whose first computing layer is a ``Rescaling`` that brings 8-bit values down to about unit
size (``Rescaling(1 / 255)``, ``Rescaling(1 / 127.5, offset=-1)``) expects pixels in [0, 255]: the
random augmentation layers before it (the identity at inference) and input layers are skipped. So
does a model that starts with a pretrained base's ``ImageNetPreprocessing`` (images in [0, 255]). Any
other model is taken to expect [0, 1], as the MNIST convnets of the course and of Chollet's ch. 5.1.
"""

from __future__ import annotations

import numpy as np

UNIT = (0.0, 1.0)
EIGHT_BIT = (0.0, 255.0)


def _leaves(model) -> list:
    inner = getattr(model, "layers", None)
    return [model] if inner is None else [leaf for layer in inner for leaf in _leaves(layer)]


def _passes_through(layer) -> bool:
    """Input layers and the random augmentation layers (``Random*``: the identity at inference)."""
    name = type(layer).__name__
    return name in ("InputLayer", "Input") or name.startswith("Random")


def leading_rescaling(model):
    """The model's ``Rescaling`` or ``ImageNetPreprocessing`` layer if it is the first layer that computes
    anything at inference, else None."""
    for layer in _leaves(model):
        if not _passes_through(layer):
            return layer if type(layer).__name__ in ("Rescaling", "ImageNetPreprocessing") else None
    return None


def input_range(model) -> tuple[float, float]:
    """(0, 255) if the model starts by rescaling 8-bit values (its leading ``Rescaling`` maps 255 to at
    most 2 in size), else (0, 1)."""
    layer = leading_rescaling(model)
    if type(layer).__name__ == "ImageNetPreprocessing":
        return EIGHT_BIT
    if layer is not None and np.max(np.abs(np.ravel(layer.scale))) * 255 <= 2 + 1e-6:
        return EIGHT_BIT
    return UNIT


def to_model_range(image, model, value_range=None) -> np.ndarray:
    """``image`` in [0, 1] mapped linearly onto ``value_range`` (default ``input_range(model)``), float32."""
    low, high = input_range(model) if value_range is None else value_range
    return (np.asarray(image, np.float32) * np.float32(high - low) + np.float32(low)).astype(np.float32)


def to_unit_range(image, model, value_range=None) -> np.ndarray:
    """The inverse of ``to_model_range``: values in the model's range mapped back onto [0, 1] (for display)."""
    low, high = input_range(model) if value_range is None else value_range
    return ((np.asarray(image, np.float32) - np.float32(low)) / np.float32(high - low)).astype(np.float32)
