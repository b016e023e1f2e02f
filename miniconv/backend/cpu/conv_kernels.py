"""Numba kernels for 2-D convolution: im2col / col2im around BLAS products, in chunks.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

The convolution is a matrix product once the input patches are laid out as rows:

    cols[(n*P + p)*Q + q, (r*S + s)*C + c] = x[n, p*sh + r*dh - top, q*sw + s*dw - left, c]  (0 outside)
    y   (N*P*Q, K)   = cols (N*P*Q, R*S*C) @ w (R*S*C, K)          forward
    dw  (R*S*C, K)   = cols.T @ dy (N*P*Q, K)                       backward-filter
    dcols            = dy @ w.T;  dx = col2im(dcols)                backward-input

HWIO filters reshape to (R*S*C, K) for free, and the rows of y are NHWC for free, so the only
layout work is im2col / col2im. The whole patch matrix is never built: each chunk of rows is
laid out and multiplied while it is still in cache, and the chunks are shared between threads
by ``work_sharing.run_chunks`` (BLAS single-threaded inside a chunk).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .work_sharing import chunk_bounds, run_chunks, scratch, single_threaded_blas

CHUNK_BYTES = 1 << 19  # patches per chunk: 512 KiB stays in a core's L2 between im2col and the product
REDUCTION_GROUPS = 8  # fixed partial sums for the filter gradient, independent of the thread count


@njit(nogil=True, cache=True)
def im2col_rows(x, R, S, sh, sw, dh, dw, top, left, P, Q, row_start, cols):
    """cols[i] = the patch of output row row_start + i, where row = (n*P + p)*Q + q."""
    N, H, W, C = x.shape
    for i in range(cols.shape[0]):
        row = row_start + i
        q = row % Q
        p = (row // Q) % P
        n = row // (P * Q)
        for r in range(R):
            h = p * sh + r * dh - top
            for s in range(S):
                w = q * sw + s * dw - left
                base = (r * S + s) * C
                if 0 <= h < H and 0 <= w < W:
                    for c in range(C):
                        cols[i, base + c] = x[n, h, w, c]
                else:
                    for c in range(C):
                        cols[i, base + c] = 0.0


@njit(nogil=True, cache=True)
def col2im_images(dcols, R, S, sh, sw, dh, dw, top, left, P, Q, dx):
    """dx[n, h, w, c] = sum of dcols[(n*P + p)*Q + q, (r*S + s)*C + c] over the patch cells that read it.

    dx holds whole images (a block of the batch) and dcols exactly their rows.
    """
    N, H, W, C = dx.shape
    dx[:] = 0.0
    for n in range(N):
        for p in range(P):
            for q in range(Q):
                row = (n * P + p) * Q + q
                for r in range(R):
                    h = p * sh + r * dh - top
                    if h < 0 or h >= H:
                        continue
                    for s in range(S):
                        w = q * sw + s * dw - left
                        if w < 0 or w >= W:
                            continue
                        base = (r * S + s) * C
                        for c in range(C):
                            dx[n, h, w, c] += dcols[row, base + c]


def _row_chunks(g):
    """Bounds of the row chunks for the forward and backward-filter passes."""
    rows_per_chunk = max(1, CHUNK_BYTES // (4 * g.R * g.S * g.C))
    return chunk_bounds(g.N * g.P * g.Q, rows_per_chunk)


def _im2col(x, g, row_start, cols):
    im2col_rows(x, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.P, g.Q, row_start, cols)


def conv2d_forward(x, w, g):
    """y (N, P, Q, K): per chunk of rows, y[rows] = im2col(x)[rows] @ w.reshape(R*S*C, K)."""
    w_matrix = w.reshape(-1, g.K)
    y = np.empty((g.N * g.P * g.Q, g.K), x.dtype)
    bounds = _row_chunks(g)

    def task(i):
        start, stop = bounds[i]
        cols = scratch("cols", (stop - start, w_matrix.shape[0]), x.dtype)
        _im2col(x, g, start, cols)
        np.matmul(cols, w_matrix, out=y[start:stop])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return y.reshape(g.N, g.P, g.Q, g.K)


def conv2d_backward_filter(x, dy, g):
    """dw (R, S, C, K) = sum over row chunks of im2col(x)[rows].T @ dy[rows].

    The chunks form REDUCTION_GROUPS fixed groups, each summed in order into its own partial,
    and the partials are added in group order: the same bits whichever thread ran what, so a
    seeded training run repeats exactly.
    """
    dy_rows = dy.reshape(-1, g.K)
    patch = g.R * g.S * g.C
    bounds = _row_chunks(g)
    groups = chunk_bounds(len(bounds), -(-len(bounds) // REDUCTION_GROUPS))
    partials = scratch("dw_partials", (len(groups), patch, g.K), x.dtype)

    def task(group):
        partial = partials[group]
        partial[:] = 0.0
        for start, stop in bounds[groups[group][0] : groups[group][1]]:
            cols = scratch("cols", (stop - start, patch), x.dtype)
            _im2col(x, g, start, cols)
            partial += cols.T @ dy_rows[start:stop]

    with single_threaded_blas():
        run_chunks(task, len(groups))
    dw = partials[0].copy()  # the partials are a scratch buffer: never hand it out
    for partial in partials[1:]:
        dw += partial
    return dw.reshape(g.R, g.S, g.C, g.K)


def conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C): per block of images, col2im(dy[rows] @ w.reshape(R*S*C, K).T)."""
    w_matrix = w.reshape(-1, g.K)
    dy_rows = dy.reshape(-1, g.K)
    dx = np.empty((g.N, g.H, g.W, g.C), dy.dtype)
    rows_per_image = g.P * g.Q
    bounds = chunk_bounds(g.N, max(1, CHUNK_BYTES // (4 * rows_per_image * w_matrix.shape[0])))

    def task(i):
        first, last = bounds[i]
        rows = slice(first * rows_per_image, last * rows_per_image)
        dcols = scratch("dcols", ((last - first) * rows_per_image, w_matrix.shape[0]), dy.dtype)
        np.matmul(dy_rows[rows], w_matrix.T, out=dcols)
        col2im_images(dcols, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.P, g.Q, dx[first:last])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx
