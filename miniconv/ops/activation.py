"""Activations: relu, sigmoid, softmax, forward and backward.

    relu(x)    = max(x, 0)                      d/dx: 1 where y > 0, else 0
    relu6(x)   = min(max(x, 0), 6)              vjp: dy * (0 < x < 6), a product (TF's: inf * 0 = NaN)
    sigmoid(x) = 1 / (1 + exp(-x))              d/dx: y * (1 - y)
    softmax(x) = exp(x - max) / sum(exp(x - max)) along ``axis``
                                                vjp: y * (dy - sum(dy * y, axis))

Any shape. NaN propagates as in TensorFlow (relu(NaN) = NaN). Matches ``tf.nn.relu``,
``tf.nn.relu6``, ``tf.nn.sigmoid`` and ``tf.nn.softmax``. A softmax row holding +inf or NaN, or only
-inf, is NaN throughout (inf - inf), as TensorFlow's Eigen kernel gives; its oneDNN kernel (on by
default on x86) gives NaN only at the +inf / NaN logits and 0 elsewhere (docs/conventions.md).
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ._checks import as_float_array, as_rows, check_upstream
from ._vjp import has_vjp


def relu_vjp(features, *, backend=None, name=None):
    """``relu`` and its pullback ``dy -> (dx,)``."""
    x = as_float_array(features, "features", "relu")
    be = get_backend(backend)
    y = be.relu_forward(x)
    return y, lambda dy: (be.relu_backward(check_upstream(dy, y.shape, "relu"), y),)


@has_vjp(relu_vjp)
def relu(features, *, backend=None, name=None):
    """y = max(features, 0), any shape. Matches ``tf.nn.relu``."""
    return relu_vjp(features, backend=backend)[0]


def relu6_vjp(features, *, backend=None, name=None):
    """``relu6`` and its pullback ``dy -> (dx,)``."""
    x = as_float_array(features, "features", "relu6")
    be = get_backend(backend)
    y = be.relu6_forward(x)
    return y, lambda dy: (be.relu6_backward(check_upstream(dy, y.shape, "relu6"), y),)


@has_vjp(relu6_vjp)
def relu6(features, *, backend=None, name=None):
    """y = min(max(features, 0), 6), any shape; NaN stays NaN. Matches ``tf.nn.relu6``.

    Its gradient is dy where 0 < x < 6 and 0 at and beyond the kinks (x = 0, x = 6), TensorFlow's
    convention, formed as TensorFlow does as the product dy * mask (an inf or NaN dy gives NaN
    even where the mask is 0).
    """
    return relu6_vjp(features, backend=backend)[0]


def sigmoid_vjp(x, *, backend=None, name=None):
    """``sigmoid`` and its pullback ``dy -> (dx,)``."""
    x = as_float_array(x, "x", "sigmoid")
    be = get_backend(backend)
    y = be.sigmoid_forward(x)
    return y, lambda dy: (be.sigmoid_backward(check_upstream(dy, y.shape, "sigmoid"), y),)


@has_vjp(sigmoid_vjp)
def sigmoid(x, *, backend=None, name=None):
    """y = 1 / (1 + exp(-x)), any shape. Matches ``tf.nn.sigmoid``."""
    return sigmoid_vjp(x, backend=backend)[0]


def softmax_vjp(logits, axis=-1, *, backend=None, name=None):
    """``softmax`` and its pullback ``dy -> (dx,)``."""
    op = "softmax"
    x = as_float_array(logits, "logits", op)
    if x.ndim == 0:
        raise ValueError(f"{op}: logits must have rank >= 1, got a scalar")
    if not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis must be an int in [{-x.ndim}, {x.ndim}) for logits of shape {x.shape}, got {axis!r}")
    be = get_backend(backend)
    if x.size == 0:  # as TF: an empty result, and an empty gradient (no kernel runs)
        return x.copy(), lambda dy: (np.zeros_like(check_upstream(dy, x.shape, op)),)
    if axis % x.ndim == x.ndim - 1:  # the last axis: (M, L) rows as they lie (a GPU array takes only reshapes)
        y_rows = be.softmax_forward(as_rows(x))
        return y_rows.reshape(x.shape), lambda dy: (
            be.softmax_backward(as_rows(check_upstream(dy, x.shape, op)), y_rows).reshape(x.shape),)
    moved = np.moveaxis(x, axis, -1)  # softmax runs over the last axis of an (M, L) array
    rows = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])
    y_rows = be.softmax_forward(rows)
    y = np.moveaxis(y_rows.reshape(moved.shape), -1, axis)

    def pullback(dy):
        dy = check_upstream(dy, x.shape, op)
        dy_rows = np.ascontiguousarray(np.moveaxis(dy, axis, -1)).reshape(rows.shape)
        dx = be.softmax_backward(dy_rows, y_rows)
        return (np.ascontiguousarray(np.moveaxis(dx.reshape(moved.shape), -1, axis)),)

    return np.ascontiguousarray(y), pullback


@has_vjp(softmax_vjp)
def softmax(logits, axis=-1, *, backend=None, name=None):
    """Softmax along ``axis`` (default the last), max-subtracted for stability. Matches ``tf.nn.softmax``."""
    return softmax_vjp(logits, axis, backend=backend)[0]
