"""Dense layers: a tiled shared-memory matrix product (forward and both gradients) + its naive oracle.

Shape legend: M rows (batch), I inputs, O outputs; a product is C (M, N) = A (M, J) @ B (J, N).

    forward   y       = x @ kernel + bias          (M, I) @ (I, O), the bias added in the epilogue
    backward  dx      = dy @ kernel^T              (M, O) @ (O, I)  B read transposed
              dkernel = x^T @ dy                   (I, M) @ (M, O)  A read transposed, the M
                                                   reduction split in slices, summed in a fixed order
              dbias   = column sums of dy          (elementwise.bias_add_backward)

The product uses the block shape of ``_common`` (64 x 64 tile, 4 x 4 per thread, BK = 8). A
transposed operand is staged through shared memory with loads that coalesce along its own
contiguous axis, so no transposed copy is ever made.
"""

from __future__ import annotations

import numba

from ._common import (
    A_COLS,
    A_LOADS,
    B_COLS,
    B_LOADS,
    BK,
    BM,
    BN,
    F1,
    F2,
    F3,
    THREADS,
    THREADS_1D,
    TM,
    TN,
    TX,
    TY,
    blocks,
    cuda,
    empty,
    float32,
    int64,
    split_count,
    sum_slices,
    tile_product,
    void,
    zero_tile,
)

# ================================ kernels ===================================================


@cuda.jit
def matmul_tiled_kernel(a, b, c, trans_a, trans_b, bias, has_bias, chunk):
    """c[z] (M, N) = sum over j in slice z of A[m, j] B[j, n] (+ bias[n]); A = a or a^T, B = b or b^T."""
    if trans_a:
        J, M = a.shape
    else:
        M, J = a.shape
    N = c.shape[2]
    As = cuda.shared.array((BK, A_COLS), float32)  # As[j, m]
    Bs = cuda.shared.array((BK, B_COLS), float32)  # Bs[j, n]
    acc = cuda.local.array((TM, TN), float32)
    zero_tile(acc)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * TX + tx
    m0 = cuda.blockIdx.x * BM
    n0 = cuda.blockIdx.y * BN
    z = cuda.blockIdx.z
    j_begin = z * chunk
    j_end = min(J, j_begin + chunk)

    for k0 in range(j_begin, j_end, BK):
        # Stage A: consecutive threads along A's contiguous axis (j for a, m for a^T).
        for i in range(A_LOADS):
            if trans_a:
                jl = t // BM + i * (THREADS // BM)
                ml = t % BM
            else:
                jl = t % BK
                ml = t // BK + i * (THREADS // BK)
            j = k0 + jl
            m = m0 + ml
            value = float32(0)
            if j < j_end and m < M:
                value = a[j, m] if trans_a else a[m, j]
            As[jl, ml] = value
        # Stage B: consecutive threads along n for b, along j for b^T.
        for i in range(B_LOADS):
            if trans_b:
                jl = t % BK
                nl = t // BK + i * (THREADS // BK)
            else:
                jl = t // BN + i * (THREADS // BN)
                nl = t % BN
            j = k0 + jl
            n = n0 + nl
            value = float32(0)
            if j < j_end and n < N:
                value = b[n, j] if trans_b else b[j, n]
            Bs[jl, nl] = value
        cuda.syncthreads()
        tile_product(As, Bs, acc, tx, ty)
        cuda.syncthreads()

    for i in range(TM):
        row = m0 + ty + i * TY
        if row < M:
            for jn in range(TN):
                col = n0 + tx + jn * TX
                if col < N:
                    c[z, row, col] = acc[i, jn] + bias[col] if has_bias else acc[i, jn]


@cuda.jit
def matmul_naive_kernel(a, b, c, trans_a, trans_b):
    """The oracle: c[m, n] = sum_j A[m, j] B[j, n], one thread per output, from global memory."""
    i = cuda.grid(1)
    M, N = c.shape
    J = a.shape[0] if trans_a else a.shape[1]
    if i < M * N:
        m = i // N
        n = i % N
        total = float32(0)
        for j in range(J):
            av = a[j, m] if trans_a else a[m, j]
            bv = b[n, j] if trans_b else b[j, n]
            total += av * bv
        c[m, n] = total


_BOOL = numba.boolean
SIGNATURES = {
    matmul_tiled_kernel: void(F2, F2, F3, _BOOL, _BOOL, F1, _BOOL, int64),
    matmul_naive_kernel: void(F2, F2, F2, _BOOL, _BOOL),
}

# ================================ launchers =================================================


def matmul(a, b, trans_a=False, trans_b=False, bias=None, splits=None):
    """A @ B on the device (A = a^T if trans_a, B = b^T if trans_b), + bias (N,) if given.

    ``splits`` slices of the reduction (default: enough for about 64 blocks when the output is
    small and the reduction long, as for dkernel = x^T @ dy) are summed in a fixed order.
    """
    M = a.shape[1] if trans_a else a.shape[0]
    J = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    tiles = blocks(M, BM) * blocks(N, BN)
    if bias is not None:
        splits = 1  # the bias is added once, in the epilogue
    splits = split_count(J, tiles) if splits is None else max(1, min(int(splits), blocks(J, BK)))
    chunk = blocks(blocks(J, BK), splits) * BK
    splits = blocks(J, chunk)
    c = empty((M, N))
    partial = c.reshape(1, M, N) if splits == 1 else empty((splits, M, N))
    has_bias = bias is not None
    bias_arg = bias if has_bias else _no_bias()
    grid = (blocks(M, BM), blocks(N, BN), splits)
    matmul_tiled_kernel[grid, (TX, TY)](a, b, partial, bool(trans_a), bool(trans_b), bias_arg, has_bias, chunk)
    if splits > 1:
        sum_slices(partial, c)
    return c


def matmul_naive(a, b, trans_a=False, trans_b=False):
    M = a.shape[1] if trans_a else a.shape[0]
    N = b.shape[0] if trans_b else b.shape[1]
    c = empty((M, N))
    matmul_naive_kernel[blocks(M * N, THREADS_1D), THREADS_1D](a, b, c, bool(trans_a), bool(trans_b))
    return c


_NO_BIAS = {}


def _no_bias():
    """A one-element placeholder for the bias argument when there is none (one per context)."""
    key = id(cuda.current_context()) if hasattr(cuda, "current_context") else 0
    if key not in _NO_BIAS:
        _NO_BIAS[key] = empty((1,))
    return _NO_BIAS[key]


def dense_forward(x, kernel, bias=None):
    """x (M, I), kernel (I, O), bias (O,) or None -> y (M, O)."""
    return matmul(x, kernel, bias=bias)


def dense_backward(dy, x, kernel, with_bias: bool):
    """dy (M, O) -> (dx (M, I), dkernel (I, O), dbias (O,) or None)."""
    from .elementwise import bias_add_backward

    dx = matmul(dy, kernel, trans_b=True)
    dkernel = matmul(x, dy, trans_a=True)
    return dx, dkernel, (bias_add_backward(dy) if with_bias else None)
