"""The fusion table: which layers run as one fused op when a model is compiled for a run.

Each entry is a chain pattern (one predicate per layer, ``predicate(layer, training)``, each layer
feeding the next and read by nothing else) and the step that runs the chain as one op of
``miniconv.nn`` (or a short composition of them):

    pattern                                              op
    ZeroPadding2D -> Conv(valid, linear) -> BatchNormalization (inference) -> ReLU6
                                                         the conv with explicit padding, BN folded in,
                                                         bias and ReLU6 in its pass (conv2d_bias /
                                                         depthwise_conv2d_bias, activation="relu6")
    ZeroPadding2D -> Conv(valid, linear) -> BatchNormalization (inference)
                                                         the conv with explicit padding, BN folded in
    ZeroPadding2D -> Conv(valid)                         the conv with explicit padding
    Conv(linear) -> BatchNormalization (inference) -> ReLU6
                                                         the conv with BN folded into its weights, the
                                                         shift and ReLU6 in its pass (EfficientNet-Lite's
                                                         and MobileNet's conv -> BN -> ReLU6)
    Conv(linear) -> BatchNormalization (inference)       the conv with BN folded into its weights
    Conv2D(relu, bias) -> MaxPooling2D(valid, strides = pool size)
                                                         conv2d_bias_relu_max_pool2d
    Conv2D(relu, bias)                                   conv2d_bias_relu
    Dense(relu, bias)                                    dense, then bias_add_relu

"Conv" is a Conv2D or a DepthwiseConv2D. A batch normalization runs in inference mode when the
plan is compiled for inference (predict, evaluate, activations), or when the layer is frozen
(``trainable=False``: Keras 3 runs it in inference mode even in fit). Folded, it costs no pass of
its own: the conv's kernel becomes ``batch_normalization(kernel, 0, variance, None, gamma)`` =
kernel * gamma / sqrt(variance + eps) along the output channels, and a shift
``batch_normalization(bias or 0, mean, variance, beta, gamma)`` is added to the conv's output
(the same op, on the weights, every step: so a trainable conv under a frozen BN gets its
gradient through that op's pullback). The conv, that shift and a ReLU6 (a ``ReLU(max_value=6)`` or
``Activation("relu6")`` layer) after it run as one op, ``conv2d_bias`` or ``depthwise_conv2d_bias``:
the cpu backend adds the shift and clips to [0, 6] in the pass that writes the conv's output
(measured: the shift and ReLU6 as passes of their own took a third of EfficientNet-Lite0's
forward); its backward is ReLU6's mask and the bias sum, then the conv's gradients. A ZeroPadding2D before a VALID conv becomes the conv's
explicit padding (``[[0, 0], [top, bottom], [left, right], [0, 0]]``), as PyTorch-trained bases pad.

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

import numpy as np

from .. import nn
from ..layers import activations
from ..layers.conv import Conv2D
from ..layers.core import Activation, Dense, ReLU
from ..layers.depthwise import DepthwiseConv2D
from ..layers.normalization import BatchNormalization
from ..layers.pooling import MaxPooling2D
from ..layers.reshaping import ZeroPadding2D
from ..ops import vjp
from ..ops.arrays import to_backend


@dataclass(frozen=True)
class Fusion:
    """Layers matching ``pattern`` (a chain) run as ``make(layers)``: call(x, weights, training) -> (y, pullback)."""

    op: str
    pattern: tuple[Callable, ...]
    make: Callable


def is_conv2d_relu(layer, training) -> bool:
    return type(layer) is Conv2D and layer.use_bias and layer.activation == "relu"


def is_tiling_max_pool(layer, training) -> bool:
    """A 2-D max pooling whose windows tile its input: VALID, strides = pool size (Keras's default)."""
    return type(layer) is MaxPooling2D and layer.padding == "valid" and layer.strides == layer.pool_size


def is_dense_relu(layer, training) -> bool:
    return type(layer) is Dense and layer.use_bias and layer.activation == "relu"


def is_zero_padding(layer, training) -> bool:
    return type(layer) is ZeroPadding2D


def _is_conv(layer) -> bool:
    return type(layer) is DepthwiseConv2D or (type(layer) is Conv2D and layer.rank == 2)


def is_valid_conv(layer, training) -> bool:
    return _is_conv(layer) and layer.padding == "valid"


def is_linear_conv(layer, training) -> bool:
    return _is_conv(layer) and layer.activation == "linear"


def is_valid_linear_conv(layer, training) -> bool:
    return is_valid_conv(layer, training) and layer.activation == "linear"


def is_inference_batch_norm(layer, training) -> bool:
    """A channels-last batch normalization that runs on its moving statistics in this plan."""
    return type(layer) is BatchNormalization and layer.axis in (-1, 3) and (not training or not layer.trainable)


def is_relu6(layer, training) -> bool:
    """A ReLU(max_value=6) or an Activation("relu6") layer (MobileNet's and EfficientNet-Lite's activation)."""
    return type(layer) in (ReLU, Activation) and layer.activation == "relu6"


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


def _explicit(pad: ZeroPadding2D) -> list:
    (top, bottom), (left, right) = pad.padding
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


def _folded(conv, bn, conv_weights, bn_weights):
    """(kernel', shift, pullback of the kernel's and bias's gradients) of a batch norm folded into a conv."""
    gamma, beta, mean, variance = bn._unpack(bn_weights)
    kernel = conv_weights[0]
    shape = tuple(kernel.shape)
    out = shape[3]
    per_output = (shape[2], shape[3]) if type(conv) is DepthwiseConv2D else (out,)  # output channel c*M+m
    channels = per_output[0] * per_output[1] if len(per_output) == 2 else out

    def along(p):
        return None if p is None else p.reshape(per_output)

    zeros = to_backend(np.zeros(per_output, np.float32))
    scaled, kernel_pullback = vjp(nn.batch_normalization, kernel, zeros, along(variance), None, along(gamma),
                                  bn.epsilon)
    bias = conv_weights[1] if conv.use_bias else to_backend(np.zeros(channels, np.float32))
    shift, bias_pullback = vjp(nn.batch_normalization, bias, mean, variance, beta, gamma, bn.epsilon)

    def pullback(dkernel, dshift):
        return kernel_pullback(dkernel)[0], (bias_pullback(dshift)[0] if conv.use_bias else None)

    return scaled, shift, pullback


def conv_chain(*layers):
    """A ZeroPadding2D, a BatchNormalization and / or a ReLU6 around a conv, run as the conv's own op.

    With a bias (the conv's, or the folded batch normalization's shift) and no activation or ReLU6
    after it, that op is ``conv2d_bias`` / ``depthwise_conv2d_bias``: bias and ReLU6 in the pass that
    writes the conv's output, not two passes of their own."""
    pad = layers[0] if type(layers[0]) is ZeroPadding2D else None
    conv = layers[1] if pad is not None else layers[0]
    bn = next((layer for layer in layers if type(layer) is BatchNormalization), None)
    relu6 = is_relu6(layers[-1], False)
    padding = None if pad is None else _explicit(pad)
    n = len(conv.params)
    activation = "relu6" if relu6 else ("linear" if bn is not None else conv.activation)
    fused_op = nn.depthwise_conv2d_bias if type(conv) is DepthwiseConv2D else nn.conv2d_bias
    fused_activation = {"linear": None, "relu6": "relu6"}.get(activation, "other")

    def call(x, weights, training=False):
        conv_weights, bn_weights = weights[:n], weights[n:]
        if bn is not None:
            kernel, bias, fold_pullback = _folded(conv, bn, conv_weights, bn_weights)
        else:
            kernel, bias = conv_weights[0], (conv_weights[1] if conv.use_bias else None)
        fused_pullback = conv_pullback = bias_pullback = activation_pullback = None
        if bias is not None and fused_activation != "other":
            z, fused_pullback = vjp(fused_op, x, kernel, bias, **conv.conv_arguments(padding),
                                    activation=fused_activation)
        else:
            z, conv_pullback = vjp(conv.conv_op(), x, kernel, **conv.conv_arguments(padding))
            if bias is not None:
                z, bias_pullback = vjp(nn.bias_add, z, bias)
            z, activation_pullback = activations.apply(conv._activation_op if bn is None else None, z)

        def pullback(dy, input_gradient=True):
            dbias = None
            if fused_pullback is not None:
                dx, dkernel, dbias = fused_pullback(dy, input_gradient=input_gradient)
            else:
                if activation_pullback is not None:
                    (dy,) = activation_pullback(dy)
                if bias_pullback is not None:
                    dy, dbias = bias_pullback(dy)
                dx, dkernel = conv_pullback(dy, input_gradient=input_gradient)
            if bn is not None:
                dkernel, dbias = fold_pullback(dkernel, dbias)
                return dx, [dkernel, *([dbias] if conv.use_bias else []), *([None] * len(bn.params))]
            return dx, [dkernel, *([dbias] if conv.use_bias else [])]

        return z, pullback

    return call


FUSIONS: tuple[Fusion, ...] = (
    Fusion("conv_explicit_padding_bn_folded_relu6",
           (is_zero_padding, is_valid_linear_conv, is_inference_batch_norm, is_relu6), conv_chain),
    Fusion("conv_explicit_padding_bn_folded", (is_zero_padding, is_valid_linear_conv, is_inference_batch_norm),
           conv_chain),
    Fusion("conv_explicit_padding", (is_zero_padding, is_valid_conv), conv_chain),
    Fusion("conv_bn_folded_relu6", (is_linear_conv, is_inference_batch_norm, is_relu6), conv_chain),
    Fusion("conv_bn_folded", (is_linear_conv, is_inference_batch_norm), conv_chain),
    Fusion("conv2d_bias_relu_max_pool2d", (is_conv2d_relu, is_tiling_max_pool), conv_relu_pool),
    Fusion("conv2d_bias_relu", (is_conv2d_relu,), conv_relu),
    Fusion("bias_add_relu", (is_dense_relu,), dense_relu),
)
