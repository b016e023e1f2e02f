"""BatchNormalization, as ``keras.layers.BatchNormalization`` (Keras 3's semantics).

    training (fit) and trainable:  mean, variance = moments(x) over every axis but ``axis``
                                   y = batch_normalization(x, mean, variance, beta, gamma, epsilon)
                                   moving_mean <- moving_mean * momentum + mean * (1 - momentum)
                                   moving_variance <- the same with the batch's (population) variance
    otherwise:                     y = batch_normalization(x, moving_mean, moving_variance, beta, gamma, epsilon)

Weights, in Keras's order: gamma and beta (trainable; without ``scale`` / ``center`` they are
absent), moving_mean and moving_variance (non-trainable: Keras counts them as such, and the
optimizer never sees them). A layer with ``trainable=False`` always runs in inference mode, as in
Keras 3: fine-tuning a base with its batch normalization frozen relies on it. The moving
statistics are weights: saved, loaded and resumed with the model. In training the gradient flows
through the batch's statistics (``nn.moments``' pullback), as in TensorFlow.
"""

from __future__ import annotations

import numbers

from .. import initializers, nn, regularizers
from ..ops import vjp
from ..ops.merge import add_n
from ..ops.state import assign_moving_average
from ..shapes import format_shape
from .arguments import reject_unsupported
from .base import Layer


def _number(value, name, owner, low, high, low_open=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (
            (value > low if low_open else value >= low) and value <= high):
        raise ValueError(f"{owner}: {name} must be a number in {'(' if low_open else '['}{low}, {high}], got {value!r}")
    return float(value)


class BatchNormalization(Layer):
    """Normalise over the batch (and every other axis but ``axis``), scale by gamma, shift by beta."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"{owner}: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = _number(momentum, "momentum", owner, 0.0, 1.0)
        self.epsilon = _number(epsilon, "epsilon", owner, 0.0, float("inf"), low_open=True)
        self.center, self.scale = bool(center), bool(scale)
        reject_unsupported(owner, beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                           renorm_clipping=renorm_clipping)
        if renorm or synchronized:
            raise ValueError(f"{owner}: renorm and synchronized are not supported, got renorm={renorm!r}, "
                             f"synchronized={synchronized!r}")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer, owner)
        self.gamma_regularizer = regularizers.get(gamma_regularizer, owner)

    def _channel_axis(self, input_shape) -> int:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"{self.describe()}: axis {self.axis} is not a feature axis of input "
                             f"{format_shape(input_shape)}")
        return self.axis % rank

    def compute_output_shape(self, input_shape):
        axis = self._channel_axis(input_shape)
        if input_shape[axis] is None:
            raise ValueError(f"{self.describe()}: axis {self.axis} of the input must be known, got "
                             f"{format_shape(input_shape)}")
        return tuple(input_shape)

    def _build(self, input_shape, rng):
        channels = (input_shape[self._channel_axis(input_shape)],)
        if self.scale:
            self.gamma = self.add_weight("gamma", channels, self.gamma_initializer, rng, self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", channels, self.beta_initializer, rng, self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", channels, self.moving_mean_initializer, rng)
        self.moving_variance = self.add_weight("moving_variance", channels, self.moving_variance_initializer, rng)

    @property
    def trainable_mask(self) -> list[bool]:
        """gamma and beta follow ``trainable``; the moving statistics never train."""
        return [self.trainable] * (self.scale + self.center) + [False, False]

    def _unpack(self, weights):
        weights = list(weights)
        gamma = weights.pop(0) if self.scale else None
        beta = weights.pop(0) if self.center else None
        return gamma, beta, weights[0], weights[1]

    def call(self, x, weights, training=False):
        gamma, beta, moving_mean, moving_variance = self._unpack(weights)
        shape = tuple(x.shape)
        rank, axis = len(shape), self.axis % len(shape)
        channels = shape[axis]
        last = axis == rank - 1
        broadcast = tuple(channels if i == axis else 1 for i in range(rank))

        def shaped(p):
            """A (C,) parameter as it broadcasts against x (as it is for the last axis)."""
            return p if p is None or last else p.reshape(broadcast)

        if training and self.trainable:
            reduced = [i for i in range(rank) if i != axis]
            (mean, variance), moments_pullback = vjp(nn.moments, x, reduced, keepdims=not last)
            assign_moving_average(moving_mean, mean.reshape(channels), self.momentum)
            assign_moving_average(moving_variance, variance.reshape(channels), self.momentum)
        else:
            mean, variance, moments_pullback = shaped(moving_mean), shaped(moving_variance), None
        y, bn_pullback = vjp(nn.batch_normalization, x, mean, variance, shaped(beta), shaped(gamma), self.epsilon)

        def pullback(dy, input_gradient=True):
            dx, dmean, dvariance, dbeta, dgamma = bn_pullback(dy)
            if moments_pullback is not None:  # the batch's statistics depend on x too
                (dx_statistics,) = moments_pullback(dmean, dvariance)
                dx = vjp(add_n, [dx, dx_statistics])[0]
            dweights = ([dgamma.reshape(channels)] if self.scale else []) + \
                ([dbeta.reshape(channels)] if self.center else []) + [None, None]
            return dx, dweights

        return y, pullback

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, center=self.center, scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
            beta_regularizer=regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
        )
        return config
