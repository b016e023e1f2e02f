"""The NumPy reference backend: plain vectorised NumPy that reads like the maths.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size,
M channel multiplier (depthwise: K = C * M).

This is the executable spec the fast backends are tested against. Every function works in the
dtype it is given (float32 from the ops, float64 in the finite-difference checks). The loops run
over the R * S kernel offsets only; everything inside is a whole-array operation.
"""

from __future__ import annotations

import numpy as np

from ..shapes import ConvGeometry, DepthwiseGeometry, PoolGeometry
from .interface import Backend


def _window_slice(offset: int, stride: int, count: int) -> slice:
    """Rows offset, offset + stride, ..., count of them: one kernel tap across all outputs."""
    return slice(offset, offset + (count - 1) * stride + 1, stride)


def _pad(x: np.ndarray, top, bottom, left, right, value=0.0) -> np.ndarray:
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


# --- convolution ---------------------------------------------------------------------------------
#
# (Depthwise convolutions too.) Padding is read, never stored: x0 is x after one zero row and one zero column, and the tap of
# filter cell (r, s) gathers x0's rows and columns that the output cells read, the zero ones where
# they read padding. A SAME padding or dilation of 2**31 - 1 then costs no more than one of 1.


def _zero_first(x):
    """x0: x (N, H, W, C) after one row and one column of zeros, (N, H + 1, W + 1, C)."""
    return np.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))


def _tap_index(offset: int, stride: int, count: int, size: int):
    """x0's rows (or columns) under one tap: input row offset + stride * p for p < count, as its
    x0 row (+ 1) inside [0, size), or x0's zero row 0 outside (padding)."""
    index = offset + stride * np.arange(count)
    return np.where((index >= 0) & (index < size), index + 1, 0)


def _tap(x0, g: ConvGeometry, r: int, s: int):
    """xr (N, P, Q, C): xr[n,p,q,c] = x[n, p*sh + r*dh - top, q*sw + s*dw - left, c], 0 outside the input."""
    rows = _tap_index(r * g.dh - g.top, g.sh, g.P, g.H)
    cols = _tap_index(s * g.dw - g.left, g.sw, g.Q, g.W)
    return x0[:, rows[:, None], cols[None, :]]


def conv2d_forward(x, w, g: ConvGeometry):
    """y[n,p,q,k] = sum_{r,s,c} xr[n,p,q,c] * w[r,s,c,k], xr the input under filter cell (r, s) (``_tap``)."""
    x0 = _zero_first(x)
    y = np.zeros((g.N, g.P, g.Q, g.K), x.dtype)
    for r in range(g.R):
        for s in range(g.S):
            y += _tap(x0, g, r, s) @ w[r, s]  # (N, P, Q, C) @ (C, K)
    return y


def conv2d_backward_input(dy, w, g: ConvGeometry):
    """dx[n, p*sh + r*dh - top, q*sw + s*dw - left, c] += sum_k dy[n,p,q,k] * w[r,s,c,k] (cells inside the input)."""
    dx0 = np.zeros((g.N, g.H + 1, g.W + 1, g.C), dy.dtype)  # row and column 0: a sink for the padding's share
    for r in range(g.R):
        rows = _tap_index(r * g.dh - g.top, g.sh, g.P, g.H)
        for s in range(g.S):
            cols = _tap_index(s * g.dw - g.left, g.sw, g.Q, g.W)
            dx0[:, rows[:, None], cols[None, :]] += dy @ w[r, s].T  # (N, P, Q, K) @ (K, C); distinct cells inside
    return np.ascontiguousarray(dx0[:, 1:, 1:])


def conv2d_backward_filter(x, dy, g: ConvGeometry):
    """dw[r,s,c,k] = sum_{n,p,q} xr[n,p,q,c] * dy[n,p,q,k], xr the input under filter cell (r, s)."""
    x0 = _zero_first(x)
    dw = np.zeros((g.R, g.S, g.C, g.K), x.dtype)
    dy_rows = dy.reshape(-1, g.K)  # (N*P*Q, K)
    for r in range(g.R):
        for s in range(g.S):
            dw[r, s] = _tap(x0, g, r, s).reshape(-1, g.C).T @ dy_rows  # (C, NPQ) @ (NPQ, K)
    return dw


# --- depthwise convolution -----------------------------------------------------------------------


