"""Dense (fully connected): y = x @ kernel + bias, over the last axis of x.

Shape legend: M rows (every axis of x but the last, flattened), I inputs, O outputs.

    y[m, o] = sum_i x[m, i] * kernel[i, o] + bias[o]
    dx = dy @ kernel.T,  dkernel = x.T @ dy,  dbias = sum_m dy[m, :]

As ``keras.layers.Dense`` computes it (kernel (in, out)). ``bias_add`` adds a bias along the
last (channel) axis of any array, as ``tf.nn.bias_add`` does for NHWC / NWC activations.

Empty arrays give TensorFlow's results without running a kernel: no inputs (I = 0) make
y = 0 + bias, no rows or outputs an empty y, and the gradients are the empty or zero arrays
of the inputs' shapes (dbias, a sum over the rows of dy, is 0 for no rows).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_backend
from ._checks import as_float_array, as_rows, check_upstream
from ._vjp import has_vjp


def dense_vjp(x, kernel, bias=None, *, backend=None):
    """``dense`` and its pullback ``dy -> (dx, dkernel)`` or ``(dx, dkernel, dbias)`` with a bias."""
    op = "dense"
    x = as_float_array(x, "x", op)
    if x.ndim < 1:
        raise ValueError(f"{op}: x must have rank >= 1 (..., in), got a scalar")
    kernel = as_float_array(kernel, "kernel", op, rank=2, layout="(in, out)")
    shape = tuple(x.shape)  # a tuple: a GPU array's shape takes no negative index
    if shape[-1] != kernel.shape[0]:
        raise ValueError(f"{op}: kernel expects {kernel.shape[0]} inputs (kernel shape {kernel.shape}) but x has {shape[-1]} (x shape {shape})")
    if bias is not None:
        bias = as_float_array(bias, "bias", op, rank=1, layout="(out,)")
        if bias.shape[0] != kernel.shape[1]:
            raise ValueError(f"{op}: bias must have shape ({kernel.shape[1]},) to match kernel {kernel.shape}, got {bias.shape}")
    be = get_backend(backend)
    M, (I, O) = math.prod(x.shape[:-1]), kernel.shape
    rows = x.reshape(M, I)
    if rows.size == 0 or kernel.size == 0:
        y_rows, backward = _empty_dense(rows, kernel, bias)
    else:
        y_rows = be.dense_forward(rows, kernel, bias)

        def backward(dy_rows):
            return be.dense_backward(dy_rows, rows, kernel, bias is not None)

    y = y_rows.reshape(*x.shape[:-1], O)

    def pullback(dy):
        dy = check_upstream(dy, y.shape, op)
        dx, dkernel, dbias = backward(dy.reshape(M, O))
        grads = (dx.reshape(x.shape), dkernel)
        return grads if bias is None else (*grads, dbias)

    return y, pullback


def _empty_dense(rows, kernel, bias):
    """(y (M, O), backward) of a dense product with no rows, inputs or outputs: y = 0 (+ bias);
    dx, dkernel zeros (an empty sum: no terms), dbias = the column sums of dy (0 without rows)."""
    (M, I), O = rows.shape, kernel.shape[1]
    y = np.zeros((M, O), rows.dtype) + (0 if bias is None else bias)

    def backward(dy):
        dbias = None if bias is None else dy.sum(axis=0)
        return np.zeros((M, I), rows.dtype), np.zeros((I, O), rows.dtype), dbias

    return y, backward


@has_vjp(dense_vjp)
def dense(x, kernel, bias=None, *, backend=None):
    """y = x @ kernel + bias: x (..., I), kernel (I, O), bias (O,) or None -> (..., O)."""
    return dense_vjp(x, kernel, bias, backend=backend)[0]


def bias_add_vjp(value, bias, *, backend=None, data_format=None, name=None):
    """``bias_add`` and its pullback ``dy -> (dvalue, dbias)``."""
    op = "bias_add"
    if data_format not in (None, "NHWC", "NWC", "N...C"):
        raise ValueError(f"{op}: data_format must be channels last ('NHWC', 'NWC' or 'N...C'), got {data_format!r}")
    x = as_float_array(value, "value", op)
    if x.ndim < 2:
        raise ValueError(f"{op}: value must have rank >= 2 (N, ..., C), got shape {x.shape}")
    bias = as_float_array(bias, "bias", op, rank=1, layout="(C,)")
    if bias.shape[0] != tuple(x.shape)[-1]:
        raise ValueError(f"{op}: bias must have shape ({tuple(x.shape)[-1]},) to match the last axis of value {tuple(x.shape)}, got {bias.shape}")
    be = get_backend(backend)
    if x.size == 0:  # as TF: an empty result; dbias = 0, a sum over no rows (no kernel runs)
        return x.copy(), lambda dy: (check_upstream(dy, x.shape, op), np.zeros_like(bias))
    y = be.bias_add_forward(as_rows(x), bias).reshape(x.shape)

    def pullback(dy):
        dy = check_upstream(dy, x.shape, op)
        return dy, be.bias_add_backward(as_rows(dy))

    return y, pullback


@has_vjp(bias_add_vjp)
def bias_add(value, bias, *, backend=None, data_format=None, name=None):
    """y[..., c] = value[..., c] + bias[c]: value (N, ..., C), bias (C,). Matches ``tf.nn.bias_add``."""
    return bias_add_vjp(value, bias, backend=backend, data_format=data_format)[0]


def bias_add_relu_vjp(value, bias, *, backend=None):
    """``bias_add_relu`` and its pullback ``dy -> (dvalue, dbias)``, each one pass over the data."""
    op = "bias_add_relu"
    x = as_float_array(value, "value", op)
    if x.ndim < 2:
        raise ValueError(f"{op}: value must have rank >= 2 (N, ..., C), got shape {x.shape}")
    bias = as_float_array(bias, "bias", op, rank=1, layout="(C,)")
    if bias.shape[0] != tuple(x.shape)[-1]:
        raise ValueError(f"{op}: bias must have shape ({tuple(x.shape)[-1]},) to match the last axis of value {tuple(x.shape)}, got {bias.shape}")
    be = get_backend(backend)
    if x.size == 0:  # as bias_add
        return x.copy(), lambda dy: (np.zeros_like(check_upstream(dy, x.shape, op)), np.zeros_like(bias))
    rows = as_rows(x)
    y_rows = be.bias_relu_forward(rows, bias)

    def pullback(dy):
        dy = check_upstream(dy, x.shape, op)
        dx, dbias = be.bias_relu_backward(dy.reshape(rows.shape), y_rows)
        return dx.reshape(x.shape), dbias

    return y_rows.reshape(x.shape), pullback


@has_vjp(bias_add_relu_vjp)
def bias_add_relu(value, bias, *, backend=None):
    """y = relu(value + bias) along the last axis, fused into one pass (forward and backward).

    The same numbers as ``tf.nn.relu(tf.nn.bias_add(value, bias))``; what a Conv2D or Dense
    layer with ``activation="relu"`` computes after its product.
    """
    return bias_add_relu_vjp(value, bias, backend=backend)[0]
