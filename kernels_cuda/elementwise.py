"""relu, relu6, sigmoid, softmax rows, bias add / bias gradient / fused bias + relu, dropout.

Shape legend: M rows, O columns (a bias per column; conv activations are viewed as (N*P*Q, K)),
L row length (softmax).

    relu        y = x where not (x <= 0) else 0 (NaN passes, as tf.nn.relu)    dx = dy where y > 0
    relu6       y = 0 where x <= 0, 6 where x >= 6, else x (NaN passes)       dx = dy * (0 < y < 6), a product
    sigmoid     y = 1 / (1 + exp(-x)), exp(x) / (1 + exp(x)) for x < 0          dx = dy y (1 - y)
    softmax     y = exp(x - max) / sum exp(x - max) per row (NaN or inf in a row: NaN row, as TF)
                dx = y (dy - sum(dy y))
    bias        y = x + b[col];  db = column sums of dy;  bias_relu: y = relu(x + b), dx and db in one pass
    dropout     y = x * scale where keep else exactly 0 (a select: a dropped inf is 0, as TF)

Elementwise kernels run one thread per element on the flat arrays. Row kernels (softmax) run a
block per row with a shared-memory tree for the max and the sum. Column sums (the bias
gradient) split the rows over grid.y slices, reduce 8 row lanes x 32 columns per block in shared
memory, and add the slices in a fixed order (no atomics). ``*_naive`` kernels (a thread per
row / per column) are the oracles of the reductions.
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np

with warnings.catch_warnings():
    # In the simulator, numba-cuda builds its random helpers with an option Numba deprecates
    # (nopython=False): a warning about numba-cuda that users of miniconv cannot act on.
    warnings.simplefilter("ignore", numba.NumbaDeprecationWarning)
    from numba.cuda.random import xoroshiro128p_dtype, xoroshiro128p_uniform_float32

from ._common import (
    B1,
    F1,
    F2,
    F3,
    RED_COLS,
    RED_ROWS,
    ROW_THREADS,
    THREADS_1D,
    array,
    block_row_exp_sum,
    block_row_max,
    block_sum,
    blocks,
    cuda,
    empty,
    float32,
    int64,
    sum_slices,
    void,
)

# ================================ kernels ===================================================


@cuda.jit
def relu_forward_kernel(x, y):
    i = cuda.grid(1)
    if i < x.size:
        v = x[i]
        y[i] = float32(0) if v <= float32(0) else v  # noqa: FURB136 - not max(): NaN must pass through


@cuda.jit
def relu_backward_kernel(dy, y, dx):
    i = cuda.grid(1)
    if i < dy.size:
        dx[i] = dy[i] if y[i] > float32(0) else float32(0)


@cuda.jit
def relu6_forward_kernel(x, y):
    i = cuda.grid(1)
    if i < x.size:
        v = x[i]
        if v <= float32(0):
            v = float32(0)
        elif v >= float32(6):
            v = float32(6)
        y[i] = v  # NaN fails both tests and passes through


@cuda.jit
def relu6_backward_kernel(dy, y, dx):
    """dx = dy * (0 < y < 6): a product, as TensorFlow's (an inf or NaN dy times a zero mask is NaN)."""
    i = cuda.grid(1)
    if i < dy.size:
        v = y[i]
        dx[i] = dy[i] * (float32(1) if v > float32(0) and v < float32(6) else float32(0))


@cuda.jit
def sigmoid_forward_kernel(x, y):
    i = cuda.grid(1)
    if i < x.size:
        v = x[i]
        if v >= float32(0):
            y[i] = float32(1) / (float32(1) + math.exp(-v))
        else:
            e = math.exp(v)
            y[i] = e / (float32(1) + e)


@cuda.jit
def sigmoid_backward_kernel(dy, y, dx):
    i = cuda.grid(1)
    if i < dy.size:
        dx[i] = dy[i] * y[i] * (float32(1) - y[i])


