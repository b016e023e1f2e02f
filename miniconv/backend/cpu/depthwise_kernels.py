"""The depthwise convolution's backend functions, their 3 x 3 kernels (MobileNet's, EfficientNet's) and 5 x 5 forward.

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K = C * M output
channels, R S kernel size, P Q output size; here mostly R = S = 3 and M = 1 (K = C). The filter is
read as wk (R, S, K), formulas in ``depthwise_loops``.

The op does 9 multiply-adds per value it reads, so memory traffic should bound it; one
read-modify-write of the output per product (``depthwise_loops``' general loops) costs more than
that traffic. Here, M = 1 and 3 x 3 filters, any stride, dilation and padding not far past the
input:

    forward    per output row, its three input rows zero-padded into a ring of rows (each input
               row copied once, shared by the output rows that read it), then every cell takes
               ``dot9_row``: four cells a loop over the channels, their 36 products summed in
               registers, 9 filter and 18 input loads (stride 1) and 4 stores for 36 products;
               with a bias (and ReLU6), each value finished before its store; without, at stride 1
               and up to 96 channels, each row formed on the stack, then copied (``local_rows``)
    backward   one pass per image over the output rows p in order, dy and x each read once
               (with dw, each dy row first copied into a ring of rows unless prefetched, below;
               after a bias + ReLU6, ``depthwise_conv2d_bias_backward``, formed there from dz and z,
               and dbias summed there):
               dw   ``outer9_row``: four cells' products for each of the nine taps summed in
                    registers, then added to dw (a copy on the row loop's stack: ``stack_arrays``;
                    zero-padded input rows: a padding cell multiplies dy)
               dx   stride 1: input row h = p - top once its last dy row p is read, as the forward
                    over zero-padded dy rows with the taps mirrored (finite filters only: padding
                    there must add nothing, and 0 * inf would not); stride 2 (dilation 1): rows
                    2 p - top and 2 p + 1 - top, each cell gathered from the one or two dy rows and
                    cells that reach it (``gather_s2_row``: dx written once, the scatter's bits);
                    other strides: dy row p scattered into padded accumulation rows, each copied
                    out once complete

5 x 5 filters (EfficientNet's), M = 1, forward only: per output row, its five zero-padded input rows
from the ring, each filter row added to the output row by ``dot5_row`` (four cells a loop over the
channels, five taps each): the general loops' sums in their order, so their bits, 1.2-2.7x faster
(EfficientNet-Lite0's nine 5 x 5 layers at batch 20: 16.8 ms instead of 30.6, measured).

For tensors larger than the cache (``prefetch.prefetches``), each row loop prefetches into L2 what the next
output row will read from memory, a share before each group of cells (``prefetch``): the forward the
input rows its ring takes in next, the backward dy's next row, z's (after ReLU6) and x's.

The row loops (``dot9_row``, ``outer9_row``, ``gather_s2_row``, ``scatter3_row``, ``dot5_row``) live in
``depthwise_rows``. Every other filter size or multiplier, the 5 x 5 backward, a geometry whose rings would outgrow
``fast_applies``' bound, a backward whose 9 C filter-gradient values would not fit ``stack_arrays``' budget (over
3,640 float32 channels), and a filter with an inf or NaN (for dx) take ``depthwise_loops``' kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .depthwise_loops import backward_images, forward_rows
from .depthwise_rows import dot5_row, dot9_row, dot9_row_inlined, gather_s2_row, outer9_row, scatter3_row
from .elementwise_kernels import bias_activation_backward, bias_activation_rows, relu6_gradient_rows
from .prefetch import next_row, prefetches
from .stack_arrays import fits_on_stack, stack_array
from .streaming_stores import stream_copy, streams
from .work_sharing import chunk_bounds, partials, run_chunks, scratch, sum_in_order, thread_count

ROW_GRAIN = 1 << 14  # output values per shared chunk of forward rows, at least (~10 us of work)
IMAGE_CHUNKS_PER_THREAD = 16  # backward chunks are whole images, at most N / (16 threads) of them


def fast_applies(g) -> bool:
    """Whether the 3 x 3, multiplier-1 kernels below apply (forward and backward)."""
    return g.R == 3 and g.S == 3 and _rings_fit(g)


def fast5_applies(g) -> bool:
    """Whether the 5 x 5, multiplier-1 forward below applies (the backward takes the general loops)."""
    return g.R == 5 and g.S == 5 and _rings_fit(g)


def _rings_fit(g) -> bool:
    """Multiplier 1, and a stride, dilation and padding that keep the rings within a few images' size
    (at most 2 H + 8 rows of at most 2 W + 8 cells). A stride, dilation or padding far past the input
    (2**31 - 1 would make rings of 2**31 rows or cells, kept per thread) takes ``depthwise_loops``'
    kernels, which store no padding."""
    return g.M == 1 and ring_rows(g.R, g.dh, g.sh) <= 2 * g.H + 8 and _padded_width(g) <= 2 * g.W + 8


# --- rings of zero-padded rows ---------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _fill(dst, src, offset, C):
    """dst (flat, Wd cells) = src (flat, Ws cells) shifted right by ``offset`` cells, zeros elsewhere."""
    Wd, Ws = dst.shape[0] // C, src.shape[0] // C
    lo = min(max(offset, 0), Wd)
    hi = min(max(offset + Ws, lo), Wd)
    for j in range(lo * C):
        dst[j] = 0.0
    part = dst[lo * C : hi * C]
    source = src[(lo - offset) * C : (hi - offset) * C]
    for j in range(part.shape[0]):
        part[j] = source[j]
    for j in range(hi * C, Wd * C):
        dst[j] = 0.0


@njit(nogil=True, cache=True, inline="always")
def _copy(src, dst):
    """dst[:] = src, both flat rows of one length."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(nogil=True, cache=True, inline="always")