def depthwise_conv2d_forward(x, w, g: DepthwiseGeometry):
    """y[n,p,q,c*M + m] = sum_{r,s} xr[n,p,q,c] * w[r,s,c,m], xr the input under filter cell (r, s) (``_tap``)."""
    x0 = _zero_first(x)
    y = np.zeros((g.N, g.P, g.Q, g.C, g.M), x.dtype)
    for r in range(g.R):
        for s in range(g.S):
            y += _tap(x0, g, r, s)[..., None] * w[r, s]  # (N, P, Q, C, 1) * (C, M)
    return y.reshape(g.output_shape)


def depthwise_conv2d_backward_input(dy, w, g: DepthwiseGeometry):
    """dx[n, p*sh + r*dh - top, q*sw + s*dw - left, c] += sum_m dy[n,p,q,c*M + m] * w[r,s,c,m] (cells inside the input)."""
    dy5 = dy.reshape(g.N, g.P, g.Q, g.C, g.M)
    dx0 = np.zeros((g.N, g.H + 1, g.W + 1, g.C), dy.dtype)  # row and column 0: a sink for the padding's share
    for r in range(g.R):
        rows = _tap_index(r * g.dh - g.top, g.sh, g.P, g.H)
        for s in range(g.S):
            cols = _tap_index(s * g.dw - g.left, g.sw, g.Q, g.W)
            dx0[:, rows[:, None], cols[None, :]] += (dy5 * w[r, s]).sum(axis=-1)  # (N, P, Q, C, M) -> (N, P, Q, C)
    return np.ascontiguousarray(dx0[:, 1:, 1:])


def depthwise_conv2d_backward_filter(x, dy, g: DepthwiseGeometry):
    """dw[r,s,c,m] = sum_{n,p,q} xr[n,p,q,c] * dy[n,p,q,c*M + m], xr the input under filter cell (r, s)."""
    x0 = _zero_first(x)
    dy5 = dy.reshape(g.N, g.P, g.Q, g.C, g.M)
    dw = np.zeros(g.filter_shape, x.dtype)
    for r in range(g.R):
        for s in range(g.S):
            dw[r, s] = np.einsum("npqc,npqcm->cm", _tap(x0, g, r, s), dy5)
    return dw


# --- pooling -------------------------------------------------------------------------------------


def max_pool2d_forward(x, g: PoolGeometry):
    """y = max over each window of the valid cells, TensorFlow's scan rule.

    As TensorFlow: start from the lowest finite value with the window's first valid cell as
    argmax, and take a cell only if it is strictly greater. So ties go to the first maximum in
    scan order (row-major over the window), NaN never wins, and an all-NaN or all-(-inf) window
    gives the lowest finite value. Padded cells are -inf and never win.
    """
    xp = _pad(x, g.top, g.bottom, g.left, g.right, value=-np.inf)
    p = np.arange(g.P)[:, None]  # (P, 1)
    q = np.arange(g.Q)[None, :]  # (1, Q)
    first_h = np.maximum(p * g.sh - g.top, 0)
    first_w = np.maximum(q * g.sw - g.left, 0)
    best = np.full((g.N, g.P, g.Q, g.C), np.finfo(x.dtype).min, x.dtype)
    argmax = np.broadcast_to((first_h * g.W + first_w)[None, :, :, None], best.shape).astype(np.int64)
    for r in range(g.R):
        for s in range(g.S):
            candidate = xp[:, _window_slice(r, g.sh, g.P), _window_slice(s, g.sw, g.Q), :]
            index = (p * g.sh - g.top + r) * g.W + (q * g.sw - g.left + s)  # (P, Q), flat h*W+w
            better = candidate > best
            best = np.where(better, candidate, best)
            argmax = np.where(better, index[None, :, :, None], argmax)
    return best, argmax


def max_pool2d_backward(dy, argmax, g: PoolGeometry):
    """dx[n, h, w, c] = sum of dy[n, p, q, c] over the windows whose argmax is (h, w)."""
    dx = np.zeros((g.N, g.H * g.W, g.C), dy.dtype)
    n = np.arange(g.N)[:, None, None, None]
    c = np.arange(g.C)[None, None, None, :]
    np.add.at(dx, (n, argmax, c), dy)
    return dx.reshape(g.N, g.H, g.W, g.C)


def _valid_counts(g: PoolGeometry, dtype):
    """(1, P, Q, 1): how many unpadded cells each window covers."""
    rows = np.clip(np.arange(g.P) * g.sh - g.top + g.R, 0, g.H) - np.clip(np.arange(g.P) * g.sh - g.top, 0, g.H)
    cols = np.clip(np.arange(g.Q) * g.sw - g.left + g.S, 0, g.W) - np.clip(np.arange(g.Q) * g.sw - g.left, 0, g.W)
    return (rows[:, None] * cols[None, :]).astype(dtype)[None, :, :, None]


