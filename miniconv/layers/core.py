"""Dense, Flatten, Dropout, Activation, ReLU, InputLayer and ``Input``, as in ``keras.layers``."""

from __future__ import annotations

import math
import numbers

from .. import initializers, nn, regularizers
from ..engine.tensors import Node
from ..ops import vjp
from ..shapes import format_shape
from ..utils import as_generator, global_rng
from . import activations
from .arguments import check_int, reject_unsupported
from .base import Layer, check_shape_tuple, identity_pullback


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
        reject_unsupported(owner, activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, owner)
        self.bias_regularizer = regularizers.get(bias_regularizer, owner)
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
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer, rng,
                                      self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, rng, self.bias_regularizer)
                     if self.use_bias else None)

    def call(self, x, weights, training=False, activation=True):
        """activation(x @ kernel + bias); ``activation=False`` stops at the logits (a loss folds it in)."""
        z, dense_pullback = vjp(nn.dense, x, *weights)
        activation_pullback = None
        if activation:
            z, activation_pullback = activations.apply(self._activation_op, z)

        def pullback(dy, input_gradient=True):  # dx of a dense layer is cheap: always computed
            if activation_pullback is not None:
                (dy,) = activation_pullback(dy)
            dx, *dweights = dense_pullback(dy)
            return dx, dweights

        return z, pullback

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
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

    def call(self, x, weights, training=False):
        shape = tuple(x.shape)
        y = x.reshape(shape[0], math.prod(shape[1:]))  # explicit sizes: device arrays take no -1
        return y, lambda dy, input_gradient=True: (dy.reshape(shape), [])


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

    def call(self, x, weights, training=False):
        if not training or self.rate == 0:
            return x, identity_pullback
        y, pullback = vjp(nn.dropout, x, self.rate, self._rng if self._rng is not None else global_rng())
        return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed if isinstance(self.seed, int) else None)
        return config


class Activation(Layer):
    """Applies an activation ("relu", "sigmoid", "softmax", "linear"), as ``keras.layers.Activation``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation, self._activation_op = activations.get(activation, self.describe())

    def call(self, x, weights, training=False, activation=True):
        if not activation or self._activation_op is None:
            return x, identity_pullback
        y, pullback = activations.apply(self._activation_op, x)
        return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation
        return config


class ReLU(Layer):
    """max(x, 0), or min(max(x, 0), 6) with ``max_value=6`` (``nn.relu6``: MobileNet's and
    EfficientNet-Lite's activation), as ``keras.layers.ReLU``. Other max_values, negative slopes and
    thresholds are not supported."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value not in (None, 6) or negative_slope != 0 or threshold != 0:
            raise ValueError(
                f"{self.describe()}: only max_value None or 6, negative_slope=0 and threshold=0 are supported, got "
                f"max_value={max_value!r}, negative_slope={negative_slope!r}, threshold={threshold!r}"
            )
        self.max_value = None if max_value is None else float(max_value)
        self.activation = "relu" if max_value is None else "relu6"

    def call(self, x, weights, training=False):
        y, pullback = vjp(nn.relu if self.max_value is None else nn.relu6, x)
        return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])

    def get_config(self):
        config = super().get_config()
        config.update(max_value=self.max_value, negative_slope=0.0, threshold=0.0)
        return config


class InputLayer(Layer):
    """The source of a model's input (shape without the batch axis); computes nothing.

    Made by ``miniconv.Input(shape)``, which returns its output tensor, as ``keras.Input``.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)  # automatic names: input_layer, input_layer_1, ... as Keras 3
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            raise ValueError(f"{self.describe()}: shape is required, e.g. Input(shape=(28, 28, 1))")
        self.declared_input_shape = check_shape_tuple(shape, "shape", self.describe())
        self.shape = (None, *self.declared_input_shape)
        self.build(self.shape)
        Node(self, [], [self.shape])

    def call(self, x, weights, training=False):
        return x, identity_pullback

    def get_config(self):
        return {"name": self.name, "shape": list(self.declared_input_shape)}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
    """A model input, as ``keras.Input``: a symbolic tensor of shape (None, *shape) to call layers on.

        x = miniconv.Input((28, 28, 1))
        y = layers.Conv2D(32, 3, activation="relu")(x)
        model = miniconv.Model(x, y)

    ``Sequential([miniconv.Input((28, 28, 1)), ...])`` declares a Sequential's input shape.
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name, **kwargs)
    return layer.output