def _padded(rows, index, inside, offset, ring, tags, zero, C):
    """Row ``index`` zero-padded by ``offset`` cells on the left, from the ring (filled on first use: a row
    shared by consecutive output rows is copied once); the zero row if not inside. ``rows`` (flat) holds
    every row, or a ring of the latest ones: row ``index`` is read at index mod their count."""
    if not inside:
        return zero
    slot = index % ring.shape[0]
    if tags[slot] != index:
        _fill(ring[slot], rows[index % rows.shape[0]], offset, C)
        tags[slot] = index
    return ring[slot]


@njit(nogil=True, cache=True, inline="always")
def _rows_ahead(x, u, last, P, sh, R, dh, top):
    """The input rows (one flat span of x, N H W C) that output row u + 1 reads and output row u does not
    (with dilation 1: the rows the ring takes in next), or an empty span when u + 1 is past ``last``: what
    the row loops prefetch while they compute row u (``prefetch.prefetch_share``)."""
    N, H, W, C = x.shape
    flat = x.reshape(N * H * W * C)
    if u + 1 >= last:
        return flat[:0]
    n, p = divmod(u + 1, P)
    lo = p * sh - top  # the next output row's first and last input rows
    hi = min(H - 1, lo + (R - 1) * dh)
    if p > 0:  # rows up to the current output row's last are in the ring
        lo = max(lo, (p - 1) * sh - top + (R - 1) * dh + 1)
    lo = max(0, lo)
    if lo > hi:
        return flat[:0]
    return flat[(n * H + lo) * W * C : (n * H + hi + 1) * W * C]


def ring_rows(R, dh, sh) -> int:
    """Slots of a ring: the (R - 1) dh + 1 rows of one output row, and those of the next (sh on)."""
    return (R - 1) * dh + 2 + sh


