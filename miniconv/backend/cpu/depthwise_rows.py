"""The depthwise convolution's row loops (3 x 3, and the 5 x 5 forward): four output cells at a time on
flat row views.

Shape legend: C channels, cells the output cells of a row; rows (r0, r1, r2) are flat views of the
(zero-padded) input rows a filter row reads, from the first cell's first column; t (9 C) the
filter (3 r + s) C + c; g (cells C) a dy row; d (9 C) the filter gradient.

    dot9_row      out[k C + c]        = sum_{r,s} row_r[(k sw + s dw) C + c] * t[(3 r + s) C + c]  (+ bias, ReLU6)
    outer9_row    d[(3 r + s) C + c] += sum_k row_r[(k sw + s dw) C + c] * g[k C + c]
    scatter3_row  row[(k sw + s dw) C + c] += g[k C + c] * t[s C + c]        (one filter row t)
    gather_s2_row out[w C + c] = the dy cells of one or two rows that reach dx cell w (stride 2)
    dot5_row      out[k C + c]       += sum_s row[(k sw + s dw) C + c] * t[s C + c]  (one 5-tap filter row t)

Why flat views: with 2-D indexing LLVM checks every pair of accesses for overlap on every entry to
the channel loop (a runtime check per pair of views); short channel loops (C = 32: two vector
iterations) then spent more time in the checks than in the products. Here every index is c plus a
multiple of C. Why groups of four cells loaded before the first store: a column shared by
neighbouring cells is loaded once, and a store cannot force a reload. Why pairs for other strides
and three store targets at most: past ~100 pairs of views to check, LLVM stops vectorising. The
exception is ``outer9_row``, which works on a copy of d in a stack array that no load can overlap:
nothing to check, so its groups add all nine taps in one loop.
"""

from __future__ import annotations

from numba import njit

from .prefetch import prefetch_share
from .stack_arrays import stack_array

# Each helper works on one group of GROUP consecutive cells, its rows given as flat views starting
# at the group's first column: a loop over the channels c whose every index is c plus a multiple of
# C, so LLVM checks the views for overlap once per group (not once per pair of accesses, as with
# 2-D indexing) and, where stride and dilation are the literal 1 or 2 of the wrappers below,
# loads a column shared by two cells once. Nine taps and four cells: 9 filter loads, 18 input loads
# (stride 1) and 4 stores for 36 products, where one cell at a time needs 19 memory operations
# for 9.

GROUP = 4


@njit(nogil=True, cache=True, inline="always")
def _finish(v, bias, c, epilogue):
    """An output value as stored: v (epilogue 0), v + bias[c] (1), then ReLU6 (2: 0 where <= 0, 6
    where >= 6, NaN kept): ``elementwise_kernels.bias_activation_rows``' operations, so its bits."""
    if epilogue == 0:
        return v
    z = v + bias[c]
    if epilogue == 1:
        return z
    zero, six = bias.dtype.type(0), bias.dtype.type(6)
    return zero if z <= zero else (six if z >= six else z)  # noqa: FURB136 (min(six, NaN) would give 6)


@njit(nogil=True, cache=True, inline="always")
def _dot9(r0, r1, r2, t, o, C, sw, dw, bias, epilogue):
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
        o[c] = _finish(o0, bias, c, epilogue)
        o[C + c] = _finish(o1, bias, c, epilogue)
        o[2 * C + c] = _finish(o2, bias, c, epilogue)
        o[3 * C + c] = _finish(o3, bias, c, epilogue)


@njit(nogil=True, cache=True, inline="always")
def _three_taps(row, c, g0, g1, g2, g3, a1, a2, a3, d1, d2):
    """(e0, e1, e2), e_s = sum_k row[k*sw*C + s*dw*C + c] * g_k over cells k < 4 (a_k = k*sw*C,
    d_s = s*dw*C): one filter row's three taps of the filter gradient, for channel c."""
    x00, x01, x02 = row[c], row[d1 + c], row[d2 + c]
    x10, x11, x12 = row[a1 + c], row[a1 + d1 + c], row[a1 + d2 + c]
    x20, x21, x22 = row[a2 + c], row[a2 + d1 + c], row[a2 + d2 + c]
    x30, x31, x32 = row[a3 + c], row[a3 + d1 + c], row[a3 + d2 + c]
    return (x00 * g0 + x10 * g1 + x20 * g2 + x30 * g3,
            x01 * g0 + x11 * g1 + x21 * g2 + x31 * g3,
            x02 * g0 + x12 * g1 + x22 * g2 + x32 * g3)


