"""Direct loops for a first layer: 3x3 conv2d + bias + ReLU + 2x2 max pooling of an input of few channels.

Shape legend: N batch, H W input size, C in-channels (at most DIRECT_MAX_CHANNELS), K filters,
3 x 3 kernel, stride 1, dilation 1; Pp Qp the pooled size, Pz x Qz = 2Pp x 2Qp the conv cells
the windows read. xp is the input as the windows read it: xp[n, h + r, col + s, c] is the input
under filter cell (r, s) of conv cell (h, col) (x itself, or a zero-padded copy for SAME).

    forward   y[n, i, j, k] = max over t, v < 2 of relu(sum over r, s, c of
                                   xp[n, 2i + t + r, 2j + v + s, c] * w[r, s, c, k] + bias[k])
    backward  g = dy[n, i, j, k] where y > 0 else 0, at the window's winner (t, v) only:
              dw[r, s, c, k] += xp[n, 2i + t + r, 2j + v + s, c] * g;   dbias[k] += g

Why not im2col here: with C = 1 a patch row holds 9 values, so the BLAS product has inner size
9 and the layout work around it (im2col, the epilogue's pass over z, the zeroed and scattered
dz of the backward) costs several times the arithmetic (MNIST's first layer: 1.8 ms of a
forward on one core, 1.5 ms of them outside the product). Here each window's four conv cells
are 36 multiply-adds per filter in a loop over the filters that vectorises, with the 3 x 3 taps
unrolled, and bias, ReLU and the window's max follow in registers; the backward needs no patch
matrix and no dz at all. The input gradient (which a first layer never needs) keeps im2col's path.

Plain conv2d's filter gradient (no bias, ReLU or pooling) of such an input takes the same loops:
blocks of 2 x 2 conv cells, each reading its 4 x 4 patch, every cell with its own gradient

    dw[r, s, c, k] = sum over n, p, q of xp[n, p + r, q + s, c] * dy[n, p, q, k]

or, where the filters come in whole blocks of ROW_LANES, rows of conv cells (``filter_gradient_rows``:
a block's nine taps of dw stay in registers for a whole row).

Plain conv2d's forward of such an input goes a row of conv cells at a time (``plain_forward_rows``),
each cell's filters in blocks of ROW_LANES, channel by channel (the sum over one channel's nine taps, then over the channels):

    y[n, p, q, k] = sum over c of (sum over r, s of xp[n, p + r, q + s, c] * w[r, s, c, k])

Rows are also the fused forward's faster loop where the filters come in whole blocks
(``pooled_forward_rows``: two conv rows, then the windows' scan; the same sums in the same order as
the windows' loop ``forward_units``, so the same bits): a block's nine taps stay in registers for a
whole row, where a window reloads them for its four cells (cats vs dogs' first layer, 20 x 150 x 150
x 3 -> 32: 8.3 -> 5.8 ms).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import winograd_conv2d, winograd_kernels
from .prefetch import next_row, prefetch_share, prefetches
from .stack_arrays import fits_on_stack, stack_array
from .streaming_stores import stream_copy, streams
from .work_sharing import chunk_bounds, partials, run_chunks, scratch, sum_in_order, thread_count

DIRECT_MAX_CHANNELS = 4  # more input channels: a patch row is long enough for im2col's product
CHUNK_WINDOWS = 1024  # windows x input channels per shared chunk (~100 us; fewer: the calls' overhead shows)


def applies(g, pg) -> bool:
    """Whether the fused conv + pool of geometries g, pg takes these direct loops."""
    return ((g.R, g.S, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1) and (pg.R, pg.S) == (2, 2)
            and g.C <= DIRECT_MAX_CHANNELS)


def padded_input(x, g, blocks_down, blocks_across):
    """xp: the input under blocks_down x blocks_across blocks of 2 x 2 conv cells, each block reading
    a 4 x 4 patch: x itself where they read inside it (VALID), else a zero-padded copy of
    (2 blocks_down + 2, 2 blocks_across + 2) cells."""
    return padded_to(x, g, 2 * blocks_down + 2, 2 * blocks_across + 2)


def padded_to(x, g, rows, cols):
    """xp with xp[n, h + g.top, col + g.left] = x[n, h, col]: x itself where the first rows x cols
    cells read lie inside it (VALID), else a zero-padded copy of rows x cols cells."""
    if g.top == 0 and g.left == 0 and rows <= g.H and cols <= g.W:
        return x
    xp = np.zeros((g.N, rows, cols, g.C), x.dtype)
    h, w = min(g.H, rows - g.top), min(g.W, cols - g.left)
    xp[:, g.top : g.top + h, g.left : g.left + w] = x[:, :h, :w]
    return xp


@njit(nogil=True, cache=True, inline="always")
def _patch(image, h, col, c):
    """The 4 x 4 input cells a window's four conv cells read, channel c, as 16 scalars (row-major)."""
    return (image[h, col, c], image[h, col + 1, c], image[h, col + 2, c], image[h, col + 3, c],
            image[h + 1, col, c], image[h + 1, col + 1, c], image[h + 1, col + 2, c], image[h + 1, col + 3, c],
            image[h + 2, col, c], image[h + 2, col + 1, c], image[h + 2, col + 2, c], image[h + 2, col + 3, c],
            image[h + 3, col, c], image[h + 3, col + 1, c], image[h + 3, col + 2, c], image[h + 3, col + 3, c])


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _cell(patch, t, v, w, c, k):
    """Channel c's share of conv cell (t, v) of the window for filter k: sum over r, s of patch[t + r, v + s] * w[r, s, c, k]."""
    total = patch[t * 4 + v] * w[0, 0, c, k]
    for r in range(3):
        for s in range(3):
            if r + s > 0:
                total += patch[(t + r) * 4 + v + s] * w[r, s, c, k]
    return total