# --- the 3 x 3 kernels -----------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def forward_rows_3x3(x, wk, sh, sw, dh, dw, top, left, first, last, y, ring, tags, zero, bias, epilogue, row, stream,
                     prefetching, local_row):
    """y[n, p] (Q, C) for the output rows u = n * P + p in [first, last); M = 1. Input rows come
    zero-padded from the ring (left columns, and rows outside the input: the zero row), so every
    cell takes ``dot9_row``'s sums and a padding cell multiplies its filter value. ``epilogue`` 1 adds bias
    (C,) to each value before it is stored, 2 also applies ReLU6, 0 neither (the bits of a separate
    ``bias_activation_rows`` pass, without the second pass over the row). ``local_row`` (epilogue 0
    only, ``local_rows``): each row is formed in a stack array (Q C), then copied to y; else with
    ``stream`` in ``row`` (Q C), else in y itself. A row bound for a y larger than the cache is written
    by ``stream_copy`` (``stream``). ``prefetching``: the input rows the next output row takes in are
    prefetched while this one is computed (``prefetch``; an x larger than the cache)."""
    N, H, W, C = x.shape
    _, P, Q, _ = y.shape
    xf = x.reshape(N * H, W * C)
    yf = y.reshape(N * P, Q * C)
    t = wk.reshape(9 * C)
    local = stack_array(Q * C if local_row else 0, y)
    tags[:] = -1
    for u in range(first, last):
        n, p = divmod(u, P)
        h = p * sh - top
        r0 = _padded(xf, n * H + h, 0 <= h < H, left, ring, tags, zero, C)
        r1 = _padded(xf, n * H + h + dh, 0 <= h + dh < H, left, ring, tags, zero, C)
        r2 = _padded(xf, n * H + h + 2 * dh, 0 <= h + 2 * dh < H, left, ring, tags, zero, C)
        ahead = _rows_ahead(x, u, last if prefetching else u + 1, P, sh, 3, dh, top)
        if local_row:
            dot9_row_inlined(r0, r1, r2, t, local, C, sw, dw, Q, ahead)
            if stream:
                stream_copy(local, yf[u])
            else:
                _copy(local, yf[u])
            continue
        dot9_row(r0, r1, r2, t, row if stream else yf[u], C, sw, dw, Q, bias, epilogue, ahead)
        if stream:
            stream_copy(row, yf[u])


@njit(nogil=True, cache=True)
def forward_rows_5x5(x, wk, sh, sw, dh, dw, top, left, first, last, y, ring, tags, zero, bias, epilogue, row, stream,
                     prefetching):
    """``forward_rows_3x3`` for 5 x 5 filters: each output row zeroed, then ``dot5_row`` adds its five
    zero-padded input rows' filter rows in order (r, then s within ``dot5_row``), the bits of
    ``depthwise_loops.forward_rows``; with ``stream``, in ``row`` and then streamed to y; ``prefetching``
    as there, a fifth of the rows ahead during each filter row."""
    N, H, W, C = x.shape
    _, P, Q, _ = y.shape
    xf = x.reshape(N * H, W * C)
    yf = y.reshape(N * P, Q * C)
    t = wk.reshape(25 * C)
    tags[:] = -1
    for u in range(first, last):
        n, p = divmod(u, P)
        out = row if stream else yf[u]
        out[:] = 0.0
        ahead = _rows_ahead(x, u, last if prefetching else u + 1, P, sh, 5, dh, top)
        for r in range(5):
            h = p * sh - top + r * dh
            padded = _padded(xf, n * H + h, 0 <= h < H, left, ring, tags, zero, C)
            dot5_row(padded, t[5 * r * C:], out, C, sw, dw, Q, ahead, r, 5)
        if epilogue:
            bias_activation_rows(out.reshape(Q, C), bias, epilogue == 2)
        if stream:
            stream_copy(row, yf[u])


@njit(nogil=True, cache=True)
def _flush(acc, atags, dxf, first_row, last_row, left, C, W, stream):
    """dx rows [first_row, last_row) (flat indices) from their accumulation rows (``stream_copy`` with
    ``stream``), zeros for rows no tap reached."""
    for index in range(first_row, last_row):
        slot = index % acc.shape[0]
        out = dxf[index]
        if atags[slot] == index:
            src = acc[slot, left * C : (left + W) * C]
            if stream:
                stream_copy(src, out)
                continue
            for j in range(W * C):
                out[j] = src[j]
        else:
            for j in range(W * C):
                out[j] = 0.0


