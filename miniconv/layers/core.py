"""Dense, Flatten, Dropout, Activation, ReLU and Input, as in ``keras.layers``."""

from __future__ import annotations

import math
import numbers

from .. import initializers, nn
from ..ops import vjp
from ..utils import as_generator, global_rng
from . import activations
from .base import Layer, check_shape_tuple, format_shape
from .conv import check_int


class Dense(Layer):
    """y = activation(x @ kernel + bias) over the last axis: (N, ..., in) -> (N, ..., units).

    Kernel (in, units), bias (units,). As ``keras.layers.Dense``; computed with ``nn.dense``.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        self.units = check_int(units, "units", owner)
        for arg, value in (("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer),
                           ("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"{owner}: {arg} is not supported, got {value!r}")
        self.activation, self._activation_op = activations.get(activation, owner)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self.describe()} expects input of rank >= 2 (batch, ..., features), got {format_shape(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the last axis of the input must be known, got {format_shape(input_shape)}")
        return (*input_shape[:-1], self.units)

    def _build(self, input_shape, rng):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer, rng)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer, rng) if self.use_bias else None

    def forward(self, x, training=False, apply_activation=True):
        if self.use_bias:
            z, dense_pullback = vjp(nn.dense, x, self.kernel, self.bias)
        else:
            z, dense_pullback = vjp(nn.dense, x, self.kernel)
        activation_pullback = None
        if apply_activation:
            z, activation_pullback = activations.apply(self._activation_op, z)

        def backward(dy, input_gradient=True):  # dx of a dense layer is cheap: always computed
            if activation_pullback is not None:
                (dy,) = activation_pullback(dy)
            dx, *self.grads = dense_pullback(dy)
            return dx

        return z, backward

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        return config


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), row-major (channels last), as ``keras.layers.Flatten``."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.describe()}: only data_format='channels_last' is supported, got {data_format!r}")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"{self.describe()} expects input with a batch axis, got {format_shape(input_shape)}")
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def forward(self, x, training=False):
        shape = x.shape
        return x.reshape(shape[0], -1), lambda dy: dy.reshape(shape)


class Dropout(Layer):
    """Inverted dropout when ``training``; the identity otherwise. As ``keras.layers.Dropout``.

    The mask comes from ``seed`` (an int: this layer's own generator) or, by default, from
    miniconv's global generator (``miniconv.utils.set_random_seed``).
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"{self.describe()}: rate must be a number in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError(f"{self.describe()}: noise_shape is not supported, got {noise_shape!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None if seed is None else as_generator(seed, f"{self.describe()} seed")

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, lambda dy: dy
        y, pullback = vjp(nn.dropout, x, self.rate, self._rng if self._rng is not None else global_rng())
        return y, lambda dy: pullback(dy)[0]

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed if isinstance(self.seed, int) else None)
        return config


class Activation(Layer):
    """Applies an activation ("relu", "sigmoid", "softmax", "linear"), as ``keras.layers.Activation``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation, self._activation_op = activations.get(activation, self.describe())

    def forward(self, x, training=False, apply_activation=True):
        if not apply_activation or self._activation_op is None:
            return x, lambda dy: dy
        y, pullback = activations.apply(self._activation_op, x)
        return y, lambda dy: pullback(dy)[0]

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation
        return config


class ReLU(Layer):
    """max(x, 0), as ``keras.layers.ReLU`` with its default arguments (the only ones supported)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None or negative_slope != 0 or threshold != 0:
            raise ValueError(
                f"{self.describe()}: only max_value=None, negative_slope=0 and threshold=0 are supported, got "
                f"max_value={max_value!r}, negative_slope={negative_slope!r}, threshold={threshold!r}"
            )

    def forward(self, x, training=False):
        y, pullback = vjp(nn.relu, x)
        return y, lambda dy: pullback(dy)[0]


class InputLayer(Layer):
    """Declares the input shape of a Sequential model (without the batch axis); computes nothing."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            raise ValueError(f"{self.describe()}: shape is required, e.g. Input(shape=(28, 28, 1))")
        self.declared_input_shape = check_shape_tuple(shape, "shape", self.describe())
        self.shape = (None, *self.declared_input_shape)

    def forward(self, x, training=False):
        return x, lambda dy: dy

    def get_config(self):
        return {"name": self.name, "shape": list(self.declared_input_shape)}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs) -> InputLayer:
    """``keras.Input`` for Sequential models: ``Sequential([Input((28, 28, 1)), ...])``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name, **kwargs)


