"""What every kernel module shares: tile sizes, the GEMM micro-kernel, launch and transfer helpers.

Shape legend: M rows, J reduction length, K columns of a (M, J) @ (J, K) product; the
convolutions are such products with one operand gathered on the fly (implicit GEMM).

The tiled products all use one block shape:

    a block of TX x TY = 16 x 16 threads owns a BM x BN = 64 x 64 tile of the output;
    thread (tx, ty) keeps the 4 x 4 sums of rows ty + 16 i and columns tx + 16 j in registers;
    each step stages a BM x BK (A) and a BK x BN (B) slice, BK = 8, in shared memory.

Strided ownership (ty + 16 i rather than 4 ty + i) makes the shared-memory reads of a warp hit
distinct banks (B) or one broadcast address (A), and the final stores coalesce along the
contiguous last axis. The staged slices are stored [k][row] with PAD extra columns so the
transposing stores of the gather do not collide on a bank.

Kernels are compiled lazily (``@cuda.jit`` without a signature) for the C-contiguous float32
arrays and int64 scalars the launchers pass; ``SIGNATURES`` of each module lists exactly those
types so ``numba.cuda.compile_ptx`` can build every kernel without a GPU (tests/test_cuda_ptx.py,
``python -m kernels_cuda.ptx_report``).
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import cuda, float32, int64, void
from numba import types as nb_types

try:
    from numba.cuda.core import config as _cuda_config

    SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)
except ImportError:  # an older numba-cuda layout
    SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# --- tile sizes of the shared-memory products --------------------------------------------------
TX = 16  # threads along the output's columns
TY = 16  # threads along the output's rows
THREADS = TX * TY  # 256 per block
TM = 4  # rows per thread
TN = 4  # columns per thread
BM = TY * TM  # 64 output rows per block
BN = TX * TN  # 64 output columns per block
BK = 8  # reduction slice staged per step
PAD = 4  # extra shared-memory columns: [k][row] stores of 8 k x 4 rows hit 32 distinct banks
A_COLS = BM + PAD  # shared-memory shapes must be plain constants for Numba
B_COLS = BN + PAD
A_LOADS = BM * BK // THREADS  # elements of the A slice each thread stages per step (2)
B_LOADS = BK * BN // THREADS  # and of the B slice (2)

# 1-D kernels (elementwise, one thread per output, pooling)
THREADS_1D = 256
# Column reductions (bias gradient): 32 columns x 8 row lanes per block
RED_COLS = 32
RED_ROWS = 8
# Row kernels (softmax, losses): up to 128 threads per row, a power of two
ROW_THREADS = 128


def device_function(fn):
    """``@cuda.jit(device=True)``, forced inline on the GPU (the simulator has no such option)."""
    if SIMULATOR:
        return cuda.jit(device=True)(fn)
    return cuda.jit(device=True, forceinline=True)(fn)


@device_function
def tile_product(As, Bs, acc, tx, ty):
    """acc[i, j] += sum_k As[k, ty + TY i] * Bs[k, tx + TX j] over one staged BK slice."""
    for k in range(BK):
        for i in range(TM):
            a = As[k, ty + i * TY]
            for j in range(TN):
                acc[i, j] += a * Bs[k, tx + j * TX]


@device_function
def zero_tile(acc):
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = float32(0)


NEG_INF = float32(-np.inf)


@device_function
def block_sum(buf, value):
    """The sum of ``value`` over the block's threads, returned to every thread (a shared-memory tree).

    buf: shared (blockDim.x,), blockDim.x a power of two. buf is free again when this returns.
    """
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if t < stride:
            buf[t] += buf[t + stride]
        cuda.syncthreads()
        stride //= 2
    total = buf[0]
    cuda.syncthreads()  # everyone has read buf[0] before buf is reused
    return total


@device_function
def block_row_max(buf, x, row):
    """max of x[row, :] over the block's threads striding the row, NaN winning (a NaN row stays NaN)."""
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    peak = NEG_INF
    for j in range(t, x.shape[1], T):
        v = x[row, j]
        if v > peak or math.isnan(v):
            peak = v
    buf[t] = peak
    cuda.syncthreads()
    stride = T // 2
    while stride > 0:
        if t < stride:
            other = buf[t + stride]
            if other > buf[t] or math.isnan(other):
                buf[t] = other
        cuda.syncthreads()
        stride //= 2
    peak = buf[0]
    cuda.syncthreads()
    return peak


@device_function
def block_row_exp_sum(buf, x, row, peak, out):
    """out[row, j] = exp(x[row, j] - peak) for the whole row; returns the row's sum to every thread."""
    t = cuda.threadIdx.x
    total = float32(0)
    for j in range(t, x.shape[1], cuda.blockDim.x):
        e = math.exp(x[row, j] - peak)
        out[row, j] = e
        total += e
    return block_sum(buf, total)


@cuda.jit
def sum_slices_kernel(partial, out):
    """out (J, K) = sum over z of partial[z] (Z, J, K): a split reduction's second pass, in a fixed order."""
    i = cuda.grid(1)
    Z, J, K = partial.shape
    if i < J * K:
        row = i // K
        col = i % K
        total = float32(0)
        for z in range(Z):
            total += partial[z, row, col]
        out[row, col] = total


# --- launch helpers -----------------------------------------------------------------------------


def blocks(n: int, per_block: int) -> int:
    """Blocks of ``per_block`` covering n items (at least 1: a zero-size grid is a launch error)."""
    return max(1, -(-int(n) // per_block))


def split_count(length: int, outputs_tiles: int, max_splits: int = 64) -> int:
    """How many slices to split a long reduction into so the grid has enough blocks.

    Aim for about 64 blocks in all, but give each slice at least 32 BK steps of work.
    """
    steps = blocks(length, BK)
    wanted = blocks(64, max(1, outputs_tiles))
    return int(max(1, min(max_splits, wanted, steps // 32)))


def is_device_array(a) -> bool:
    return bool(getattr(a, "__cuda_ndarray__", False))


def to_device(a, dtype=np.float32):
    """A device array: device arrays pass through, host arrays are made C-contiguous ``dtype`` and copied."""
    if is_device_array(a):
        return a
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def empty(shape, dtype=np.float32):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=dtype)


def to_host(a) -> np.ndarray:
    return a.copy_to_host()


def as_2d(a, rows: int, cols: int):
    """A C-contiguous device array viewed as (rows, cols), no copy."""
    return a.reshape(int(rows), int(cols))


# --- signatures for compile_ptx -----------------------------------------------------------------
def array(dtype, ndim: int):
    """The numba type of a C-contiguous array, as the launchers pass them."""
    return nb_types.Array(dtype, ndim, "C")


F1, F2, F3, F4 = (array(float32, n) for n in (1, 2, 3, 4))
I64_4 = array(int64, 4)
I32_1 = array(nb_types.int32, 1)
B1 = array(nb_types.boolean, 1)


SIGNATURES = {sum_slices_kernel: void(F3, F2)}


def sum_slices(partial, out):
    """out (J, K) = partial (Z, J, K) summed over Z, on the device."""
    _, J, K = partial.shape
    sum_slices_kernel[blocks(J * K, THREADS_1D), THREADS_1D](partial, out)
    return out