def avg_pool2d_forward(x, g: PoolGeometry):
    """y[n,p,q,c] = sum of the window's valid cells / their count (SAME never counts padding)."""
    xp = _pad(x, g.top, g.bottom, g.left, g.right)
    total = np.zeros((g.N, g.P, g.Q, g.C), x.dtype)
    for r in range(g.R):
        for s in range(g.S):
            total += xp[:, _window_slice(r, g.sh, g.P), _window_slice(s, g.sw, g.Q), :]
    return total / _valid_counts(g, x.dtype)


def avg_pool2d_backward(dy, g: PoolGeometry):
    """dx[n,h,w,c] = sum over the windows covering (h, w) of dy[n,p,q,c] / count[p,q]."""
    share = dy / _valid_counts(g, dy.dtype)
    dxp = np.zeros((g.N, g.H + g.top + g.bottom, g.W + g.left + g.right, g.C), dy.dtype)
    for r in range(g.R):
        for s in range(g.S):
            dxp[:, _window_slice(r, g.sh, g.P), _window_slice(s, g.sw, g.Q), :] += share
    return np.ascontiguousarray(dxp[:, g.top : g.top + g.H, g.left : g.left + g.W, :])


# --- elementwise ---------------------------------------------------------------------------------


def relu_forward(x):
    """y = max(x, 0), with NaN kept (np.maximum propagates NaN, as TensorFlow does)."""
    return np.maximum(x, np.zeros((), x.dtype))


def relu_backward(dy, y):
    """dx = dy where y > 0 else 0."""
    return np.where(y > 0, dy, np.zeros((), dy.dtype))


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), written as exp(x) / (1 + exp(x)) for x < 0 so neither side overflows."""
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_backward(dy, y):
    """dx = dy * y * (1 - y)."""
    return dy * y * (1 - y)


def softmax_forward(x):
    """y[m, l] = exp(x[m, l] - max_l x) / sum_l exp(x[m, l] - max_l x)."""
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    """dx = y * (dy - sum_l dy * y)."""
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def relu6_forward(x):
    """y = min(max(x, 0), 6), NaN kept (np.maximum / np.minimum propagate it, as TensorFlow does)."""
    return np.minimum(np.maximum(x, np.zeros((), x.dtype)), x.dtype.type(6))


def relu6_backward(dy, y):
    """dx = dy * (0 < y < 6): TensorFlow's product with the mask, so inf * 0 and NaN * 0 give NaN."""
    with np.errstate(invalid="ignore"):
        return dy * ((y > 0) & (y < 6)).astype(dy.dtype)


# --- normalisation (channels last: x (rows, C), one parameter per column) ------------------------


def batch_norm_forward(x, mean, variance, offset, scale, epsilon):
    """y = x * inv + (offset - mean * inv), inv = (1 / sqrt(variance + epsilon)) * scale: TF's formula, in its order."""
    inv = (1 / np.sqrt(variance + x.dtype.type(epsilon))) * scale
    return x * inv + (offset - mean * inv)


def batch_norm_backward(dy, x, mean, variance, scale, epsilon):
    """Column sums over the rows, then per channel (rstd = 1 / sqrt(variance + epsilon), inv = rstd * scale):

        dx = dy * inv          doffset = sum dy          dmean = -inv * sum dy
        dscale = rstd * sum dy (x - mean)                dvariance = -scale * rstd**3 / 2 * sum dy (x - mean)

    sum dy (x - mean) is TensorFlow's sum dy x - mean sum dy where it is inf or NaN (an inf in x or mean, or
    x - mean past float32): TF's own arithmetic then, e.g. -inf * sum dy for an inf mean, not inf - inf.
    """
    rstd = 1 / np.sqrt(variance + x.dtype.type(epsilon))
    inv = rstd * scale
    total = dy.sum(axis=0)
    centred = (dy * (x - mean)).sum(axis=0)
    centred = np.where(np.isfinite(centred), centred, (dy * x).sum(axis=0) - mean * total)  # TF's where not finite
    dvariance = centred * scale * (x.dtype.type(-0.5) * rstd * rstd * rstd)
    return dy * inv, -inv * total, dvariance, total, centred * rstd


