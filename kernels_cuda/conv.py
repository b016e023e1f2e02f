"""conv2d forward, backward-input and backward-filter: tiled implicit-GEMM kernels and their oracles.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

    y[n,p,q,k] = sum_{r,s,c} x[n, p*sh + r*dh - top, q*sw + s*dw - left, c] * w[r,s,c,k]

Each direction is one matrix product whose gathered operand never exists in memory:

    forward          y  (NPQ, K)  = A  (NPQ, RSC) @ w (RSC, K)      A[m, j]  = x at (m, j), 0 in padding
    backward-input   dx (NHW, C)  = A' (NHW, RSK) @ B' (RSK, C)     A'[m, j] = dy[n,p,q,k] where
                                                                    h = p*sh + r*dh - top (else 0)
                                                                    B'[j, c] = w[r,s,c,k]
    backward-filter  dw (RSC, K)  = A^T (RSC, NPQ) @ dy (NPQ, K)    split over NPQ slices, then summed

The tiled kernels stage 64 x 8 and 8 x 64 slices in shared memory (``_common``); the gather
walks the reduction index incrementally (no division inside the loop). The ``*_naive`` kernels,
one thread per output summing from global memory, are the oracles the tiled ones are tested
against. Backward-input runs the product over every (r, s, k), so with stride s it multiplies
(s_h s_w - 1) / (s_h s_w) zeros; per-phase sub-convolutions would skip them (not done yet).
"""

from __future__ import annotations

