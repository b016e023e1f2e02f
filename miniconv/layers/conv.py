"""Conv1D and Conv2D, as ``keras.layers.Conv1D`` / ``Conv2D``: kernel (*kernel_size, in, filters), bias (filters,).

    y = activation(conv(x, kernel) + bias)      x (N, W, C) or (N, H, W, C), channels last

computed with ``nn.conv1d`` / ``nn.conv2d``, ``nn.bias_add`` and the activation's op, one after
the other. (When a model is compiled for a run, the fusion table replaces a Conv2D(relu), alone
or with the MaxPooling2D after it, by one fused op: ``miniconv/engine/fusion.py``.)
"""

from __future__ import annotations

from .. import initializers, nn, regularizers
from ..ops import vjp
from ..shapes import format_shape
from . import activations
from .arguments import (
    check_data_format,
    check_int,
    check_padding,
    check_tuple,
    reject_unsupported,
    spatial_output_shape,
)
from .base import Layer


class _Conv(Layer):
    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        self.filters = check_int(filters, "filters", owner)
        self.kernel_size = check_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = check_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = check_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: strides > 1 is not supported together with dilation_rate > 1, "
                             f"got strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = check_padding(padding, owner)
        check_data_format(data_format, owner)
        if groups != 1:
            raise ValueError(f"{owner}: only groups=1 is supported, got {groups!r}")
        reject_unsupported(owner, activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, owner)
        self.bias_regularizer = regularizers.get(bias_regularizer, owner)
        self.activation, self._activation_op = activations.get(activation, owner)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        layout = "(batch, width, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        self._expect_rank(input_shape, self.rank + 2, layout)
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the channel axis of the input must be known, got {format_shape(input_shape)}")
        sizes = spatial_output_shape(self, input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (input_shape[0], *sizes, self.filters)

    def _build(self, input_shape, rng):
        self.kernel = self.add_weight("kernel", (*self.kernel_size, input_shape[-1], self.filters), self.kernel_initializer, rng,
                                      self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, rng, self.bias_regularizer)
                     if self.use_bias else None)

    def conv_arguments(self, padding=None) -> dict:
        """strides / padding / dilations as the conv op takes them; ``padding`` overrides the layer's
        (a ZeroPadding2D before it, compiled into explicit padding)."""
        padding = self.padding.upper() if padding is None else padding
        if self.rank == 1:
            return {"stride": self.strides[0], "padding": padding, "dilations": self.dilation_rate[0]}
        return {"strides": self.strides, "padding": padding, "dilations": self.dilation_rate}

    def conv_op(self):
        """The op this layer convolves with (``nn.conv2d`` or ``nn.conv1d``), before bias and activation."""
        return nn.conv2d if self.rank == 2 else nn.conv1d

    def call(self, x, weights, training=False, activation=True):
        """activation(conv(x, kernel) + bias); ``activation=False`` stops at the logits (a loss folds it in)."""
        z, conv_pullback = vjp(self.conv_op(), x, weights[0], **self.conv_arguments())
        return activations.after_convolution(z, conv_pullback, weights[1] if self.use_bias else None,
                                             self._activation_op if activation else None)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides), padding=self.padding,
            dilation_rate=list(self.dilation_rate), activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
        )
        return config


class Conv2D(_Conv):
    """2-D convolution layer: (N, H, W, C) -> (N, P, Q, filters). Kernel (R, S, C, filters)."""

    rank = 2


class Conv1D(_Conv):
    """1-D convolution layer: (N, W, C) -> (N, Q, filters). Kernel (S, C, filters)."""

    rank = 1


Convolution1D = Conv1D
Convolution2D = Conv2D
