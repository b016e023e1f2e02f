"""Numba kernels for merging arrays: elementwise add and multiply, blocks of columns joined and split.

Shape legend: M rows, W a block's width (columns). Arrays arrive C-contiguous. The elementwise
kernels work on flat slices shared between threads (as ``elementwise_kernels``); the column
kernels on ranges [start, stop) of rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .work_sharing import parallel_range

FLAT_GRAIN = 1 << 15  # elements per shared piece (~10-20 us of work)


@njit(nogil=True, cache=True)
def add_kernel(a, b, y):
    """y = a + b."""
    for i in range(a.size):
        y[i] = a[i] + b[i]


@njit(nogil=True, cache=True)
def multiply_kernel(a, b, y):
    """y = a * b."""
    for i in range(a.size):
        y[i] = a[i] * b[i]


@njit(nogil=True, cache=True)
def copy_columns_kernel(source, target, column, start, stop):
    """target[m, column : column + W] = source[m, :] for rows m in [start, stop); source (M, W)."""
    W = source.shape[1]
    for m in range(start, stop):
        for w in range(W):
            target[m, column + w] = source[m, w]


@njit(nogil=True, cache=True)
def take_columns_kernel(source, column, target, start, stop):
    """target[m, :] = source[m, column : column + W] for rows m in [start, stop); target (M, W)."""
    W = target.shape[1]
    for m in range(start, stop):
        for w in range(W):
            target[m, w] = source[m, column + w]


def _elementwise(kernel, a, b):
    y = np.empty_like(a)
    flat = (a.reshape(-1), b.reshape(-1), y.reshape(-1))
    parallel_range(lambda start, stop: kernel(*(v[start:stop] for v in flat)), y.size, FLAT_GRAIN)
    return y


def add_forward(a, b):
    return _elementwise(add_kernel, a, b)


def multiply_forward(a, b):
    return _elementwise(multiply_kernel, a, b)


def _row_grain(width: int) -> int:
    return -(-FLAT_GRAIN // max(width, 1))


def concat_columns(blocks):
    M = blocks[0].shape[0]
    total = sum(b.shape[1] for b in blocks)
    y = np.empty((M, total), blocks[0].dtype)
    column = 0
    for block in blocks:
        parallel_range(lambda start, stop, b=block, c=column: copy_columns_kernel(b, y, c, start, stop), M,
                       _row_grain(block.shape[1]))
        column += block.shape[1]
    return y


def split_columns(y, widths):
    M = y.shape[0]
    pieces, column = [], 0
    for width in widths:
        piece = np.empty((M, width), y.dtype)
        parallel_range(lambda start, stop, p=piece, c=column: take_columns_kernel(y, c, p, start, stop), M,
                       _row_grain(width))
        pieces.append(piece)
        column += width
    return pieces