@njit(nogil=True, cache=True, inline="always")
def _outer9(r0, r1, r2, g, d, C, sw, dw):
    """d[(3r + s)*C + c] += sum_k row_r[(k*sw + s*dw)*C + c] * g[k*C + c], cells k < 4: all nine taps
    in one loop over the channels, for a d that no load can overlap (a stack array: with d in an
    argument's memory LLVM would check nine store targets against every load, and it gives up)."""
    a1, a2, a3 = sw * C, 2 * sw * C, 3 * sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        g0, g1, g2, g3 = g[c], g[C + c], g[2 * C + c], g[3 * C + c]
        e0, e1, e2 = _three_taps(r0, c, g0, g1, g2, g3, a1, a2, a3, d1, d2)
        e3, e4, e5 = _three_taps(r1, c, g0, g1, g2, g3, a1, a2, a3, d1, d2)
        e6, e7, e8 = _three_taps(r2, c, g0, g1, g2, g3, a1, a2, a3, d1, d2)
        d[c] += e0
        d[C + c] += e1
        d[2 * C + c] += e2
        d[3 * C + c] += e3
        d[4 * C + c] += e4
        d[5 * C + c] += e5
        d[6 * C + c] += e6
        d[7 * C + c] += e7
        d[8 * C + c] += e8


@njit(nogil=True, cache=True, inline="always")
def _outer3_pair(row, g, d, C, sw, dw):
    """``_outer3`` for two cells (a row's last ones)."""
    a1 = sw * C
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        g0, g1 = g[c], g[C + c]
        e0 = row[c] * g0 + row[a1 + c] * g1
        e1 = row[d1 + c] * g0 + row[a1 + d1 + c] * g1
        e2 = row[d2 + c] * g0 + row[a1 + d2 + c] * g1
        d[c] += e0
        d[C + c] += e1
        d[2 * C + c] += e2


@njit(nogil=True, cache=True, inline="always")
def _outer3_one(row, g, d, C, dw):
    """``_outer3`` for one cell."""
    d1, d2 = dw * C, 2 * dw * C
    for c in range(C):
        g0 = g[c]
        e0 = row[c] * g0
        e1 = row[d1 + c] * g0
        e2 = row[d2 + c] * g0
        d[c] += e0
        d[C + c] += e1
        d[2 * C + c] += e2


@njit(nogil=True, cache=True, inline="always")
def _dot9_pair(r0, r1, r2, t, o, C, sw, dw, bias, epilogue):
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
        o[c] = _finish(o0, bias, c, epilogue)
        o[C + c] = _finish(o1, bias, c, epilogue)


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


@njit(nogil=True, cache=True, inline="always")
def _dot9_cells(r0, r1, r2, t, o, C, sw, dw, cells, bias, epilogue):
    """``_dot9`` for ``cells`` < 4 cells, one at a time (a row's last ones)."""
    for k in range(cells):
        a, b = k * sw * C, k * C
        d1, d2 = a + dw * C, a + 2 * dw * C
        for c in range(C):
            v = (r0[a + c] * t[c] + r0[d1 + c] * t[C + c] + r0[d2 + c] * t[2 * C + c]
                 + r1[a + c] * t[3 * C + c] + r1[d1 + c] * t[4 * C + c] + r1[d2 + c] * t[5 * C + c]
                 + r2[a + c] * t[6 * C + c] + r2[d1 + c] * t[7 * C + c] + r2[d2 + c] * t[8 * C + c])
            o[b + c] = _finish(v, bias, c, epilogue)


@njit(nogil=True, cache=True)
def dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, bias, epilogue, ahead):
    """out[k*C + c] = sum_{r,s} row_r[(k*sw + s*dw)*C + c] * t[(3r + s)*C + c] for k < cells, finished by
    ``epilogue`` (0 none, 1 + bias[c], 2 + bias[c] then ReLU6) before the store: groups of four cells
    and a pair (stride 1), pairs (other strides), the rest one by one (every cell's sum in the same
    order, so the grouping does not change its bits). Rows r0 r1 r2 are flat (zero-padded) rows from
    the first cell's first column; stride 1 and 2 (dilation 1) and each epilogue get literal values.
    ``ahead`` (flat, any length, 0 for none): memory the caller reads next, prefetched a share before
    each group or pair (``prefetch.prefetch_share``)."""
    if epilogue == 0:
        _dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, bias, 0, ahead)
        return
    local = stack_array(C, bias)  # the bias where no store can reach it: LLVM checks no overlap
    for c in range(C):
        local[c] = bias[c]
    if epilogue == 1:
        _dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, local, 1, ahead)
    else:
        _dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, local, 2, ahead)


