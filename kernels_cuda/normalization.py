"""Batch normalization and moments over channels-last rows: elementwise kernels and column reductions.

Shape legend: x (M, C) (NHWC activations are (N*H*W, C)), one parameter or statistic per column c.

    batch_norm forward   inv = scale / sqrt(variance + eps), shift = offset - mean * inv   (per column)
                         y[m, c] = x[m, c] * inv[c] + shift[c]
    batch_norm backward  dx = dy * inv, and the column sums sum_m dy and sum_m dy (x - mean), from
                         which (per column) dmean = -inv sum dy, doffset = sum dy,
                         dscale = rstd sum dy (x - mean), dvariance = -scale rstd^3 / 2 sum dy (x - mean);
                         where sum dy (x - mean) is inf or NaN, TF's sum dy x - mean sum dy (that
                         column's thread sums dy x over the rows)
    moments forward      mean = sum_m x / M; variance = sum_m (x - mean)^2 / M   (two passes)
    moments backward     dx = dmean / M + 2 (dvariance / M) (x - mean)

Column sums split the rows over grid.y slices: a block of 32 columns x 8 row lanes, each lane
summing every 8th row of its slice, a shared-memory tree over the lanes, one partial per slice,
the partials added in a fixed order (``_common.sum_slices``: deterministic, no atomics). The
``*_naive`` kernels (a thread per column, every row) are the oracles of the reductions.
"""

from __future__ import annotations

import math

from numba import boolean

from ._common import (
    F1,
    F2,
    F3,
    RED_COLS,
    RED_ROWS,
    THREADS_1D,
    blocks,
    cuda,
    device_function,
    empty,
    float32,
    int64,
    sum_slices,
    void,
)

# ================================ kernels ===================================================


@device_function
def lanes_sum(lanes, value, tx, ty):
    """The sum of ``value`` over the block's RED_ROWS row lanes of column tx (valid in lane ty = 0)."""
    lanes[ty, tx] = value
    cuda.syncthreads()
    stride = RED_ROWS // 2
    while stride > 0:
        if ty < stride:
            lanes[ty, tx] += lanes[ty + stride, tx]
        cuda.syncthreads()
        stride //= 2
    total = lanes[0, tx]
    cuda.syncthreads()  # everyone has read lanes[0] before it is reused
    return total


NAN = float32(math.nan)


@device_function
def rstd_of(variance, epsilon):
    """1 / sqrt(variance + eps); NaN for a negative sum, as on a GPU (the simulator's math.sqrt would raise)."""
    v = variance + epsilon
    return float32(1) / math.sqrt(v) if v >= float32(0) or math.isnan(v) else NAN


@cuda.jit
def batch_norm_coefficients_kernel(mean, variance, offset, scale, epsilon, inv, shift):
    """inv[c] = (1 / sqrt(variance[c] + eps)) * scale[c], shift[c] = offset[c] - mean[c] * inv[c]."""
    c = cuda.grid(1)
    if c < inv.shape[0]:
        inv[c] = rstd_of(variance[c], epsilon) * scale[c]
        shift[c] = offset[c] - mean[c] * inv[c]


@cuda.jit
def inverse_std_kernel(variance, scale, epsilon, inv):
    """inv[c] = (1 / sqrt(variance[c] + eps)) * scale[c] (the backward's dx = dy * inv)."""
    c = cuda.grid(1)
    if c < inv.shape[0]:
        inv[c] = rstd_of(variance[c], epsilon) * scale[c]


@cuda.jit
def scale_shift_kernel(x, inv, shift, y):
    """y[m, c] = x[m, c] * inv[c] + shift[c], one thread per value."""
    i = cuda.grid(1)
    M, C = x.shape
    if i < M * C:
        m = i // C
        c = i % C
        y[m, c] = x[m, c] * inv[c] + shift[c]


@cuda.jit
def batch_norm_backward_sums_kernel(dy, x, mean, inv, dx, partial, chunk):
    """dx = dy * inv over slice z of the rows; partial[z, 0, c] = its column sums of dy,
    partial[z, 1, c] of dy (x - mean). Block: 32 columns x 8 row lanes."""
    lanes = cuda.shared.array((RED_ROWS, RED_COLS), float32)
    M, C = dy.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c = cuda.blockIdx.x * RED_COLS + tx
    z = cuda.blockIdx.y
    stop = min(M, (z + 1) * chunk)
    total = float32(0)
    centred = float32(0)
    if c < C:
        for m in range(z * chunk + ty, stop, RED_ROWS):
            g = dy[m, c]
            dx[m, c] = g * inv[c]
            total += g
            centred += g * (x[m, c] - mean[c])
    total = lanes_sum(lanes, total, tx, ty)
    centred = lanes_sum(lanes, centred, tx, ty)
    if ty == 0 and c < C:
        partial[z, 0, c] = total
        partial[z, 1, c] = centred


