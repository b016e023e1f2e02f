"""Merging arrays on the device: elementwise add and multiply, column blocks joined and split.

Shape legend: M rows, W a block's width, T the joined width (the sum of the W's).

    add         y = a + b                       multiply    y = a * b
    columns     y[m, c + w] = block[m, w]       (join: each block copied to its column offset c;
                                                 split: the copy the other way)

One thread per element: the elementwise kernels on flat arrays, the column kernels over a block's
M x W cells (thread i -> m = i // W, w = i % W), so reads of the block are coalesced.
"""

from __future__ import annotations

from ._common import F1, F2, THREADS_1D, blocks, cuda, empty, int64, void

# ================================ kernels ===================================================


@cuda.jit
def add_kernel(a, b, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = a[i] + b[i]


@cuda.jit
def multiply_kernel(a, b, y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = a[i] * b[i]


@cuda.jit
def put_columns_kernel(block, joined, column):
    """joined[m, column + w] = block[m, w]."""
    i = cuda.grid(1)
    M, W = block.shape
    if i < M * W:
        m, w = i // W, i % W
        joined[m, column + w] = block[m, w]


@cuda.jit
def take_columns_kernel(joined, column, block):
    """block[m, w] = joined[m, column + w]."""
    i = cuda.grid(1)
    M, W = block.shape
    if i < M * W:
        m, w = i // W, i % W
        block[m, w] = joined[m, column + w]


SIGNATURES = {
    add_kernel: void(F1, F1, F1),
    multiply_kernel: void(F1, F1, F1),
    put_columns_kernel: void(F2, F2, int64),
    take_columns_kernel: void(F2, int64, F2),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out (float32, C-contiguous).


def _elementwise(kernel, a, b):
    y = empty(a.shape)
    n = y.size
    if n:
        kernel[blocks(n, THREADS_1D), THREADS_1D](a.reshape(n), b.reshape(n), y.reshape(n))
    return y


def add_forward(a, b):
    return _elementwise(add_kernel, a, b)


def multiply_forward(a, b):
    return _elementwise(multiply_kernel, a, b)


def concat_columns(parts):
    M = parts[0].shape[0]
    joined = empty((M, sum(p.shape[1] for p in parts)))
    column = 0
    for part in parts:
        if part.size:
            put_columns_kernel[blocks(part.size, THREADS_1D), THREADS_1D](part, joined, column)
        column += part.shape[1]
    return joined


def split_columns(joined, widths):
    M = joined.shape[0]
    parts, column = [], 0
    for width in widths:
        part = empty((M, width))
        if part.size:
            take_columns_kernel[blocks(part.size, THREADS_1D), THREADS_1D](joined, column, part)
        parts.append(part)
        column += width
    return parts