@cuda.jit
def softmax_forward_kernel(x, y):
    """Row blockIdx.x: max (NaN wins, so a NaN row stays NaN), exp, sum, divide; threads stride the row."""
    buf = cuda.shared.array(ROW_THREADS, float32)
    row = cuda.blockIdx.x
    peak = block_row_max(buf, x, row)
    total = block_row_exp_sum(buf, x, row, peak, y)
    for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
        y[row, j] = y[row, j] / total


@cuda.jit
def softmax_backward_kernel(dy, y, dx):
    """Row blockIdx.x: inner = sum dy * y (shared-memory tree), dx = y * (dy - inner)."""
    buf = cuda.shared.array(ROW_THREADS, float32)
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    L = dy.shape[1]
    inner = float32(0)
    for j in range(t, L, T):
        inner += dy[row, j] * y[row, j]
    inner = block_sum(buf, inner)
    for j in range(t, L, T):
        dx[row, j] = y[row, j] * (dy[row, j] - inner)


@cuda.jit
def softmax_forward_naive_kernel(x, y):
    """The oracle: one thread per row."""
    row = cuda.grid(1)
    M, L = x.shape
    if row < M:
        peak = x[row, 0]
        for j in range(1, L):
            if x[row, j] > peak or math.isnan(x[row, j]):
                peak = x[row, j]
        total = float32(0)
        for j in range(L):
            y[row, j] = math.exp(x[row, j] - peak)
            total += y[row, j]
        for j in range(L):
            y[row, j] = y[row, j] / total


@cuda.jit
def softmax_backward_naive_kernel(dy, y, dx):
    row = cuda.grid(1)
    M, L = dy.shape
    if row < M:
        inner = float32(0)
        for j in range(L):
            inner += dy[row, j] * y[row, j]
        for j in range(L):
            dx[row, j] = y[row, j] * (dy[row, j] - inner)


@cuda.jit
def bias_add_kernel(x, bias, y):
    """y[m, o] = x[m, o] + bias[o], flat over M * O."""
    i = cuda.grid(1)
    M, O = x.shape
    if i < M * O:
        m = i // O
        o = i % O
        y[m, o] = x[m, o] + bias[o]


@cuda.jit
def bias_relu_forward_kernel(x, bias, y):
    """y[m, o] = relu(x[m, o] + bias[o]), NaN kept."""
    i = cuda.grid(1)
    M, O = x.shape
    if i < M * O:
        m = i // O
        o = i % O
        z = x[m, o] + bias[o]
        y[m, o] = float32(0) if z <= float32(0) else z  # noqa: FURB136 - not max(): NaN must pass through


@cuda.jit
def column_sums_kernel(dy, y, dx, partial, chunk, relu_mask):
    """partial[z, o] = sum of dy[m, o] over rows m of slice z; with relu_mask, dy is first masked
    where y <= 0 and written to dx (the fused bias + relu backward). Block: 32 columns x 8 row lanes."""
    lanes = cuda.shared.array((RED_ROWS, RED_COLS), float32)
    M, O = dy.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    o = cuda.blockIdx.x * RED_COLS + tx
    z = cuda.blockIdx.y
    stop = min(M, (z + 1) * chunk)
    total = float32(0)
    if o < O:
        for m in range(z * chunk + ty, stop, RED_ROWS):
            g = dy[m, o]
            if relu_mask:
                g = g if y[m, o] > float32(0) else float32(0)
                dx[m, o] = g
            total += g
    lanes[ty, tx] = total
    cuda.syncthreads()
    stride = RED_ROWS // 2
    while stride > 0:
        if ty < stride:
            lanes[ty, tx] += lanes[ty + stride, tx]
        cuda.syncthreads()
        stride //= 2
    if ty == 0 and o < O:
        partial[z, 0, o] = lanes[0, tx]


@cuda.jit
def column_sums_naive_kernel(dy, out):
    """The oracle: out[o] = sum_m dy[m, o], one thread per column."""
    o = cuda.grid(1)
    M, O = dy.shape
    if o < O:
        total = float32(0)
        for m in range(M):
            total += dy[m, o]
        out[o] = total


