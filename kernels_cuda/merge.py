"""Merging and padding arrays on the device: elementwise add and multiply, column blocks joined and
split, zero padding of images and its crop.

Shape legend: M rows, W a block's width, T the joined width (the sum of the W's).

    add         y = a + b                       multiply    y = a * b
    columns     y[m, c + w] = block[m, w]       (join: each block copied to its column offset c;
                                                 split: the copy the other way)

    pad         y[n, top + h, left + w, c] = x[n, h, w, c], zeros around (crop: the copy the other way)

One thread per element: the elementwise kernels on flat arrays, the column kernels over a block's
M x W cells (thread i -> m = i // W, w = i % W), so reads of the block are coalesced; the pad and
crop kernels over the smaller array's cells (the padded output is zeroed first).
"""

from __future__ import annotations

from ._common import F1, F2, F4, THREADS_1D, blocks, cuda, empty, float32, int64, void

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


@cuda.jit
def pad_kernel(x, top, left, y):
    """y[n, top + h, left + w, c] = x[n, h, w, c] (y zeroed before)."""
    i = cuda.grid(1)
    N, H, W, C = x.shape
    if i < N * H * W * C:
        c = i % C
        w = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        y[n, top + h, left + w, c] = x[n, h, w, c]


@cuda.jit
def crop_kernel(dy, top, left, dx):
    """dx[n, h, w, c] = dy[n, top + h, left + w, c]."""
    i = cuda.grid(1)
    N, H, W, C = dx.shape
    if i < N * H * W * C:
        c = i % C
        w = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        dx[n, h, w, c] = dy[n, top + h, left + w, c]


@cuda.jit
def zero_kernel(y):
    i = cuda.grid(1)
    if i < y.size:
        y[i] = float32(0)


SIGNATURES = {
    add_kernel: void(F1, F1, F1),
    multiply_kernel: void(F1, F1, F1),
    put_columns_kernel: void(F2, F2, int64),
    take_columns_kernel: void(F2, int64, F2),
    pad_kernel: void(F4, int64, int64, F4),
    crop_kernel: void(F4, int64, int64, F4),
    zero_kernel: void(F1),
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


def pad2d_forward(x, top, bottom, left, right):
    N, H, W, C = x.shape
    y = empty((N, top + H + bottom, left + W + right, C))
    if y.size:
        zero_kernel[blocks(y.size, THREADS_1D), THREADS_1D](y.reshape(y.size))
    if x.size:
        pad_kernel[blocks(x.size, THREADS_1D), THREADS_1D](x, top, left, y)
    return y


def pad2d_backward(dy, top, bottom, left, right):
    N, P, Q, C = dy.shape
    dx = empty((N, P - top - bottom, Q - left - right, C))
    if dx.size:
        crop_kernel[blocks(dx.size, THREADS_1D), THREADS_1D](dy, top, left, dx)
    return dx