from ._common import (
    A_COLS,
    A_LOADS,
    B_COLS,
    B_LOADS,
    BK,
    BM,
    BN,
    F2,
    F3,
    F4,
    THREADS,
    THREADS_1D,
    TM,
    TN,
    TX,
    TY,
    as_2d,
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
def conv2d_forward_tiled_kernel(x, w, y, P, Q, S, sh, sw, dh, dw, top, left):
    """y (NPQ, K) = im2col(x) @ w (RSC, K): one 64 x 64 tile of y per block, im2col gathered to shared memory."""
    _, H, W, C = x.shape
    J, K = w.shape
    M = y.shape[0]
    As = cuda.shared.array((BK, A_COLS), float32)  # As[j, m]: 8 taps x 64 output pixels
    Bs = cuda.shared.array((BK, B_COLS), float32)  # Bs[j, k]: 8 taps x 64 filters
    acc = cuda.local.array((TM, TN), float32)
    zero_tile(acc)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * TX + tx
    m0 = cuda.blockIdx.x * BM
    n0 = cuda.blockIdx.y * BN

    # This thread stages tap j = k0 + a_j of output pixels a_m + 32 i: consecutive threads read
    # consecutive channels c (coalesced in NHWC).
    a_j = t % BK
    a_m = t // BK
    img = cuda.local.array(A_LOADS, int64)
    h0 = cuda.local.array(A_LOADS, int64)
    w0 = cuda.local.array(A_LOADS, int64)
    for i in range(A_LOADS):
        m = m0 + a_m + i * (THREADS // BK)
        q = m % Q
        p = (m // Q) % P
        img[i] = m // (P * Q) if m < M else -1  # -1: past the last pixel, stage zeros
        h0[i] = p * sh - top
        w0[i] = q * sw - left
    # (r, s, c) of tap j = a_j, advanced by BK each step below
    c = a_j % C
    s = (a_j // C) % S
    r = a_j // (C * S)
    b_k = t // BN
    b_n = t % BN

    for k0 in range(0, J, BK):
        j = k0 + a_j
        for i in range(A_LOADS):
            value = float32(0)
            h = h0[i] + r * dh
            ww = w0[i] + s * dw
            if j < J and img[i] >= 0 and h >= 0 and h < H and ww >= 0 and ww < W:
                value = x[img[i], h, ww, c]
            As[a_j, a_m + i * (THREADS // BK)] = value
        for i in range(B_LOADS):
            jj = k0 + b_k + i * (THREADS // BN)
            col = n0 + b_n
            Bs[b_k + i * (THREADS // BN), b_n] = w[jj, col] if jj < J and col < K else float32(0)
        cuda.syncthreads()
        tile_product(As, Bs, acc, tx, ty)
        cuda.syncthreads()
        c += BK  # next tap of this thread: j + BK
        while c >= C:
            c -= C
            s += 1
            if s == S:
                s = 0
                r += 1

    for i in range(TM):
        row = m0 + ty + i * TY
        if row < M:
            for jn in range(TN):
                col = n0 + tx + jn * TX
                if col < K:
                    y[row, col] = acc[i, jn]


@cuda.jit
def conv2d_backward_input_tiled_kernel(dy, w, dx, H, W, sh, sw, dh, dw, top, left):
    """dx (NHW, C) = A' (NHW, RSK) @ B' (RSK, C): A'[(n,h,w), (r,s,k)] = dy[n,p,q,k] where the tap hits (h, w)."""
    _, P, Q, K = dy.shape
    R, S, C, _ = w.shape
    M = dx.shape[0]
    H_W = H * W
    J = R * S * K
    As = cuda.shared.array((BK, A_COLS), float32)  # As[j, m]
    Bs = cuda.shared.array((BK, B_COLS), float32)  # Bs[j, c]
    acc = cuda.local.array((TM, TN), float32)
    zero_tile(acc)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * TX + tx
    m0 = cuda.blockIdx.x * BM
    n0 = cuda.blockIdx.y * BN

    a_j = t % BK  # tap (r, s, k) index within the slice; B' uses the same one
    a_m = t // BK
    img = cuda.local.array(A_LOADS, int64)
    hp = cuda.local.array(A_LOADS, int64)  # h + top
    wp = cuda.local.array(A_LOADS, int64)  # w + left
    for i in range(A_LOADS):
        m = m0 + a_m + i * (THREADS // BK)
        img[i] = m // H_W if m < M else -1
        hw = m % H_W
        hp[i] = hw // W + top
        wp[i] = hw % W + left
    k = a_j % K
    s = (a_j // K) % S
    r = a_j // (K * S)

    for k0 in range(0, J, BK):
        j = k0 + a_j
        live = j < J
        for i in range(A_LOADS):
            value = float32(0)
            ph = hp[i] - r * dh
            pw = wp[i] - s * dw
            if live and img[i] >= 0 and ph >= 0 and pw >= 0 and ph % sh == 0 and pw % sw == 0:
                p = ph // sh
                q = pw // sw
                if p < P and q < Q:
                    value = dy[img[i], p, q, k]
            As[a_j, a_m + i * (THREADS // BK)] = value
        for i in range(B_LOADS):
            col = n0 + a_m + i * (THREADS // BK)
            Bs[a_j, a_m + i * (THREADS // BK)] = w[r, s, col, k] if live and col < C else float32(0)
        cuda.syncthreads()
        tile_product(As, Bs, acc, tx, ty)
        cuda.syncthreads()
        k += BK
        while k >= K:
            k -= K
            s += 1
            if s == S:
                s = 0
                r += 1

    for i in range(TM):
        row = m0 + ty + i * TY
        if row < M:
            for jn in range(TN):
                col = n0 + tx + jn * TX
                if col < C:
                    dx[row, col] = acc[i, jn]


@cuda.jit
def conv2d_backward_filter_tiled_kernel(x, dy, partial, P, Q, R, S, sh, sw, dh, dw, top, left, chunk):
    """partial[z] (RSC, K) = sum over output pixels m in slice z of im2col(x)[m, :]^T dy[m, :]."""
    _, H, W, C = x.shape
    M, K = dy.shape
    J = R * S * C
    As = cuda.shared.array((BK, A_COLS), float32)  # As[m, j]: 8 pixels x 64 taps
    Bs = cuda.shared.array((BK, B_COLS), float32)  # Bs[m, k]: 8 pixels x 64 filters
    acc = cuda.local.array((TM, TN), float32)
    zero_tile(acc)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * TX + tx
    j0 = cuda.blockIdx.x * BM
    n0 = cuda.blockIdx.y * BN
    z = cuda.blockIdx.z
    m_begin = z * chunk
    m_end = min(M, m_begin + chunk)

    # This thread stages tap a_row (fixed) of pixels m_begin + k0 + a_m + 4 i: consecutive
    # threads read consecutive channels. Bs uses the same pixels, column b_n.
    a_row = t % BM
    a_m = t // BM
    j = j0 + a_row
    c = j % C
    s = (j // C) % S
    r = j // (C * S)
    tap_live = j < J
    dh_r = r * dh - top
    dw_s = s * dw - left
    img = cuda.local.array(B_LOADS, int64)
    pp = cuda.local.array(B_LOADS, int64)
    qq = cuda.local.array(B_LOADS, int64)
    for i in range(B_LOADS):
        m = m_begin + a_m + i * (THREADS // BM)
        qq[i] = m % Q
        pp[i] = (m // Q) % P
        img[i] = m // (P * Q)
    b_n = t % BN

    for k0 in range(0, m_end - m_begin, BK):
        for i in range(B_LOADS):
            m = m_begin + k0 + a_m + i * (THREADS // BM)
            live = m < m_end
            value = float32(0)
            h = pp[i] * sh + dh_r
            ww = qq[i] * sw + dw_s
            if live and tap_live and h >= 0 and h < H and ww >= 0 and ww < W:
                value = x[img[i], h, ww, c]
            As[a_m + i * (THREADS // BM), a_row] = value
            col = n0 + b_n
            Bs[a_m + i * (THREADS // BM), b_n] = dy[m, col] if live and col < K else float32(0)
            qq[i] += BK  # the next pixel of this lane: m + BK
            while qq[i] >= Q:
                qq[i] -= Q
                pp[i] += 1
                if pp[i] == P:
                    pp[i] = 0
                    img[i] += 1
        cuda.syncthreads()
        tile_product(As, Bs, acc, tx, ty)
        cuda.syncthreads()

    for i in range(TM):
        row = j0 + ty + i * TY
        if row < J:
            for jn in range(TN):
                col = n0 + tx + jn * TX
                if col < K:
                    partial[z, row, col] = acc[i, jn]


# --- oracles: one thread per output, straight from global memory ----------------------------


@cuda.jit
def conv2d_forward_naive_kernel(x, w, y, sh, sw, dh, dw, top, left):
    """y[n,p,q,k] = sum_{r,s,c} x[n, p*sh + r*dh - top, q*sw + s*dw - left, c] * w[r,s,c,k]."""
    i = cuda.grid(1)
    N, H, W, C = x.shape
    R, S, _, K = w.shape
    _, P, Q, _ = y.shape
    if i < N * P * Q * K:
        k = i % K
        q = (i // K) % Q
        p = (i // (K * Q)) % P
        n = i // (K * Q * P)
        total = float32(0)
        for r in range(R):
            h = p * sh + r * dh - top
            if h >= 0 and h < H:
                for s in range(S):
                    ww = q * sw + s * dw - left
                    if ww >= 0 and ww < W:
                        for c in range(C):
                            total += x[n, h, ww, c] * w[r, s, c, k]
        y[n, p, q, k] = total


@cuda.jit
def conv2d_backward_input_naive_kernel(dy, w, dx, sh, sw, dh, dw, top, left):
    """dx[n,h,w,c] = sum over taps (r, s) landing on (h, w) and filters k of dy[n,p,q,k] * w[r,s,c,k]."""
    i = cuda.grid(1)
    N, H, W, C = dx.shape
    R, S, _, K = w.shape
    _, P, Q, _ = dy.shape
    if i < N * H * W * C:
        c = i % C
        ww = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        total = float32(0)
        for r in range(R):
            ph = h + top - r * dh
            if ph >= 0 and ph % sh == 0 and ph // sh < P:
                p = ph // sh
                for s in range(S):
                    pw = ww + left - s * dw
                    if pw >= 0 and pw % sw == 0 and pw // sw < Q:
                        q = pw // sw
                        for k in range(K):
                            total += dy[n, p, q, k] * w[r, s, c, k]
        dx[n, h, ww, c] = total


@cuda.jit
def conv2d_backward_filter_naive_kernel(x, dy, dw_out, sh, sw, dh, dw, top, left):
    """dw[r,s,c,k] = sum_{n,p,q} x[n, p*sh + r*dh - top, q*sw + s*dw - left, c] * dy[n,p,q,k]."""
    i = cuda.grid(1)
    N, H, W, C = x.shape
    R, S, _, K = dw_out.shape
    _, P, Q, _ = dy.shape
    if i < R * S * C * K:
        k = i % K
        c = (i // K) % C
        s = (i // (K * C)) % S
        r = i // (K * C * S)
        total = float32(0)
        for n in range(N):
            for p in range(P):
                h = p * sh + r * dh - top
                if h >= 0 and h < H:
                    for q in range(Q):
                        ww = q * sw + s * dw - left
                        if ww >= 0 and ww < W:
                            total += x[n, h, ww, c] * dy[n, p, q, k]
        dw_out[r, s, c, k] = total


SIGNATURES = {
    conv2d_forward_tiled_kernel: void(F4, F2, F2, *[int64] * 9),
    conv2d_backward_input_tiled_kernel: void(F4, F4, F2, *[int64] * 8),
    conv2d_backward_filter_tiled_kernel: void(F4, F2, F3, *[int64] * 11),
    conv2d_forward_naive_kernel: void(F4, F4, F4, *[int64] * 6),
    conv2d_backward_input_naive_kernel: void(F4, F4, F4, *[int64] * 6),
    conv2d_backward_filter_naive_kernel: void(F4, F4, F4, *[int64] * 6),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out (C-contiguous float32); ``out`` reuses a buffer.

TILE_BLOCK = (TX, TY)


def conv2d_forward(x, w, g, out=None):
    """x (N, H, W, C), w (R, S, C, K) -> y (N, P, Q, K), tiled implicit GEMM."""
    y = empty(g.output_shape) if out is None else out
    M, J = g.N * g.P * g.Q, g.R * g.S * g.C
    grid = (blocks(M, BM), blocks(g.K, BN))
    conv2d_forward_tiled_kernel[grid, TILE_BLOCK](
        x, as_2d(w, J, g.K), as_2d(y, M, g.K), g.P, g.Q, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left
    )
    return y


def conv2d_backward_input(dy, w, g, out=None):
    """dy (N, P, Q, K), w (R, S, C, K) -> dx (N, H, W, C), tiled implicit GEMM."""
    dx = empty(g.input_shape) if out is None else out
    M = g.N * g.H * g.W
    grid = (blocks(M, BM), blocks(g.C, BN))
    conv2d_backward_input_tiled_kernel[grid, TILE_BLOCK](
        dy, w, as_2d(dx, M, g.C), g.H, g.W, g.sh, g.sw, g.dh, g.dw, g.top, g.left
    )
    return dx


def conv2d_backward_filter(x, dy, g, out=None, splits=None):
    """x (N, H, W, C), dy (N, P, Q, K) -> dw (R, S, C, K): tiled, the N*P*Q reduction split in slices.

    ``splits`` slices (default: enough for about 64 blocks) each write a partial sum; a second
    kernel adds them in a fixed order, so the result is deterministic (no atomics).
    """
    dw = empty(g.filter_shape) if out is None else out
    M, J = g.N * g.P * g.Q, g.R * g.S * g.C
    tiles = blocks(J, BM) * blocks(g.K, BN)
    splits = split_count(M, tiles) if splits is None else max(1, min(int(splits), blocks(M, BK)))
    chunk = blocks(blocks(M, BK), splits) * BK  # pixels per slice, a whole number of BK steps
    splits = blocks(M, chunk)
    partial = as_2d(dw, J, g.K).reshape(1, J, g.K) if splits == 1 else empty((splits, J, g.K))
    grid = (blocks(J, BM), blocks(g.K, BN), splits)
    conv2d_backward_filter_tiled_kernel[grid, TILE_BLOCK](
        x, as_2d(dy, M, g.K), partial, g.P, g.Q, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, chunk
    )
    if splits > 1:
        sum_slices(partial, as_2d(dw, J, g.K))
    return dw


def conv2d_forward_naive(x, w, g, out=None):
    """The oracle: one thread per output element."""
    y = empty(g.output_shape) if out is None else out
    conv2d_forward_naive_kernel[blocks(y.size, THREADS_1D), THREADS_1D](x, w, y, g.sh, g.sw, g.dh, g.dw, g.top, g.left)
    return y


def conv2d_backward_input_naive(dy, w, g, out=None):
    """The oracle: one thread per input-gradient element."""
    dx = empty(g.input_shape) if out is None else out
    conv2d_backward_input_naive_kernel[blocks(dx.size, THREADS_1D), THREADS_1D](
        dy, w, dx, g.sh, g.sw, g.dh, g.dw, g.top, g.left
    )
    return dx


def conv2d_backward_filter_naive(x, dy, g, out=None):
    """The oracle: one thread per filter-gradient element."""
    dw = empty(g.filter_shape) if out is None else out
    conv2d_backward_filter_naive_kernel[blocks(dw.size, THREADS_1D), THREADS_1D](
        x, dy, dw, g.sh, g.sw, g.dh, g.dw, g.top, g.left
    )
    return dw