# The loops over k below vectorise because each touches few arrays (LLVM's runtime alias checks
# grow with every pair of them) and the patch is scalars loaded before the loop: the cells' sums
# go to acc, then the epilogue reads acc; the winners' gradients go to gradients, then dw reads it.
# fastmath "contract" only lets a * b + c become one fused multiply-add.


@njit(nogil=True, cache=True, fastmath={"contract"})
def forward_units(xp, w, bias, Pp, first_unit, lowest, zero, acc, y, argmax):
    """y, argmax (units, Qp, K) of the pooled rows first_unit, ... (unit = n * Pp + i), as in the module.

    argmax = t * Qz + v of each window's winner, the scan of max_pool2d (cells (0, 0), (0, 1),
    (1, 0), (1, 1), taken only if strictly greater, from lowest). acc (4, K): scratch for the
    four cells' sums.
    """
    units, Qp, K = y.shape
    C = xp.shape[3]
    Qz = 2 * Qp
    for u in range(units):
        n, i = divmod(first_unit + u, Pp)
        image = xp[n]
        for j in range(Qp):
            h, col = 2 * i, 2 * j
            patch = _patch(image, h, col, 0)
            for k in range(K):
                acc[0, k] = _cell(patch, 0, 0, w, 0, k)
                acc[1, k] = _cell(patch, 0, 1, w, 0, k)
                acc[2, k] = _cell(patch, 1, 0, w, 0, k)
                acc[3, k] = _cell(patch, 1, 1, w, 0, k)
            for c in range(1, C):
                patch = _patch(image, h, col, c)
                for k in range(K):
                    acc[0, k] += _cell(patch, 0, 0, w, c, k)
                    acc[1, k] += _cell(patch, 0, 1, w, c, k)
                    acc[2, k] += _cell(patch, 1, 0, w, c, k)
                    acc[3, k] += _cell(patch, 1, 1, w, c, k)
            best_row, cell_row = y[u, j], argmax[u, j]
            for k in range(K):
                best, cell = winograd_kernels._scan(acc[0, k], 0, bias[k], zero, lowest, np.int32(0))
                best, cell = winograd_kernels._scan(acc[1, k], 1, bias[k], zero, best, cell)
                best, cell = winograd_kernels._scan(acc[2, k], Qz, bias[k], zero, best, cell)
                best, cell = winograd_kernels._scan(acc[3, k], Qz + 1, bias[k], zero, best, cell)
                best_row[k] = best
                cell_row[k] = cell


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _add_window_gradient(patch, g00, g01, g10, g11, dw, c, k):
    """dw[r, s, c, k] += the window's four input cells under (r, s), each times its conv cell's gradient."""
    for r in range(3):
        for s in range(3):
            dw[r, s, c, k] += (patch[r * 4 + s] * g00 + patch[r * 4 + s + 1] * g01 + patch[(r + 1) * 4 + s] * g10
                               + patch[(r + 1) * 4 + s + 1] * g11)


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _add_edge_gradient(patch, g00, g01, g10, right, lower, dw, c, k):
    """``_add_window_gradient`` of a block cut by the output's edge: cell (0, 0), and (0, 1) if
    ``right``, (1, 0) if ``lower``; (1, 1) is missing. A missing cell adds no term at all:
    0 * x would be NaN where x is inf or NaN, a term the convolution does not have."""
    for r in range(3):
        for s in range(3):
            total = patch[r * 4 + s] * g00
            if right:
                total += patch[r * 4 + s + 1] * g01
            if lower:
                total += patch[(r + 1) * 4 + s] * g10
            dw[r, s, c, k] += total