def moments_forward(x):
    """mean = sum_m x / rows, variance = sum_m (x - mean)^2 / rows: TF's two passes (population variance)."""
    mean = x.sum(axis=0) / x.dtype.type(x.shape[0])
    return mean, np.square(x - mean).sum(axis=0) / x.dtype.type(x.shape[0])


def moments_backward(dmean, dvariance, x, mean):
    """dx = dmean / rows + 2 (dvariance / rows) (x - mean), TF's gradient of its two reductions."""
    rows = x.dtype.type(x.shape[0])
    return dmean / rows + (2 * (dvariance / rows)) * (x - mean)


# --- dense and dropout ---------------------------------------------------------------------------


def dense_forward(x, kernel, bias):
    """y = x @ kernel + bias: (M, I) @ (I, O) + (O,)."""
    y = x @ kernel
    return y if bias is None else y + bias


def dense_backward(dy, x, kernel, with_bias):
    """dx = dy @ kernel.T, dkernel = x.T @ dy, dbias = sum_m dy."""
    return dy @ kernel.T, x.T @ dy, (dy.sum(axis=0) if with_bias else None)


def bias_add_forward(x, bias):
    """y[m, o] = x[m, o] + bias[o]."""
    return x + bias


def bias_add_backward(dy):
    """dbias[o] = sum_m dy[m, o]."""
    return dy.sum(axis=0)


def bias_relu_forward(x, bias):
    """y = relu(x + bias)."""
    return relu_forward(x + bias)


def bias_relu_backward(dy, y):
    """dx = relu_backward(dy, y); dbias = sum_m dx."""
    dx = relu_backward(dy, y)
    return dx, dx.sum(axis=0)


def dropout_forward(x, keep, scale):
    """y = x * scale where kept, else exactly 0 (inverted dropout: kept units scale by 1 / (1 - rate)).

    A select, not a multiply by the mask: a dropped NaN or inf gives 0, as ``tf.nn.dropout``
    (``where(keep, x * scale, 0)``) does; ``inf * 0`` would be NaN.
    """
    return np.where(keep, x * x.dtype.type(scale), x.dtype.type(0))


def dropout_backward(dy, keep, scale):
    """dx = dy * scale where kept, else exactly 0 (the same select)."""
    return np.where(keep, dy * dy.dtype.type(scale), dy.dtype.type(0))


# --- merging --------------------------------------------------------------------------------------


def add_forward(a, b):
    """y = a + b."""
    return a + b


def multiply_forward(a, b):
    """y = a * b."""
    return a * b


def concat_columns(blocks):
    """(M, W_i) blocks side by side -> (M, sum W_i)."""
    return np.concatenate(blocks, axis=1)


def split_columns(y, widths):
    """(M, sum W_i) -> the (M, W_i) blocks, copied."""
    edges = np.cumsum(widths)[:-1]
    return [np.ascontiguousarray(piece) for piece in np.split(y, edges, axis=1)]


# --- padding --------------------------------------------------------------------------------------


def pad2d_forward(x, top, bottom, left, right):
    """x inside top / bottom rows and left / right columns of zeros."""
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def pad2d_backward(dy, top, bottom, left, right):
    """dy's inner rows and columns: the zeros' gradients dropped."""
    P, Q = dy.shape[1], dy.shape[2]
    return np.ascontiguousarray(dy[:, top : P - bottom, left : Q - right])


class NumpyBackend(Backend):
    """The reference: each method is the module function of the same name.

    The fused conv2d + bias + ReLU (+ max pooling), the convolutions + bias (+ ReLU6) and the
    convolutions' two gradients together keep Backend's defaults, which compose the functions above; so do the methods that only move
    arrays (``from_host``, ``to_host``: the host is where this backend computes) or run a whole
    step's piece on the host (the loss).
    """

    name = "numpy"


_COMPOSED = ("conv2d_backward", "conv2d_bias_relu_forward", "conv2d_bias_relu_backward", "conv2d_bias_relu_max_pool_forward",
             "conv2d_bias_relu_max_pool_backward", "depthwise_conv2d_backward", "conv2d_bias_forward",
             "depthwise_conv2d_bias_forward", "conv2d_bias_backward", "depthwise_conv2d_bias_backward")
for _name in [m for m in vars(Backend) if not m.startswith("_") and callable(getattr(Backend, m))]:
    if _name not in _COMPOSED and _name in globals():
        setattr(NumpyBackend, _name, staticmethod(globals()[_name]))

BACKEND = NumpyBackend()