@njit(nogil=True, cache=True, inline="always")
def dot9_row_inlined(r0, r1, r2, t, out, C, sw, dw, cells, ahead):
    """``dot9_row`` without an epilogue, inlined into its caller: an ``out`` on the caller's stack
    (``stack_arrays``) is then known to overlap no row, and the groups' loops run without checking
    (``depthwise_kernels.local_rows``)."""
    _dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, t, 0, ahead)  # epilogue 0: its bias (t) is not read


@njit(nogil=True, cache=True, inline="always")
def _dot9_row(r0, r1, r2, t, out, C, sw, dw, cells, bias, epilogue, ahead):
    """``dot9_row`` for one epilogue."""
    if sw == 1 and dw == 1:
        step, groups = GROUP * C, cells // GROUP
        for i in range(groups):
            prefetch_share(ahead, i, groups)
            _dot9(r0[i * step:], r1[i * step:], r2[i * step:], t, out[i * step:], C, 1, 1, bias, epilogue)
        done = groups * GROUP
        if cells - done >= 2:  # a pair of the last cells (a 7-cell row: 4 + 2 + 1)
            _dot9_pair(r0[done * C:], r1[done * C:], r2[done * C:], t, out[done * C:], C, 1, 1, bias, epilogue)
            done += 2
        a = done * C  # the last cell with literal strides too (with runtime ones its loop did not vectorise)
        _dot9_cells(r0[a:], r1[a:], r2[a:], t, out[a:], C, 1, 1, cells - done, bias, epilogue)
        return
    else:
        step, groups = 2 * sw * C, cells // 2
        if sw == 2 and dw == 1:
            for i in range(groups):
                prefetch_share(ahead, i, groups)
                _dot9_pair(r0[i * step:], r1[i * step:], r2[i * step:], t, out[i * 2 * C:], C, 2, 1, bias, epilogue)
        else:
            for i in range(groups):
                prefetch_share(ahead, i, groups)
                _dot9_pair(r0[i * step:], r1[i * step:], r2[i * step:], t, out[i * 2 * C:], C, sw, dw, bias, epilogue)
        done = groups * 2
    a = done * sw * C
    _dot9_cells(r0[a:], r1[a:], r2[a:], t, out[done * C:], C, sw, dw, cells - done, bias, epilogue)


@njit(nogil=True, cache=True)
def outer9_row(r0, r1, r2, g, d, C, sw, dw, cells, ahead, ahead2):
    """d[(3r + s)*C + c] += sum_k row_r[(k*sw + s*dw)*C + c] * g[k*C + c] for k < cells (the filter
    gradient of one output row): ``_outer9`` on groups of four cells, then a pair, then one, per
    filter row, all on a copy of d in a stack array (``stack_arrays``: no load can overlap it, so
    nothing is checked), copied back at the end: the same sums in the same order, 1.2 instead of
    2.8 us a row of 112 cells of 32 channels (one thread). Its caller checks that the copy's 9 C values
    fit the stack (``stack_arrays.fits_on_stack``). ``ahead`` and ``ahead2`` (flat, any length, 0 for none):
    memory the caller reads next, prefetched a share of each before each group (``prefetch.prefetch_share``)."""
    local = stack_array(9 * C, d)
    for j in range(9 * C):
        local[j] = d[j]
    step, groups = GROUP * sw * C, cells // GROUP
    if sw == 1 and dw == 1:
        for i in range(groups):
            prefetch_share(ahead, i, groups)
            prefetch_share(ahead2, i, groups)
            _outer9(r0[i * step:], r1[i * step:], r2[i * step:], g[i * GROUP * C:], local, C, 1, 1)
    elif sw == 2 and dw == 1:
        for i in range(groups):
            prefetch_share(ahead, i, groups)
            prefetch_share(ahead2, i, groups)
            _outer9(r0[i * step:], r1[i * step:], r2[i * step:], g[i * GROUP * C:], local, C, 2, 1)
    else:
        for i in range(groups):
            prefetch_share(ahead, i, groups)
            prefetch_share(ahead2, i, groups)
            _outer9(r0[i * step:], r1[i * step:], r2[i * step:], g[i * GROUP * C:], local, C, sw, dw)
    if sw == 1 and dw == 1:  # the last cells with literal strides (with runtime ones their loops did not vectorise)
        _outer9_tail(r0, r1, r2, g, local, C, 1, 1, cells, groups * GROUP)
    else:
        _outer9_tail(r0, r1, r2, g, local, C, sw, dw, cells, groups * GROUP)
    for j in range(9 * C):
        d[j] = local[j]