@cuda.jit
def dropout_kernel(x, keep, scale, y):
    """y = x * scale where keep, else exactly 0."""
    i = cuda.grid(1)
    if i < x.size:
        y[i] = x[i] * scale if keep[i] else float32(0)


@cuda.jit
def dropout_random_kernel(x, rate, scale, states, keep, y):
    """Draw the mask on the device: keep = uniform >= rate (as the ops layer's NumPy draw), then select.

    One generator state per thread of the grid; a grid-stride loop covers the array.
    """
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, x.size, step):
        kept = xoroshiro128p_uniform_float32(states, start) >= rate
        keep[i] = kept
        y[i] = x[i] * scale if kept else float32(0)


@cuda.jit
def keep_mask_kernel(rate, states, keep):
    """keep = uniform >= rate per element, one generator state per thread, grid-stride."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, keep.size, step):
        keep[i] = xoroshiro128p_uniform_float32(states, start) >= rate


_STATES = array(numba.from_dtype(xoroshiro128p_dtype), 1)
SIGNATURES = {
    relu_forward_kernel: void(F1, F1),
    relu_backward_kernel: void(F1, F1, F1),
    relu6_forward_kernel: void(F1, F1),
    relu6_backward_kernel: void(F1, F1, F1),
    sigmoid_forward_kernel: void(F1, F1),
    sigmoid_backward_kernel: void(F1, F1, F1),
    softmax_forward_kernel: void(F2, F2),
    softmax_backward_kernel: void(F2, F2, F2),
    softmax_forward_naive_kernel: void(F2, F2),
    softmax_backward_naive_kernel: void(F2, F2, F2),
    bias_add_kernel: void(F2, F1, F2),
    bias_relu_forward_kernel: void(F2, F1, F2),
    column_sums_kernel: void(F2, F2, F2, F3, int64, numba.boolean),
    column_sums_naive_kernel: void(F2, F1),
    dropout_kernel: void(F1, B1, float32, F1),
    dropout_random_kernel: void(F1, float32, float32, _STATES, B1, F1),
    keep_mask_kernel: void(float32, _STATES, B1),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out (float32, C-contiguous).


def _flat(kernel, *arrays):
    out = empty(arrays[0].shape)
    flat = [a.reshape(a.size) for a in (*arrays, out)]
    kernel[blocks(out.size, THREADS_1D), THREADS_1D](*flat)
    return out


def relu_forward(x):
    return _flat(relu_forward_kernel, x)


def relu_backward(dy, y):
    return _flat(relu_backward_kernel, dy, y)


def relu6_forward(x):
    return _flat(relu6_forward_kernel, x)


def relu6_backward(dy, y):
    return _flat(relu6_backward_kernel, dy, y)


def sigmoid_forward(x):
    return _flat(sigmoid_forward_kernel, x)


def sigmoid_backward(dy, y):
    return _flat(sigmoid_backward_kernel, dy, y)


def row_threads(L: int) -> int:
    """Threads per row: the smallest power of two >= L, at most ROW_THREADS (the tree needs a power of two)."""
    threads = 1
    while threads < min(int(L), ROW_THREADS):
        threads *= 2
    return threads


def softmax_forward(x):
    """x (M, L) -> softmax over each row."""
    y = empty(x.shape)
    softmax_forward_kernel[max(1, x.shape[0]), row_threads(x.shape[1])](x, y)
    return y


def softmax_backward(dy, y):
    dx = empty(dy.shape)
    softmax_backward_kernel[max(1, dy.shape[0]), row_threads(dy.shape[1])](dy, y, dx)
    return dx


def softmax_forward_naive(x):
    y = empty(x.shape)
    softmax_forward_naive_kernel[blocks(x.shape[0], THREADS_1D), THREADS_1D](x, y)
    return y


def softmax_backward_naive(dy, y):
    dx = empty(dy.shape)
    softmax_backward_naive_kernel[blocks(dy.shape[0], THREADS_1D), THREADS_1D](dy, y, dx)
    return dx


def bias_add_forward(x, bias):
    """x (M, O), bias (O,) -> x + bias."""
    y = empty(x.shape)
    bias_add_kernel[blocks(y.size, THREADS_1D), THREADS_1D](x, bias, y)
    return y


def bias_relu_forward(x, bias):
    y = empty(x.shape)
    bias_relu_forward_kernel[blocks(y.size, THREADS_1D), THREADS_1D](x, bias, y)
    return y


def _column_sums(dy, y, dx, relu_mask: bool, splits: int | None):
    M, O = dy.shape
    if splits is None:  # about 64 blocks, and at least 256 rows per slice
        splits = max(1, min(64 // blocks(O, RED_COLS) or 1, M // 256))
    chunk = blocks(M, max(1, int(splits)))
    splits = blocks(M, chunk)
    out = empty((O,))
    partial = out.reshape(1, 1, O) if splits == 1 else empty((splits, 1, O))
    grid = (blocks(O, RED_COLS), splits)
    column_sums_kernel[grid, (RED_COLS, RED_ROWS)](dy, y, dx, partial, chunk, relu_mask)
    if splits > 1:
        sum_slices(partial, out.reshape(1, O))
    return out


def bias_add_backward(dy, splits: int | None = None):
    """dy (M, O) -> dbias (O,) = column sums (the rows split over ``splits`` slices)."""
    return _column_sums(dy, dy, dy, False, splits)


def bias_relu_backward(dy, y, splits: int | None = None):
    """dy, y (M, O) -> (dx = dy where y > 0 else 0, dbias = column sums of dx), one pass."""
    dx = empty(dy.shape)
    return dx, _column_sums(dy, y, dx, True, splits)


def column_sums_naive(dy):
    out = empty((dy.shape[1],))
    column_sums_naive_kernel[blocks(dy.shape[1], THREADS_1D), THREADS_1D](dy, out)
    return out


def dropout_forward(x, keep, scale: float):
    """y = x * scale where keep (a device bool array of x's shape) else 0."""
    y = empty(x.shape)
    n = x.size
    dropout_kernel[blocks(n, THREADS_1D), THREADS_1D](x.reshape(n), keep.reshape(n), float32(scale), y.reshape(n))
    return y


dropout_backward = dropout_forward  # dx = dy * scale where keep else 0: the same select


class DropoutRandom:
    """Device-side dropout masks: ``y, keep = DropoutRandom(seed)(x, rate)`` or ``keep = ....mask(shape, rate)``.

    xoroshiro128+ states, one per thread of a fixed grid (numba.cuda.random); the stream differs
    from NumPy's (as NumPy's differs from TensorFlow's), the keep rate is the same.
    """

    def __init__(self, seed: int = 0, threads: int = 64 * THREADS_1D):
        from numba.cuda.random import create_xoroshiro128p_states

        self.threads = int(threads)
        self.states = create_xoroshiro128p_states(self.threads, seed=seed)

    def __call__(self, x, rate: float):
        y = empty(x.shape)
        keep = empty(x.shape, np.bool_)
        n = x.size
        grid = max(1, min(self.threads // THREADS_1D, blocks(n, THREADS_1D)))
        scale = 1.0 / (1.0 - float(rate))
        dropout_random_kernel[grid, THREADS_1D](
            x.reshape(n), float32(rate), float32(scale), self.states, keep.reshape(n), y.reshape(n)
        )
        return y, keep

    def mask(self, shape, rate: float):
        """A device bool array of ``shape``: each element kept (True) with probability 1 - rate."""
        keep = empty(shape, np.bool_)
        n = keep.size
        if n:
            grid = max(1, min(self.threads // THREADS_1D, blocks(n, THREADS_1D)))
            keep_mask_kernel[grid, THREADS_1D](float32(rate), self.states, keep.reshape(n))
        return keep
