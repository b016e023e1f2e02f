"""Numba kernels for the elementwise ops (relu, relu6, sigmoid), softmax rows, dense bias and dropout.

Arrays arrive C-contiguous; elementwise kernels work on the flat view (``ravel`` is free).
Shape legend for the row kernels: M rows, L row length (softmax) or O outputs (dense).

Each kernel is serial and releases the GIL; the wrappers below share pieces of the arrays between
threads with ``work_sharing.parallel_range``: elementwise kernels get the pieces as slices (a loop
over range(x.size) vectorises; one over range(start, stop) does not, Numba's negative-index
handling in the way: 6.7x slower measured), row kernels a range [start, stop) of their rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .work_sharing import matmul, parallel_range

FLAT_GRAIN = 1 << 15  # elements per shared piece of an elementwise pass (~10-20 us of work)


@njit(nogil=True, cache=True)
def relu_forward_kernel(x, y):
    """y = x where not (x <= 0) else 0, so NaN passes through as TensorFlow's relu."""
    for i in range(x.size):
        y[i] = 0.0 if x[i] <= 0 else x[i]


@njit(nogil=True, cache=True)
def relu_backward_kernel(dy, y, dx):
    """dx = dy where y > 0 else 0."""
    for i in range(dy.size):
        dx[i] = dy[i] if y[i] > 0 else 0.0


@njit(nogil=True, cache=True)
def relu6_forward_kernel(x, y):
    """y = 0 where x <= 0, 6 where x >= 6, else x: NaN passes through, as TensorFlow's relu6."""
    for i in range(x.size):
        v = x[i]
        y[i] = 0.0 if v <= 0 else (6.0 if v >= 6 else v)


@njit(nogil=True, cache=True)
def relu6_backward_kernel(dy, y, dx):
    """dx = dy * (0 < y < 6): a product, as TensorFlow's (inf or NaN times a zero mask is NaN)."""
    for i in range(dy.size):
        dx[i] = dy[i] * (1.0 if 0 < y[i] < 6 else 0.0)


@njit(nogil=True, cache=True)
def sigmoid_forward_kernel(x, y):
    """y = 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) for x < 0 (no overflow either way)."""
    for i in range(x.size):
        if x[i] >= 0:
            y[i] = 1.0 / (1.0 + math.exp(-x[i]))
        else:
            e = math.exp(x[i])
            y[i] = e / (1.0 + e)


@njit(nogil=True, cache=True)
def sigmoid_backward_kernel(dy, y, dx):
    """dx = dy * y * (1 - y)."""
    for i in range(dy.size):
        dx[i] = dy[i] * y[i] * (1.0 - y[i])


@njit(nogil=True, cache=True)
def softmax_forward_kernel(x, y, start, stop):
    """Row m: y = exp(x - max) / sum(exp(x - max)); an inf or NaN in the row gives NaN, as TF."""
    _, L = x.shape
    for m in range(start, stop):
        peak = x[m, 0]
        for j in range(1, L):
            if x[m, j] > peak or math.isnan(x[m, j]):
                peak = x[m, j]
        total = 0.0
        for j in range(L):
            y[m, j] = math.exp(x[m, j] - peak)
            total += y[m, j]
        for j in range(L):
            y[m, j] /= total


@njit(nogil=True, cache=True)
def softmax_backward_kernel(dy, y, dx, start, stop):
    """Row m: dx = y * (dy - sum(dy * y))."""
    _, L = dy.shape
    for m in range(start, stop):
        inner = 0.0
        for j in range(L):
            inner += dy[m, j] * y[m, j]
        for j in range(L):
            dx[m, j] = y[m, j] * (dy[m, j] - inner)


@njit(nogil=True, cache=True)
def add_bias_kernel(y, bias, start, stop):
    """y[m, o] += bias[o], in place."""
    _, O = y.shape
    for m in range(start, stop):
        for o in range(O):
            y[m, o] += bias[o]