@njit(nogil=True, cache=True, inline="always")
def _outer9_tail(r0, r1, r2, g, local, C, sw, dw, cells, k):
    """``outer9_row``'s last cells from cell k on (fewer than four), into its stack copy ``local`` of d:
    a pair, then one (a loop per tap and cell was 3-4x slower a cell)."""
    d0, d1, d2 = local[: 3 * C], local[3 * C : 6 * C], local[6 * C :]
    if cells - k >= 2:
        a, gk = k * sw * C, g[k * C:]
        _outer3_pair(r0[a:], gk, d0, C, sw, dw)
        _outer3_pair(r1[a:], gk, d1, C, sw, dw)
        _outer3_pair(r2[a:], gk, d2, C, sw, dw)
        k += 2
    if k < cells:  # at most one left (cells - 4 groups < 4)
        a, gk = k * sw * C, g[k * C:]
        _outer3_one(r0[a:], gk, d0, C, dw)
        _outer3_one(r1[a:], gk, d1, C, dw)
        _outer3_one(r2[a:], gk, d2, C, dw)


@njit(nogil=True, cache=True)
def scatter3_row(g, t, row, C, sw, dw, cells):
    """row[(k*sw + s*dw)*C + c] += g[k*C + c] * t[s*C + c] for k < cells (one filter row t = wk[r]
    scattered into one zero-padded dx row): pairs, then the last cell alone."""
    step, pairs = 2 * sw * C, cells // 2
    if sw == 2 and dw == 1:
        for i in range(pairs):
            _scatter3_pair(g[i * 2 * C:], t, row[i * step:], C, 2, 1)
    else:
        for i in range(pairs):
            _scatter3_pair(g[i * 2 * C:], t, row[i * step:], C, sw, dw)
    if cells % 2:
        k = cells - 1
        a = k * sw * C
        for s in range(3):
            dst = row[a + s * dw * C:]
            for c in range(C):
                dst[c] += g[k * C + c] * t[s * C + c]


# --- the 5 x 5 forward: one filter row at a time, added to the output row ------------------------
# Twenty-five taps and four cells held in registers at once would be too many values for LLVM to
# keep (it stops vectorising); one filter row's five taps per call, their sum added to the output
# value, keep the bits of ``depthwise_loops.forward_cells``: out = 0, then out += x * t tap by tap
# in (r, s) order (``out + a + b`` adds left to right, and nothing is reassociated).


@njit(nogil=True, cache=True, inline="always")
def _dot5(row, t, o, C, sw, dw):
    """o[k*C + c] += sum_s row[(k*sw + s*dw)*C + c] * t[s*C + c] (s < 5, in order), cells k < 4; all
    loads before the first store. Stride 1 and dilation 1: eight columns for four cells."""
    a1, a2, a3 = sw * C, 2 * sw * C, 3 * sw * C
    d1, d2, d3, d4 = dw * C, 2 * dw * C, 3 * dw * C, 4 * dw * C
    for c in range(C):
        w0, w1, w2, w3, w4 = t[c], t[C + c], t[2 * C + c], t[3 * C + c], t[4 * C + c]
        o0 = (o[c] + row[c] * w0 + row[d1 + c] * w1 + row[d2 + c] * w2 + row[d3 + c] * w3
              + row[d4 + c] * w4)
        o1 = (o[C + c] + row[a1 + c] * w0 + row[a1 + d1 + c] * w1 + row[a1 + d2 + c] * w2
              + row[a1 + d3 + c] * w3 + row[a1 + d4 + c] * w4)
        o2 = (o[2 * C + c] + row[a2 + c] * w0 + row[a2 + d1 + c] * w1 + row[a2 + d2 + c] * w2
              + row[a2 + d3 + c] * w3 + row[a2 + d4 + c] * w4)
        o3 = (o[3 * C + c] + row[a3 + c] * w0 + row[a3 + d1 + c] * w1 + row[a3 + d2 + c] * w2
              + row[a3 + d3 + c] * w3 + row[a3 + d4 + c] * w4)
        o[c] = o0
        o[C + c] = o1
        o[2 * C + c] = o2
        o[3 * C + c] = o3


