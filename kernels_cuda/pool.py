"""Max and average pooling, forward and backward; global pooling as a block reduction.

Shape legend: N batch, H W input size, C channels, R S window size, P Q output size.

    max: y[n,p,q,c] = max over the window's valid cells, argmax[n,p,q,c] = h * W + w of the winner
    avg: y[n,p,q,c] = sum over the window's valid cells / their count (SAME never counts padding)

A window's valid cells are rows [max(p*sh - top, 0), min(p*sh - top + R, H)) and the matching
columns. Max pooling follows TensorFlow's scan: start at the lowest float32 with the window's
first valid cell as argmax, take a cell only if strictly greater, in row-major order; so ties go
to the first maximum, NaN never wins, and an all-NaN window gives the lowest float32.

Forward kernels run one thread per output (consecutive threads on consecutive channels, so
loads coalesce in NHWC). Backward kernels run one thread per *input* cell and gather from the
windows that cover it, so no two threads write one cell: no atomics, a fixed summation order.
Global pooling (the whole input as one window) is a reduction over H*W: a block of 32 channels
x 8 lanes, each lane scanning every 8th cell, then a shared-memory tree over the lanes.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    F2,
    F3,
    F4,
    I64_4,
    RED_COLS,
    RED_ROWS,
    THREADS_1D,
    array,
    blocks,
    cuda,
    empty,
    float32,
    int64,
    void,
)

LOWEST = float32(np.finfo(np.float32).min)

# ================================ kernels ===================================================


@cuda.jit
def max_pool2d_forward_kernel(x, y, argmax, R, S, sh, sw, top, left):
    """One output per thread: TensorFlow's scan over the window's valid cells (strictly greater wins)."""
    i = cuda.grid(1)
    N, H, W, C = x.shape
    _, P, Q, _ = y.shape
    if i < N * P * Q * C:
        c = i % C
        q = (i // C) % Q
        p = (i // (C * Q)) % P
        n = i // (C * Q * P)
        h_start = max(p * sh - top, 0)
        h_stop = min(p * sh - top + R, H)
        w_start = max(q * sw - left, 0)
        w_stop = min(q * sw - left + S, W)
        best = LOWEST
        best_index = h_start * W + w_start
        for h in range(h_start, h_stop):
            for w in range(w_start, w_stop):
                value = x[n, h, w, c]
                if value > best:
                    best = value
                    best_index = h * W + w
        y[n, p, q, c] = best
        argmax[n, p, q, c] = best_index


@cuda.jit
def max_pool2d_backward_kernel(dy, argmax, dx, R, S, sh, sw, top, left):
    """One input cell per thread: dx = sum of dy over the covering windows whose argmax is this cell."""
    i = cuda.grid(1)
    N, H, W, C = dx.shape
    _, P, Q, _ = dy.shape
    if i < N * H * W * C:
        c = i % C
        w = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        # windows p with p*sh - top <= h < p*sh - top + R
        low_h = h + top - R + 1
        p_start = 0 if low_h <= 0 else (low_h + sh - 1) // sh
        p_stop = min((h + top) // sh + 1, P)
        low_w = w + left - S + 1
        q_start = 0 if low_w <= 0 else (low_w + sw - 1) // sw
        q_stop = min((w + left) // sw + 1, Q)
        me = h * W + w
        total = float32(0)
        for p in range(p_start, p_stop):
            for q in range(q_start, q_stop):
                if argmax[n, p, q, c] == me:
                    total += dy[n, p, q, c]
        dx[n, h, w, c] = total


@cuda.jit
def avg_pool2d_forward_kernel(x, y, R, S, sh, sw, top, left):
    """One output per thread: the mean of the window's valid cells."""
    i = cuda.grid(1)
    N, H, W, C = x.shape
    _, P, Q, _ = y.shape
    if i < N * P * Q * C:
        c = i % C
        q = (i // C) % Q
        p = (i // (C * Q)) % P
        n = i // (C * Q * P)
        h_start = max(p * sh - top, 0)
        h_stop = min(p * sh - top + R, H)
        w_start = max(q * sw - left, 0)
        w_stop = min(q * sw - left + S, W)
        total = float32(0)
        for h in range(h_start, h_stop):
            for w in range(w_start, w_stop):
                total += x[n, h, w, c]
        y[n, p, q, c] = total / float32((h_stop - h_start) * (w_stop - w_start))


@cuda.jit
def avg_pool2d_backward_kernel(dy, dx, R, S, sh, sw, top, left):
    """One input cell per thread: dx = sum over covering windows of dy / (that window's valid count)."""
    i = cuda.grid(1)
    N, H, W, C = dx.shape
    _, P, Q, _ = dy.shape
    if i < N * H * W * C:
        c = i % C
        w = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        low_h = h + top - R + 1
        p_start = 0 if low_h <= 0 else (low_h + sh - 1) // sh
        p_stop = min((h + top) // sh + 1, P)
        low_w = w + left - S + 1
        q_start = 0 if low_w <= 0 else (low_w + sw - 1) // sw
        q_stop = min((w + left) // sw + 1, Q)
        total = float32(0)
        for p in range(p_start, p_stop):
            rows = min(p * sh - top + R, H) - max(p * sh - top, 0)
            for q in range(q_start, q_stop):
                cols = min(q * sw - left + S, W) - max(q * sw - left, 0)
                total += dy[n, p, q, c] / float32(rows * cols)
        dx[n, h, w, c] = total


@cuda.jit
def global_max_pool_kernel(x, y, argmax):
    """x (N, HW, C) -> y (N, C), argmax (N, C): lanes scan every RED_ROWS-th cell, then a tree.

    Merging (value, index) pairs keeps the larger value, and on equal values the smaller index:
    the same winner as TensorFlow's sequential strictly-greater scan from (lowest, cell 0).
    """
    best = cuda.shared.array((RED_ROWS, RED_COLS), float32)
    where = cuda.shared.array((RED_ROWS, RED_COLS), int64)
    _, HW, C = x.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c = cuda.blockIdx.x * RED_COLS + tx
    n = cuda.blockIdx.y
    value = LOWEST
    index = 0
    if c < C:
        for cell in range(ty, HW, RED_ROWS):
            v = x[n, cell, c]
            if v > value:
                value = v
                index = cell
    best[ty, tx] = value
    where[ty, tx] = index
    cuda.syncthreads()
    stride = RED_ROWS // 2
    while stride > 0:
        if ty < stride:
            other = best[ty + stride, tx]
            other_index = where[ty + stride, tx]
            if other > best[ty, tx] or (other == best[ty, tx] and other_index < where[ty, tx]):
                best[ty, tx] = other
                where[ty, tx] = other_index
        cuda.syncthreads()
        stride //= 2
    if ty == 0 and c < C:
        y[n, c] = best[0, tx]
        argmax[n, c] = where[0, tx]


@cuda.jit
def global_avg_pool_kernel(x, y):
    """x (N, HW, C) -> y (N, C) = mean over the HW cells: lane sums, then a shared-memory tree."""
    total = cuda.shared.array((RED_ROWS, RED_COLS), float32)
    _, HW, C = x.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c = cuda.blockIdx.x * RED_COLS + tx
    n = cuda.blockIdx.y
    acc = float32(0)
    if c < C:
        for cell in range(ty, HW, RED_ROWS):
            acc += x[n, cell, c]
    total[ty, tx] = acc
    cuda.syncthreads()
    stride = RED_ROWS // 2
    while stride > 0:
        if ty < stride:
            total[ty, tx] += total[ty + stride, tx]
        cuda.syncthreads()
        stride //= 2
    if ty == 0 and c < C:
        y[n, c] = total[0, tx] / float32(HW)


_I64_2 = array(int64, 2)
SIGNATURES = {
    max_pool2d_forward_kernel: void(F4, F4, I64_4, *[int64] * 6),
    max_pool2d_backward_kernel: void(F4, I64_4, F4, *[int64] * 6),
    avg_pool2d_forward_kernel: void(F4, F4, *[int64] * 6),
    avg_pool2d_backward_kernel: void(F4, F4, *[int64] * 6),
    global_max_pool_kernel: void(F3, F2, _I64_2),
    global_avg_pool_kernel: void(F3, F2),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out; argmax is int64 h * W + w, as the backend interface says.


def is_global(g) -> bool:
    """The window is the whole input (what global pooling asks for)."""
    return g.P == 1 and g.Q == 1 and g.R == g.H and g.S == g.W and g.top == 0 and g.left == 0


def _grid(count: int):
    return blocks(count, THREADS_1D), THREADS_1D


def max_pool2d_forward(x, g, reduction: bool | None = None):
    """x (N, H, W, C) -> (y (N, P, Q, C), argmax (N, P, Q, C) int64). ``reduction``: use the
    global-pooling reduction (default: whenever the window is the whole input)."""
    y = empty(g.output_shape)
    argmax = empty(g.output_shape, np.int64)
    if is_global(g) if reduction is None else reduction:
        grid = (blocks(g.C, RED_COLS), g.N)
        global_max_pool_kernel[grid, (RED_COLS, RED_ROWS)](
            x.reshape(g.N, g.H * g.W, g.C), y.reshape(g.N, g.C), argmax.reshape(g.N, g.C)
        )
    else:
        max_pool2d_forward_kernel[_grid(y.size)](x, y, argmax, g.R, g.S, g.sh, g.sw, g.top, g.left)
    return y, argmax


def max_pool2d_backward(dy, argmax, g):
    """dy (N, P, Q, C), argmax -> dx (N, H, W, C)."""
    dx = empty(g.input_shape)
    max_pool2d_backward_kernel[_grid(dx.size)](dy, argmax, dx, g.R, g.S, g.sh, g.sw, g.top, g.left)
    return dx


def avg_pool2d_forward(x, g, reduction: bool | None = None):
    """x (N, H, W, C) -> y (N, P, Q, C); the global reduction when the window is the whole input."""
    y = empty(g.output_shape)
    if is_global(g) if reduction is None else reduction:
        grid = (blocks(g.C, RED_COLS), g.N)
        global_avg_pool_kernel[grid, (RED_COLS, RED_ROWS)](x.reshape(g.N, g.H * g.W, g.C), y.reshape(g.N, g.C))
    else:
        avg_pool2d_forward_kernel[_grid(y.size)](x, y, g.R, g.S, g.sh, g.sw, g.top, g.left)
    return y


def avg_pool2d_backward(dy, g):
    """dy (N, P, Q, C) -> dx (N, H, W, C)."""
    dx = empty(g.input_shape)
    avg_pool2d_backward_kernel[_grid(dx.size)](dy, dx, g.R, g.S, g.sh, g.sw, g.top, g.left)
    return dx