@njit(nogil=True, cache=True, fastmath={"contract"})
def backward_units(xp, dy, y, argmax, Pp, first_unit, zero, gradients, dw, dbias):
    """dw (3, 3, C, K) += and dbias (K,) += the gradients of the pooled rows first_unit, ... (module formula).

    dy, y, argmax (units, Qp, K): the upstream gradient and the forward's output and winners.
    gradients (5, K): scratch for the four conv cells' gradients and the window's.
    """
    units, Qp, K = dy.shape
    C = xp.shape[3]
    Qz = 2 * Qp
    for u in range(units):
        n, i = divmod(first_unit + u, Pp)
        image = xp[n]
        for j in range(Qp):
            h, col = 2 * i, 2 * j
            g_row, y_row, winner_row = dy[u, j], y[u, j], argmax[u, j]
            for k in range(K):
                g = g_row[k] if y_row[k] > zero else zero  # y > 0: ReLU passed it
                winner = winner_row[k]
                gradients[0, k] = g if winner == 0 else zero
                gradients[1, k] = g if winner == 1 else zero
                gradients[2, k] = g if winner == Qz else zero
                gradients[3, k] = g if winner == Qz + 1 else zero
                gradients[4, k] = g
            for c in range(C):
                patch = _patch(image, h, col, c)
                for k in range(K):
                    _add_window_gradient(patch, gradients[0, k], gradients[1, k], gradients[2, k], gradients[3, k],
                                         dw, c, k)
            for k in range(K):
                dbias[k] += gradients[4, k]


