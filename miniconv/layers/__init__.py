"""``miniconv.layers``: Keras's layer names, arguments and defaults, on miniconv's ops.

    from miniconv import layers
    model = miniconv.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])

Where each layer lives: base.py (the Layer contract), conv.py, pooling.py, core.py (Dense,
Flatten, Dropout, Activation, ReLU, Input), merge.py (Add, Multiply, Concatenate), depthwise.py (DepthwiseConv2D, SeparableConv2D),
normalization.py (BatchNormalization), reshaping.py (ZeroPadding2D),
activations.py (names -> ops), preprocessing.py (Rescaling and the random augmentation layers),
arguments.py (the argument checks they share).
"""

from .base import Layer, registered_class
from .conv import Conv1D, Conv2D, Convolution1D, Convolution2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, ReLU
from .depthwise import DepthwiseConv2D, SeparableConv2D
from .merge import Add, Concatenate, Multiply
from .normalization import BatchNormalization
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .preprocessing import (
    ImageNetPreprocessing,
    RandomContrast,
    RandomFlip,
    RandomRotation,
    RandomShear,
    RandomTranslation,
    RandomWidth,
    RandomZoom,
    Rescaling,
)
from .reshaping import ZeroPadding2D

__all__ = [
    "Activation",
    "Add",
    "AveragePooling1D",
    "AveragePooling2D",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Convolution1D",
    "Convolution2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "ImageNetPreprocessing",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "Multiply",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomShear",
    "RandomTranslation",
    "RandomWidth",
    "RandomZoom",
    "ReLU",
    "Rescaling",
    "SeparableConv2D",
    "ZeroPadding2D",
    "registered_class",
]
