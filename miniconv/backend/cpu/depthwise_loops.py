"""The depthwise convolution's loops for any filter: oracles, and row / cell kernels that work for
every geometry (``depthwise_kernels`` takes faster 3 x 3 paths where it can, and these elsewhere).

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K = C * M output
channels, R S kernel size, P Q output size. The filter is read as wk (R, S, K) (a free reshape of
(R, S, C, M)): output channel j = c * M + m is input channel c = j // M times wk[r, s, j].

    y[n,p,q,j]  = sum_{r,s} x[n, p*sh + r*dh - top, q*sw + s*dw - left, j // M] * wk[r,s,j]
    dx[n,h,w,c] = sum over (r, s, p, q) with h = p*sh + r*dh - top, w = q*sw + s*dw - left,
                  and m < M, of dy[n,p,q,c*M + m] * wk[r,s,c*M + m]
    dwk[r,s,j]  = sum_{n,p,q} x[n, p*sh + r*dh - top, q*sw + s*dw - left, j // M] * dy[n,p,q,j]

with x read as 0 outside the input (padding): a padding cell still multiplies its filter value
or dy value, so an inf there gives NaN in y or dw, as in the zero-padded formula and TensorFlow.
dx sums over the real dy cells only (the taps that read padding have no input cell to send a
gradient to), as TensorFlow's conv2d; TensorFlow's depthwise input gradient instead correlates a
zero-padded, zero-dilated dy with the filter, which differs only where the filter is not finite.

The ``*_simple`` kernels compute one result at a time straight from these formulas: the oracles the
others are tested against. The others keep the channels innermost (a loop that vectorises, x, y
and the filter all channels-last). ``backward_images`` forms dx and dw together, image by image,
reading dy and x once: a depthwise convolution does ~R*S multiply-adds per value it reads, so its
passes are bound by memory, and a second pass over dy would cost more than all its arithmetic.
"""

from __future__ import annotations

from numba import njit

from .elementwise_kernels import bias_activation_rows


