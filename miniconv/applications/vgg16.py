"""VGG16 (Simonyan and Zisserman, ICLR 2015) as ``keras.applications.VGG16``, with Keras's ImageNet weights.

    from miniconv.applications import VGG16
    from miniconv.applications.vgg16 import preprocess_input
    base = VGG16(weights="imagenet", include_top=False, input_shape=(150, 150, 3))   # Chollet 5.3
    features = base.predict(preprocess_input(images))        # images: RGB in [0, 255]

The same layers, names, arguments, parameter counts, summary and weight order as Keras 3's
``keras/src/applications/vgg16.py``: five blocks of 3x3 SAME convolutions with ReLU (64, 128, 256,
512, 512 filters; two, two, three, three, three of them), each closed by a 2x2 max pooling of
stride 2; with the top, Flatten and Dense 4096 (relu), 4096 (relu) and ``classes`` (softmax).

``weights="imagenet"`` reads Keras's own published files (``WEIGHTS_PATH`` with the top,
``WEIGHTS_PATH_NO_TOP`` without) from Keras's cache, downloading a missing one, and checks them
against the MD5 hashes Keras's source gives (``PUBLISHED``); ``keras_weights.py`` says how.
"""

from __future__ import annotations

import os

import numpy as np

from .. import layers
from ..engine.tensors import SymbolicTensor
from ..layers.activations import get as get_activation
from ..layers.core import Input
from ..layers.preprocessing import ImageNetPreprocessing
from ..models import Model
from . import keras_weights
from .inputs import source_inputs

