"""Pooling layers with Keras's names and defaults: max / average, 1-D / 2-D, and global pooling.

``pool_size`` with ``strides=None`` means strides = pool_size, as in Keras; ``padding`` is
"valid" or "same" (SAME pools never count padded cells, as TensorFlow). Computed with
``nn.max_pool1d/2d``, ``nn.avg_pool1d/2d`` and ``nn.global_*_pool*``.
"""

from __future__ import annotations

from .. import nn
from ..ops import vjp
from ..shapes import format_shape
from .arguments import check_data_format, check_padding, check_tuple, spatial_output_shape
from .base import Layer

_OPS = {
    ("max", 1): nn.max_pool1d, ("max", 2): nn.max_pool2d,
    ("avg", 1): nn.avg_pool1d, ("avg", 2): nn.avg_pool2d,
}
_GLOBAL_OPS = {
    ("max", 1): nn.global_max_pool1d, ("max", 2): nn.global_max_pool2d,
    ("avg", 1): nn.global_avg_pool1d, ("avg", 2): nn.global_avg_pool2d,
}
_LAYOUTS = {1: "(batch, width, channels)", 2: "(batch, height, width, channels)"}


class _Pooling(Layer):
    rank = 2
    kind = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        self.pool_size = check_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = self.pool_size if strides is None else check_tuple(strides, self.rank, "strides", owner)
        self.padding = check_padding(padding, owner)
        check_data_format(data_format, owner)
        self._op = _OPS[self.kind, self.rank]

    def compute_output_shape(self, input_shape):
        self._expect_rank(input_shape, self.rank + 2, _LAYOUTS[self.rank])
        sizes = spatial_output_shape(self, input_shape, self.pool_size, self.strides, (1,) * self.rank, self.padding,
                                     what="pool")
        return (input_shape[0], *sizes, input_shape[-1])

    def call(self, x, weights, training=False):
        y, pullback = vjp(self._op, x, self.pool_size, self.strides, self.padding.upper())
        return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding)
        return config


class MaxPooling2D(_Pooling):
    """(N, H, W, C) -> (N, P, Q, C): the max of each window. As ``keras.layers.MaxPooling2D``."""

    rank, kind = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_Pooling):
    """(N, H, W, C) -> (N, P, Q, C): the mean of each window's valid cells."""

    rank, kind = 2, "avg"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class MaxPooling1D(_Pooling):
    """(N, W, C) -> (N, Q, C). As ``keras.layers.MaxPooling1D``."""

    rank, kind = 1, "max"


class AveragePooling1D(_Pooling):
    """(N, W, C) -> (N, Q, C). As ``keras.layers.AveragePooling1D``."""

    rank, kind = 1, "avg"


class _GlobalPooling(Layer):
    rank = 2
    kind = "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, self.describe())
        self.keepdims = bool(keepdims)
        self._op = _GLOBAL_OPS[self.kind, self.rank]

    def compute_output_shape(self, input_shape):
        self._expect_rank(input_shape, self.rank + 2, _LAYOUTS[self.rank])
        if any(d == 0 for d in input_shape[1:-1]):
            raise ValueError(f"{self.describe()}: empty input {format_shape(input_shape)}")
        if self.keepdims:
            return (input_shape[0], *([1] * self.rank), input_shape[-1])
        return (input_shape[0], input_shape[-1])

    def call(self, x, weights, training=False):
        y, pullback = vjp(self._op, x)
        if not self.keepdims:
            return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])
        N, C = y.shape
        return y.reshape(N, *([1] * self.rank), C), lambda dy, input_gradient=True: (pullback(dy.reshape(N, C))[0], [])

    def get_config(self):
        config = super().get_config()
        config["keepdims"] = self.keepdims
        return config


class GlobalAveragePooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): mean over the spatial axes."""

    rank, kind = 2, "avg"


class GlobalMaxPooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): max over the spatial axes."""

    rank, kind = 2, "max"


class GlobalAveragePooling1D(_GlobalPooling):
    """(N, W, C) -> (N, C): mean over the width."""

    rank, kind = 1, "avg"


class GlobalMaxPooling1D(_GlobalPooling):
    """(N, W, C) -> (N, C): max over the width."""

    rank, kind = 1, "max"


# Keras's aliases.
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
