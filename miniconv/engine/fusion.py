"""The fusion table: which layers run as one fused op when a model is compiled for a run.

Each entry is a chain pattern (one predicate per layer, each layer feeding the next and read by
nothing else) and the step that runs the chain as one op of ``miniconv.nn``:

    pattern                                              op
    Conv2D(relu, bias) -> MaxPooling2D(valid, strides = pool size)
                                                         conv2d_bias_relu_max_pool2d
    Conv2D(relu, bias)                                   conv2d_bias_relu
    Dense(relu, bias)                                    dense, then bias_add_relu

The compiler (``plan.py``) tries the entries in order at every node, so the longest comes first.
A layer whose output the caller wants to see (``model.activations``, a model output) ends a
chain. A fused step computes what its layers compute one by one, in fewer passes over memory
(the numbers are the same to float32 rounding; each fused op is tested against its ``tf.nn``
composition). Adding a fusion is adding an entry here and its op in ``miniconv/ops``.

The last activation folded into a crossentropy is the other fusion the compiler makes, in
``plan.py`` (``fold_output_activation``): it belongs to the loss, not to a chain of layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import nn
from ..layers.conv import Conv2D
from ..layers.core import Dense
from ..layers.pooling import MaxPooling2D
from ..ops import vjp


@dataclass(frozen=True)
class Fusion:
    """Layers matching ``pattern`` (a chain) run as ``make(layers)``: call(x, weights, training) -> (y, pullback)."""

    op: str
    pattern: tuple[Callable, ...]
    make: Callable


def is_conv2d_relu(layer) -> bool:
    return type(layer) is Conv2D and layer.use_bias and layer.activation == "relu"


def is_tiling_max_pool(layer) -> bool:
    """A 2-D max pooling whose windows tile its input: VALID, strides = pool size (Keras's default)."""
    return type(layer) is MaxPooling2D and layer.padding == "valid" and layer.strides == layer.pool_size


def is_dense_relu(layer) -> bool:
    return type(layer) is Dense and layer.use_bias and layer.activation == "relu"


def _weights_and_input_gradient(pullback_result):
    """(dx, dw, dbias) of a fused conv op -> (dx, [dw, dbias])."""
    dx, *dweights = pullback_result
    return dx, dweights


def conv_relu_pool(conv: Conv2D, pool: MaxPooling2D):
    def call(x, weights, training=False):
        y, pullback = vjp(nn.conv2d_bias_relu_max_pool2d, x, weights[0], weights[1], pool.pool_size,
                          **conv.conv_arguments())
        return y, lambda dy, input_gradient=True: _weights_and_input_gradient(pullback(dy, input_gradient=input_gradient))

    return call


def conv_relu(conv: Conv2D):
    def call(x, weights, training=False):
        y, pullback = vjp(nn.conv2d_bias_relu, x, weights[0], weights[1], **conv.conv_arguments())
        return y, lambda dy, input_gradient=True: _weights_and_input_gradient(pullback(dy, input_gradient=input_gradient))

    return call


def dense_relu(dense: Dense):
    def call(x, weights, training=False):
        z, dense_pullback = vjp(nn.dense, x, weights[0])
        y, bias_relu_pullback = vjp(nn.bias_add_relu, z, weights[1])

        def pullback(dy, input_gradient=True):
            dz, dbias = bias_relu_pullback(dy)
            dx, dkernel = dense_pullback(dz)
            return dx, [dkernel, dbias]

        return y, pullback

    return call


FUSIONS: tuple[Fusion, ...] = (
    Fusion("conv2d_bias_relu_max_pool2d", (is_conv2d_relu, is_tiling_max_pool), conv_relu_pool),
    Fusion("conv2d_bias_relu", (is_conv2d_relu,), conv_relu),
    Fusion("bias_add_relu", (is_dense_relu,), dense_relu),
)
