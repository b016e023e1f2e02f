"""The depthwise convolution's backend functions, and their 3 x 3 kernels (MobileNet's, EfficientNet's).

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K = C * M output
channels, R S kernel size, P Q output size; here mostly R = S = 3 and M = 1 (K = C). The filter is
read as wk (R, S, K), formulas in ``depthwise_loops``.

The op does 9 multiply-adds per value it reads: memory bounds it, and the general loops (one
read-modify-write of the output per product) cost more than the memory traffic. Here:

    forward    an output cell whose 3 x 3 input cells lie inside the input is one loop over its
               channels, the nine products summed in registers: one store per nine products
    backward   one pass per image over the output rows p in order, dy and x each read once:
               dw[r, s, c] += x[h_r, w_s(q), c] * dy[p, q, c], two cells q per loop (each x
               column loaded once for the taps that share it);
               stride 1: input row h = p - top once its last dy row p is read, each cell summing
               its nine terms dy[h + top - r dh, w + left - s dw, c] * wk[r, s, c] in registers;
               other strides: each dy cell added to the input cells it reads (dx rows zeroed
               just before their first sum)

Cells within a tap of the border take ``depthwise_loops``' per-cell loops (the same sums, each
tap tested). Every other filter size or multiplier takes ``depthwise_loops``' kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .depthwise_loops import (
    _columns,
    backward_images,
    filter_gradient_cells,
    forward_cells,
    forward_rows,
    input_gradient_cells,
)
from .work_sharing import chunk_bounds, partials, run_chunks, sum_in_order, thread_count

ROW_GRAIN = 1 << 14  # output values per shared chunk of forward rows, at least (~10 us of work)


def fast_applies(g) -> bool:
    """Whether the 3 x 3, multiplier-1 kernels below apply (any stride, dilation and padding)."""
    return g.R == 3 and g.S == 3 and g.M == 1


# --- four output cells at a time, on flat views --------------------------------------------------
# Each helper works on one group of GROUP consecutive cells, its rows given as flat views starting
# at the group's first column: a loop over the channels c whose every index is c plus a multiple of
# C, so LLVM checks the views for overlap once per group (not once per pair of accesses, as with
# 2-D indexing) and, where stride and dilation are the literal 1 or 2 of the wrappers below,
# loads a column shared by two cells once. Nine taps and four cells: 9 filter loads, 18 input loads
# (stride 1) and 4 stores for 36 products, where one cell at a time needs 19 memory operations
# for 9.

GROUP = 4


@njit(nogil=True, cache=True, inline="always")
def _dot9(r0, r1, r2, t, o, C, sw, dw):
    """o[k*C + c] = sum_{r,s} row_r[(k*sw + s*dw)*C + c] * t[(3r + s)*C + c], cells k < 4.

    Every load comes before the first store (a store could alias a view, so a load after it
    would be repeated): the twelve columns of each row, of which stride 1 and dilation 1 share all
    but six.
    """
    a1, a2, a3 = sw * C, 2 * sw * C, 3 * sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        w00, w01, w02 = t[c], t[C + c], t[2 * C + c]
        w10, w11, w12 = t[3 * C + c], t[4 * C + c], t[5 * C + c]
        w20, w21, w22 = t[6 * C + c], t[7 * C + c], t[8 * C + c]
        x00, x01, x02 = r0[c], r0[d1 + c], r0[d2 + c]
        x10, x11, x12 = r0[a1 + c], r0[a1 + d1 + c], r0[a1 + d2 + c]
        x20, x21, x22 = r0[a2 + c], r0[a2 + d1 + c], r0[a2 + d2 + c]
        x30, x31, x32 = r0[a3 + c], r0[a3 + d1 + c], r0[a3 + d2 + c]
        y00, y01, y02 = r1[c], r1[d1 + c], r1[d2 + c]
        y10, y11, y12 = r1[a1 + c], r1[a1 + d1 + c], r1[a1 + d2 + c]
        y20, y21, y22 = r1[a2 + c], r1[a2 + d1 + c], r1[a2 + d2 + c]
        y30, y31, y32 = r1[a3 + c], r1[a3 + d1 + c], r1[a3 + d2 + c]
        z00, z01, z02 = r2[c], r2[d1 + c], r2[d2 + c]
        z10, z11, z12 = r2[a1 + c], r2[a1 + d1 + c], r2[a1 + d2 + c]
        z20, z21, z22 = r2[a2 + c], r2[a2 + d1 + c], r2[a2 + d2 + c]
        z30, z31, z32 = r2[a3 + c], r2[a3 + d1 + c], r2[a3 + d2 + c]
        o0 = (x00 * w00 + x01 * w01 + x02 * w02 + y00 * w10 + y01 * w11 + y02 * w12
              + z00 * w20 + z01 * w21 + z02 * w22)
        o1 = (x10 * w00 + x11 * w01 + x12 * w02 + y10 * w10 + y11 * w11 + y12 * w12
              + z10 * w20 + z11 * w21 + z12 * w22)
        o2 = (x20 * w00 + x21 * w01 + x22 * w02 + y20 * w10 + y21 * w11 + y22 * w12
              + z20 * w20 + z21 * w21 + z22 * w22)
        o3 = (x30 * w00 + x31 * w01 + x32 * w02 + y30 * w10 + y31 * w11 + y32 * w12
              + z30 * w20 + z31 * w21 + z32 * w22)
        o[c] = o0
        o[C + c] = o1
        o[2 * C + c] = o2
        o[3 * C + c] = o3


@njit(nogil=True, cache=True, inline="always")
def _outer3(row, g, d, C, sw, dw):
    """d[s*C + c] += sum_k row[(k*sw + s*dw)*C + c] * g[k*C + c], cells k < 4: one filter row's
    gradient (three store targets: nine would be too many views for LLVM to check)."""
    a1, a2, a3 = sw * C, 2 * sw * C, 3 * sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        g0, g1, g2, g3 = g[c], g[C + c], g[2 * C + c], g[3 * C + c]
        x00, x01, x02 = row[c], row[d1 + c], row[d2 + c]
        x10, x11, x12 = row[a1 + c], row[a1 + d1 + c], row[a1 + d2 + c]
        x20, x21, x22 = row[a2 + c], row[a2 + d1 + c], row[a2 + d2 + c]
        x30, x31, x32 = row[a3 + c], row[a3 + d1 + c], row[a3 + d2 + c]
        e0 = x00 * g0 + x10 * g1 + x20 * g2 + x30 * g3
        e1 = x01 * g0 + x11 * g1 + x21 * g2 + x31 * g3
        e2 = x02 * g0 + x12 * g1 + x22 * g2 + x32 * g3
        d[c] += e0
        d[C + c] += e1
        d[2 * C + c] += e2


@njit(nogil=True, cache=True, inline="always")
def _dot9_pair(r0, r1, r2, t, o, C, sw, dw):
    """``_dot9`` for two cells: strides other than 1 read up to nine columns a row for four cells,
    and LLVM then gives up vectorising (too many pairs of views to check); two cells read five."""
    a1 = sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        w00, w01, w02 = t[c], t[C + c], t[2 * C + c]
        w10, w11, w12 = t[3 * C + c], t[4 * C + c], t[5 * C + c]
        w20, w21, w22 = t[6 * C + c], t[7 * C + c], t[8 * C + c]
        x00, x01, x02 = r0[c], r0[d1 + c], r0[d2 + c]
        x10, x11, x12 = r0[a1 + c], r0[a1 + d1 + c], r0[a1 + d2 + c]
        y00, y01, y02 = r1[c], r1[d1 + c], r1[d2 + c]
        y10, y11, y12 = r1[a1 + c], r1[a1 + d1 + c], r1[a1 + d2 + c]
        z00, z01, z02 = r2[c], r2[d1 + c], r2[d2 + c]
        z10, z11, z12 = r2[a1 + c], r2[a1 + d1 + c], r2[a1 + d2 + c]
        o0 = (x00 * w00 + x01 * w01 + x02 * w02 + y00 * w10 + y01 * w11 + y02 * w12
              + z00 * w20 + z01 * w21 + z02 * w22)
        o1 = (x10 * w00 + x11 * w01 + x12 * w02 + y10 * w10 + y11 * w11 + y12 * w12
              + z10 * w20 + z11 * w21 + z12 * w22)
        o[c] = o0
        o[C + c] = o1


@njit(nogil=True, cache=True, inline="always")
def _scatter3_pair(g, t, row, C, sw, dw):
    """row[(k*sw + s*dw)*C + c] += g[k*C + c] * t[s*C + c], cells k < 2 (one dx row, a tap row t = wk[r]).
    Two cells: a stride-2 group of four would write nine columns, too many views for LLVM to check."""
    a1 = sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        g0, g1 = g[c], g[C + c]
        w0, w1, w2 = t[c], t[C + c], t[2 * C + c]
        row[c] += g0 * w0
        row[d1 + c] += g0 * w1
        row[d2 + c] += g0 * w2
        row[a1 + c] += g1 * w0
        row[a1 + d1 + c] += g1 * w1
        row[a1 + d2 + c] += g1 * w2


@njit(nogil=True, cache=True)
def dot9_groups(r0, r1, r2, t, out, C, sw, dw, groups):
    """``_dot9`` over ``groups`` consecutive groups: r0 r1 r2 flat row views from the first group's
    first column, out flat from its first cell; stride 1 and 2 (dilation 1) with literal offsets."""
    step = GROUP * sw * C
    if sw == 1 and dw == 1:
        for i in range(groups):
            _dot9(r0[i * step:], r1[i * step:], r2[i * step:], t, out[i * GROUP * C:], C, 1, 1)
    else:  # two pairs of cells a group
        half = step // 2
        if sw == 2 and dw == 1:
            for i in range(2 * groups):
                _dot9_pair(r0[i * half:], r1[i * half:], r2[i * half:], t, out[i * 2 * C:], C, 2, 1)
        else:
            for i in range(2 * groups):
                _dot9_pair(r0[i * half:], r1[i * half:], r2[i * half:], t, out[i * 2 * C:], C, sw, dw)


@njit(nogil=True, cache=True)
def outer9_groups(r0, r1, r2, g, d, C, sw, dw, groups):
    """``_outer3`` for each filter row over ``groups`` consecutive groups (views as ``dot9_groups``;
    g flat from the first cell, d the flat (9 C) filter gradient)."""
    step = GROUP * sw * C
    d0, d1, d2 = d[: 3 * C], d[3 * C : 6 * C], d[6 * C :]
    if sw == 1 and dw == 1:
        for i in range(groups):
            gi = g[i * GROUP * C:]
            _outer3(r0[i * step:], gi, d0, C, 1, 1)
            _outer3(r1[i * step:], gi, d1, C, 1, 1)
            _outer3(r2[i * step:], gi, d2, C, 1, 1)
    elif sw == 2 and dw == 1:
        for i in range(groups):
            gi = g[i * GROUP * C:]
            _outer3(r0[i * step:], gi, d0, C, 2, 1)
            _outer3(r1[i * step:], gi, d1, C, 2, 1)
            _outer3(r2[i * step:], gi, d2, C, 2, 1)
    else:
        for i in range(groups):
            gi = g[i * GROUP * C:]
            _outer3(r0[i * step:], gi, d0, C, sw, dw)
            _outer3(r1[i * step:], gi, d1, C, sw, dw)
            _outer3(r2[i * step:], gi, d2, C, sw, dw)


@njit(nogil=True, cache=True)
def scatter3_groups(g, t, row, C, sw, dw, groups):
    """``_scatter3_pair`` over ``groups`` consecutive groups of four cells (row flat from the first
    group's first column)."""
    half = GROUP * sw * C // 2
    if sw == 2 and dw == 1:
        for i in range(2 * groups):
            _scatter3_pair(g[i * 2 * C:], t, row[i * half:], C, 2, 1)
    else:
        for i in range(2 * groups):
            _scatter3_pair(g[i * 2 * C:], t, row[i * half:], C, sw, dw)


# --- the 3 x 3 kernels -----------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def forward_rows_3x3(x, wk, sh, sw, dh, dw, top, left, first, last, y):
    """y[n, p] (Q, C) for the output rows u = n * P + p in [first, last); M = 1."""
    N, H, W, C = x.shape
    _, P, Q, _ = y.shape
    xf = x.reshape(N * H, W * C)  # row (n, h) of x as one flat run
    yf = y.reshape(N * P, Q * C)
    t = wk.reshape(9 * C)
    q_a, q_b = _columns(-left, sw, Q, W - 2 * dw)  # cells whose three columns lie inside
    groups = (q_b - q_a) // GROUP
    q_c = q_a + groups * GROUP
    a = (q_a * sw - left) * C  # flat offset of the first group's first input column
    for u in range(first, last):
        n, p = divmod(u, P)
        out = y[n, p]
        h0 = p * sh - top
        if h0 < 0 or h0 + 2 * dh >= H:
            forward_cells(x, wk, 1, sh, sw, dh, dw, top, left, n, p, 0, Q, out)
            continue
        forward_cells(x, wk, 1, sh, sw, dh, dw, top, left, n, p, 0, q_a, out)
        forward_cells(x, wk, 1, sh, sw, dh, dw, top, left, n, p, q_c, Q, out)
        if groups > 0:
            row = n * H + h0
            dot9_groups(xf[row, a:], xf[row + dh, a:], xf[row + 2 * dh, a:], t, yf[u, q_a * C:], C, sw, dw, groups)


@njit(nogil=True, cache=True)
def _filter_gradient_row(x, xf, g_row, gf, sh, sw, dh, dw, top, left, n, p, q_a, q_b, d):
    """dwk (3, 3, C) += output row (n, p)'s terms (d its flat view); cells [q_a, q_b) read three inside columns."""
    _, H, _, C = x.shape
    Q = g_row.shape[0]
    dwk = d.reshape(3, 3, C)
    h0 = p * sh - top
    if h0 < 0 or h0 + 2 * dh >= H:
        filter_gradient_cells(x, g_row, 1, sh, sw, dh, dw, top, left, n, p, 0, Q, dwk)
        return
    groups = (q_b - q_a) // GROUP
    q_c = q_a + groups * GROUP
    filter_gradient_cells(x, g_row, 1, sh, sw, dh, dw, top, left, n, p, 0, q_a, dwk)
    filter_gradient_cells(x, g_row, 1, sh, sw, dh, dw, top, left, n, p, q_c, Q, dwk)
    if groups > 0:
        row = n * H + h0
        a = (q_a * sw - left) * C
        outer9_groups(xf[row, a:], xf[row + dh, a:], xf[row + 2 * dh, a:], gf[q_a * C:], d, C, sw, dw, groups)


@njit(nogil=True, cache=True)
def _input_gradient_row_stride1(dy, dyf, wf, dh, dw, top, left, n, h, dx):
    """dx[n, h] (W, C), stride 1: every cell its nine terms from dy rows h + top - r dh.

    As the forward with the taps mirrored along s (wf[r, s] = wk[r, 2 - s]): cell w reads dy
    columns b + s dw, b = w + left - 2 dw.
    """
    _, P, Q, C = dy.shape
    W = dx.shape[2]
    wk = wf[:, ::-1]
    p0 = h + top
    if p0 - 2 * dh < 0 or p0 >= P:
        input_gradient_cells(dy, wk, 1, 1, dh, dw, top, left, n, h, 0, W, dx)
        return
    w_a = min(W, max(0, 2 * dw - left))  # cells whose three dy columns w + left - s dw lie inside
    w_b = max(w_a, min(W, Q - left))
    groups = (w_b - w_a) // GROUP
    w_c = w_a + groups * GROUP
    input_gradient_cells(dy, wk, 1, 1, dh, dw, top, left, n, h, 0, w_a, dx)
    input_gradient_cells(dy, wk, 1, 1, dh, dw, top, left, n, h, w_c, W, dx)
    if groups > 0:
        row = n * P + p0  # dy row of r = 0; r = 1, 2 are dh, 2 dh rows above it
        b = (w_a + left - 2 * dw) * C
        out = dx[n, h].reshape(W * C)
        dot9_groups(dyf[row, b:], dyf[row - dh, b:], dyf[row - 2 * dh, b:], wf.reshape(9 * C), out[w_a * C:], C, 1,
                    dw, groups)


@njit(nogil=True, cache=True)
def _input_gradient_scatter_row(g_row, gf, wk, sh, sw, dh, dw, top, left, n, p, q_a, q_b, zeroed, dx):
    """dx[n] += output row (n, p)'s contributions (any stride); rows [zeroed, h] zeroed first.
    Returns the new count of zeroed rows."""
    _, H, W, C = dx.shape
    Q = g_row.shape[0]
    zero = dx.dtype.type(0)
    groups = (q_b - q_a) // GROUP
    q_c = q_a + groups * GROUP
    a = (q_a * sw - left) * C
    for r in range(3):
        h = p * sh + r * dh - top
        if h < 0 or h >= H:
            continue
        while zeroed <= h:
            dx[n, zeroed] = zero
            zeroed += 1
        out = dx[n, h]
        if groups > 0:
            scatter3_groups(gf[q_a * C:], wk[r].reshape(3 * C), out.reshape(W * C)[a:], C, sw, dw, groups)
        for q in range(Q):
            if q_a <= q < q_c:
                continue
            for s in range(3):
                w = q * sw + s * dw - left
                if 0 <= w < W:
                    for c in range(C):
                        out[w, c] += g_row[q, c] * wk[r, s, c]
    return zeroed


@njit(nogil=True, cache=True)
def backward_images_3x3(x, wk, dy, sh, sw, dh, dw, top, left, first, last, with_dx, with_dw, dx, dwk):
    """dx[n] (with_dx) and dwk (3, 3, C) += (with_dw) for the images [first, last), M = 1: one pass
    over the output rows of each image (the module's backward). x or dx is not read when its flag is off."""
    N, P, Q, C = dy.shape
    H, W = (dx.shape[1], dx.shape[2]) if with_dx else (x.shape[1], x.shape[2])
    q_a, q_b = _columns(-left, sw, Q, W - 2 * dw)
    stride1 = sh == 1 and sw == 1
    zero = dwk.dtype.type(0)
    xf = x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
    dyf = dy.reshape(N * P, Q * C)
    d = dwk.reshape(9 * C)
    wf = np.ascontiguousarray(wk[:, ::-1])  # taps mirrored along s, for the stride-1 input gradient
    for n in range(first, last):
        zeroed = 0
        for p in range(P):
            g_row = dy[n, p]
            gf = dyf[n * P + p]
            if with_dw:
                _filter_gradient_row(x, xf, g_row, gf, sh, sw, dh, dw, top, left, n, p, q_a, q_b, d)
            if with_dx:
                if stride1:
                    if 0 <= p - top < H:
                        _input_gradient_row_stride1(dy, dyf, wf, dh, dw, top, left, n, p - top, dx)
                else:
                    zeroed = _input_gradient_scatter_row(g_row, gf, wk, sh, sw, dh, dw, top, left, n, p, q_a, q_b,
                                                         zeroed, dx)
        if with_dx:
            if stride1:
                for h in range(max(0, P - top), H):
                    _input_gradient_row_stride1(dy, dyf, wf, dh, dw, top, left, n, h, dx)
            else:
                for h in range(zeroed, H):
                    dx[n, h] = zero


# --- the backend's functions ---------------------------------------------------------------------


def _wk(w):
    R, S, C, M = w.shape
    return w.reshape(R, S, C * M)


def depthwise_conv2d_forward(x, w, g):
    """y (N, P, Q, C * M), output rows shared between the threads in chunks."""
    y = np.empty(g.output_shape, x.dtype)
    wk = _wk(w)
    rows = g.N * g.P
    per_chunk = max(1, ROW_GRAIN // max(1, g.Q * g.K), -(-rows // (4 * thread_count())))
    bounds = chunk_bounds(rows, per_chunk)
    fast = fast_applies(g)

    def task(i):
        start, stop = bounds[i]
        if fast:
            forward_rows_3x3(x, wk, g.sh, g.sw, g.dh, g.dw, g.top, g.left, start, stop, y)
        else:
            forward_rows(x, wk, g.M, g.sh, g.sw, g.dh, g.dw, g.top, g.left, start, stop, y)

    run_chunks(task, len(bounds))
    return y


def _backward(x, w, dy, g, with_dx, with_dw):
    """(dx or None, dw or None) in one pass over dy (and x), per chunk of whole images (no two threads
    write the same dx row); each chunk's dw partial added in chunk order, so the bits do not
    depend on which thread ran which chunk."""
    wk = _wk(w)
    bounds = chunk_bounds(g.N, max(1, -(-g.N // (2 * thread_count()))))
    dw_partials = partials(len(bounds), wk.shape, dy.dtype)
    dx = np.empty(g.input_shape, dy.dtype) if with_dx else np.empty((1, 1, 1, 1), dy.dtype)
    fast = fast_applies(g)

    def task(i):
        first, last = bounds[i]
        if fast:
            backward_images_3x3(x, wk, dy, g.sh, g.sw, g.dh, g.dw, g.top, g.left, first, last, with_dx, with_dw, dx,
                                dw_partials[i])
        else:
            backward_images(x, wk, dy, g.M, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.H, g.W, first, last, with_dx,
                            with_dw, dx, dw_partials[i])

    run_chunks(task, len(bounds))
    return (dx if with_dx else None), (sum_in_order(dw_partials).reshape(w.shape) if with_dw else None)


def depthwise_conv2d_backward(x, w, dy, g, input_gradient=True):
    """(dx or None, dw): both gradients in one pass over dy and x."""
    return _backward(x, w, dy, g, input_gradient, True)


def depthwise_conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C) alone."""
    x = np.empty((1, g.H, g.W, g.C), dy.dtype)  # not read without dw: its shape gives H, W, C
    return _backward(x, w, dy, g, True, False)[0]


def depthwise_conv2d_backward_filter(x, dy, g):
    """dw (R, S, C, M) alone."""
    w = np.empty(g.filter_shape, x.dtype)  # not read without dx: its shape gives R, S, C, M
    return _backward(x, w, dy, g, False, True)[1]
