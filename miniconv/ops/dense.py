"""Dense (fully connected): y = x @ kernel + bias, over the last axis of x.

Shape legend: M rows (every axis of x but the last, flattened), I inputs, O outputs.

    y[m, o] = sum_i x[m, i] * kernel[i, o] + bias[o]
    dx = dy @ kernel.T,  dkernel = x.T @ dy,  dbias = sum_m dy[m, :]

As ``keras.layers.Dense`` computes it (kernel (in, out)).
"""

from __future__ import annotations

from ..backend import get_backend
from ._checks import as_float_array, check_upstream
from ._vjp import has_vjp


def dense_vjp(x, kernel, bias=None, *, backend=None):
    """``dense`` and its pullback ``dy -> (dx, dkernel)`` or ``(dx, dkernel, dbias)`` with a bias."""
    op = "dense"
    x = as_float_array(x, "x", op)
    if x.ndim < 1:
        raise ValueError(f"{op}: x must have rank >= 1 (..., in), got a scalar")
    kernel = as_float_array(kernel, "kernel", op, rank=2, layout="(in, out)")
    if x.shape[-1] != kernel.shape[0]:
        raise ValueError(f"{op}: kernel expects {kernel.shape[0]} inputs (kernel shape {kernel.shape}) but x has {x.shape[-1]} (x shape {x.shape})")
    if bias is not None:
        bias = as_float_array(bias, "bias", op, rank=1, layout="(out,)")
        if bias.shape[0] != kernel.shape[1]:
            raise ValueError(f"{op}: bias must have shape ({kernel.shape[1]},) to match kernel {kernel.shape}, got {bias.shape}")
    be = get_backend(backend)
    rows = x.reshape(-1, x.shape[-1])  # (M, I)
    y = be.dense_forward(rows, kernel, bias).reshape(*x.shape[:-1], kernel.shape[1])

    def pullback(dy):
        dy = check_upstream(dy, y.shape, op)
        dx, dkernel, dbias = be.dense_backward(dy.reshape(-1, kernel.shape[1]), rows, kernel, bias is not None)
        grads = (dx.reshape(x.shape), dkernel)
        return grads if bias is None else (*grads, dbias)

    return y, pullback


@has_vjp(dense_vjp)
def dense(x, kernel, bias=None, *, backend=None):
    """y = x @ kernel + bias: x (..., I), kernel (I, O), bias (O,) or None -> (..., O)."""
    return dense_vjp(x, kernel, bias, backend=backend)[0]
