"""Depthwise conv2d forward, backward-input and backward-filter: register-blocked and split-reduction
kernels, and their one-thread-per-output oracles.

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K = C * M output
channels, R S kernel size, P Q output size. Filters are read as wk (R*S, K): output channel
j = c * M + m is input channel c = j // M under wk[r*S + s, j].

    y[n,p,q,j]  = sum_{r,s} x[n, p*sh + r*dh - top, q*sw + s*dw - left, j // M] * wk[r*S + s, j]
    dx[n,h,w,c] = sum over taps (r, s) of the real dy cells that read (h, w), and m < M,
                  of dy[n,p,q,c*M + m] * wk[r*S + s, c*M + m]
    dwk[rs, j]  = sum_{n,p,q} x[n, p*sh + r*dh - top, q*sw + s*dw - left, j // M] * dy[n,p,q,j]

x is read as 0 outside the input, and a padding cell still multiplies its filter (forward) or dy
(filter gradient) value, as the zero-padded formula and miniconv's other backends do.

The op does R*S multiply-adds per value it reads, so it is bound by memory: consecutive threads
take consecutive channels j (coalesced reads of x, dy and the filter in NHWC). The forward gives
each thread CELLS consecutive output cells of one row and channel: each filter value is loaded
once for CELLS cells, and the input cells neighbouring cells share are re-read from L1, not from
memory. The input gradient is a gather, one thread per input cell (no two threads write one
cell: no atomics). The filter gradient splits its N*P*Q-long sums over slices (grid.y), each
writing a partial, added in a fixed order by ``_common.sum_slices`` (deterministic).
"""

from __future__ import annotations

from ._common import F2, F3, F4, THREADS_1D, blocks, cuda, empty, float32, int64, split_count, sum_slices, void

CELLS = 4  # output cells per thread of the forward (a row's q, q+1, ..., fixed so they stay in registers)

# ================================ kernels ===================================================