@njit(nogil=True, cache=True)
def backward_images_3x3(x, wk, dy, z, upstream, sh, sw, dh, dw, top, left, first, last, with_dx, with_dw, dx, dwk,
                        dbias, dy_rows, xring, xtags, gring, gtags, zero, dx_row, stream, prefetching):
    """dx[n] (with_dx) and dwk (3, 3, C) += (with_dw) for the images [first, last), M = 1, finite
    filter values (the stride-1 input gradient reads zero-padded dy: 0 * w must add nothing). One
    pass over each image's output rows p in order:

        dy   with dw: row p copied into the ring dy_rows (at least 2 dh + 2 rows of Q C: the rows
             the gathers below read), a streaming loop before ``outer9_row`` reads it (measured, the
             filter gradient alone at batch 32, one thread: 56x56x144 17.9-18.3 -> 11.5 ms, 14x14x480
             5.1-6.7 -> 4.5-4.6; ``outer9_row`` reading dy from memory itself waits longer than the
             copy takes). upstream True: dy is dz, the upstream gradient of z = relu6(conv + bias),
             and the ring's row is the convolution's gradient, dz * (0 < z < 6)
             (``relu6_gradient_rows``), its column sums added to dbias (C,): no dy tensor is written
             out and read back. dx alone, and dw while prefetching (each next dy row is then in L2
             when its turn comes), read dy's rows where they are: one copy less a row (112 x 112 x 32,
             stride 1, both gradients, two threads: 8.98 -> 8.36 ms at best; the other layers 1-3%)
        dw   ``outer9_row`` of dy row p and input rows p sh - top + r dh, zero-padded (x ring)
        dx   stride 1: row h = p - top once its last dy row p is read: ``dot9_row`` of the dy rows
             h + top - r dh, zero-padded by 2 dw - left (dy ring), with the taps mirrored along s;
             stride 2, dilation 1: rows 2 p - top and 2 p + 1 - top (``_gather_s2``); other strides:
             dy row p scattered into accumulation rows (the dy ring's slots, padded by ``left``), each
             copied to dx once no later dy row reaches it
    x or dx is not read when its flag is off; z and dbias only when upstream is, dy_rows only with
    upstream, or with_dw without prefetching. ``stream``: each dx row is formed in ``dx_row`` (W C) and written by
    ``stream_copy`` (a dx larger than the cache); the scatter's rows are streamed from their ring.
    ``prefetching``: while row p is computed, the rows that row p + 1 reads from memory (dy, z, the
    input rows the x ring takes in) are prefetched a share at a time (``prefetch``): the x rows (and
    z) by ``outer9_row``, dy by the input gradient's row loop (by ``outer9_row`` without dx).
    """
    N, P, Q, C = dy.shape
    H, W = (dx.shape[1], dx.shape[2]) if with_dx else (x.shape[1], x.shape[2])
    stride1 = sh == 1 and sw == 1
    stride2 = sh == 2 and sw == 2 and dh == 1 and dw == 1
    xf = x.reshape(x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
    dyf = dy.reshape(N * P, Q * C)
    zf = z.reshape(z.shape[0] * z.shape[1], z.shape[2] * z.shape[3])
    dxf = dx.reshape(dx.shape[0] * dx.shape[1], dx.shape[2] * dx.shape[3])
    d = dwk.reshape(9 * C)
    wf = np.ascontiguousarray(wk[:, ::-1]).reshape(9 * C)  # taps mirrored along s: the stride-1 gather
    copied = upstream or (with_dw and not prefetching)  # else dy's rows are read in place
    xtags[:] = -1
    for n in range(first, last):
        gtags[:] = -1  # the padded dy ring holds this image's rows (by p), or its dx accumulation rows
        flushed = n * H  # scatter: dx rows before this one are written
        rows = dy_rows if copied else dyf[n * P : (n + 1) * P]
        for p in range(P):
            u = n * P + p
            g = rows[p % rows.shape[0]]
            more = prefetching and u + 1 < last * P  # the next row is this chunk's
            ahead_dy = next_row(dyf, u, more)
            ahead_z = next_row(zf, u if upstream else 0, more and upstream)
            if upstream:
                relu6_gradient_rows(dyf[u].reshape(Q, C), zf[u].reshape(Q, C), g.reshape(Q, C), dbias)
            elif copied:
                _copy(dyf[u], g)
            h0 = p * sh - top
            if with_dw:
                r0 = _padded(xf, n * H + h0, 0 <= h0 < H, left, xring, xtags, zero, C)
                r1 = _padded(xf, n * H + h0 + dh, 0 <= h0 + dh < H, left, xring, xtags, zero, C)
                r2 = _padded(xf, n * H + h0 + 2 * dh, 0 <= h0 + 2 * dh < H, left, xring, xtags, zero, C)
                ahead_x = _rows_ahead(x, u, last * P if prefetching else u + 1, P, sh, 3, dh, top)
                outer9_row(r0, r1, r2, g, d, C, sw, dw, Q, ahead_x, ahead_z if with_dx else ahead_dy)
            if not with_dx:
                continue
            if stride1:
                if 0 <= p - top < H:
                    _gather_row(rows, wf, p - top, P, dh, dw, top, left, gring, gtags, zero, C, dxf[n * H + p - top], dx_row,
                                stream, ahead_dy)
                continue
            if stride2:  # the rows whose last dy row is p
                for h in range(max(0, 2 * p - top), min(H, 2 * p + 2 - top)):
                    _gather_s2(rows, wk, h, P, top, left, gring, gtags, zero, C, W, dxf[n * H + h], dx_row, stream,
                               ahead_dy if h == max(0, 2 * p - top) else ahead_dy[:0])
                continue
            for r in range(3):
                h = h0 + r * dh
                if 0 <= h < H:
                    index = n * H + h
                    slot = index % gring.shape[0]
                    if gtags[slot] != index:
                        gring[slot] = 0.0
                        gtags[slot] = index
                    scatter3_row(g, wk[r].reshape(3 * C), gring[slot], C, sw, dw, Q)
            done = n * H + min(H, max(0, (p + 1) * sh - top))  # no later dy row reaches rows before it
            _flush(gring, gtags, dxf, flushed, done, left, C, W, stream)
            flushed = max(flushed, done)
        if with_dx:
            if stride1:
                for h in range(max(0, P - top), H):
                    _gather_row(rows, wf, h, P, dh, dw, top, left, gring, gtags, zero, C, dxf[n * H + h], dx_row, stream,
                                wf[:0])
            elif stride2:
                for h in range(max(0, 2 * P - top), H):
                    _gather_s2(rows, wk, h, P, top, left, gring, gtags, zero, C, W, dxf[n * H + h], dx_row, stream,
                               wf[:0])
            else:
                _flush(gring, gtags, dxf, flushed, (n + 1) * H, left, C, W, stream)


@njit(nogil=True, cache=True)
def _gather_row(rows, wf, h, P, dh, dw, top, left, gring, gtags, zero, C, out, row, stream, ahead):
    """out = dx row h of the image whose dy rows are ``rows`` (a ring of them, ``_padded``), stride 1: every cell w its nine
    terms, dy columns w + left - s dw of dy rows h + top - r dh (zero-padded rows from the dy ring:
    padded column j is dy column j - (2 dw - left)). With ``stream``, formed in ``row`` and streamed to out."""
    p0 = h + top
    offset = 2 * dw - left
    g0 = _padded(rows, p0, 0 <= p0 < P, offset, gring, gtags, zero, C)
    g1 = _padded(rows, p0 - dh, 0 <= p0 - dh < P, offset, gring, gtags, zero, C)
    g2 = _padded(rows, p0 - 2 * dh, 0 <= p0 - 2 * dh < P, offset, gring, gtags, zero, C)
    target = row if stream else out
    dot9_row(g0, g1, g2, wf, target, C, 1, dw, out.shape[0] // C, wf, 0, ahead)  # epilogue 0: its bias (wf) is not read
    if stream:
        stream_copy(row, out)


@njit(nogil=True, cache=True)
def _gather_s2(rows, wk, h, P, top, left, gring, gtags, zero, C, W, out, row, stream, ahead):
    """out = dx row h of the image whose dy rows are ``rows`` (a ring of them, ``_padded``), stride 2, dilation 1:
    ``gather_s2_row`` of dy rows (h + top - r) / 2, zero-padded by one cell in front (dy ring): rows
    p - 1 and p (taps r = 2, 0) for h + top = 2 p, row p (r = 1) for h + top = 2 p + 1. With ``stream``,
    formed in ``row`` and streamed to out."""
    j = h + top
    p = j // 2
    target = row if stream else out
    ga = _padded(rows, p, 0 <= p < P, 1, gring, gtags, zero, C)
    if j % 2 == 0:
        gb = _padded(rows, p - 1, 0 <= p - 1 < P, 1, gring, gtags, zero, C)
        gather_s2_row(ga, gb, wk[0].reshape(3 * C), wk[2].reshape(3 * C), True, target, C, W, left, ahead)
    else:
        t = wk[1].reshape(3 * C)
        gather_s2_row(ga, ga, t, t, False, target, C, W, left, ahead)
    if stream:
        stream_copy(row, out)


def _wk(w):
    R, S, C, M = w.shape
    return w.reshape(R, S, C * M)


def _ring(name, g, width, dtype):
    """A thread's ring of ``ring_rows`` rows of ``width`` cells (zero-padded rows, or accumulation
    rows) and its tags."""
    ring = scratch(name, (ring_rows(g.R, g.dh, g.sh), width * g.C), dtype)
    return ring, scratch(name + "_tags", (ring.shape[0],), np.int64)


def _zero_row(g, width, dtype):
    """A thread's row of zeros, ``width`` cells: the padded row of an input row outside the input."""
    zero = scratch("dw_zero_row", (width * g.C,), dtype)
    zero[:] = 0
    return zero


def _dy_ring_width(g):
    """Cells of the backward's dy ring rows: zero-padded dy rows for the gathered input gradients
    (stride 1: W + 2 dw; stride 2, dilation 1: the (W - 1 + left) // 2 + 2 that ``gather_s2_row``
    reads), or the scatter's dx accumulation rows."""
    if g.sh == 1 and g.sw == 1:
        return g.W + 2 * g.dw
    if g.sh == 2 and g.sw == 2 and g.dh == 1 and g.dw == 1:
        return (g.W - 1 + g.left) // 2 + 2
    return _padded_width(g)


def _padded_width(g):
    """Cells of a padded input row (or a dx accumulation row): every column the output cells' taps
    read, and the input itself at offset ``left``."""
    return max((g.Q - 1) * g.sw + (g.S - 1) * g.dw + 1, g.left + g.W)


def depthwise_conv2d_forward(x, w, g, bias=None, activation=None):
    """y (N, P, Q, C * M), output rows shared between the threads in chunks. With ``bias`` (C * M,), each
    output row as it is finished becomes row + bias, then ReLU6 for ``activation="relu6"``
    (``depthwise_conv2d_bias_forward``)."""
    y = np.empty(g.output_shape, x.dtype)
    epilogue = 0 if bias is None else (2 if activation == "relu6" else 1)
    if bias is None:
        bias = np.zeros(1, x.dtype)  # (not read)
    wk = _wk(w)
    rows = g.N * g.P
    per_chunk = max(1, ROW_GRAIN // max(1, g.Q * g.K), -(-rows // (4 * thread_count())))
    bounds = chunk_bounds(rows, per_chunk)
    rows_kernel = forward_rows_3x3 if fast_applies(g) else (forward_rows_5x5 if fast5_applies(g) else None)
    stream = streams(y)
    prefetching = prefetches(x)
    local_row = rows_kernel is forward_rows_3x3 and epilogue == 0 and local_rows(g, x.dtype)

    def task(i):
        start, stop = bounds[i]
        if rows_kernel is not None:
            ring, tags = _ring("dw_x_ring", g, _padded_width(g), x.dtype)
            zero = _zero_row(g, _padded_width(g), x.dtype)
            row = scratch("dw_out_row", (g.Q * g.K,), x.dtype)
            args = (x, wk, g.sh, g.sw, g.dh, g.dw, g.top, g.left, start, stop, y, ring, tags, zero, bias, epilogue, row,
                    stream, prefetching)
            if rows_kernel is forward_rows_3x3:
                forward_rows_3x3(*args, local_row)
            else:
                forward_rows_5x5(*args)
        else:
            forward_rows(x, wk, g.M, g.sh, g.sw, g.dh, g.dw, g.top, g.left, start, stop, y, bias, epilogue)

    run_chunks(task, len(bounds))
    return y


def depthwise_conv2d_bias_forward(x, w, bias, g, activation=None):
    """z (N, P, Q, C * M) = depthwise_conv2d(x, w) + bias, then ReLU6 for ``activation="relu6"``, each
    output row finished while it is in cache."""
    return depthwise_conv2d_forward(x, w, g, bias, activation)


def _backward(x, w, dy, g, with_dx, with_dw, z=None):
    """(dx or None, dw or None, dbias or None) in one pass over dy (and x), per chunk of whole images (no
    two threads write the same dx row); each chunk's dw (and dbias) partial added in chunk order, so the
    bits do not depend on which thread ran which chunk. With z, dy is dz, the upstream gradient of
    z = relu6(conv + bias), and the 3 x 3 kernels form the convolution's gradient dz * (0 < z < 6) row by
    row inside the pass (``backward_images_3x3``, where ``_fast_backward``), adding dbias per chunk. Other
    geometries take the general loops."""
    wk = _wk(w)
    upstream = z is not None
    fast = _fast_backward(g, w, dy.dtype, with_dx, with_dw)
    assert fast or not upstream, "dz and z go to the 3 x 3 kernels only"
    bounds = chunk_bounds(g.N, backward_chunk_images(g))
    dw_partials = partials(len(bounds), wk.shape, dy.dtype)
    dbias_partials = partials(len(bounds), (g.K,) if upstream else (1,), dy.dtype)
    dx = np.empty(g.input_shape, dy.dtype) if with_dx else np.empty((1, 1, 1, 1), dy.dtype)
    z = z if upstream else np.empty((1, 1, 1, 1), dy.dtype)  # (not read without upstream)
    stream = with_dx and streams(dx)
    prefetching = prefetches(dy)

    def task(i):
        first, last = bounds[i]
        if fast:
            xring, xtags = _ring("dw_x_ring", g, _padded_width(g), dy.dtype)
            width = _dy_ring_width(g)
            gring, gtags = _ring("dw_dy_ring", g, width, dy.dtype)
            zero = _zero_row(g, max(width, _padded_width(g)), dy.dtype)
            dy_rows = scratch("dw_dy_rows", (min(g.P, 2 * g.dh + 2), g.Q * g.C), dy.dtype)
            dx_row = scratch("dw_dx_row", (g.W * g.C,), dy.dtype)
            backward_images_3x3(x, wk, dy, z, upstream, g.sh, g.sw, g.dh, g.dw, g.top, g.left, first, last, with_dx,
                                with_dw, dx, dw_partials[i], dbias_partials[i], dy_rows, xring, xtags, gring, gtags,
                                zero, dx_row, stream, prefetching)
        else:
            backward_images(x, wk, dy, g.M, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.H, g.W, first, last, with_dx,
                            with_dw, dx, dw_partials[i])

    run_chunks(task, len(bounds))
    dbias = sum_in_order(dbias_partials) if upstream else None
    return (dx if with_dx else None), (sum_in_order(dw_partials).reshape(w.shape) if with_dw else None), dbias


# Channels up to which the 3 x 3 forward forms each output row on its stack (``local_rows``)
LOCAL_ROW_MAX_CHANNELS = 96


def local_rows(g, dtype) -> bool:
    """Whether ``forward_rows_3x3`` (without a bias) forms each output row in a stack array and then
    copies it to y: columns at stride 1 and dilation 1 (``dot9_row``'s groups of four cells), at most
    LOCAL_ROW_MAX_CHANNELS channels and a row within the stack budget. A group then runs its loop over
    the channels without checking its views against the output (nothing can overlap the stack), which
    counts where that loop is short.

    Two threads, batch 32, best of 8-14 rounds alternating in one process, y's bits unchanged:
    112 x 112 x 16 3.89 -> 3.19 ms, x 32 4.66 -> 4.15 (again 5.01 -> 4.57, 11 rounds of 14), 56 x 56 x 64
    2.87 -> 2.46, 28 x 28 x 96 1.22 -> 1.10. Not taken: stride 2 (pairs of cells) evened out (112 x 112
    x 32 2.41 / 2.44, 112 x 112 x 96 7.67 / 7.22, each faster in about half the rounds); from 144
    channels it loses (56 x 56 x 144 4.86 -> 4.99 in every round, 14 x 14 x 480 1.26 -> 1.34); with a
    bias and ReLU6 (as a loop of their own over the stack row) it gained 0-3%, so the fused forward
    keeps its epilogue in the stores. The row must stay out of calls that are not inlined: handed to
    one, it is no longer known to overlap nothing, and the gain went."""
    return g.sw == 1 and g.dw == 1 and g.K <= LOCAL_ROW_MAX_CHANNELS and fits_on_stack(g.Q * g.K, dtype)


def backward_chunk_images(g) -> int:
    """Images per backward chunk: one, or N / (IMAGE_CHUNKS_PER_THREAD threads) for a large batch.
    Coarser chunks leave a thread waiting when the other is descheduled on a busy machine, and
    measured no faster beyond the host's noise: two threads, batch 32, dx + dw of 14 x 14 x 480 in
    chunks of 1 image 3.43-3.50 ms at best (3.81-3.99 median), of 3-4 images 3.19-3.26 (3.75-3.79);
    56 x 56 x 144 the same from 1 to 16 images a chunk."""
    return max(1, -(-g.N // (IMAGE_CHUNKS_PER_THREAD * thread_count())))


def depthwise_conv2d_backward(x, w, dy, g, input_gradient=True):
    """(dx or None, dw): both gradients in one pass over dy and x."""
    return _backward(x, w, dy, g, input_gradient, True)[:2]


def depthwise_conv2d_bias_backward(x, w, z, dz, g, activation=None, input_gradient=True):
    """(dx or None, dw, dbias) of z = depthwise_conv2d_bias(x, w, bias, activation) at upstream dz. relu6:
    the convolution's gradient dz * (0 < z < 6) formed row by row inside the backward's pass (3 x 3
    kernels) instead of written out by one pass and read back by the next; dbias its sum per chunk of
    images, the chunks added in order. None: dy is dz, dbias ``bias_add_backward``'s."""
    if activation == "relu6" and _fast_backward(g, w, dz.dtype, input_gradient, True):
        return _backward(x, w, dz, g, input_gradient, True, z)
    rows = g.N * g.P * g.Q
    dy, dbias = bias_activation_backward(dz.reshape(rows, g.K), z.reshape(rows, g.K), activation)
    return (*_backward(x, w, dy.reshape(g.output_shape), g, input_gradient, True)[:2], dbias)


def _fast_backward(g, w, dtype, with_dx, with_dw) -> bool:
    """Whether the backward takes the 3 x 3 kernels: they need finite filter values for dx (they read
    zero-padded dy), and dw's 9 C values on the stack (``outer9_row``); else the general loops."""
    return (fast_applies(g) and (not with_dw or fits_on_stack(9 * g.C, dtype))
            and (not with_dx or bool(np.isfinite(w).all())))


def depthwise_conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C) alone."""
    x = np.empty((1, g.H, g.W, g.C), dy.dtype)  # not read without dw: its shape gives H, W, C
    return _backward(x, w, dy, g, True, False)[0]


def depthwise_conv2d_backward_filter(x, dy, g):
    """dw (R, S, C, M) alone."""
    w = np.zeros(g.filter_shape, x.dtype)  # not read without dx: its shape gives R, S, C, M
    return _backward(x, w, dy, g, False, True)[1]
