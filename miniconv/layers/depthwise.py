"""DepthwiseConv2D and SeparableConv2D, as ``keras.layers.DepthwiseConv2D`` / ``SeparableConv2D``.

    DepthwiseConv2D   y = activation(depthwise_conv2d(x, kernel) + bias)       kernel (R, S, C, M), bias (C * M,)
    SeparableConv2D   y = activation(separable_conv2d(x, depthwise_kernel, pointwise_kernel) + bias)
                      depthwise_kernel (R, S, C, M), pointwise_kernel (1, 1, C * M, filters), bias (filters,)

x (N, H, W, C), channels last; M is ``depth_multiplier``. Keras's weight names and order. Computed
with ``nn.depthwise_conv2d`` / ``nn.separable_conv2d``, ``nn.bias_add`` and the activation's op.
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


class _DepthwiseBase(Layer):
    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        self.kernel_size = check_tuple(kernel_size, 2, "kernel_size", owner)
        self.strides = check_tuple(strides, 2, "strides", owner)
        if self.strides[0] != self.strides[1]:
            raise ValueError(f"{owner}: strides must be equal along rows and columns (TensorFlow's depthwise "
                             f"kernels), got {self.strides}")
        self.dilation_rate = check_tuple(dilation_rate, 2, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: strides > 1 is not supported together with dilation_rate > 1, "
                             f"got strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = check_padding(padding, owner)
        check_data_format(data_format, owner)
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier", owner)
        reject_unsupported(owner, activity_regularizer=activity_regularizer, depthwise_constraint=depthwise_constraint,
                           bias_constraint=bias_constraint)
        self.activation, self._activation_op = activations.get(activation, owner)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer, owner)
        self.bias_regularizer = regularizers.get(bias_regularizer, owner)

    def _spatial(self, input_shape):
        self._expect_rank(input_shape, 4, "(batch, height, width, channels)")
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the channel axis of the input must be known, got "
                             f"{format_shape(input_shape)}")
        return spatial_output_shape(self, input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding)

    def conv_arguments(self, padding=None) -> dict:
        """strides / padding / dilations as the op takes them; ``padding`` overrides the layer's."""
        padding = self.padding.upper() if padding is None else padding
        return {"strides": self.strides, "padding": padding, "dilations": self.dilation_rate}

    def _finish(self, z, conv_pullback, bias, activation):
        """bias and activation after the convolution; the pullback back through all three."""
        return activations.after_convolution(z, conv_pullback, bias, self._activation_op if activation else None)

    def _config(self, **extra):
        config = super().get_config()
        config.update(
            kernel_size=list(self.kernel_size), strides=list(self.strides), padding=self.padding,
            depth_multiplier=self.depth_multiplier, dilation_rate=list(self.dilation_rate), activation=self.activation,
            use_bias=self.use_bias, depthwise_initializer=initializers.serialize(self.depthwise_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            depthwise_regularizer=regularizers.serialize(self.depthwise_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer), **extra,
        )
        return config


class DepthwiseConv2D(_DepthwiseBase):
    """Each input channel convolved with its own ``depth_multiplier`` filters: (N, H, W, C) -> (N, P, Q, C * M)."""

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._spatial(input_shape), input_shape[-1] * self.depth_multiplier)

    def _build(self, input_shape, rng):
        C, M = input_shape[-1], self.depth_multiplier
        self.kernel = self.add_weight("kernel", (*self.kernel_size, C, M), self.depthwise_initializer, rng,
                                      self.depthwise_regularizer)
        self.bias = (self.add_weight("bias", (C * M,), self.bias_initializer, rng, self.bias_regularizer)
                     if self.use_bias else None)

    def conv_op(self):
        """The op this layer convolves with, before bias and activation."""
        return nn.depthwise_conv2d

    def call(self, x, weights, training=False, activation=True):
        z, pullback = vjp(nn.depthwise_conv2d, x, weights[0], **self.conv_arguments())
        return self._finish(z, pullback, weights[1] if self.use_bias else None, activation)

    def get_config(self):
        return self._config()


class SeparableConv2D(_DepthwiseBase):
    """A depthwise convolution, then a 1 x 1 convolution to ``filters`` channels: (N, H, W, C) -> (N, P, Q, filters)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                         use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)
        owner = self.describe()
        self.filters = check_int(filters, "filters", owner)
        reject_unsupported(owner, pointwise_constraint=pointwise_constraint)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer, owner)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._spatial(input_shape), self.filters)

    def _build(self, input_shape, rng):
        C, M = input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (*self.kernel_size, C, M),
                                                self.depthwise_initializer, rng, self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, C * M, self.filters),
                                                self.pointwise_initializer, rng, self.pointwise_regularizer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, rng, self.bias_regularizer)
                     if self.use_bias else None)

    def call(self, x, weights, training=False, activation=True):
        z, pullback = vjp(nn.separable_conv2d, x, weights[0], weights[1], **self.conv_arguments())
        return self._finish(z, pullback, weights[2] if self.use_bias else None, activation)

    def get_config(self):
        return self._config(filters=self.filters,
                            pointwise_initializer=initializers.serialize(self.pointwise_initializer),
                            pointwise_regularizer=regularizers.serialize(self.pointwise_regularizer))