@njit(nogil=True, cache=True, inline="always")
def _dot5_pair(row, t, o, C, sw, dw):
    """``_dot5`` for two cells (strides other than 1: fewer columns, so fewer views for LLVM to check)."""
    a1 = sw * C
    d1, d2, d3, d4 = dw * C, 2 * dw * C, 3 * dw * C, 4 * dw * C
    for c in range(C):
        w0, w1, w2, w3, w4 = t[c], t[C + c], t[2 * C + c], t[3 * C + c], t[4 * C + c]
        o0 = (o[c] + row[c] * w0 + row[d1 + c] * w1 + row[d2 + c] * w2 + row[d3 + c] * w3
              + row[d4 + c] * w4)
        o1 = (o[C + c] + row[a1 + c] * w0 + row[a1 + d1 + c] * w1 + row[a1 + d2 + c] * w2
              + row[a1 + d3 + c] * w3 + row[a1 + d4 + c] * w4)
        o[c] = o0
        o[C + c] = o1


@njit(nogil=True, cache=True, inline="always")
def _dot5_one(row, t, o, C, dw):
    """``_dot5`` for one cell."""
    d1, d2, d3, d4 = dw * C, 2 * dw * C, 3 * dw * C, 4 * dw * C
    for c in range(C):
        o[c] = (o[c] + row[c] * t[c] + row[d1 + c] * t[C + c] + row[d2 + c] * t[2 * C + c]
                + row[d3 + c] * t[3 * C + c] + row[d4 + c] * t[4 * C + c])