@njit(nogil=True, cache=True)
def bias_gradient_kernel(dy, partial_dbias, start, stop):
    """partial_dbias[t, o] = sum of dy[m, o] over block t of the rows; summed by the caller."""
    M, O = dy.shape
    T = partial_dbias.shape[0]
    for t in range(start, stop):
        for o in range(O):
            partial_dbias[t, o] = 0.0
        for m in range(t * M // T, (t + 1) * M // T):
            for o in range(O):
                partial_dbias[t, o] += dy[m, o]


@njit(nogil=True, cache=True)
def bias_add_kernel(x, bias, y, start, stop):
    """y[m, o] = x[m, o] + bias[o]."""
    _, O = x.shape
    for m in range(start, stop):
        for o in range(O):
            y[m, o] = x[m, o] + bias[o]


@njit(nogil=True, cache=True)
def bias_activation_rows(y, bias, relu6):
    """In place, y (M, K): y[m, k] += bias[k], then ReLU6 (0 where <= 0, 6 where >= 6, NaN kept) when
    ``relu6``: the same float32 operations as ``bias_add_kernel`` then ``relu6_forward_kernel``, in one
    pass; the epilogue of the fused convolutions (``conv2d_bias``), run on rows still in cache."""
    M, K = y.shape
    for m in range(M):
        row = y[m]
        if relu6:
            for k in range(K):
                z = row[k] + bias[k]
                row[k] = 0.0 if z <= 0 else (6.0 if z >= 6 else z)
        else:
            for k in range(K):
                row[k] += bias[k]


@njit(nogil=True, cache=True)
def bias_relu_forward_kernel(x, bias, y, start, stop):
    """y[m, o] = max(x[m, o] + bias[o], 0), NaN kept."""
    _, O = x.shape
    for m in range(start, stop):
        for o in range(O):
            z = x[m, o] + bias[o]
            y[m, o] = 0.0 if z <= 0 else z


@njit(nogil=True, cache=True)
def relu_gradient_rows(dz, z, zero, dy, bias_partial):
    """dy = dz where z > 0 else 0; bias_partial += the column sums of dy.

    ``zero`` comes in with dz's dtype: a literal 0.0 would make the select float64.
    """
    M, K = dz.shape
    for m in range(M):
        for k in range(K):
            value = dz[m, k] if z[m, k] > 0 else zero
            dy[m, k] = value
            bias_partial[k] += value


@njit(nogil=True, cache=True)
def bias_relu_backward_kernel(dy, y, zero, dx, partial_dbias, start, stop):
    """dx = dy where y > 0 else 0; partial_dbias[t] = column sums of dx over block t of the rows."""
    M = dy.shape[0]
    T = partial_dbias.shape[0]
    for t in range(start, stop):
        rows = slice(t * M // T, (t + 1) * M // T)
        partial_dbias[t, :] = 0.0
        relu_gradient_rows(dy[rows], y[rows], zero, dx[rows], partial_dbias[t])


@njit(nogil=True, cache=True)
def relu6_gradient_rows(dz, z, dy, bias_partial):
    """dy = dz * (0 < z < 6) (``relu6_backward_kernel``'s product); bias_partial += the column sums of dy,
    row by row as ``bias_gradient_kernel`` adds them."""
    M, K = dz.shape
    for m in range(M):
        for k in range(K):
            dy[m, k] = dz[m, k] * (1.0 if 0 < z[m, k] < 6 else 0.0)
            bias_partial[k] += dy[m, k]


@njit(nogil=True, cache=True)
def bias_relu6_backward_kernel(dy, y, dx, partial_dbias, start, stop):
    """dx = dy * (0 < y < 6); partial_dbias[t] = column sums of dx over block t of the rows: the numbers of
    ``relu6_backward`` then ``bias_add_backward`` in one pass (the same products and sums in the same
    order; where NaNs meet, which NaN's sign survives may differ)."""
    M = dy.shape[0]
    T = partial_dbias.shape[0]
    for t in range(start, stop):
        rows = slice(t * M // T, (t + 1) * M // T)
        partial_dbias[t, :] = 0.0
        relu6_gradient_rows(dy[rows], y[rows], dx[rows], partial_dbias[t])


@njit(nogil=True, cache=True)
def dropout_kernel(x, keep, scale, y):
    """y = x * scale where kept, else exactly 0 (a select, as tf.nn.dropout: a dropped inf is 0)."""
    for i in range(x.size):
        y[i] = x[i] * scale if keep[i] else 0.0


def _flat_map(kernel, *arrays):
    out = np.empty_like(arrays[0])
    flat = [a.reshape(-1) for a in (*arrays, out)]
    parallel_range(lambda start, stop: kernel(*(a[start:stop] for a in flat)), out.size, FLAT_GRAIN)
    return out


def _by_rows(kernel, rows, row_length, *args):
    """kernel(*args, start, stop) over row ranges of about FLAT_GRAIN elements, shared between threads."""
    parallel_range(lambda start, stop: kernel(*args, start, stop), rows, -(-FLAT_GRAIN // max(row_length, 1)))


def relu_forward(x):
    return _flat_map(relu_forward_kernel, x)


def relu_backward(dy, y):
    return _flat_map(relu_backward_kernel, dy, y)


def relu6_forward(x):
    return _flat_map(relu6_forward_kernel, x)


def relu6_backward(dy, y):
    return _flat_map(relu6_backward_kernel, dy, y)


def sigmoid_forward(x):
    return _flat_map(sigmoid_forward_kernel, x)


def sigmoid_backward(dy, y):
    return _flat_map(sigmoid_backward_kernel, dy, y)


def softmax_forward(x):
    y = np.empty_like(x)
    _by_rows(softmax_forward_kernel, *x.shape, x, y)
    return y


def softmax_backward(dy, y):
    dx = np.empty_like(dy)
    _by_rows(softmax_backward_kernel, *dy.shape, dy, y, dx)
    return dx


def dense_forward(x, kernel, bias):
    """y = x @ kernel (BLAS, work-shared), then the bias added in place."""
    y = matmul(x, kernel)
    if bias is not None:
        _by_rows(add_bias_kernel, *y.shape, y, bias)
    return y


def dense_backward(dy, x, kernel, with_bias):
    """dx = dy @ kernel.T, dkernel = x.T @ dy (BLAS); dbias = column sums of dy."""
    dbias = bias_add_backward(dy) if with_bias else None
    return matmul(dy, kernel.T), matmul(x.T, dy), dbias


def bias_add_forward(x, bias):
    y = np.empty_like(x)
    _by_rows(bias_add_kernel, *x.shape, x, bias, y)
    return y


ROW_BLOCKS = 8  # a column reduction sums this many fixed row blocks: balanced, and the same bits on any thread count


def _row_partials(dy):
    """Partial sums, one per fixed block of rows, for a column reduction over the rows of dy."""
    return np.empty((max(1, min(ROW_BLOCKS, dy.shape[0])), dy.shape[1]), dy.dtype)


def _by_blocks(kernel, dy, *args):
    """kernel(dy, *args, start, stop) over ranges of the fixed row blocks of ``_row_partials`` (the last arg)."""
    blocks = args[-1].shape[0]
    parallel_range(lambda start, stop: kernel(dy, *args, start, stop), blocks, -(-blocks * FLAT_GRAIN // dy.size))


def bias_add_backward(dy):
    partial = _row_partials(dy)
    _by_blocks(bias_gradient_kernel, dy, partial)
    return partial.sum(axis=0)


def bias_relu_forward(x, bias):
    y = np.empty_like(x)
    _by_rows(bias_relu_forward_kernel, *x.shape, x, bias, y)
    return y


def bias_relu_backward(dy, y):
    dx = np.empty_like(dy)
    partial = _row_partials(dy)
    _by_blocks(bias_relu_backward_kernel, dy, y, dy.dtype.type(0), dx, partial)
    return dx, partial.sum(axis=0)


def bias_relu6_backward(dy, y):
    dx = np.empty_like(dy)
    partial = _row_partials(dy)
    _by_blocks(bias_relu6_backward_kernel, dy, y, dx, partial)
    return dx, partial.sum(axis=0)


def bias_activation_backward(dz, z, activation):
    """(dy, dbias) of z = activation(y + bias) at upstream dz, both (M, K): ``bias_relu6_backward`` for
    "relu6", else dz itself and ``bias_add_backward``'s sums. The composed path of the fused
    convolutions' backwards (``conv2d_bias_backward``, ``depthwise_conv2d_bias_backward``)."""
    if activation == "relu6":
        return bias_relu6_backward(dz, z)
    return dz, bias_add_backward(dz)


def dropout_forward(x, keep, scale):
    y = np.empty_like(x)
    x_flat, keep_flat, y_flat, scale = x.reshape(-1), keep.reshape(-1), y.reshape(-1), x.dtype.type(scale)
    parallel_range(lambda start, stop: dropout_kernel(x_flat[start:stop], keep_flat[start:stop], scale, y_flat[start:stop]),
                   x.size, FLAT_GRAIN)
    return y


def dropout_backward(dy, keep, scale):
    return dropout_forward(dy, keep, scale)
