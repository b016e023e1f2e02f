"""Numba kernels for 2-D max and average pooling, forward and backward.

Shape legend: N batch, H W input size, C channels, R S window size, P Q output size.

A window's valid cells are rows [max(p*sh - top, 0), min(p*sh - top + R, H)) and the matching
columns; padded cells are never read. The innermost loop runs over the contiguous channels.
Each kernel is serial over a range [start, stop) of output rows (forward) or images (backward)
and releases the GIL; the wrappers share the ranges between threads (``parallel_range``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .work_sharing import parallel_range

GRAIN = 1 << 15  # elements of input per shared piece (~10-20 us of work)


@njit(nogil=True, cache=True)
def max_pool2d_forward_kernel(x, R, S, sh, sw, top, left, lowest, y, argmax, start, stop):
    """TensorFlow's scan: start at (lowest, first valid cell); take a cell only if strictly greater.

    So ties go to the first maximum in row-major window order and NaN never wins.
    argmax holds h * W + w of the winner. The running maximum and its cell live in two small
    buffers of C values (not in y and argmax), so the loop over channels is a pair of selects
    the compiler turns into vector instructions.
    """
    _, H, W, C = x.shape
    _, P, Q, _ = y.shape
    for row_block in range(start, stop):
        n = row_block // P
        p = row_block % P
        h_start = max(p * sh - top, 0)
        h_stop = min(p * sh - top + R, H)
        best = np.empty(C, x.dtype)
        best_cell = np.empty(C, np.int32)
        for q in range(Q):
            w_start = max(q * sw - left, 0)
            w_stop = min(q * sw - left + S, W)
            best[:] = lowest
            best_cell[:] = h_start * W + w_start
            for h in range(h_start, h_stop):
                for w in range(w_start, w_stop):
                    cell = np.int32(h * W + w)
                    for c in range(C):
                        value = x[n, h, w, c]
                        take = value > best[c]
                        best[c] = value if take else best[c]
                        best_cell[c] = cell if take else best_cell[c]
            y[n, p, q, :] = best
            argmax[n, p, q, :] = best_cell


@njit(nogil=True, cache=True)
def max_pool2d_backward_kernel(dy, argmax, dx, start, stop):
    """dx[n, h, w, c] = sum of dy[n, p, q, c] over windows whose argmax is h * W + w; one image per step.

    The image is addressed flat: (h * W + w) * C + c, no division to recover h and w.
    """
    _, _, _, C = dx.shape
    _, P, Q, _ = dy.shape
    for n in range(start, stop):
        image = dx[n].reshape(-1)
        image[:] = 0.0
        for p in range(P):
            for q in range(Q):
                for c in range(C):
                    image[argmax[n, p, q, c] * C + c] += dy[n, p, q, c]


@njit(nogil=True, cache=True)
def max_pool2d_backward_disjoint_kernel(dy, argmax, R, S, sh, sw, top, left, dx, start, stop):
    """``max_pool2d_backward_kernel`` for windows that do not overlap (strides at least the window).

    Each input cell (h, w) lies in at most one window, (p, q) = ((h + top) // sh, (w + left) // sw)
    if its offsets in it are below R and S and the window exists, so each cell is written once:
    0 + dy[n, p, q, c] where the window chose it, else 0 (the scatter's 0 += dy, signed zeros
    included). A select over the channels, one stored row a loop: it vectorises, where the
    scatter's += on data-dependent cells does not.
    """
    _, H, W, C = dx.shape
    _, P, Q, _ = dy.shape
    zero = dx.dtype.type(0)
    for n in range(start, stop):
        for h in range(H):
            p = (h + top) // sh
            row_read = p < P and h + top - p * sh < R
            for w in range(W):
                q = (w + left) // sw
                if row_read and q < Q and w + left - q * sw < S:
                    cell = np.int32(h * W + w)
                    for c in range(C):
                        dx[n, h, w, c] = zero + dy[n, p, q, c] if argmax[n, p, q, c] == cell else zero
                else:
                    for c in range(C):
                        dx[n, h, w, c] = zero


@njit(nogil=True, cache=True)
def avg_pool2d_forward_kernel(x, R, S, sh, sw, top, left, y, start, stop):
    """y[n,p,q,c] = sum of the window's valid cells / their count."""
    _, H, W, C = x.shape
    _, P, Q, _ = y.shape
    for row_block in range(start, stop):
        n = row_block // P
        p = row_block % P
        h_start = max(p * sh - top, 0)
        h_stop = min(p * sh - top + R, H)
        for q in range(Q):
            w_start = max(q * sw - left, 0)
            w_stop = min(q * sw - left + S, W)
            for c in range(C):
                y[n, p, q, c] = 0.0
            for h in range(h_start, h_stop):
                for w in range(w_start, w_stop):
                    for c in range(C):
                        y[n, p, q, c] += x[n, h, w, c]
            inverse_count = 1.0 / ((h_stop - h_start) * (w_stop - w_start))
            for c in range(C):
                y[n, p, q, c] *= inverse_count


@njit(nogil=True, cache=True)
def avg_pool2d_backward_kernel(dy, R, S, sh, sw, top, left, dx, start, stop):
    """dx[n,h,w,c] = sum over windows covering (h, w) of dy[n,p,q,c] / count[p,q]; one image per step."""
    _, H, W, C = dx.shape
    _, P, Q, _ = dy.shape
    for n in range(start, stop):
        dx[n] = 0.0
        for p in range(P):
            h_start = max(p * sh - top, 0)
            h_stop = min(p * sh - top + R, H)
            for q in range(Q):
                w_start = max(q * sw - left, 0)
                w_stop = min(q * sw - left + S, W)
                inverse_count = 1.0 / ((h_stop - h_start) * (w_stop - w_start))
                for h in range(h_start, h_stop):
                    for w in range(w_start, w_stop):
                        for c in range(C):
                            dx[n, h, w, c] += dy[n, p, q, c] * inverse_count


def _by_output_rows(kernel, x, g, *args):
    """kernel(*args, start, stop) over ranges of the N * P output rows, shared between threads."""
    input_per_row = max(1, x.size // (g.N * g.P))
    parallel_range(lambda start, stop: kernel(*args, start, stop), g.N * g.P, -(-GRAIN // input_per_row))


def _by_images(kernel, dx, *args):
    """kernel(*args, start, stop) over ranges of the N images of dx, shared between threads."""
    per_image = max(1, dx.size // dx.shape[0])
    parallel_range(lambda start, stop: kernel(*args, start, stop), dx.shape[0], -(-GRAIN // per_image))


def max_pool2d_forward(x, g):
    y = np.empty(g.output_shape, x.dtype)
    argmax = np.empty(g.output_shape, np.int32)  # h * W + w; half the bytes of int64 on a memory-bound pass
    lowest = x.dtype.type(np.finfo(x.dtype).min)
    _by_output_rows(max_pool2d_forward_kernel, x, g, x, g.R, g.S, g.sh, g.sw, g.top, g.left, lowest, y, argmax)
    return y, argmax


def max_pool2d_backward(dy, argmax, g):
    """dx: disjoint windows (strides at least the window, the course models' 2 x 2 pooling) by
    ``max_pool2d_backward_disjoint_kernel``, overlapping ones by the scatter."""
    dx = np.empty(g.input_shape, dy.dtype)
    if g.sh >= g.R and g.sw >= g.S:
        _by_images(max_pool2d_backward_disjoint_kernel, dx, dy, argmax, g.R, g.S, g.sh, g.sw, g.top, g.left, dx)
    else:
        _by_images(max_pool2d_backward_kernel, dx, dy, argmax, dx)
    return dx


def avg_pool2d_forward(x, g):
    y = np.empty(g.output_shape, x.dtype)
    _by_output_rows(avg_pool2d_forward_kernel, x, g, x, g.R, g.S, g.sh, g.sw, g.top, g.left, y)
    return y


def avg_pool2d_backward(dy, g):
    dx = np.empty(g.input_shape, dy.dtype)
    _by_images(avg_pool2d_backward_kernel, dx, dy, g.R, g.S, g.sh, g.sw, g.top, g.left, dx)
    return dx