@cuda.jit
def depthwise_forward_kernel(x, wk, y, M, R, S, sh, sw, dh, dw, top, left):
    """y (N, P, Q, K): thread (n, p, q0 / CELLS, j) sums cells q0 .. q0 + CELLS - 1 of row (n, p)."""
    i = cuda.grid(1)
    N, H, W, _ = x.shape
    _, P, Q, K = y.shape
    groups = (Q + CELLS - 1) // CELLS
    if i < N * P * groups * K:
        j = i % K
        group = (i // K) % groups
        p = (i // (K * groups)) % P
        n = i // (K * groups * P)
        c = j // M
        q0 = group * CELLS
        acc = cuda.local.array(CELLS, float32)
        for k in range(CELLS):
            acc[k] = float32(0)
        for r in range(R):
            h = p * sh + r * dh - top
            inside_h = h >= 0 and h < H
            for s in range(S):
                tap = wk[r * S + s, j]
                for k in range(CELLS):
                    w = (q0 + k) * sw + s * dw - left
                    v = float32(0)
                    if inside_h and w >= 0 and w < W:
                        v = x[n, h, w, c]
                    acc[k] += v * tap
        for k in range(CELLS):
            if q0 + k < Q:
                y[n, p, q0 + k, j] = acc[k]


@cuda.jit
def depthwise_backward_input_kernel(dy, wk, dx, M, R, S, sh, sw, dh, dw, top, left):
    """dx (N, H, W, C): one thread per input cell and channel, gathering the real dy cells whose taps read it."""
    i = cuda.grid(1)
    N, H, W, C = dx.shape
    _, P, Q, _ = dy.shape
    if i < N * H * W * C:
        c = i % C
        w = (i // C) % W
        h = (i // (C * W)) % H
        n = i // (C * W * H)
        total = float32(0)
        for r in range(R):
            ph = h + top - r * dh
            if ph >= 0 and ph % sh == 0 and ph // sh < P:
                p = ph // sh
                for s in range(S):
                    pw = w + left - s * dw
                    if pw >= 0 and pw % sw == 0 and pw // sw < Q:
                        q = pw // sw
                        for m in range(M):
                            total += dy[n, p, q, c * M + m] * wk[r * S + s, c * M + m]
        dx[n, h, w, c] = total


@cuda.jit
def depthwise_backward_filter_kernel(x, dy, partial, M, S, sh, sw, dh, dw, top, left, chunk):
    """partial[z, rs, j] = sum over the output cells of slice z (chunk of N*P*Q) of x * dy; grid.y = slices."""
    e = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    z = cuda.blockIdx.y
    N, H, W, _ = x.shape
    _, P, Q, K = dy.shape
    RS = partial.shape[1]
    if e < RS * K:
        j = e % K
        rs = e // K
        r = rs // S
        s = rs % S
        c = j // M
        first = z * chunk
        last = min(N * P * Q, first + chunk)
        total = float32(0)
        for cell in range(first, last):
            q = cell % Q
            p = (cell // Q) % P
            n = cell // (Q * P)
            h = p * sh + r * dh - top
            w = q * sw + s * dw - left
            v = float32(0)
            if h >= 0 and h < H and w >= 0 and w < W:
                v = x[n, h, w, c]
            total += v * dy[n, p, q, j]
        partial[z, rs, j] = total


# --- oracles: one thread per output, straight from the formulas ------------------------------


@cuda.jit
def depthwise_forward_naive_kernel(x, wk, y, M, R, S, sh, sw, dh, dw, top, left):
    """y[n,p,q,j] = sum_{r,s} x[n, h, w, j // M] * wk[r*S + s, j] (x = 0 outside), one thread per output."""
    i = cuda.grid(1)
    N, H, W, _ = x.shape
    _, P, Q, K = y.shape
    if i < N * P * Q * K:
        j = i % K
        q = (i // K) % Q
        p = (i // (K * Q)) % P
        n = i // (K * Q * P)
        total = float32(0)
        for r in range(R):
            h = p * sh + r * dh - top
            for s in range(S):
                w = q * sw + s * dw - left
                v = float32(0)
                if h >= 0 and h < H and w >= 0 and w < W:
                    v = x[n, h, w, j // M]
                total += v * wk[r * S + s, j]
        y[n, p, q, j] = total


@cuda.jit
def depthwise_backward_filter_naive_kernel(x, dy, dwk, M, S, sh, sw, dh, dw, top, left):
    """dwk[rs, j] = sum over every n, p, q of x * dy: one thread per filter value, no split."""
    e = cuda.grid(1)
    N, H, W, _ = x.shape
    _, P, Q, K = dy.shape
    if e < dwk.shape[0] * K:
        j = e % K
        r = (e // K) // S
        s = (e // K) % S
        total = float32(0)
        for n in range(N):
            for p in range(P):
                h = p * sh + r * dh - top
                for q in range(Q):
                    w = q * sw + s * dw - left
                    v = float32(0)
                    if h >= 0 and h < H and w >= 0 and w < W:
                        v = x[n, h, w, j // M]
                    total += v * dy[n, p, q, j]
        dwk[e // K, j] = total


_GEOMETRY = [int64] * 9  # M, R, S, sh, sw, dh, dw, top, left
SIGNATURES = {
    depthwise_forward_kernel: void(F4, F2, F4, *_GEOMETRY),
    depthwise_backward_input_kernel: void(F4, F2, F4, *_GEOMETRY),
    depthwise_backward_filter_kernel: void(F4, F4, F3, *[int64] * 9),
    depthwise_forward_naive_kernel: void(F4, F2, F4, *_GEOMETRY),
    depthwise_backward_filter_naive_kernel: void(F4, F4, F2, *[int64] * 8),
}

# ================================ launchers =================================================
# Device arrays in, device arrays out (C-contiguous float32); g a miniconv.shapes.DepthwiseGeometry.


def _wk(w, g):
    return w.reshape(g.R * g.S, g.K)


def _geometry(g):
    return g.M, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left


def depthwise_conv2d_forward(x, w, g, out=None):
    """x (N, H, W, C), w (R, S, C, M) -> y (N, P, Q, C * M), CELLS output cells a thread."""
    y = empty(g.output_shape) if out is None else out
    threads = g.N * g.P * blocks(g.Q, CELLS) * g.K
    depthwise_forward_kernel[blocks(threads, THREADS_1D), THREADS_1D](x, _wk(w, g), y, *_geometry(g))
    return y


def depthwise_conv2d_backward_input(dy, w, g, out=None):
    """dy (N, P, Q, C * M), w -> dx (N, H, W, C)."""
    dx = empty(g.input_shape) if out is None else out
    depthwise_backward_input_kernel[blocks(dx.size, THREADS_1D), THREADS_1D](dy, _wk(w, g), dx, *_geometry(g))
    return dx


def depthwise_conv2d_backward_filter(x, dy, g, out=None, splits=None):
    """x, dy -> dw (R, S, C, M): the N*P*Q sums split over ``splits`` slices (default: enough for
    about 64 blocks, each slice at least 32 x 8 cells long), added in a fixed order."""
    dw = empty(g.filter_shape) if out is None else out
    cells, values = g.N * g.P * g.Q, g.R * g.S * g.K
    tiles = blocks(values, THREADS_1D)
    splits = split_count(cells, tiles) if splits is None else max(1, min(int(splits), cells))
    chunk = blocks(cells, splits)
    splits = blocks(cells, chunk)
    dwk = dw.reshape(g.R * g.S, g.K)
    partial = dwk.reshape(1, g.R * g.S, g.K) if splits == 1 else empty((splits, g.R * g.S, g.K))
    depthwise_backward_filter_kernel[(tiles, splits), THREADS_1D](
        x, dy, partial, g.M, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, chunk
    )
    if splits > 1:
        sum_slices(partial, dwk)
    return dw


def depthwise_conv2d_forward_naive(x, w, g, out=None):
    """The oracle: one thread per output value."""
    y = empty(g.output_shape) if out is None else out
    depthwise_forward_naive_kernel[blocks(y.size, THREADS_1D), THREADS_1D](x, _wk(w, g), y, *_geometry(g))
    return y


def depthwise_conv2d_backward_filter_naive(x, dy, g, out=None):
    """The oracle: one thread per filter value, its whole N*P*Q sum."""
    dw = empty(g.filter_shape) if out is None else out
    dwk = dw.reshape(g.R * g.S, g.K)
    depthwise_backward_filter_naive_kernel[blocks(dwk.size, THREADS_1D), THREADS_1D](
        x, dy, dwk, g.M, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left
    )
    return dw
