"""Numba kernels for batch normalization and moments over channels-last rows.

Shape legend: x (rows, C), one parameter or statistic per column c (NHWC activations are
(N*H*W, C) for free); B fixed blocks of rows, each with its own partial column sums.

    batch_norm forward   y[m, c] = x[m, c] * inv[c] + shift[c],   inv = scale / sqrt(variance + eps),
                                                                  shift = offset - mean * inv
    batch_norm backward  dx[m, c] = dy[m, c] * inv[c], and in the same pass the column sums
                         sum_m dy[m, c] and sum_m dy[m, c] (x[m, c] - mean[c]) that give every
                         parameter's gradient (``numpy_ref.batch_norm_backward``'s formulas; where
                         the second is inf or NaN, TF's sum dy x - mean sum dy, from one more pass)
    moments forward      mean[c] = sum_m x / rows;  variance[c] = sum_m (x - mean)^2 / rows  (two passes)
    moments backward     dx[m, c] = a[c] + b[c] (x[m, c] - mean[c]),  a = dmean / rows, b = 2 (dvariance / rows)

Each pass reads its inputs once (these ops do a few flops per value: memory bounds them). Column
sums go to one partial per block of rows; the blocks depend on the shape only, and the partials
are added in block order, so the bits are the same on any thread count. Per-channel work (C values)
is NumPy around the kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .work_sharing import chunk_bounds, parallel_range, partials, run_chunks, sum_in_order

GRAIN = 1 << 15  # values per block of rows (~10-20 us of a pass)


def _row_blocks(rows, C):
    """Fixed blocks of about GRAIN values: the same for a shape whatever the thread count."""
    return chunk_bounds(rows, max(1, GRAIN // max(1, C)))


@njit(nogil=True, cache=True)
def scale_shift_rows(x, inv, shift, start, stop, y):
    """y[m, c] = x[m, c] * inv[c] + shift[c] for rows [start, stop)."""
    C = x.shape[1]
    for m in range(start, stop):
        for c in range(C):
            y[m, c] = x[m, c] * inv[c] + shift[c]


@njit(nogil=True, cache=True)
def batch_norm_backward_rows(dy, x, mean, inv, start, stop, dx, sums):
    """dx = dy * inv for rows [start, stop); sums[0] = their column sums of dy, sums[1] of dy (x - mean)."""
    C = x.shape[1]
    total, centred = sums[0], sums[1]
    for c in range(C):
        total[c] = 0.0
        centred[c] = 0.0
    for m in range(start, stop):
        for c in range(C):
            g = dy[m, c]
            dx[m, c] = g * inv[c]
            total[c] += g
            centred[c] += g * (x[m, c] - mean[c])


@njit(nogil=True, cache=True)
def column_sums_rows(x, start, stop, out):
    """out[c] = sum of x[m, c] over rows [start, stop)."""
    C = x.shape[1]
    for c in range(C):
        out[c] = 0.0
    for m in range(start, stop):
        for c in range(C):
            out[c] += x[m, c]


@njit(nogil=True, cache=True)
def squared_deviation_sums_rows(x, mean, start, stop, out):
    """out[c] = sum of (x[m, c] - mean[c])^2 over rows [start, stop)."""
    C = x.shape[1]
    for c in range(C):
        out[c] = 0.0
    for m in range(start, stop):
        for c in range(C):
            d = x[m, c] - mean[c]
            out[c] += d * d


@njit(nogil=True, cache=True)
def moments_backward_rows(x, mean, a, b, start, stop, dx):
    """dx[m, c] = a[c] + b[c] * (x[m, c] - mean[c]) for rows [start, stop)."""
    C = x.shape[1]
    for m in range(start, stop):
        for c in range(C):
            dx[m, c] = a[c] + b[c] * (x[m, c] - mean[c])


def _by_rows(kernel, rows, C, *args):
    """kernel(*args[:-1], start, stop, args[-1]) over pieces of the rows, shared between the threads."""
    *inputs, out = args
    parallel_range(lambda start, stop: kernel(*inputs, start, stop, out), rows, max(1, GRAIN // max(1, C)))


def _block_sums(kernel, x, *args):
    """Per fixed block of rows, kernel(x, *args, start, stop, partial) fills partial (C,); the
    partials added in block order."""
    rows, C = x.shape
    bounds = _row_blocks(rows, C)
    sums = partials(len(bounds), (C,), x.dtype)

    def task(i):
        start, stop = bounds[i]
        kernel(x, *args, start, stop, sums[i])

    run_chunks(task, len(bounds))
    return sum_in_order(sums)


def _rstd(variance, epsilon):
    return 1 / np.sqrt(variance + variance.dtype.type(epsilon))


def batch_norm_forward(x, mean, variance, offset, scale, epsilon):
    inv = _rstd(variance, epsilon) * scale
    shift = offset - mean * inv
    y = np.empty_like(x)
    _by_rows(scale_shift_rows, *x.shape, x, inv, shift, y)
    return y


def batch_norm_backward(dy, x, mean, variance, scale, epsilon):
    rstd = _rstd(variance, epsilon)
    inv = rstd * scale
    dx = np.empty_like(dy)
    rows, C = x.shape
    bounds = _row_blocks(rows, C)
    sums = partials(len(bounds), (2, C), x.dtype)

    def task(i):
        start, stop = bounds[i]
        batch_norm_backward_rows(dy, x, mean, inv, start, stop, dx, sums[i])

    run_chunks(task, len(bounds))
    total, centred = sum_in_order(sums)
    bad = ~np.isfinite(centred)
    if bad.any():  # TF's sum dy x - mean sum dy there (numpy_ref.batch_norm_backward): a pass over those columns
        centred[bad] = (dy[:, bad] * x[:, bad]).sum(axis=0) - mean[bad] * total[bad]
    dvariance = centred * scale * (x.dtype.type(-0.5) * rstd * rstd * rstd)
    return dx, -inv * total, dvariance, total, centred * rstd


def moments_forward(x):
    rows = x.dtype.type(x.shape[0])
    mean = _block_sums(column_sums_rows, x) / rows
    return mean, _block_sums(squared_deviation_sums_rows, x, mean) / rows


def moments_backward(dmean, dvariance, x, mean):
    rows = x.dtype.type(x.shape[0])
    a = dmean / rows
    b = 2 * (dvariance / rows)
    dx = np.empty_like(x)
    _by_rows(moments_backward_rows, *x.shape, x, mean, a, b, dx)
    return dx
