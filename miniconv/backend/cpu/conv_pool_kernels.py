"""Numba kernels for conv2d + bias + ReLU + a non-overlapping max pooling, fused per chunk.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q conv
output size; Rp Sp the pooling window (= its strides, VALID), Pp Qp the pooled size.

    z = max(conv2d(x, w) + bias, 0)    (N, P, Q, K)     never written out whole
    y = max_pool2d(z, (Rp, Sp))        (N, Pp, Qp, K)   argmax: t * Qz + v, each winner's offset in its window

Only the Pz x Qz = (Pp*Rp) x (Qp*Sp) conv cells that some window reads are computed, forward and
backward (an odd P or Q leaves a row or column that cannot matter: MNIST's second layer, 11x11
pooled to 5x5, saves 17% of its products). A unit is one pooled image row, i.e. the Rp conv rows
(Qz cells each) its windows read; a chunk is a run of units. Forward: per chunk, im2col, one
BLAS product, then bias + ReLU + pooling while the chunk's z is in cache (3 x 3, stride 1
convolutions of 8 or more channels under a 2 x 2 pooling: Winograd's F(2x2, 3x3) instead, in
``winograd_kernels``, 2.25x fewer multiplies). Backward: per chunk of
whole images, the pooled gradient is scattered to each window's winner where y > 0 (there y is
ReLU's output, so ReLU's gradient is 1; elsewhere z's gradient is 0), and that chunk of dz goes
straight into the filter-gradient and input-gradient products: neither z nor dz ever exists whole.
Where plain conv2d's backward passes take Winograd (``winograd_conv2d``: 3 x 3, stride 1, many
channels), dz is written whole instead, every conv cell, and goes through them: 16 multiplies a
tile of 2 x 2 cells instead of 36 in each of the two products. Under a 2 x 2 pooling, where both
gradients take Winograd's one pass, not even that: a window is a tile, and each tile's A dZ A^T
is formed from the pooled gradient (``pooled_one_pass``; cats vs dogs' conv2 + pool backward
27.7-27.9 -> 25.8 ms, conv3 21.1-21.3 -> 19.6-20.4, conv4 equal), over the windows' tiles only
(an odd P or Q's last tile row and column, which no window reads, left out: MNIST's conv2 + pool
backward 2.6-3.4 -> 2.2-2.9 ms, cats vs dogs' conv4 11.2-12.5 -> 7.9-9.1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from . import direct_kernels, pointwise_kernels, winograd_conv2d, winograd_kernels
from .conv_kernels import _unit_chunks, backward_by_images, patch_matrix
from .magnitude import all_finite
from .work_sharing import chunk_bounds, partials, run_chunks, scratch, single_threaded_blas, sum_in_order

GRADIENT_CHUNKS = 8  # chunks of whole images writing dz for the Winograd backward (4 a thread of two)


@njit(nogil=True, cache=True)
def bias_relu_max_pool_rows(z, bias, Qz, Rp, Sp, lowest, zero, y, argmax):
    """y[u, j, k] = max over the window (t, v) of relu(z[(u*Rp + t)*Qz + j*Sp + v, k] + bias[k]).

    TensorFlow's scan, as max_pool2d's: start at (lowest, the first cell), take a cell only if
    strictly greater; ReLU keeps NaN, which never wins. argmax[u, j, k] = t * Qz + v, the
    winner's offset from its window's first row of z (no division to undo it in the backward).
    z holds Qz = Qp * Sp cells per conv row (the ones the windows read). y, argmax (units, Qp,
    K), written in place as the scan goes (a loop over k that vectorises). ``lowest`` and ``zero``
    come in with z's dtype: a literal 0.0 would make the selects float64.
    """
    units, Qp, K = y.shape
    for u in range(units):
        for j in range(Qp):
            best = y[u, j]
            best_cell = argmax[u, j]
            for k in range(K):
                best[k] = lowest
                best_cell[k] = 0
            for t in range(Rp):
                for v in range(Sp):
                    z_row = z[(u * Rp + t) * Qz + j * Sp + v]
                    cell = np.int32(t * Qz + v)
                    for k in range(K):
                        value = z_row[k] + bias[k]
                        value = zero if value <= zero else value  # noqa: FURB136 (NaN stays NaN; max() would drop it)
                        take = value > best[k]
                        best[k] = value if take else best[k]
                        best_cell[k] = cell if take else best_cell[k]


@njit(nogil=True, cache=True)
def pooled_gradient_images(dy, y, argmax, Qz, Rp, Sp, Pd, Qd, zero, dz, bias_partial):
    """dz (images * Pd*Qd, K) = dy at each window's winner where y > 0, else 0; bias_partial += its column sums.

    dy, y, argmax (images, Pp, Qp, K), argmax = the winner's offset from its window's first cell
    (t * Qz + v, as ``bias_relu_max_pool_rows`` writes it, Qz = Qp*Sp); dz holds Pd x Qd conv
    cells per image: the Pz x Qz = Pp*Rp x Qp*Sp cells the windows read, or all P x Q of them
    (the cells no window reads are zeros). Windows do not overlap, so each dz cell is written once:
    per window cell (t, v), a select over the filters, dy where that cell won and y > 0, else 0 (a
    loop storing one row, which vectorises; a scatter of the winners into a zeroed dz did not).
    The bias partial adds dy where y > 0 and 0 elsewhere: x + 0 = x, the skipped terms' bits.
    """
    images, Pp, Qp, K = dy.shape
    Pz = Pp * Rp
    for n in range(images):
        for h in range(Pd):
            first = (n * Pd + h) * Qd
            for col in range(Qz if h < Pz else 0, Qd):  # cells no window reads
                for k in range(K):
                    dz[first + col, k] = zero
        for i in range(Pp):
            for j in range(Qp):
                first = (n * Pd + i * Rp) * Qd + j * Sp
                for t in range(Rp):
                    for v in range(Sp):
                        cell, row = t * Qz + v, first + t * Qd + v
                        for k in range(K):
                            won = y[n, i, j, k] > zero and argmax[n, i, j, k] == cell
                            dz[row, k] = dy[n, i, j, k] if won else zero
                for k in range(K):
                    bias_partial[k] += dy[n, i, j, k] if y[n, i, j, k] > zero else zero


def _read_size(pg):
    """(Pz, Qz): the conv output rows and columns the windows read (an odd P or Q leaves one out)."""
    return pg.P * pg.R, pg.Q * pg.S


def _chunks(g, pg):
    """Chunks of units whose patches and z rows together fill about CHUNK_BYTES."""
    return _unit_chunks(g.N * pg.P, 4 * pg.R * _read_size(pg)[1] * (g.R * g.S * g.C + g.K))


def conv2d_bias_relu_max_pool_forward(x, w, bias, g, pg):
    """(y (N, Pp, Qp, K), argmax (N, Pp, Qp, K) int32: each winner's offset in its window, t * Qz + v).

    3 x 3, stride 1 convolutions under a 2 x 2 pooling take direct loops for few input channels
    (``direct_kernels``) and Winograd's F(2x2, 3x3) for many (``winograd_kernels``) when no
    intermediate of its transforms can overflow, the others im2col (see the module); all write
    the same argmax.
    """
    if direct_kernels.applies(g, pg):
        return direct_kernels.forward(x, w, bias, g, pg)
    if winograd_kernels.applies(g, pg) and winograd_kernels.in_range(x, w):
        return winograd_kernels.forward(x, w, bias, g, pg)
    return im2col_bias_relu_max_pool_forward(x, w, bias, g, pg)


def im2col_bias_relu_max_pool_forward(x, w, bias, g, pg):
    """The forward for any geometry: per chunk of units, im2col, one product, the epilogue."""
    lowest, zero = x.dtype.type(np.finfo(x.dtype).min), x.dtype.type(0)
    units, patch = g.N * pg.P, g.R * g.S * g.C
    w_matrix = w.reshape(patch, g.K)
    y = np.empty((units, pg.Q, g.K), x.dtype)
    argmax = np.empty((units, pg.Q, g.K), np.int32)
    bounds = _chunks(g, pg)
    Qz = _read_size(pg)[1]

    def task(i):
        start, stop = bounds[i]
        rows = (stop - start) * pg.R * Qz
        cols = patch_matrix(x, g, Qz, pg.R, pg.P, start, rows)  # unit = a pooled row: its Rp conv rows
        z = scratch("z", (rows, g.K), x.dtype)
        np.matmul(cols, w_matrix, out=z)
        bias_relu_max_pool_rows(z, bias, Qz, pg.R, pg.S, lowest, zero, y[start:stop], argmax[start:stop])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return y.reshape(pg.output_shape), argmax.reshape(pg.output_shape)


def conv2d_bias_relu_max_pool_backward(x, w, y, argmax, dy, g, pg, input_gradient=True):
    """(dx or None, dw, dbias) at the pooled upstream dy, in ``backward_by_images``'s single pass:
    each chunk's dz is the pooled gradient at each window's winner where y > 0 (else 0), over the
    Pz x Qz cells the windows read (the others have a zero gradient and are left out). Without
    the input gradient (a first layer), ``direct_kernels`` where it applies: no patches, no dz.

    Leaving the unread cells out drops only products with their zero gradient, x * 0 in dw and
    0 * w in dx, unless x or w holds an inf or a NaN: then those products are NaN, as in
    TensorFlow's composition, so every conv cell goes in (one pass over x and w to know).

    Where Winograd applies to the filter gradient (and to the input gradient, when it is asked
    for): with the input gradient, a 2 x 2 pooling and Winograd's one pass in range (max |dz| <=
    max |dy|), ``pooled_one_pass``; else ``conv_gradient`` writes dz whole and plain conv2d's
    backward takes it (its one pass, or each gradient on its own path, falling back to im2col's
    products for arrays that could overflow, inf and NaN included)."""
    Pz, Qz = _read_size(pg)
    direct = not input_gradient and direct_kernels.applies(g, pg)
    if not direct and winograd_backward_applies(g, pg, input_gradient):
        if (input_gradient and (pg.R, pg.S) == (2, 2) and winograd_conv2d.one_pass_applies(g)
                and winograd_conv2d.one_pass_in_range(x, w, dy, g)):  # max |dz| <= max |dy|
            return pooled_one_pass(x, w, y, argmax, dy, g, pg)
        dz, dbias = conv_gradient(y, argmax, dy, g, pg)
        return (*pointwise_kernels.conv2d_backward(x, w, dz, g, input_gradient), dbias)
    if (Pz, Qz) != (g.P, g.Q) and not all_finite(x, w):
        Pd, Qd = g.P, g.Q
    elif direct:
        return (None, *direct_kernels.backward(x, y, argmax, dy, g, pg))
    else:
        Pd, Qd = Pz, Qz
    zero = dy.dtype.type(0)

    def upstream(first, last, dz, bias_partial):
        pooled_gradient_images(dy[first:last], y[first:last], argmax[first:last], Qz, pg.R, pg.S, Pd, Qd, zero, dz,
                               bias_partial)

    return backward_by_images(x, w, g, upstream, input_gradient, cells=(Pd, Qd))


# The Winograd backward computes every conv cell's gradient (im2col's skips the cells no window
# reads) on 2 x 2 tiles (16 multiplies each against 9 a cell). Measured with the input gradient,
# in one process alternating (load 4.9): 0.63x / 0.59x the im2col path's time for cats vs dogs'
# conv2 / conv3 + pool, whose two passes need 0.44-0.47x of its multiplies, 0.87x for conv4 (0.66x),
# 0.94x for MNIST's conv2 (0.76x: no gain beyond noise). Taken up to this fraction. The one pass
# (``pooled_one_pass``) runs both gradients on the windows' Pp x Qp tiles, so it counts those: MNIST's
# conv2 + pool then needs 0.44x of im2col's multiplies (0.64x on the P x Q tiles, which measured
# 3.17-3.20 -> 2.45-2.47 ms, best of 40).
FUSED_MAX_MULTIPLY_FRACTION = 0.7


def winograd_backward_applies(g, pg, input_gradient) -> bool:
    """Whether the fused backward goes through plain conv2d's Winograd passes: they apply to the
    filter gradient (and to the input gradient, when asked for) and save enough multiplies against
    im2col's over the Pz x Qz cells the windows read (``FUSED_MAX_MULTIPLY_FRACTION``; in the one pass
    both gradients run on the windows' tiles, else the filter gradient on the P x Q tiles and the
    input gradient on the full correlation's H x W)."""
    if not winograd_conv2d.backward_filter_applies(g) or (input_gradient and not winograd_conv2d.backward_input_applies(g)):
        return False
    Pz, Qz = _read_size(pg)
    one_pass = input_gradient and (pg.R, pg.S) == (2, 2) and winograd_conv2d.one_pass_applies(g)
    if one_pass:  # both gradients on the windows' tiles
        tiles = 2 * pg.P * pg.Q
    else:
        forward_tiles = -(-g.P // 2) * -(-g.Q // 2)
        tiles = forward_tiles + (-(-g.H // 2) * -(-g.W // 2) if input_gradient else 0)
    return 16 * tiles <= FUSED_MAX_MULTIPLY_FRACTION * 9 * Pz * Qz * (2 if input_gradient else 1)


def pooled_one_pass(x, w, y, argmax, dy, g, pg):
    """(dx, dw, dbias) by ``winograd_conv2d.backward``'s one pass with each block's Z formed straight
    from the pooled gradient (``winograd_conv2d.pooled_gradient_tiles``: a 2 x 2 window is a tile),
    so dz is never written: the same dx and dw bits as the one pass over ``conv_gradient``'s dz cut
    to the read cells.
    dbias: one partial per task of the one pass, added in task order.

    The tiles are the windows, Pp x Qp of them (``read_geometry``): an odd P or Q's last tile row or
    column would hold only unread cells, whose Z is zero and adds nothing to dx or dw (x and w are
    finite here), so it is left out (MNIST's conv2 25 tiles an image instead of 36, cats vs dogs'
    conv4 49 instead of 64)."""
    read = read_geometry(g, pg)
    Pt, Qt = pg.P, pg.Q
    Qz = _read_size(pg)[1]
    bias_partials = partials(len(winograd_conv2d.one_pass_tasks(g.N)), (g.K,), dy.dtype)
    zero = dy.dtype.type(0)

    def fill_Z(task, first_tile, Z):
        cells = scratch("pooled_dy_cells", (8, g.K), dy.dtype)
        winograd_conv2d.pooled_gradient_tiles(dy, y, argmax, Qz, Pt, Qt, first_tile, zero, cells, Z, bias_partials[task])

    dx, dw = winograd_conv2d.backward(x, w, dy, read, fill_Z)
    return dx, dw, sum_in_order(bias_partials)


def read_geometry(g, pg):
    """g cut to the Pz x Qz conv cells the windows read: the same input, P and Q without an odd
    last row or column (bottom and right padding less by its stride, negative for VALID: a crop)."""
    Pz, Qz = _read_size(pg)
    return dataclasses.replace(g, P=Pz, Q=Qz, bottom=g.bottom - (g.P - Pz) * g.sh, right=g.right - (g.Q - Qz) * g.sw)


def conv_gradient(y, argmax, dy, g, pg):
    """(dz (N, P, Q, K), dbias (K,)): the gradient of every conv cell, the pooled gradient at each
    window's winner where y > 0, else 0 (``pooled_gradient_images``), in chunks of whole images;
    dbias = its column sums, one partial a chunk added in chunk order (GRADIENT_CHUNKS chunks: the
    same bits whatever the threads)."""
    Qz = _read_size(pg)[1]
    dz = np.empty((g.N, g.P, g.Q, g.K), dy.dtype)
    bounds = chunk_bounds(g.N, max(1, -(-g.N // GRADIENT_CHUNKS)))
    bias_partials = partials(len(bounds), (g.K,), dy.dtype)
    zero = dy.dtype.type(0)

    def task(i):
        first, last = bounds[i]
        pooled_gradient_images(dy[first:last], y[first:last], argmax[first:last], Qz, pg.R, pg.S, g.P, g.Q, zero,
                               dz[first:last].reshape(-1, g.K), bias_partials[i])

    run_chunks(task, len(bounds))
    return dz, sum_in_order(bias_partials)