@njit(nogil=True, cache=True, inline="always")
def _columns(offset, stride, Q, W):
    """(q_lo, q_hi): the output cells q with 0 <= q * stride + offset < W."""
    q_lo = min(Q, max(0, (stride - 1 - offset) // stride))
    q_hi = max(q_lo, min(Q, (W - 1 - offset) // stride + 1))
    return q_lo, q_hi


# --- oracles: one result at a time ----------------------------------------------------------------


@njit(nogil=True, cache=True)
def forward_simple(x, wk, M, sh, sw, dh, dw, top, left, y):
    """y (N, P, Q, K), every value its own sum over (r, s): the module's first formula."""
    N, H, W, _ = x.shape
    R, S, K = wk.shape
    _, P, Q, _ = y.shape
    zero = y.dtype.type(0)
    for n in range(N):
        for p in range(P):
            for q in range(Q):
                for j in range(K):
                    total = y.dtype.type(0)
                    for r in range(R):
                        h = p * sh + r * dh - top
                        for s in range(S):
                            w = q * sw + s * dw - left
                            v = x[n, h, w, j // M] if 0 <= h < H and 0 <= w < W else zero
                            total += v * wk[r, s, j]
                    y[n, p, q, j] = total


@njit(nogil=True, cache=True)
def backward_input_simple(dy, wk, M, sh, sw, dh, dw, top, left, dx):
    """dx (N, H, W, C), every value its own sum over the taps that read it: the module's second formula."""
    N, H, W, C = dx.shape
    R, S, _ = wk.shape
    _, P, Q, _ = dy.shape
    for n in range(N):
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    total = dx.dtype.type(0)
                    for r in range(R):
                        ph = h + top - r * dh
                        if ph < 0 or ph % sh != 0 or ph // sh >= P:
                            continue
                        for s in range(S):
                            pw = w + left - s * dw
                            if pw < 0 or pw % sw != 0 or pw // sw >= Q:
                                continue
                            for m in range(M):
                                total += dy[n, ph // sh, pw // sw, c * M + m] * wk[r, s, c * M + m]
                    dx[n, h, w, c] = total


@njit(nogil=True, cache=True)
def backward_filter_simple(x, dy, M, sh, sw, dh, dw, top, left, dwk):
    """dwk (R, S, K), every value its own sum over n, p, q: the module's third formula."""
    N, H, W, _ = x.shape
    R, S, K = dwk.shape
    _, P, Q, _ = dy.shape
    zero = dwk.dtype.type(0)
    for r in range(R):
        for s in range(S):
            for j in range(K):
                total = zero
                for n in range(N):
                    for p in range(P):
                        h = p * sh + r * dh - top
                        for q in range(Q):
                            w = q * sw + s * dw - left
                            v = x[n, h, w, j // M] if 0 <= h < H and 0 <= w < W else zero
                            total += v * dy[n, p, q, j]
                dwk[r, s, j] = total


# --- row kernels ---------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def forward_cells(x, wk, M, sh, sw, dh, dw, top, left, n, p, q_lo, q_hi, out):
    """out[q] (K,) for q in [q_lo, q_hi) of output row (n, p): zeroed, then per filter cell (r, s),
    out[q, j] += x[n, h, w, j // M] * wk[r, s, j], channels innermost; a padding cell is x = 0 and
    still multiplies its filter value (so an inf there gives NaN, as the zero-padded formula does)."""
    _, H, W, C = x.shape
    R, S, K = wk.shape
    zero = out.dtype.type(0)
    for q in range(q_lo, q_hi):
        dst = out[q]
        for j in range(K):
            dst[j] = zero
        for r in range(R):
            h = p * sh + r * dh - top
            for s in range(S):
                w = q * sw + s * dw - left
                tap = wk[r, s]
                if h < 0 or h >= H or w < 0 or w >= W:
                    for j in range(K):
                        dst[j] += zero * tap[j]
                    continue
                src = x[n, h, w]
                if M == 1:
                    for c in range(C):
                        dst[c] += src[c] * tap[c]
                else:
                    for c in range(C):
                        v = src[c]
                        for m in range(M):
                            dst[c * M + m] += v * tap[c * M + m]


@njit(nogil=True, cache=True)
def forward_rows(x, wk, M, sh, sw, dh, dw, top, left, first, last, y, bias, epilogue):
    """y[n, p] (Q, K) for the output rows u = n * P + p in [first, last), cell by cell (``forward_cells``);
    ``epilogue`` 1 adds bias (K,) to each row as it is finished, 2 also applies ReLU6, 0 neither."""
    _, P, Q, _ = y.shape
    for u in range(first, last):
        n, p = divmod(u, P)
        forward_cells(x, wk, M, sh, sw, dh, dw, top, left, n, p, 0, Q, y[n, p])
        if epilogue:
            bias_activation_rows(y[n, p], bias, epilogue == 2)


@njit(nogil=True, cache=True)
def backward_images(x, wk, dy, M, sh, sw, dh, dw, top, left, H, W, first, last, with_dx, with_dw, dx, dwk):
    """dx[n] (with_dx) and dwk (R, S, K) += the filter gradient (with_dw), for the images [first, last).

    Per image the output rows p go in order; each reads its input rows h = p*sh + r*dh - top once
    for both gradients (they stay in cache for the next rows that read them). dx: each dy value
    is added to the input cells its taps read (the real ones: taps on padding have no gradient to
    give), a dx row zeroed just before its first sum, rows no tap reaches at the end. x or dx is
    not read when its flag is off (it may then be any 4-D array).
    """
    C = dx.shape[3] if with_dx else x.shape[3]
    R, S, _ = wk.shape
    _, P, Q, _ = dy.shape
    zero = dwk.dtype.type(0)
    for n in range(first, last):
        zeroed = 0  # dx rows [0, zeroed) of this image are zeroed or summed into
        for p in range(P):
            g_row = dy[n, p]
            if with_dw:
                filter_gradient_cells(x, g_row, M, sh, sw, dh, dw, top, left, n, p, 0, Q, dwk)
            if not with_dx:
                continue
            for r in range(R):
                h = p * sh + r * dh - top
                if h < 0 or h >= H:
                    continue
                while zeroed <= h:
                    for w in range(W):
                        for c in range(C):
                            dx[n, zeroed, w, c] = zero
                    zeroed += 1
                for s in range(S):
                    offset = s * dw - left
                    q_lo, q_hi = _columns(offset, sw, Q, W)
                    tap = wk[r, s]
                    for q in range(q_lo, q_hi):
                        g = g_row[q]
                        dst = dx[n, h, q * sw + offset]
                        if M == 1:
                            for c in range(C):
                                dst[c] += g[c] * tap[c]
                        else:
                            for c in range(C):
                                total = zero
                                for m in range(M):
                                    total += g[c * M + m] * tap[c * M + m]
                                dst[c] += total
        if with_dx:
            while zeroed < H:
                for w in range(W):
                    for c in range(C):
                        dx[n, zeroed, w, c] = zero
                zeroed += 1


@njit(nogil=True, cache=True)
def filter_gradient_cells(x, g_row, M, sh, sw, dh, dw, top, left, n, p, q_lo, q_hi, dwk):
    """dwk (R, S, K) += x[n, h, w, j // M] * dy[n, p, q, j] over the cells q in [q_lo, q_hi) of output
    row (n, p) (g_row = dy[n, p]) and every filter cell (r, s); a padding cell is x = 0 and still
    multiplies dy (an inf dy there gives NaN, as the zero-padded formula does)."""
    _, H, W, C = x.shape
    R, S, K = dwk.shape
    zero = dwk.dtype.type(0)
    for r in range(R):
        h = p * sh + r * dh - top
        for s in range(S):
            d = dwk[r, s]
            for q in range(q_lo, q_hi):
                w = q * sw + s * dw - left
                g = g_row[q]
                if h < 0 or h >= H or w < 0 or w >= W:
                    for j in range(K):
                        d[j] += zero * g[j]
                    continue
                src = x[n, h, w]
                if M == 1:
                    for c in range(C):
                        d[c] += src[c] * g[c]
                else:
                    for c in range(C):
                        v = src[c]
                        for m in range(M):
                            d[c * M + m] += v * g[c * M + m]


@njit(nogil=True, cache=True)
def input_gradient_cells(dy, wk, sh, sw, dh, dw, top, left, n, h, w_lo, w_hi, dx):
    """dx[n, h, w] (C,) for w in [w_lo, w_hi): each its own sum of dy[n, p, q] * wk[r, s] over the
    taps that read it (p * sh + r * dh - top = h, q * sw + s * dw - left = w); M = 1."""
    _, P, Q, C = dy.shape
    R, S, _ = wk.shape
    zero = dx.dtype.type(0)
    for w in range(w_lo, w_hi):
        dst = dx[n, h, w]
        for c in range(C):
            dst[c] = zero
        for r in range(R):
            ph = h + top - r * dh
            if ph < 0 or ph % sh != 0 or ph // sh >= P:
                continue
            for s in range(S):
                pw = w + left - s * dw
                if pw < 0 or pw % sw != 0 or pw // sw >= Q:
                    continue
                g = dy[n, ph // sh, pw // sw]
                tap = wk[r, s]
                for c in range(C):
                    dst[c] += g[c] * tap[c]