@cuda.jit
def batch_norm_parameter_gradients_kernel(sums, dy, x, mean, variance, scale, epsilon, dmean, dvariance, doffset,
                                          dscale):
    """Per column, from sums[0] = sum dy and sums[1] = sum dy (x - mean): the parameters' gradients. Where
    sums[1] is inf or NaN, TF's sum dy x - mean sum dy instead (the rows summed here: a rare case)."""
    c = cuda.grid(1)
    if c < dmean.shape[0]:
        rstd = rstd_of(variance[c], epsilon)
        inv = rstd * scale[c]
        total = sums[0, c]
        centred = sums[1, c]
        if not math.isfinite(centred):
            raw = float32(0)
            for m in range(x.shape[0]):
                raw += dy[m, c] * x[m, c]
            centred = raw - mean[c] * total
        dmean[c] = -inv * total
        dvariance[c] = centred * scale[c] * (float32(-0.5) * rstd * rstd * rstd)
        doffset[c] = total
        dscale[c] = centred * rstd


@cuda.jit
def column_moment_sums_kernel(x, mean, partial, chunk, squared):
    """partial[z, 0, c] = sum over slice z of x[m, c] (squared: of (x[m, c] - mean[c])^2)."""
    lanes = cuda.shared.array((RED_ROWS, RED_COLS), float32)
    M, C = x.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c = cuda.blockIdx.x * RED_COLS + tx
    z = cuda.blockIdx.y
    stop = min(M, (z + 1) * chunk)
    total = float32(0)
    if c < C:
        for m in range(z * chunk + ty, stop, RED_ROWS):
            v = x[m, c]
            if squared:
                d = v - mean[c]
                total += d * d
            else:
                total += v
    total = lanes_sum(lanes, total, tx, ty)
    if ty == 0 and c < C:
        partial[z, 0, c] = total


@cuda.jit
def divide_kernel(values, count):
    """values[c] /= count, in place (the means of column sums)."""
    c = cuda.grid(1)
    if c < values.shape[0]:
        values[c] = values[c] / count


@cuda.jit
def moments_backward_kernel(dmean, dvariance, x, mean, count, dx):
    """dx[m, c] = dmean[c] / M + 2 (dvariance[c] / M) (x[m, c] - mean[c]), M = count."""
    i = cuda.grid(1)
    M, C = x.shape
    if i < M * C:
        m = i // C
        c = i % C
        dx[m, c] = dmean[c] / count + float32(2) * (dvariance[c] / count) * (x[m, c] - mean[c])


# --- oracles: one thread per column, every row ------------------------------------------------


@cuda.jit
def batch_norm_backward_sums_naive_kernel(dy, x, mean, sums):
    """sums[0, c] = sum_m dy[m, c], sums[1, c] = sum_m dy[m, c] (x[m, c] - mean[c])."""
    c = cuda.grid(1)
    M, C = dy.shape
    if c < C:
        total = float32(0)
        centred = float32(0)
        for m in range(M):
            total += dy[m, c]
            centred += dy[m, c] * (x[m, c] - mean[c])
        sums[0, c] = total
        sums[1, c] = centred


@cuda.jit
def moments_naive_kernel(x, mean, variance):
    """mean[c] = sum_m x / M, then variance[c] = sum_m (x - mean)^2 / M."""
    c = cuda.grid(1)
    M, C = x.shape
    if c < C:
        total = float32(0)
        for m in range(M):
            total += x[m, c]
        mu = total / float32(M)
        squares = float32(0)
        for m in range(M):
            d = x[m, c] - mu
            squares += d * d
        mean[c] = mu
        variance[c] = squares / float32(M)