@njit(nogil=True, cache=True)
def dot5_row(row, t, out, C, sw, dw, cells, ahead, share, shares):
    """out[k*C + c] += sum_s row[(k*sw + s*dw)*C + c] * t[s*C + c] for k < cells: one filter row t (5 C)
    over one flat zero-padded input row; groups of four cells (stride 1), then pairs, then the last
    cell alone. Stride 1 and 2 (dilation 1) get literal offsets. ``ahead`` (flat, any length): memory
    the caller reads next, of which this call prefetches share ``share`` of ``shares`` (one per filter
    row), spread over its groups or pairs (``prefetch.prefetch_share``)."""
    done = 0
    if sw == 1 and dw == 1:
        step, groups = GROUP * C, cells // GROUP
        for i in range(groups):
            prefetch_share(ahead, share * groups + i, shares * groups)
            _dot5(row[i * step:], t, out[i * step:], C, 1, 1)
        done = groups * GROUP
    pairs = (cells - done) // 2
    if sw == 1 and dw == 1:
        for i in range(done, done + 2 * pairs, 2):
            _dot5_pair(row[i * C:], t, out[i * C:], C, 1, 1)
    elif sw == 2 and dw == 1:
        for i in range(done, done + 2 * pairs, 2):
            prefetch_share(ahead, share * pairs + i // 2, shares * pairs)
            _dot5_pair(row[2 * i * C:], t, out[i * C:], C, 2, 1)
    else:
        for i in range(done, done + 2 * pairs, 2):
            prefetch_share(ahead, share * pairs + i // 2, shares * pairs)
            _dot5_pair(row[i * sw * C:], t, out[i * C:], C, sw, dw)
    done += 2 * pairs
    if done < cells:
        if dw == 1:
            _dot5_one(row[done * sw * C:], t, out[done * C:], C, 1)
        else:
            _dot5_one(row[done * sw * C:], t, out[done * C:], C, dw)


# --- the stride-2 input gradient, gathered: each dx cell from the dy cells that reach it -------------
# Stride 2 and dilation 1: dx row h reads dy rows p = (h + top - r) / 2 for the taps r with h + top - r
# even (r = 0 and 2, or r = 1 alone), and column w = j - left reads dy columns (j - s) / 2 for the taps s
# with j - s even. Each dy row comes zero-padded with one cell in front (padded cell m + 1 is dy
# column m), so a column pair (j = 2m even, j + 1 odd) reads padded cells m and m + 1 of each row:
#
#     o[j]     = 0 + gb[m] tb2 + gb[m+1] tb0 + ga[m] ta2 + ga[m+1] ta0     (two rows: b = p - 1, a = p)
#     o[j + 1] = 0 + gb[m+1] tb1 + ga[m+1] ta1
#
# the terms in the order in which the scatter (``scatter3_row`` over dy rows in order, into rows of
# zeros) adds them, and from 0: the same bits, signed zeros included; a padding cell adds 0 x t, which
# leaves every sum's bits alone for a finite filter (as the scatter, the caller needs one).


@njit(nogil=True, cache=True, inline="always")
def _gather2_four(ga, gb, ta, tb, o, C):
    """Four dx cells (two column pairs from an even column) from two dy rows: padded cells 0..2 of ga, gb."""
    zero = o.dtype.type(0)
    for c in range(C):
        a0, a1, a2 = ga[c], ga[C + c], ga[2 * C + c]
        b0, b1, b2 = gb[c], gb[C + c], gb[2 * C + c]
        u0, u1, u2 = ta[c], ta[C + c], ta[2 * C + c]
        v0, v1, v2 = tb[c], tb[C + c], tb[2 * C + c]
        o0 = zero + b0 * v2 + b1 * v0 + a0 * u2 + a1 * u0
        o1 = zero + b1 * v1 + a1 * u1
        o2 = zero + b1 * v2 + b2 * v0 + a1 * u2 + a2 * u0
        o3 = zero + b2 * v1 + a2 * u1
        o[c] = o0
        o[C + c] = o1
        o[2 * C + c] = o2
        o[3 * C + c] = o3


@njit(nogil=True, cache=True, inline="always")
def _gather1_four(ga, ta, o, C):
    """``_gather2_four`` from one dy row (the odd rows' tap r = 1)."""
    zero = o.dtype.type(0)
    for c in range(C):
        a0, a1, a2 = ga[c], ga[C + c], ga[2 * C + c]
        u0, u1, u2 = ta[c], ta[C + c], ta[2 * C + c]
        o0 = zero + a0 * u2 + a1 * u0
        o1 = zero + a1 * u1
        o2 = zero + a1 * u2 + a2 * u0
        o3 = zero + a2 * u1
        o[c] = o0
        o[C + c] = o1
        o[2 * C + c] = o2
        o[3 * C + c] = o3


@njit(nogil=True, cache=True, inline="always")
def _gather_cell(ga, gb, ta, tb, two, o, C, j):
    """One dx cell at padded-input column j (``_gather2_four``'s sums for a single cell)."""
    m = j // 2
    zero = o.dtype.type(0)
    if j % 2 == 0:
        for c in range(C):
            total = zero
            if two:
                total = total + gb[m * C + c] * tb[2 * C + c] + gb[(m + 1) * C + c] * tb[c]
            o[c] = total + ga[m * C + c] * ta[2 * C + c] + ga[(m + 1) * C + c] * ta[c]
    else:
        for c in range(C):
            total = zero
            if two:
                total = total + gb[(m + 1) * C + c] * tb[C + c]
            o[c] = total + ga[(m + 1) * C + c] * ta[C + c]


@njit(nogil=True, cache=True)
def gather_s2_row(ga, gb, ta, tb, two, out, C, W, left, ahead):
    """out[w C + c] for w < W (a dx row, stride 2, dilation 1) = the sums above over dy row ga (taps
    ta = wk[r], 3 C) and, if ``two``, gb (taps tb); ga, gb zero-padded with one cell in front and at
    least (W - 1 + left) // 2 + 2 cells long. An odd first column alone, groups of four cells, the
    rest alone. ``ahead`` (flat, any length): prefetched a share before each group, as in ``dot9_row``."""
    w = 0
    if left % 2 == 1:
        _gather_cell(ga, gb, ta, tb, two, out, C, left)
        w = 1
    groups = (W - w) // 4
    for i in range(groups):
        prefetch_share(ahead, i, groups)
        m = (w + left) // 2
        if two:
            _gather2_four(ga[m * C:], gb[m * C:], ta, tb, out[w * C:], C)
        else:
            _gather1_four(ga[m * C:], ta, out[w * C:], C)
        w += 4
    for k in range(w, W):
        _gather_cell(ga, gb, ta, tb, two, out[k * C:], C, k + left)
