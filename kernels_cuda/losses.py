"""Softmax + crossentropy fused: loss per row, the logits' gradient and the probabilities in one kernel.

Shape legend: M rows (samples), L classes; ``count`` is the number of rows the mean is over.

    log p[j] = z[j] - max(z) - log(sum_l exp(z[l] - max(z)))         p = exp(log p)
    sparse    loss = -log p[label],                 dz = (p - onehot(label)) / count
    dense     loss = -sum_j y[j] log p[j],          dz = (p * sum_j y[j] - y) / count

exactly as ``miniconv.losses`` computes a crossentropy from the logits of a softmax output
(Keras's rule), which is what training uses: the softmax's own backward pass is skipped. One
block per row (max and sum by shared-memory trees, as ``elementwise.softmax_forward_kernel``);
the ``*_naive`` kernels (a thread per row) are their oracles. The batch mean of the per-row
losses is taken on the host in float64, as ``miniconv.losses`` does.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._common import (
    F1,
    F2,
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
    to_device,
    void,
)  # fmt: skip
from .elementwise import row_threads

# ================================ kernels ===================================================


@cuda.jit
def softmax_crossentropy_kernel(z, labels, targets, sparse, count, p, dz, loss):
    """Row blockIdx.x. sparse: class labels[row]; else soft targets[row, :] (labels / targets unused otherwise)."""
    buf = cuda.shared.array(ROW_THREADS, float32)
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    L = z.shape[1]
    peak = block_row_max(buf, z, row)
    total = block_row_exp_sum(buf, z, row, peak, p)
    log_total = math.log(total)
    # this thread's part of the loss, and of sum(y) for soft targets
    part = float32(0)
    y_part = float32(0)
    for j in range(t, L, T):
        p[row, j] = p[row, j] / total
        if sparse:
            if j == labels[row]:
                part = -(z[row, j] - peak - log_total)
        else:
            y = targets[row, j]
            part -= y * (z[row, j] - peak - log_total)
            y_part += y
    row_loss = block_sum(buf, part)
    if t == 0:
        loss[row] = row_loss
    y_sum = float32(1)
    if not sparse:  # the same branch for the whole block, so its barriers are safe
        y_sum = block_sum(buf, y_part)
    for j in range(t, L, T):
        if sparse:
            hot = float32(1) if j == labels[row] else float32(0)
            dz[row, j] = (p[row, j] - hot) / count
        else:
            dz[row, j] = (p[row, j] * y_sum - targets[row, j]) / count


@cuda.jit
def softmax_crossentropy_naive_kernel(z, labels, targets, sparse, count, p, dz, loss):
    """The oracle: one thread per row, the same formulas sequentially."""
    row = cuda.grid(1)
    M, L = z.shape
    if row < M:
        peak = z[row, 0]
        for j in range(1, L):
            if z[row, j] > peak or math.isnan(z[row, j]):
                peak = z[row, j]
        total = float32(0)
        for j in range(L):
            total += math.exp(z[row, j] - peak)
        log_total = math.log(total)
        value = float32(0)
        y_sum = float32(0)
        for j in range(L):
            log_p = z[row, j] - peak - log_total
            p[row, j] = math.exp(z[row, j] - peak) / total
            if sparse:
                if j == labels[row]:
                    value = -log_p
            else:
                value -= targets[row, j] * log_p
                y_sum += targets[row, j]
        loss[row] = value
        for j in range(L):
            if sparse:
                hot = float32(1) if j == labels[row] else float32(0)
                dz[row, j] = (p[row, j] - hot) / count
            else:
                dz[row, j] = (p[row, j] * y_sum - targets[row, j]) / count


_I64_1 = array(int64, 1)
_SIG = void(F2, _I64_1, F2, numba.boolean, float32, F2, F2, F1)
SIGNATURES = {softmax_crossentropy_kernel: _SIG, softmax_crossentropy_naive_kernel: _SIG}

# ================================ launchers =================================================


def softmax_crossentropy(z, labels=None, targets=None, count=None, naive=False):
    """Device logits z (M, L) and either int64 class ``labels`` (M,) or soft ``targets`` (M, L).

    Returns device arrays (loss per row (M,), dz (M, L), p (M, L)); ``count`` (default M) divides dz.
    """
    M, L = z.shape
    sparse = labels is not None
    if sparse == (targets is not None):
        raise ValueError("softmax_crossentropy: give exactly one of labels (class indices) or targets (soft labels)")
    labels = labels if sparse else _placeholder(np.int64, 1)
    targets = targets if not sparse else _placeholder(np.float32, 2)
    count = float32(M if count is None else count)
    p, dz, loss = empty((M, L)), empty((M, L)), empty((M,))
    if naive:
        softmax_crossentropy_naive_kernel[blocks(M, THREADS_1D), THREADS_1D](
            z, labels, targets, sparse, count, p, dz, loss
        )
    else:
        softmax_crossentropy_kernel[max(1, M), row_threads(L)](z, labels, targets, sparse, count, p, dz, loss)
    return loss, dz, p


_PLACEHOLDERS: dict = {}


def _placeholder(dtype, ndim):
    """A one-element device array standing in for the argument a call does not use (made once)."""
    key = (np.dtype(dtype).str, ndim)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = to_device(np.zeros((1,) * ndim, dtype), dtype=dtype)
    return _PLACEHOLDERS[key]


def sparse_categorical_crossentropy_from_logits(labels, z):
    """Host arrays in: (mean loss, dz, p) as ``SparseCategoricalCrossentropy.value_and_grad_logits``."""
    z_dev = to_device(z)
    loss, dz, p = softmax_crossentropy(z_dev, labels=to_device(np.asarray(labels).reshape(-1), dtype=np.int64))
    return float(loss.copy_to_host().mean(dtype=np.float64)), dz.copy_to_host(), p.copy_to_host()


def categorical_crossentropy_from_logits(y, z):
    """Host arrays in: (mean loss, dz, p) as ``CategoricalCrossentropy.value_and_grad_logits``."""
    loss, dz, p = softmax_crossentropy(to_device(z), targets=to_device(y))
    return float(loss.copy_to_host().mean(dtype=np.float64)), dz.copy_to_host(), p.copy_to_host()