WEIGHTS_PATH = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
)
WEIGHTS_PATH_NO_TOP = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
#: Keras's published files, by include_top; the hashes are those of keras/src/applications/vgg16.py (MD5)
PUBLISHED = {
    True: keras_weights.PublishedFile(
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5", WEIGHTS_PATH, "64373286793e3c8b2b4e3219cbf3544b"),
    False: keras_weights.PublishedFile(
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", WEIGHTS_PATH_NO_TOP, "6d6bbae143d832006294945121d1f1fc"),
}

#: (filters, convolutions) of the five blocks
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
DEFAULT_SIZE, MIN_SIZE = 224, 32
#: ImageNet's mean pixel in BGR order, as Keras's "caffe" preprocessing subtracts it
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16", *, file_hash="published") -> Model:
    """The VGG16 model, as ``keras.applications.VGG16`` (channels last).

    include_top: the three dense layers ("flatten", "fc1", "fc2", "predictions"); the input must
        then be 224x224x3 with ImageNet's weights, and of a fixed size in any case.
    weights: None (random initialisation), "imagenet" (Keras's published files, from Keras's cache
        or downloaded to it) or the path of a Keras weight file (``.h5``, or Keras 3's
        ``.weights.h5``), loaded into the layers of the same names.
    input_tensor: a symbolic tensor (``miniconv.Input`` or a layer's output) to build on.
    input_shape: (height, width, channels), each side at least 32; default (224, 224, 3) with the
        top, else (None, None, 3).
    pooling: with include_top=False, None (the 4-D output of block5_pool), "avg" or "max"
        (global pooling to a 2-D output).
    classes, classifier_activation: the top's output size and activation ("softmax" or None with
        pretrained weights).
    file_hash (miniconv's, keyword only): the MD5 or SHA-256 the weight file must have.
        "published" (default) is Keras's hash of the published file for this ``include_top``,
        both for "imagenet" and for a path; a hex string is checked as given; None (with a path
        only) checks no hash: a weight file of your own, whose layers and shapes are still checked.
    """
    if not (weights in ("imagenet", None) or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError("The `weights` argument should be either `None` (random initialization), 'imagenet' "
                         f"(pre-training on ImageNet), or the path to the weights file to be loaded.  Received: "
                         f"weights={weights}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  "
                         f"Received classes={classes}")
    if include_top and weights is not None and get_activation(classifier_activation, "VGG16")[0] not in ("softmax", "linear"):
        raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` argument "
                         f"when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")
    if not include_top and pooling not in (None, "avg", "max"):
        raise ValueError(f"VGG16: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if weights == "imagenet" and file_hash is None:
        raise ValueError("VGG16: weights='imagenet' always checks the file's hash; file_hash=None is for weights=PATH")
    input_shape = _obtain_input_shape(input_shape, include_top, weights)
    expected_hash = PUBLISHED[bool(include_top)].file_hash if file_hash == "published" else file_hash
    # Find and check the file before building: a missing or wrong file fails fast, with nothing built.
    if weights is not None:
        keras_weights.require_h5py()  # before a download, not after it
    if weights == "imagenet":
        path = keras_weights.get_file(PUBLISHED[bool(include_top)], expected_hash)
    elif weights is not None:
        path = weights
        if expected_hash is not None:
            what = f"Keras's published {PUBLISHED[bool(include_top)].fname}" if file_hash == "published" \
                else "the file_hash given"
            keras_weights.check_hash(path, expected_hash, what)

    if input_tensor is None:
        img_input = Input(shape=input_shape)
    elif isinstance(input_tensor, SymbolicTensor):
        img_input = input_tensor
    else:
        raise TypeError(f"VGG16: input_tensor must be a symbolic tensor (miniconv.Input(...) or a layer's output), "
                        f"got {type(input_tensor).__name__}")
    x = img_input
    for block, (filters, convolutions) in enumerate(BLOCKS, start=1):
        for i in range(1, convolutions + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    inputs = img_input if input_tensor is None else source_inputs(input_tensor)
    model = Model(inputs, x, name=name)
    if weights is not None:
        keras_weights.load_h5_weights(model, path)
    return model


def preprocess_input(x, data_format=None):
    """Keras's ``vgg16.preprocess_input`` ("caffe" mode): RGB -> BGR, ImageNet's mean pixel subtracted, no scaling.

    x: images in [0, 255], (..., H, W, 3) (or (N, 3, H, W) / (3, H, W) with
    data_format="channels_first"). Integers become float32; a floating array keeps its dtype, as in
    Keras. Returns a new array: unlike Keras, it never writes over the input. On a symbolic tensor
    (``x = preprocess_input(inputs)`` in a functional model) it returns the output of
    ``layers.ImageNetPreprocessing("caffe")``, the same computation as a layer.
    """
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    if isinstance(x, SymbolicTensor):  # inside a functional model, as Keras 3 allows: a layer
        if data_format == "channels_first":
            raise ValueError("preprocess_input: a symbolic tensor must be channels last (miniconv's layout)")
        return ImageNetPreprocessing("caffe", name="vgg16_preprocessing")(x)
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    axis = -1 if data_format in (None, "channels_last") else (0 if x.ndim == 3 else 1)
    if x.ndim < 3 or x.shape[axis] != 3:
        raise ValueError(f"preprocess_input: expected images with 3 channels on axis {axis}, got shape {x.shape}")
    shape = [1] * x.ndim
    shape[axis] = 3
    return np.flip(x, axis=axis) - np.asarray(CAFFE_MEAN_BGR, dtype=x.dtype).reshape(shape)


def _obtain_input_shape(input_shape, include_top: bool, weights) -> tuple:
    """Keras's ``imagenet_utils.obtain_input_shape`` for channels last, default size 224, minimum 32."""
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        default_shape = (DEFAULT_SIZE, DEFAULT_SIZE, input_shape[-1])
    else:
        default_shape = (DEFAULT_SIZE, DEFAULT_SIZE, 3)
    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights == "imagenet" and include_top:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(f"When setting `include_top=True` and loading `imagenet` weights, `input_shape` should be "
                             f"{default_shape}.  Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if any(side is not None and side < MIN_SIZE for side in input_shape[:2]):
            raise ValueError(f"Input size must be at least {MIN_SIZE}x{MIN_SIZE}; Received: input_shape={input_shape}")
    else:
        input_shape = default_shape if include_top else (None, None, 3)
    if include_top and None in input_shape:
        raise ValueError(f"If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


__all__ = ["VGG16", "preprocess_input"]