@njit(nogil=True, cache=True, fastmath={"contract"})
def filter_gradient_units(xp, dy, Pb, first_unit, units, zero, gradients, dw):
    """dw (3, 3, C, K) += the filter gradient of plain conv2d over ``units`` block rows from first_unit.

    A unit is one row of 2 x 2 blocks of conv cells, unit = n * Pb + i; block (i, j) holds the
    cells (2i + t, 2j + v) with t, v < 2 and reads the 4 x 4 patch xp[n, 2i : 2i + 4, 2j : 2j + 4].
    dy (N, P, Q, K): the last blocks of an odd P or Q hold cells beyond it, which add nothing
    (``_add_edge_gradient``). gradients (4, K): scratch.

        dw[r, s, c, k] += sum over the block's cells of xp[n, 2i + t + r, 2j + v + s, c] * dy[n, 2i + t, 2j + v, k]
    """
    _, P, Q, K = dy.shape
    C = xp.shape[3]
    Qb = -(-Q // 2)
    for u in range(units):
        n, i = divmod(first_unit + u, Pb)
        image, h = xp[n], 2 * i
        lower = h + 1 < P
        for j in range(Qb):
            col = 2 * j
            right = col + 1 < Q
            for k in range(K):
                gradients[0, k] = dy[n, h, col, k]
                gradients[1, k] = dy[n, h, col + 1, k] if right else zero
                gradients[2, k] = dy[n, h + 1, col, k] if lower else zero
                gradients[3, k] = dy[n, h + 1, col + 1, k] if lower and right else zero
            for c in range(C):
                patch = _patch(image, h, col, c)
                if lower and right:
                    for k in range(K):
                        _add_window_gradient(patch, gradients[0, k], gradients[1, k], gradients[2, k],
                                             gradients[3, k], dw, c, k)
                else:
                    for k in range(K):
                        _add_edge_gradient(patch, gradients[0, k], gradients[1, k], gradients[2, k], right, lower,
                                           dw, c, k)


def _block_row_chunks(g, blocks_down, blocks_across):
    """Chunks of block rows (units: pooled rows for the fused op) of about CHUNK_WINDOWS blocks x
    channels, at least four per thread."""
    units = g.N * blocks_down
    per_chunk = max(1, min(CHUNK_WINDOWS // (blocks_across * g.C), -(-units // (4 * thread_count()))))
    return chunk_bounds(units, per_chunk)


def forward(x, w, bias, g, pg):
    """(y, argmax) as ``conv_pool_kernels.conv2d_bias_relu_max_pool_forward``, per chunk of pooled rows:
    ``pooled_forward_rows`` where ``rows_apply`` (two conv rows of 2 Qp cells), else ``forward_units``
    (the same bits)."""
    lowest, zero = x.dtype.type(np.finfo(x.dtype).min), x.dtype.type(0)
    xp = padded_input(x, g, pg.P, pg.Q)
    units = g.N * pg.P
    y = np.empty((units, pg.Q, g.K), x.dtype)
    argmax = np.empty((units, pg.Q, g.K), np.int32)
    if rows_apply(g.K, 2 * pg.Q, 2, x.dtype):
        bounds = _conv_row_chunks(units, 4 * pg.Q)  # a pooled row: two conv rows of 2 Qp cells

        def task(i):
            start, stop = bounds[i]
            pooled_forward_rows(xp, w, bias, pg.P, start, lowest, zero, y[start:stop], argmax[start:stop])
    else:
        bounds = _block_row_chunks(g, pg.P, pg.Q)

        def task(i):
            start, stop = bounds[i]
            acc = scratch("direct_acc", (4, g.K), x.dtype)
            forward_units(xp, w, bias, pg.P, start, lowest, zero, acc, y[start:stop], argmax[start:stop])

    run_chunks(task, len(bounds))
    return y.reshape(pg.output_shape), argmax.reshape(pg.output_shape)


def backward(x, y, argmax, dy, g, pg):
    """(dw, dbias) of ``forward`` at the pooled upstream dy: per chunk of pooled rows, partials added in chunk order."""
    xp = padded_input(x, g, pg.P, pg.Q)
    units = g.N * pg.P
    shape = (units, pg.Q, g.K)
    y, argmax, dy = y.reshape(shape), argmax.reshape(shape), dy.reshape(shape)
    bounds = _block_row_chunks(g, pg.P, pg.Q)
    dw_partials = partials(len(bounds), (3, 3, g.C, g.K), x.dtype)
    bias_partials = partials(len(bounds), (g.K,), x.dtype)
    zero = x.dtype.type(0)

    def task(i):
        start, stop = bounds[i]
        gradients = scratch("direct_gradients", (5, g.K), x.dtype)
        backward_units(xp, dy[start:stop], y[start:stop], argmax[start:stop], pg.P, start, zero, gradients,
                       dw_partials[i], bias_partials[i])

    run_chunks(task, len(bounds))
    return sum_in_order(dw_partials), sum_in_order(bias_partials)


FILTER_GRADIENT_MIN_K = 8  # fewer filters: the loop over k is too short to beat im2col's product


def filter_gradient_applies(g) -> bool:
    """Whether plain conv2d's filter gradient takes these loops: 3 x 3, stride 1, undilated, at most
    DIRECT_MAX_CHANNELS input channels, at least FILTER_GRADIENT_MIN_K filters.

    Measured (2 threads, best of 3 x 7 calls, against im2col's product, 2026-12-06 21:22 UTC):
    20 x 150 x 150 images, 3 channels, K = 8 / 12 / 16 / 32 / 48 / 64 / 128 filters 0.53 / 0.53 /
    0.64 / 0.73 / 0.66 / 0.58 / 0.87x the time (cats vs dogs' first layer 10.1 -> 7.3 ms), 2 and 4
    channels at 32 filters 0.86x and 0.55x, one channel 0.38x; 64 x 28 x 28 images, 1-4 channels,
    16-32 filters, 0.34-0.68x. Counts that leave a vector remainder tie (K = 20, 24: 0.99x, 1.07x),
    and so do K = 1 and 4 (0.98x, 1.01x; 1.09x with one channel), hence the threshold.
    """
    return ((g.R, g.S, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1) and g.C <= DIRECT_MAX_CHANNELS
            and g.K >= FILTER_GRADIENT_MIN_K)


def conv2d_backward_filter(x, dy, g):
    """dw (3, 3, C, K) as ``conv_kernels.conv2d_backward_filter``: ``filter_gradient`` where it
    applies (with few channels im2col's product is (9 C, rows) @ (rows, K), too thin for BLAS), by
    rows of conv cells (``filter_gradient_by_rows``) where the filters come in whole blocks, else
    ``winograd_conv2d.conv2d_backward_filter`` (Winograd for many channels, else im2col's products)."""
    if filter_gradient_applies(g):
        return filter_gradient_by_rows(x, dy, g) if whole_blocks(g.K) else filter_gradient(x, dy, g)
    return winograd_conv2d.conv2d_backward_filter(x, dy, g)


def filter_gradient(x, dy, g):
    """dw (3, 3, C, K) of a 3 x 3, stride 1 conv2d of at most DIRECT_MAX_CHANNELS channels, per
    chunk of block rows (``filter_gradient_units``), partials added in chunk order."""
    Pb, Qb = -(-g.P // 2), -(-g.Q // 2)  # blocks of 2 x 2 conv cells (the last ones cut by an odd P or Q)
    xp = padded_input(x, g, Pb, Qb)
    bounds = _block_row_chunks(g, Pb, Qb)
    dw_partials = partials(len(bounds), (3, 3, g.C, g.K), x.dtype)
    zero = x.dtype.type(0)

    def task(i):
        start, stop = bounds[i]
        gradients = scratch("direct_cell_gradients", (4, g.K), x.dtype)
        filter_gradient_units(xp, dy, Pb, start, stop - start, zero, gradients, dw_partials[i])

    run_chunks(task, len(bounds))
    return sum_in_order(dw_partials)


# --- plain conv2d's forward, a row of conv cells at a time -----------------------------------------

ROW_LANES = 32  # filters per block: two AVX-512 vectors (four AVX2 ones), nine taps' of them held in registers
ROWS_MAX_FILTERS = 2 * ROW_LANES  # more: im2col's product is wide enough to win
CHUNK_CELLS = 4096  # conv cells per shared chunk of rows (~0.25 ms of 3 channels, 32 filters; 148-cell chunks: 2.4x slower)


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _add_channel(r0, r1, r2, w, c, k0, lanes, first, acc, Q, K):
    """acc[q K + k0 + l] (=, if ``first``, else +=) sum over r, s of row_r[q + s, c] * w[r, s, c, k0 + l],
    every cell q < Q of the row, l < lanes: the filters' nine taps are loaded once for the whole row.

    Called with lanes = ROW_LANES (a constant; the function is inlined at each call), the loop over l
    is a fixed few vector operations and LLVM keeps the nine taps' vectors in registers across the
    cells; with the last filters' count it vectorises as any loop, and is slower."""
    w00, w01, w02 = w[0, 0, c, k0:k0 + lanes], w[0, 1, c, k0:k0 + lanes], w[0, 2, c, k0:k0 + lanes]
    w10, w11, w12 = w[1, 0, c, k0:k0 + lanes], w[1, 1, c, k0:k0 + lanes], w[1, 2, c, k0:k0 + lanes]
    w20, w21, w22 = w[2, 0, c, k0:k0 + lanes], w[2, 1, c, k0:k0 + lanes], w[2, 2, c, k0:k0 + lanes]
    for q in range(Q):
        x00, x01, x02 = r0[q, c], r0[q + 1, c], r0[q + 2, c]
        x10, x11, x12 = r1[q, c], r1[q + 1, c], r1[q + 2, c]
        x20, x21, x22 = r2[q, c], r2[q + 1, c], r2[q + 2, c]
        cell = acc[q * K + k0 : q * K + k0 + lanes]
        if first:
            for l in range(lanes):
                cell[l] = (x00 * w00[l] + x01 * w01[l] + x02 * w02[l] + x10 * w10[l] + x11 * w11[l]
                           + x12 * w12[l] + x20 * w20[l] + x21 * w21[l] + x22 * w22[l])
        else:
            for l in range(lanes):
                cell[l] += (x00 * w00[l] + x01 * w01[l] + x02 * w02[l] + x10 * w10[l] + x11 * w11[l]
                            + x12 * w12[l] + x20 * w20[l] + x21 * w21[l] + x22 * w22[l])


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _conv_row(r0, r1, r2, w, acc, Q):
    """acc (Q K) = one row of conv cells, acc[q K + k] = sum over c of (sum over r, s of
    row_r[q + s, c] * w[r, s, c, k]), rows r0, r1, r2 the input rows under the filter's rows."""
    C, K = w.shape[2], w.shape[3]
    wide = K - K % ROW_LANES  # filters in whole blocks
    for c in range(C):
        for k0 in range(0, wide, ROW_LANES):
            _add_channel(r0, r1, r2, w, c, k0, ROW_LANES, c == 0, acc, Q, K)
        if K > wide:
            _add_channel(r0, r1, r2, w, c, wide, K - wide, c == 0, acc, Q, K)


@njit(nogil=True, cache=True, fastmath={"contract"})
def plain_forward_rows(xp, w, P, first_unit, y, stream):
    """y (units, Q, K): the conv rows first_unit, ... (unit = n * P + p) of ``plain_forward``, as in the module.

    A row's sums go to a stack array (Q K values, which no load can overlap, so the filters' vectors
    stay in registers across the cells), then to y: by ``stream_copy`` with ``stream`` (a y larger than
    the cache), else by ordinary stores.
    """
    units, Q, K = y.shape
    acc = stack_array(Q * K, y)
    for u in range(units):
        n, p = divmod(first_unit + u, P)
        _conv_row(xp[n, p], xp[n, p + 1], xp[n, p + 2], w, acc, Q)
        if stream:
            stream_copy(acc, y[u].reshape(Q * K))
            continue
        row = y[u]
        for q in range(Q):
            for k in range(K):
                row[q, k] = acc[q * K + k]


@njit(nogil=True, cache=True, fastmath={"contract"})
def pooled_forward_rows(xp, w, bias, Pp, first_unit, lowest, zero, y, argmax):
    """y, argmax (units, Qp, K) of the pooled rows first_unit, ... (unit = n * Pp + i), as ``forward_units``
    (the same sums in the same order, so the same bits): conv rows 2i and 2i + 1, cells below 2 Qp,
    by ``_conv_row`` into two stack arrays, then each window's scan."""
    units, Qp, K = y.shape
    Qz = 2 * Qp
    upper = stack_array(Qz * K, y)
    lower = stack_array(Qz * K, y)
    for u in range(units):
        n, i = divmod(first_unit + u, Pp)
        h = 2 * i
        _conv_row(xp[n, h], xp[n, h + 1], xp[n, h + 2], w, upper, Qz)
        _conv_row(xp[n, h + 1], xp[n, h + 2], xp[n, h + 3], w, lower, Qz)
        for j in range(Qp):
            left, right = 2 * j * K, (2 * j + 1) * K
            best_row, cell_row = y[u, j], argmax[u, j]
            for k in range(K):
                best, cell = winograd_kernels._scan(upper[left + k], 0, bias[k], zero, lowest, np.int32(0))
                best, cell = winograd_kernels._scan(upper[right + k], 1, bias[k], zero, best, cell)
                best, cell = winograd_kernels._scan(lower[left + k], Qz, bias[k], zero, best, cell)
                best, cell = winograd_kernels._scan(lower[right + k], Qz + 1, bias[k], zero, best, cell)
                best_row[k] = best
                cell_row[k] = cell


def _conv_row_chunks(units, cells_per_unit):
    """Chunks of units (rows of conv cells, or pooled rows) of about CHUNK_CELLS cells, at least four per thread."""
    return chunk_bounds(units, max(1, min(CHUNK_CELLS // max(1, cells_per_unit), -(-units // (4 * thread_count())))))


def whole_blocks(K) -> bool:
    """Whether K filters are a whole number of ROW_LANES blocks, up to ROWS_MAX_FILTERS: where the
    loops by rows of conv cells beat im2col's product and the loops by windows.

    Measured (2 threads, best of 4 x 9 calls alternating with im2col's product, 2026-12-06 21:35
    UTC), time against im2col's: 20 x 150 x 150 images, 3 channels, 32 filters 0.70x (cats vs dogs'
    first layer, 9.2 -> 6.5 ms), 64 filters 0.88x, 96 and 128 0.97x and 1.04x; 1 and 4 channels
    0.75x and 0.57-0.72x; 64 x 28 x 28 images (MNIST's first layer), 1 and 3 channels, 32 and 64
    filters, 0.44-0.62x; 8 x 224 x 224 x 3 -> 32 0.77x. Other filter counts leave blocks of fewer
    lanes, which lose on the large images (3 channels, 8 / 16 / 24 / 40 / 48 filters 1.32 / 0.96 /
    1.73 / 1.09 / 1.18x), hence whole blocks only.
    """
    return K % ROW_LANES == 0 and K <= ROWS_MAX_FILTERS


def rows_apply(K, Q, rows, dtype) -> bool:
    """Whether ``_conv_row`` takes K filters (``whole_blocks``) and ``rows`` rows of Q K sums fit the stack."""
    return whole_blocks(K) and fits_on_stack(rows * Q * K, dtype)


def forward_applies(g, dtype=np.float32) -> bool:
    """Whether plain conv2d's forward takes ``plain_forward_rows``: 3 x 3, stride 1, undilated, at most
    DIRECT_MAX_CHANNELS input channels, and ``rows_apply`` to a row of conv cells."""
    return ((g.R, g.S, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1) and g.C <= DIRECT_MAX_CHANNELS
            and rows_apply(g.K, g.Q, 1, dtype))


def conv2d_forward(x, w, g):
    """y (N, P, Q, K): ``plain_forward`` where ``forward_applies``, else ``winograd_conv2d.conv2d_forward``
    (Winograd for many channels, else im2col's products)."""
    if forward_applies(g, x.dtype):
        return plain_forward(x, w, g)
    return winograd_conv2d.conv2d_forward(x, w, g)


def plain_forward(x, w, g):
    """y (N, P, Q, K) of a 3 x 3, stride-1 conv2d of few channels, per chunk of conv rows (``plain_forward_rows``)."""
    xp = padded_to(x, g, g.P + 2, g.Q + 2)
    units = g.N * g.P
    y = np.empty((units, g.Q, g.K), np.result_type(x, w))
    bounds = _conv_row_chunks(units, g.Q)
    stream = streams(y)

    def task(i):
        start, stop = bounds[i]
        plain_forward_rows(xp, w, g.P, start, y[start:stop], stream)

    run_chunks(task, len(bounds))
    return y.reshape(g.output_shape)


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _add_row_gradient(r0, r1, r2, g, c, k0, d, Q):
    """d[(3 r + s) ROW_LANES + l] += sum over q < Q of row_r[q + s, c] * g[q, k0 + l]: the nine taps'
    filter gradient of one row of conv cells, for channel c and the block of filters from k0. d, a
    stack array, stays in registers across the cells (``plain_forward_rows``' dual)."""
    for q in range(Q):
        x00, x01, x02 = r0[q, c], r0[q + 1, c], r0[q + 2, c]
        x10, x11, x12 = r1[q, c], r1[q + 1, c], r1[q + 2, c]
        x20, x21, x22 = r2[q, c], r2[q + 1, c], r2[q + 2, c]
        cell = g[q, k0 : k0 + ROW_LANES]
        for l in range(ROW_LANES):
            v = cell[l]
            d[l] += x00 * v
            d[ROW_LANES + l] += x01 * v
            d[2 * ROW_LANES + l] += x02 * v
            d[3 * ROW_LANES + l] += x10 * v
            d[4 * ROW_LANES + l] += x11 * v
            d[5 * ROW_LANES + l] += x12 * v
            d[6 * ROW_LANES + l] += x20 * v
            d[7 * ROW_LANES + l] += x21 * v
            d[8 * ROW_LANES + l] += x22 * v


@njit(nogil=True, cache=True, fastmath={"contract"})
def filter_gradient_rows(xp, dy, first_unit, units, dw, prefetching):
    """dw (3, 3, C, K) += the filter gradient of plain conv2d over ``units`` conv rows from first_unit
    (unit = n * P + p), K a whole number of ROW_LANES blocks:

        dw[r, s, c, k] += sum over the rows' cells q of xp[n, p + r, q + s, c] * dy[n, p, q, k]

    row by row, and in each row per channel and block of filters (``_add_row_gradient``), each
    (channel, block) summing into its own stack array over the rows' cells in order: dy's row is read
    from memory once for all channels (a loop by channel outside the rows read the chunk's dy C times;
    cats vs dogs' first layer, two threads: 5.33 -> 4.90 ms). ``prefetching``: the next dy row is
    prefetched a share per (channel, block) (``prefetch``; 4.90 -> 4.75 ms)."""
    _, P, Q, K = dy.shape
    C = xp.shape[3]
    blocks = K // ROW_LANES
    size = 9 * ROW_LANES  # a (channel, block)'s sums: nine taps of ROW_LANES filters
    d = stack_array(C * blocks * size, dw)
    zero = dw.dtype.type(0)
    for t in range(C * blocks * size):
        d[t] = zero
    dyf = dy.reshape(dy.shape[0] * P, Q * K)
    for u in range(units):
        n, p = divmod(first_unit + u, P)
        ahead = next_row(dyf, first_unit + u, prefetching and u + 1 < units)
        for c in range(C):
            for b in range(blocks):
                prefetch_share(ahead, c * blocks + b, C * blocks)
                _add_row_gradient(xp[n, p], xp[n, p + 1], xp[n, p + 2], dy[n, p], c, b * ROW_LANES,
                                  d[(c * blocks + b) * size:], Q)
    for c in range(C):
        for b in range(blocks):
            for r in range(3):
                for s in range(3):
                    for l in range(ROW_LANES):
                        dw[r, s, c, b * ROW_LANES + l] += d[(c * blocks + b) * size + (3 * r + s) * ROW_LANES + l]


def filter_gradient_by_rows(x, dy, g):
    """dw (3, 3, C, K) of a 3 x 3, stride 1 conv2d of at most DIRECT_MAX_CHANNELS channels and a whole
    number of ROW_LANES blocks of filters, per chunk of conv rows (``filter_gradient_rows``), partials
    added in chunk order.

    Measured (2 threads, best of 3 x 9 calls alternating with ``filter_gradient``, 2026-12-06 21:57
    UTC): 20 x 150 x 150 images, 3 channels, 32 filters 5.9 -> 4.5 ms (cats vs dogs' first layer),
    64 filters 0.91x, 128 filters 1.14x (hence ``whole_blocks``); one and four channels 0.56x and
    0.77x; 64 x 28 x 28 images, 1 and 3 channels, 0.66x and 0.73x.
    """
    xp = padded_to(x, g, g.P + 2, g.Q + 2)
    units = g.N * g.P
    bounds = _conv_row_chunks(units, g.Q)
    dw_partials = partials(len(bounds), (3, 3, g.C, g.K), np.result_type(x, dy))
    prefetching = prefetches(dy)

    def task(i):
        start, stop = bounds[i]
        filter_gradient_rows(xp, dy, start, stop - start, dw_partials[i], prefetching)

    run_chunks(task, len(bounds))
    return sum_in_order(dw_partials)
