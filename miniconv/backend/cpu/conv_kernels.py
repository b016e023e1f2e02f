"""Numba kernels for 2-D convolution as im2col / col2im around one BLAS matrix product.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

The convolution is a matrix product once the input patches are laid out as rows:

    cols[(n*P + p)*Q + q, (r*S + s)*C + c] = x[n, p*sh + r*dh - top, q*sw + s*dw - left, c]  (0 outside)
    y   (N*P*Q, K)   = cols (N*P*Q, R*S*C) @ w (R*S*C, K)          forward
    dw  (R*S*C, K)   = cols.T @ dy (N*P*Q, K)                       backward-filter
    dcols            = dy @ w.T;  dx = col2im(dcols)                backward-input

HWIO filters reshape to (R*S*C, K) for free, and NHWC rows reshape to NHWC outputs for free,
so the only layout work is im2col / col2im below. The products run in NumPy's BLAS.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def im2col(x, R, S, sh, sw, dh, dw, top, left, P, Q, cols):
    """Fill cols (N*P*Q, R*S*C) with the input patches; one (n, p) output row per parallel step."""
    N, H, W, C = x.shape
    for row_block in prange(N * P):
        n = row_block // P
        p = row_block % P
        for q in range(Q):
            row = row_block * Q + q
            for r in range(R):
                h = p * sh + r * dh - top
                for s in range(S):
                    w = q * sw + s * dw - left
                    base = (r * S + s) * C
                    if 0 <= h < H and 0 <= w < W:
                        for c in range(C):
                            cols[row, base + c] = x[n, h, w, c]
                    else:
                        for c in range(C):
                            cols[row, base + c] = 0.0


@njit(parallel=True, cache=True)
def col2im(dcols, R, S, sh, sw, dh, dw, top, left, P, Q, dx):
    """dx[n, h, w, c] += dcols[row, (r*S + s)*C + c] for every patch cell that read x[n, h, w, c].

    One image per parallel step, so no two threads write the same dx element.
    """
    N, H, W, C = dx.shape
    for n in prange(N):
        dx[n] = 0.0
        for p in range(P):
            for q in range(Q):
                row = (n * P + p) * Q + q
                for r in range(R):
                    h = p * sh + r * dh - top
                    if h < 0 or h >= H:
                        continue
                    for s in range(S):
                        w = q * sw + s * dw - left
                        if w < 0 or w >= W:
                            continue
                        base = (r * S + s) * C
                        for c in range(C):
                            dx[n, h, w, c] += dcols[row, base + c]


def _patches(x, g):
    cols = np.empty((g.N * g.P * g.Q, g.R * g.S * g.C), x.dtype)
    im2col(x, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.P, g.Q, cols)
    return cols


def conv2d_forward(x, w, g):
    """y (N, P, Q, K) = im2col(x) @ w.reshape(R*S*C, K)."""
    y = _patches(x, g) @ w.reshape(-1, g.K)
    return y.reshape(g.N, g.P, g.Q, g.K)


def conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C) = col2im(dy.reshape(N*P*Q, K) @ w.reshape(R*S*C, K).T)."""
    dcols = dy.reshape(-1, g.K) @ w.reshape(-1, g.K).T
    dx = np.empty((g.N, g.H, g.W, g.C), dy.dtype)
    col2im(dcols, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.P, g.Q, dx)
    return dx


def conv2d_backward_filter(x, dy, g):
    """dw (R, S, C, K) = im2col(x).T @ dy.reshape(N*P*Q, K)."""
    dw = _patches(x, g).T @ dy.reshape(-1, g.K)
    return dw.reshape(g.R, g.S, g.C, g.K)