SIGNATURES = {
    batch_norm_coefficients_kernel: void(F1, F1, F1, F1, float32, F1, F1),
    inverse_std_kernel: void(F1, F1, float32, F1),
    scale_shift_kernel: void(F2, F1, F1, F2),
    batch_norm_backward_sums_kernel: void(F2, F2, F1, F1, F2, F3, int64),
    batch_norm_parameter_gradients_kernel: void(F2, F2, F2, F1, F1, F1, float32, F1, F1, F1, F1),
    column_moment_sums_kernel: void(F2, F1, F3, int64, boolean),
    divide_kernel: void(F1, float32),
    moments_backward_kernel: void(F1, F1, F2, F1, float32, F2),
    batch_norm_backward_sums_naive_kernel: void(F2, F2, F1, F2),
    moments_naive_kernel: void(F2, F1, F1),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out (float32, C-contiguous); x (M, C), parameters (C,).


def _splits(M: int, C: int, splits: int | None) -> tuple[int, int]:
    """(splits, chunk): about 64 blocks in all, at least 256 rows a slice (as the bias gradient)."""
    if splits is None:
        splits = max(1, min(64 // blocks(C, RED_COLS) or 1, M // 256))
    chunk = blocks(M, max(1, int(splits)))
    return blocks(M, chunk), chunk


def _sums(width: int, M: int, C: int, splits: int | None):
    """(out (width, C), partial, chunk, grid) of a column reduction split over slices of rows:
    partial is out itself (viewed (1, width, C)) when there is one slice."""
    splits, chunk = _splits(M, C, splits)
    out = empty((width, C))
    partial = out.reshape(1, width, C) if splits == 1 else empty((splits, width, C))
    return out, partial, chunk, (blocks(C, RED_COLS), splits)


def batch_norm_forward(x, mean, variance, offset, scale, epsilon):
    """y (M, C) = x * inv + shift, the per-column coefficients in a first small kernel."""
    C = x.shape[1]
    inv, shift = empty((C,)), empty((C,))
    batch_norm_coefficients_kernel[blocks(C, THREADS_1D), THREADS_1D](mean, variance, offset, scale,
                                                                      float32(epsilon), inv, shift)  # fmt: skip
    y = empty(x.shape)
    scale_shift_kernel[blocks(x.size, THREADS_1D), THREADS_1D](x, inv, shift, y)
    return y


def batch_norm_backward(dy, x, mean, variance, scale, epsilon, splits: int | None = None):
    """-> (dx, dmean, dvariance, doffset, dscale): dx and the two column sums in one pass over dy and x."""
    M, C = x.shape
    inv = empty((C,))
    inverse_std_kernel[blocks(C, THREADS_1D), THREADS_1D](variance, scale, float32(epsilon), inv)
    sums, partial, chunk, grid = _sums(2, M, C, splits)
    dx = empty(x.shape)
    batch_norm_backward_sums_kernel[grid, (RED_COLS, RED_ROWS)](dy, x, mean, inv, dx, partial, chunk)
    if grid[1] > 1:
        sum_slices(partial, sums)
    grads = [empty((C,)) for _ in range(4)]
    batch_norm_parameter_gradients_kernel[blocks(C, THREADS_1D), THREADS_1D](sums, dy, x, mean, variance, scale,
                                                                             float32(epsilon), *grads)  # fmt: skip
    return (dx, *grads)


def moments_forward(x, splits: int | None = None):
    """x (M, C) -> (mean (C,), variance (C,)): two reductions over the rows, the second about the first's mean."""
    M, C = x.shape
    moments = []
    for squared in (False, True):
        sums, partial, chunk, grid = _sums(1, M, C, splits)
        mean = moments[0] if squared else sums.reshape(C)  # (not read for the plain sums)
        column_moment_sums_kernel[grid, (RED_COLS, RED_ROWS)](x, mean, partial, chunk, squared)
        if grid[1] > 1:
            sum_slices(partial, sums)
        moment = sums.reshape(C)
        divide_kernel[blocks(C, THREADS_1D), THREADS_1D](moment, float32(M))
        moments.append(moment)
    return moments[0], moments[1]


def moments_backward(dmean, dvariance, x, mean):
    """dx (M, C) = dmean / M + 2 (dvariance / M) (x - mean)."""
    dx = empty(x.shape)
    moments_backward_kernel[blocks(x.size, THREADS_1D), THREADS_1D](dmean, dvariance, x, mean, float32(x.shape[0]), dx)
    return dx


def batch_norm_backward_sums_naive(dy, x, mean):
    """The oracle of the backward's column sums: (2, C)."""
    sums = empty((2, x.shape[1]))
    batch_norm_backward_sums_naive_kernel[blocks(x.shape[1], THREADS_1D), THREADS_1D](dy, x, mean, sums)
    return sums


def moments_naive(x):
    """The oracle of ``moments_forward``."""
    C = x.shape[1]
    mean, variance = empty((C,)), empty((C,))
    moments_naive_kernel[blocks(C, THREADS_1D), THREADS_1D](x, mean, variance)
    return mean, variance
