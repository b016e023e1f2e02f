"""Winograd F(2x2, 3x3) for plain conv2d's three passes: 3x3, stride 1, undilated, many channels.

Shape legend: N batch, H W input size, C in-channels, K filters, 3 x 3 kernel, P Q output size;
Pt Qt the tiles per image: ceil(P / 2) x ceil(Q / 2) for the forward, the filter gradient and the
adjoint input gradient, ceil(H / 2) x ceil(W / 2) for the full-correlation one. B^T, G, A^T and the tile layout (V (16, tiles, C), U (16, C, K), tile
(n, i, j) numbered (n * Pt + i) * Qt + j) are ``winograd_kernels``'s:

    forward          M[pos] = V[pos] (tiles, C) @ U[pos] (C, K);  y tile = A^T M A (2 x 2, edge
                     tiles cut at P, Q)
    backward-input   full correlation: dx = the same forward of dy, padded by 2 - top, 2 - left,
                     with the flipped, transposed filter w'[r, s, k, c] = w[2 - r, 2 - s, c, k] (a
                     stride-1 convolution's input gradient is a full correlation): tiles over H x W;
                     or the forward's adjoint, on the forward's P x Q tiles (``uses_adjoint``):
                     Z = A dY A^T, E[pos] = Z[pos] (tiles, K) @ U[pos].T (K, C), each tile's
                     4 x 4 patch gradient B E B^T, and dx cell (h, w) the sum of the (up to four)
                     patches that cover it, gathered (``add_patches``)
    backward-filter  Z = A dY A^T (4 x 4 per tile from its 2 x 2 of dy, zeros beyond P, Q);
                     dU[pos] = sum over tiles of V[pos].T (C, tiles) @ Z[pos] (tiles, K);
                     dw = G^T dU G
    both gradients   ``backward`` (``one_pass_applies``): Z once per block of tiles (whole images,
                     or bands of an image's tile rows), feeding both while it is in cache, dx by
                     the adjoint. Two gradients, 2 threads, best of 12-15: MNIST conv2 2.75-2.80 ->
                     2.3-2.4 ms, cats vs dogs' conv2 35.0-35.6 -> 24.0-24.7, conv3 22.7-23.7 ->
                     18.5-18.8, conv4 10.8-11.3 -> 10.0-10.3

16 * C * K multiplies per tile instead of im2col's 36 * C * K, in 16 products per chunk; the
products run near one core's sgemm speed (~100 GFLOP/s here), the transforms take the rest (about
30%: they write 4x the input). Small VALID images have many more H x W tiles than P x Q ones
(MNIST's 13 x 13 -> 11 x 11: 49 against 36), and there the adjoint wins: MNIST conv2's input
gradient 1.70 -> 1.25 ms, cats vs dogs' fourth layer 6.15 -> 4.97 (2 threads, best of 15); where
the counts are close it loses a little (cats conv3, 324 against 289 tiles: 10.7 -> 11.2 ms), so it
runs from ADJOINT_MIN_TILE_RATIO. (An earlier adjoint that scattered each patch into dx with +=
measured 1.2-1.6x slower than the full correlation; gathered, each dx cell is written once.)
The filter gradient sums one dU partial per chunk (chunks of tile rows that depend on the shape
only) in chunk order (``work_sharing.sum_in_order``): the same bits whichever thread ran which.

Results differ from im2col's by rounding: max |error| / max |result| against float64 2.0e-7 to
5.5e-7 on the course layers' shapes, im2col's in float32 1.5e-7 to 8.4e-7 (``python
tests/test_cpu_winograd_conv2d.py``). An element's error scales with the largest terms of its tile
(the transforms mix a tile's cells), not with its own terms: with the thresholds below it stays
inside the conv2d tests' per-element tolerance. Only for arrays whose intermediates cannot overflow
(``winograd_kernels.in_range`` for the forward and the full-correlation input gradient, whose
reduction runs over K; ``adjoint_in_range``; ``filter_gradient_in_range``): anything else, inf and
NaN included, takes im2col's products, whose inf / NaN are TensorFlow's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import conv_kernels
from .magnitude import largest_magnitude
from .small_products import position_products
from .stack_arrays import fits_on_stack, stack_array
from .winograd_kernels import G, filter_transform, in_range, input_tiles, rows_apart_off_pages
from .work_sharing import chunk_bounds, partials, run_chunks, scratch, single_threaded_blas, sum_in_order

CHUNK_BYTES = 1 << 20  # V and M (or V and Z) of a chunk of tile rows: 1 MiB, about a core's L2
MIN_CHUNKS = 4  # so that two threads finish together
# Chunks of the filter gradient, each with its own dU partial (16 C K floats), each taken in blocks of
# CHUNK_BYTES (cats vs dogs' layers: 4 or 16 chunks, or 4 MiB blocks, no faster; one block a chunk
# 1.3-1.7x slower but for the fourth layer, where it equals)
FILTER_CHUNKS = 8

# Where Winograd is faster than im2col (measured, 2 threads, 20 x 36 x 36 inputs, best of 15; the
# ratios are Winograd / im2col): the forward from 16 channels in and out (C, K = 16, 16: 0.96,
# 16, 32: 0.82, 32, 16: 0.80; 8 channels in: 1.2-2.1); the input gradient, whose im2col form ends
# in a scatter of 9 C values per output cell, from 32 input channels (32, 16: 0.76, 64, 8: 0.73;
# 16, 32: 0.98; 8, 64: 1.18); the filter gradient from 16 input and 8 output channels (16, 8:
# 0.74, 16, 16: 0.95; 8 channels in: 1.1-1.2).
FORWARD_MIN_CHANNELS = (16, 16)  # (C, K)
BACKWARD_INPUT_MIN_CHANNELS = (32, 8)
BACKWARD_FILTER_MIN_CHANNELS = (16, 8)
# Small images: edge tiles computing cells past the output (and, for the input gradient, the
# H x W tiles over a P x Q output) eat the saving. Winograd must need at most this fraction of
# im2col's multiplies, 16 per tile against 9 per output cell: measured on 64 images of 64 channels,
# 5 x 5 -> 3 x 3 (0.79 forward, 1.78 input gradient) 1.05x and 1.7x slower; 7 x 7 -> 5 x 5 (0.64,
# 1.14) 0.83x and 1.13x; 9 x 9 -> 7 x 7 input gradient (0.91) 1.15x; MNIST's 13 x 13 -> 11 x 11
# input gradient (0.72) 0.88x. The filter gradient at 0.64: 0.96x, even.
MAX_MULTIPLY_FRACTION = 0.75
# Outputs of fewer rows or columns than this keep im2col's filter gradient. G^T dU G mixes a tap with
# its neighbours, so a tap's error follows the largest tap's terms; with two output rows (SAME on a
# 2-row image) an edge tap reads mostly padding, and over 4,500 random cases its error reached
# 35 eps32 sqrt(L) of its own sum|terms| (the conv2d tests allow 4); with three at most 1.27, from
# four 0.37 (``python tests/test_cpu_winograd_conv2d.py`` reports the worst case).
FILTER_GRADIENT_MIN_OUTPUT = 3
# The input gradient as the forward's adjoint where the full correlation would need this many times
# the forward's tiles, or more (measured above: 1.36 and 1.27 gain, 1.12 loses)
ADJOINT_MIN_TILE_RATIO = 1.2
# Both gradients in one pass (``backward``) from this many images: its tasks are MIN_CHUNKS chunks of
# whole images, each with its own dU partial (more tasks measured slower: 8 or 10 partials of cats vs
# dogs' fourth layer, 1 MiB each, 10.7-11.3 ms against 10.1-10.3 with 4; so were task counts that
# leave a thread idle at the end, 3 and 6: 11.5-12.6)
ONE_PASS_MIN_IMAGES = MIN_CHUNKS
# Its blocks: Z and V (or Z and E, E and the patches) of about this many bytes. Two threads, best of 12,
# cats vs dogs' conv2 / conv3 (bands of tile rows): 0.5 MiB 32.7-34.1 / 22.3-22.6 ms, 1 MiB 25.2-28.2 /
# 18.5-19.8, 1.5 MiB 24.0-24.7 / 18.5-18.8, 2 MiB 24.0-25.0 / 21.7-21.9, 3 MiB 31.0-32.4 / 22.9-23.7
ONE_PASS_BLOCK_BYTES = 3 << 19


def is_3x3_unit_stride(g) -> bool:
    """3 x 3 filter, stride 1, dilation 1 (any padding)."""
    return (g.R, g.S, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)


def saves_multiplies(tiled_rows, tiled_cols, P, Q) -> bool:
    """Whether the 2 x 2 tiles over tiled_rows x tiled_cols cells need at most MAX_MULTIPLY_FRACTION
    of im2col's multiplies for a P x Q output (16 per tile, 9 per output cell, each times C K)."""
    tiles = -(-tiled_rows // 2) * -(-tiled_cols // 2)
    return 16 * tiles <= MAX_MULTIPLY_FRACTION * 9 * P * Q


def forward_applies(g) -> bool:
    """Whether the forward takes Winograd (its arrays must also be ``in_range``)."""
    C, K = FORWARD_MIN_CHANNELS
    return is_3x3_unit_stride(g) and g.C >= C and g.K >= K and saves_multiplies(g.P, g.Q, g.P, g.Q)


def backward_input_applies(g) -> bool:
    """Whether the input gradient takes Winograd (dy and w must also be ``in_range``)."""
    C, K = BACKWARD_INPUT_MIN_CHANNELS
    return is_3x3_unit_stride(g) and g.C >= C and g.K >= K and saves_multiplies(g.H, g.W, g.P, g.Q)


def backward_filter_applies(g) -> bool:
    """Whether the filter gradient takes Winograd (x and dy must also be ``filter_gradient_in_range``)."""
    C, K = BACKWARD_FILTER_MIN_CHANNELS
    return (is_3x3_unit_stride(g) and g.C >= C and g.K >= K and saves_multiplies(g.P, g.Q, g.P, g.Q)
            and min(g.P, g.Q) >= FILTER_GRADIENT_MIN_OUTPUT)


def uses_adjoint(g) -> bool:
    """Whether the input gradient on its own takes the forward's adjoint (P x Q tiles) rather than the
    full correlation (H x W tiles): the full correlation's tiles at least ADJOINT_MIN_TILE_RATIO times
    the adjoint's, and ``adjoint_fits_on_stack``."""
    full = -(-g.H // 2) * -(-g.W // 2)
    return full >= ADJOINT_MIN_TILE_RATIO * -(-g.P // 2) * -(-g.Q // 2) and adjoint_fits_on_stack(g)


def adjoint_fits_on_stack(g) -> bool:
    """Whether ``patch_gradients``' 16 C stack values are within the stack budget (float64's)."""
    return fits_on_stack(16 * g.C, np.float64)


def one_pass_applies(g) -> bool:
    """Whether both gradients take ``backward``'s one pass (the arrays must also be ``one_pass_in_range``):
    both take Winograd, ``adjoint_fits_on_stack`` and ONE_PASS_MIN_IMAGES images. The input gradient is
    the adjoint there whatever the tile counts: with Z shared and no transform of dy on the H x W
    tiles it wins even where the full correlation needs about as many tiles (two threads, best of 15:
    cats vs dogs' conv2, 1.06 times the tiles, 35.0-35.6 -> 24.0-24.7 ms; conv3, 1.12, 22.7-23.7 ->
    18.5-18.8)."""
    return (backward_input_applies(g) and backward_filter_applies(g) and adjoint_fits_on_stack(g)
            and g.N >= ONE_PASS_MIN_IMAGES)


def adjoint_in_range(dy, w) -> bool:
    """Whether no intermediate of the adjoint input gradient can overflow: |Z| <= 4 max|dy| (as for
    the filter gradient), |U| <= 2.25 max|w|, |E| <= 9 K max|dy| max|w| (K products), a patch
    B E B^T at most 9 |E| (B's rows have at most three entries of magnitude 1) and a dx cell the
    sum of at most four patches: 324 K max|dy| max|w|, all within the dtype's largest value."""
    return _adjoint_bounds_hold(largest_magnitude(dy), largest_magnitude(w), dy.shape[3], dy.dtype)


def _adjoint_bounds_hold(dy_max, w_max, K, dtype) -> bool:
    """``adjoint_in_range``'s bounds from the largest magnitudes (inf for an array that is not finite)."""
    largest = float(np.finfo(dtype).max)
    return 4 * dy_max <= largest and 2.25 * w_max <= largest and 324 * K * dy_max * w_max <= largest


def backward_input_in_range(dy, w, g) -> bool:
    """``adjoint_in_range`` or ``in_range``, for the method ``backward_input`` takes."""
    return adjoint_in_range(dy, w) if uses_adjoint(g) else in_range(dy, w)


def filter_gradient_in_range(x, dy, tiles) -> bool:
    """Whether no intermediate of the filter gradient can overflow: |V| <= 4 max|x|, |Z| <= 4 max|dy|
    (each of A's rows has two entries of magnitude 1), |dU| <= 16 tiles max|x| max|dy| and
    |dw| <= 4 max|dU| (the columns of |G| sum to at most 2), all within the dtype's largest value."""
    return _filter_gradient_bounds_hold(largest_magnitude(x), largest_magnitude(dy), tiles, x.dtype)


def _filter_gradient_bounds_hold(x_max, dy_max, tiles, dtype) -> bool:
    """``filter_gradient_in_range``'s bounds from the largest magnitudes (inf for an array that is not finite)."""
    largest = float(np.finfo(dtype).max)
    return 4 * x_max <= largest and 4 * dy_max <= largest and 64 * tiles * x_max * dy_max <= largest


def one_pass_in_range(x, w, dy, g) -> bool:
    """``adjoint_in_range(dy, w)`` and ``filter_gradient_in_range(x, dy, tiles)``, dy read once."""
    dy_max = largest_magnitude(dy)
    tiles = g.N * -(-g.P // 2) * -(-g.Q // 2)
    return (_adjoint_bounds_hold(dy_max, largest_magnitude(w), g.K, dy.dtype)
            and _filter_gradient_bounds_hold(largest_magnitude(x), dy_max, tiles, x.dtype))


@njit(nogil=True, cache=True, inline="always")
def _tile_origin(number, Pt, Qt):
    """(n, h, w): the image of tile ``number`` = (n * Pt + i) * Qt + j and its first cell (2i, 2j)."""
    return number // (Pt * Qt), 2 * (number // Qt % Pt), 2 * (number % Qt)


@njit(nogil=True, cache=True)
def output_tiles(M, Pt, Qt, first_tile, cell, y):
    """y[n, 2i + t, 2j + v, k] = (A^T M A)[t, v] of tile first_tile + tile, cells beyond y's P x Q left out.

    M (tiles, 16, K): each tile's 16 rows in one run (laid out by position, (16, tiles, K), the
    16 rows a tile reads would lie tiles * K apart, often a multiple of 4 KiB, all in one L1 cache
    set: measured 35 -> 20 us for 144 tiles of 64 filters). A tile inside P x Q writes its four
    cells straight into y (144 tiles of 64 filters, one thread: 17 -> 11 us against going through
    a 4 x K scratch); an edge tile goes through cell (4, K) and copies the cells that exist.
    """
    _, P, Q, K = y.shape
    for tile in range(M.shape[0]):
        n, h, col = _tile_origin(first_tile + tile, Pt, Qt)
        if h + 2 <= P and col + 2 <= Q:
            _a_transposed_m_a(M[tile], y[n, h, col], y[n, h, col + 1], y[n, h + 1, col], y[n, h + 1, col + 1])
            continue
        _a_transposed_m_a(M[tile], cell[0], cell[1], cell[2], cell[3])
        for t in range(2):
            if h + t < P:
                for v in range(2):
                    if col + v < Q:
                        out = y[n, h + t, col + v]
                        source = cell[2 * t + v]
                        for k in range(K):
                            out[k] = source[k]


@njit(nogil=True, cache=True, inline="always")
def _a_transposed_m_a(m, out00, out01, out10, out11):
    """The tile's 2 x 2 cells (A^T m A)[t, v] into out_tv (K each), m (16, K): rows s0 = m0 + m1 + m2,
    s1 = m1 - m2 - m3 (mi m's row i of four), then the same on the columns."""
    for k in range(m.shape[1]):
        s00 = m[0, k] + m[4, k] + m[8, k]
        s01 = m[1, k] + m[5, k] + m[9, k]
        s02 = m[2, k] + m[6, k] + m[10, k]
        s03 = m[3, k] + m[7, k] + m[11, k]
        s10 = m[4, k] - m[8, k] - m[12, k]
        s11 = m[5, k] - m[9, k] - m[13, k]
        s12 = m[6, k] - m[10, k] - m[14, k]
        s13 = m[7, k] - m[11, k] - m[15, k]
        out00[k] = s00 + s01 + s02
        out01[k] = s01 - s02 - s03
        out10[k] = s10 + s11 + s12
        out11[k] = s11 - s12 - s13


@njit(nogil=True, cache=True)
def gradient_tiles(dy, Pt, Qt, first_tile, d, Z):
    """Z[tile, 4a + b, k] = (A dY A^T)[a, b], dY the 2 x 2 of dy[n, 2i:2i + 2, 2j:2j + 2, k] (zeros beyond P, Q).

    Tile by tile, as ``output_tiles``'s M (laid out (16, tiles, K) it took 383 instead of 44 us for
    144 tiles of 64 filters). d (8, K) scratch: dY's cells d00, d01, d10, d11, then its rows' sums
    d00 + d10, d01 + d11 and differences d00 - d10, d01 - d11. Rows of A dY: d0, d0 + d1, d0 - d1,
    -d1 (di = (di0, di1) dY's row i); A^T acts the same way on each row's two cells.

    Every loop over k stores to one row: LLVM vectorises it then, but not a loop storing to
    several rows of one array, whose row stride it cannot see (one loop writing Z's 16 rows
    ran scalar: 168 tiles of 64 filters 52 -> 18-25 us, of 128 filters 104 -> 43 us, the same bits).
    """
    _, P, Q, K = dy.shape
    for tile in range(Z.shape[0]):
        n, h, col = _tile_origin(first_tile + tile, Pt, Qt)
        for t in range(2):
            for v in range(2):
                if h + t < P and col + v < Q:
                    for k in range(K):
                        d[2 * t + v, k] = dy[n, h + t, col + v, k]
                else:
                    for k in range(K):
                        d[2 * t + v, k] = 0.0
        _a_dy_a_transposed(d, Z[tile])


@njit(nogil=True, cache=True, inline="always")
def _a_dy_a_transposed(d, z):
    """z (16, K) = A dY A^T of the 2 x 2 cells in d's rows 0-3 (d00, d01, d10, d11); d's rows 4-7
    take the rows' sums and differences (``gradient_tiles``)."""
    K = z.shape[1]
    for v in range(2):
        for k in range(K):
            d[4 + v, k] = d[v, k] + d[2 + v, k]
        for k in range(K):
            d[6 + v, k] = d[v, k] - d[2 + v, k]
    for a in range(3):  # rows 0, 1, 2 of A dY: d's rows (0, 1), (4, 5), (6, 7)
        left = 0 if a == 0 else 2 + 2 * a
        for k in range(K):
            z[4 * a, k] = d[left, k]
        for k in range(K):
            z[4 * a + 1, k] = d[left, k] + d[left + 1, k]
        for k in range(K):
            z[4 * a + 2, k] = d[left, k] - d[left + 1, k]
        for k in range(K):
            z[4 * a + 3, k] = -d[left + 1, k]
    for k in range(K):  # row 3, -d1, negated last
        z[12, k] = -d[2, k]
    for k in range(K):
        z[13, k] = -(d[2, k] + d[3, k])
    for k in range(K):
        z[14, k] = d[3, k] - d[2, k]
    for k in range(K):
        z[15, k] = d[3, k]


@njit(nogil=True, cache=True)
def pooled_gradient_tiles(dy, y, argmax, Qz, Pt, Qt, first_tile, zero, d, Z, bias_partial):
    """Z as ``gradient_tiles`` forms it from the conv gradient dz of a 2 x 2, stride-2 max pooling over
    ReLU, without dz: tile (i, j) is window (i, j), so its 2 x 2 of dz is dy[n, i, j, k] at the
    window's winner (argmax t * Qz + v: 0, 1, Qz or Qz + 1) where y > 0, zeros elsewhere and in the
    tiles of a last odd conv row or column, which no window reads. The same values, so the same
    bits, as dz's tiles. bias_partial[k] += dy where y > 0 (``conv_pool_kernels.pooled_gradient_images``'s
    sum, window by window). dy, y, argmax (N, Pp, Qp, K) with Pp = P // 2, Qp = Q // 2."""
    _, Pp, Qp, K = dy.shape
    for tile in range(Z.shape[0]):
        n, h, col = _tile_origin(first_tile + tile, Pt, Qt)
        i, j = h // 2, col // 2
        if i < Pp and j < Qp:
            upstream, alive, winner = dy[n, i, j], y[n, i, j], argmax[n, i, j]
            for t in range(2):
                for v in range(2):
                    cell = t * Qz + v
                    for k in range(K):
                        won = alive[k] > zero and winner[k] == cell
                        d[2 * t + v, k] = upstream[k] if won else zero
            for k in range(K):
                bias_partial[k] += upstream[k] if alive[k] > zero else zero
        else:
            for cell in range(4):
                for k in range(K):
                    d[cell, k] = zero
        _a_dy_a_transposed(d, Z[tile])


@njit(nogil=True, cache=True)
def patch_gradients(E, patches):
    """patches[tile, 4a + b, c] = (B E B^T)[a, b] of each tile's E[tile] (16, C): the gradient of the
    tile's 4 x 4 input patch (the forward reads V = B^T d B). Rows of B E: E0, E1 - E2 + E3,
    E1 + E2 - E0, -E3 (Ei E's row i of four); B^T acts the same way on the columns. rows (16, C),
    the first stage, is a stack array, and every loop stores one row (``gradient_tiles``)."""
    C = E.shape[2]
    rows = stack_array(16 * C, E).reshape((16, C))
    for tile in range(E.shape[0]):
        e, out = E[tile], patches[tile]
        for b in range(4):
            for c in range(C):
                rows[b, c] = e[b, c]
            for c in range(C):
                rows[4 + b, c] = e[4 + b, c] - e[8 + b, c] + e[12 + b, c]
            for c in range(C):
                rows[8 + b, c] = e[4 + b, c] + e[8 + b, c] - e[b, c]
            for c in range(C):
                rows[12 + b, c] = -e[12 + b, c]
        for a in range(4):
            for c in range(C):
                out[4 * a, c] = rows[4 * a, c]
            for c in range(C):
                out[4 * a + 1, c] = rows[4 * a + 1, c] - rows[4 * a + 2, c] + rows[4 * a + 3, c]
            for c in range(C):
                out[4 * a + 2, c] = rows[4 * a + 1, c] + rows[4 * a + 2, c] - rows[4 * a, c]
            for c in range(C):
                out[4 * a + 3, c] = -rows[4 * a + 3, c]


@njit(nogil=True, cache=True)
def add_patches(patches, Pt, Qt, top, left, zero, dx):
    """dx[h, w, c] (one image, H x W x C) = the sum of the patch cells over it: tile (i, j)'s patch
    covers padded rows 2i .. 2i + 3 and columns 2j .. 2j + 3, so with (i, a) = divmod(h + top, 2)
    and (j, b) = divmod(w + left, 2)

        dx[h, w] = patches[(i, j)][a, b] + patches[(i, j - 1)][a, b + 2]
                   + patches[(i - 1, j)][a + 2, b] + patches[(i - 1, j - 1)][a + 2, b + 2]

    in that order, tile (i, j) = i * Qt + j, a tile outside the Pt x Qt grid adding the zero row
    (C zeros). Each dx cell is written once."""
    H, W, C = dx.shape
    for h in range(H):
        i, a = divmod(h + top, 2)
        below, above = i < Pt, 1 <= i <= Pt  # tile rows i and i - 1 exist
        for w in range(W):
            j, b = divmod(w + left, 2)
            right, left_of = j < Qt, 1 <= j <= Qt  # tile columns j and j - 1 exist
            s0 = patches[i * Qt + j, 4 * a + b] if below and right else zero
            s1 = patches[i * Qt + j - 1, 4 * a + b + 2] if below and left_of else zero
            s2 = patches[(i - 1) * Qt + j, 4 * (a + 2) + b] if above and right else zero
            s3 = patches[(i - 1) * Qt + j - 1, 4 * (a + 2) + b + 2] if above and left_of else zero
            out = dx[h, w]
            for c in range(C):
                out[c] = s0[c] + s1[c] + s2[c] + s3[c]


@njit(nogil=True, cache=True)
def add_patches_images(patches, Pt, Qt, top, left, zero, dx):
    """``add_patches`` for each image of dx (images, H, W, C) from its Pt Qt tiles' patches, the images'
    tiles one after another in patches (one call for a block of images: 64 Python calls of MNIST's
    conv2 backward were ~0.1 ms of its 2.2)."""
    per_image = Pt * Qt
    for n in range(dx.shape[0]):
        add_patches(patches[n * per_image : (n + 1) * per_image], Pt, Qt, top, left, zero, dx[n])


def _tile_row_chunks(units, Qt, C, K, itemsize):
    """Chunks of tile rows (Qt tiles each) whose V (16, tiles, C) and M (tiles, 16, K) fill about
    CHUNK_BYTES, at least MIN_CHUNKS of them when there are rows enough, V's rows not a multiple of
    4 KiB apart (``rows_apart_off_pages``)."""
    per_chunk = max(1, min(CHUNK_BYTES // (4 * 16 * Qt * (C + K)), -(-units // MIN_CHUNKS)))
    return chunk_bounds(units, rows_apart_off_pages(per_chunk, Qt, (C,), itemsize))


def winograd_convolution(x, U, top, left, out_shape):
    """y (out_shape = (N, P, Q, K)) = the stride-1 3 x 3 correlation of x (zeros outside) whose
    transformed filter is U (16, C, K), read from x[n, p - top + r, q - left + s]: per chunk of
    tile rows, input_tiles -> 16 products -> output_tiles."""
    N, P, Q, K = out_shape
    C = x.shape[3]
    Pt, Qt = -(-P // 2), -(-Q // 2)
    y = np.empty(out_shape, x.dtype)
    bounds = _tile_row_chunks(N * Pt, Qt, C, K, x.dtype.itemsize)

    def task(i):
        start, stop = bounds[i]
        tiles = (stop - start) * Qt
        V = scratch("winograd_V", (16, tiles, C), x.dtype)
        input_tiles(x, top, left, Pt, Qt, start * Qt, V)
        M = scratch("winograd_M_by_tile", (tiles, 16, K), x.dtype)
        position_products(V, U, M.transpose(1, 0, 2))  # (16, tiles, K) rows 16 K apart: BLAS writes them as they are
        output_tiles(M, Pt, Qt, start * Qt, scratch("winograd_cell", (4, K), x.dtype), y)

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return y


def forward(x, w, g):
    """y (N, P, Q, K) = conv2d(x, w) by Winograd (module docstring)."""
    return winograd_convolution(x, filter_transform(w), g.top, g.left, g.output_shape)


def backward_input(dy, w, g):
    """dx (N, H, W, C): ``adjoint_input_gradient`` where ``uses_adjoint``, else ``full_correlation_input_gradient``."""
    if uses_adjoint(g):
        return adjoint_input_gradient(dy, w, g)
    return full_correlation_input_gradient(dy, w, g)


def full_correlation_input_gradient(dy, w, g):
    """dx (N, H, W, C): the correlation of dy, padded by 2 - top, 2 - left, with w'[r, s, k, c] = w[2 - r, 2 - s, c, k]."""
    flipped = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))  # (3, 3, K, C)
    return winograd_convolution(dy, filter_transform(flipped), 2 - g.top, 2 - g.left, g.input_shape)


def adjoint_input_gradient(dy, w, g):
    """dx (N, H, W, C) as the forward's adjoint (module docstring), per chunk of whole images:
    ``gradient_tiles`` (Z), 16 products E[pos] = Z[pos] @ U[pos].T, ``patch_gradients`` (B E B^T),
    then ``add_patches`` image by image (a dx cell needs the tiles around it, all in the chunk)."""
    N, P, Q, K = g.output_shape
    C = g.C
    Pt, Qt = -(-P // 2), -(-Q // 2)
    U_t = np.ascontiguousarray(filter_transform(w).transpose(0, 2, 1))  # (16, K, C)
    dx = np.empty(g.input_shape, dy.dtype)
    per_image = 4 * 16 * Pt * Qt * (K + 2 * C)  # Z, E and the patches of one image
    bounds = chunk_bounds(N, max(1, min(CHUNK_BYTES // per_image, -(-N // MIN_CHUNKS))))
    zero = np.zeros(C, dy.dtype)

    def task(i):
        first, last = bounds[i]
        tiles = (last - first) * Pt * Qt
        Z = scratch("winograd_Z", (tiles, 16, K), dy.dtype)
        gradient_tiles(dy, Pt, Qt, first * Pt * Qt, scratch("winograd_dy_cells", (8, K), dy.dtype), Z)
        E = scratch("winograd_E", (tiles, 16, C), dy.dtype)
        position_products(Z.transpose(1, 0, 2), U_t, E.transpose(1, 0, 2))  # by position, rows 16 C apart
        patches = scratch("winograd_patches", (tiles, 16, C), dy.dtype)
        patch_gradients(E, patches)
        add_patches_images(patches, Pt, Qt, g.top, g.left, zero, dx[first:last])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx


def filter_gradient_transform(dU):
    """dw (3, 3, C, K) = G^T dU G per (c, k), dU (16, C, K): G^T on the rows (a), then on the columns (b)."""
    _, C, K = dU.shape
    gt = G.T.astype(dU.dtype)  # (3, 4)
    rows = (gt @ dU.reshape(4, 4 * C * K)).reshape(3, 4, C * K)  # [r, b, (c, k)]
    return np.matmul(gt, rows).reshape(3, 3, C, K)  # [r, s, (c, k)]


def add_filter_block(V, Z_by_position, first_block, dU_partial):
    """A block's share of a task's dU partial (16, C, K): V[pos].T (C, tiles) @ Z[pos] (tiles, K) per
    position, written into the partial for the task's first block, added to it for later ones."""
    if first_block:
        np.matmul(V.transpose(0, 2, 1), Z_by_position, out=dU_partial)
    else:
        block = scratch("winograd_dU", dU_partial.shape, dU_partial.dtype)
        np.matmul(V.transpose(0, 2, 1), Z_by_position, out=block)
        dU_partial += block


def backward_filter(x, dy, g):
    """dw (3, 3, C, K): dU = sum over FILTER_CHUNKS chunks of tile rows of their V[pos].T @ Z[pos],
    each chunk taken in blocks of about CHUNK_BYTES (the first block's product into the chunk's
    partial, later ones added to it), partials summed in chunk order; dw = G^T dU G."""
    N, P, Q, K = g.output_shape
    C = g.C
    Pt, Qt = -(-P // 2), -(-Q // 2)
    units = N * Pt
    bounds = chunk_bounds(units, -(-units // FILTER_CHUNKS))
    units_per_block = max(1, CHUNK_BYTES // (4 * 16 * Qt * (C + K)))
    dU_partials = partials(len(bounds), (16, C, K), x.dtype)

    def task(i):
        start, stop = bounds[i]
        for first in range(start, stop, units_per_block):
            last = min(stop, first + units_per_block)
            tiles = (last - first) * Qt
            V = scratch("winograd_V", (16, tiles, C), x.dtype)
            input_tiles(x, g.top, g.left, Pt, Qt, first * Qt, V)
            Z = scratch("winograd_Z", (tiles, 16, K), x.dtype)
            gradient_tiles(dy, Pt, Qt, first * Qt, scratch("winograd_dy_cells", (8, K), x.dtype), Z)
            Z_by_position = Z.transpose(1, 0, 2)  # (16, tiles, K), rows 16 K apart: BLAS takes it as it is
            add_filter_block(V, Z_by_position, first == start, dU_partials[i])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return filter_gradient_transform(sum_in_order(dU_partials))


def one_pass_tasks(N):
    """``backward``'s tasks: MIN_CHUNKS chunks of whole images, (first, last + 1) each."""
    return chunk_bounds(N, -(-N // MIN_CHUNKS))


def backward(x, w, dy, g, fill_Z=None):
    """(dx (N, H, W, C), dw (3, 3, C, K)) in one pass that transforms dy once: per block of tiles,
    Z = A dY A^T (``gradient_tiles``) feeds both the adjoint input gradient (E[pos] = Z[pos] @
    U[pos].T, ``patch_gradients``, ``add_patches``) and the filter gradient (dU += V[pos].T @ Z[pos],
    V = ``input_tiles`` of x) while it is in cache.

    MIN_CHUNKS tasks of whole images, each with its own dU partial (the first block's product into
    it, later ones added), partials summed in task order. A block is about ONE_PASS_BLOCK_BYTES of tiles:
    whole images, or where an image is larger, bands of its tile rows (``_one_pass_blocks``), each
    band keeping its last tile row's patches for the dx rows the next band completes
    (``_add_band``). dx is ``adjoint_input_gradient``'s (the same products and sums); dw rounds as
    ``backward_filter``'s but sums its tiles in other groups.

    ``fill_Z(task, first_tile, Z)``, if given, forms a block's Z instead of ``gradient_tiles`` of dy
    (the fused conv + pool backward forms it from the pooled gradient; dy then only gives the dtype)."""
    N, P, Q, K = g.output_shape
    C = g.C
    Pt, Qt = -(-P // 2), -(-Q // 2)
    U_t = np.ascontiguousarray(filter_transform(w).transpose(0, 2, 1))  # (16, K, C)
    dx = np.empty(g.input_shape, dy.dtype)
    # the arrays live together: Z and E, E and the patches, then Z and V (counting all four, K + 3C,
    # halved MNIST conv2's blocks to 2 images: 2.53-2.58 ms against 2.34-2.46 with 4)
    per_tile_row = 4 * 16 * Qt * (K + C)
    images_per_block = ONE_PASS_BLOCK_BYTES // (Pt * per_tile_row)
    rows_per_band = max(1, ONE_PASS_BLOCK_BYTES // per_tile_row)
    bounds = one_pass_tasks(N)
    images_per_task = max(last - first for first, last in bounds)
    block_tiles = (min(images_per_block, images_per_task) * Pt if images_per_block else min(Pt, rows_per_band)) * Qt
    dU_partials = partials(len(bounds), (16, C, K), x.dtype)
    zero = np.zeros(C, dy.dtype)

    def task(i):
        Z_all = scratch("winograd_Z", (block_tiles, 16, K), dy.dtype)
        E_all = scratch("winograd_E", (block_tiles, 16, C), dy.dtype)
        carried_and_patches = scratch("winograd_patches", (Qt + block_tiles, 16, C), dy.dtype)
        V_all = scratch("winograd_V", (16 * block_tiles * C,), x.dtype)
        cells = scratch("winograd_dy_cells", (8, K), dy.dtype)
        start, stop = bounds[i]
        for number, (first, last, r0, r1) in enumerate(_one_pass_blocks(start, stop, Pt, images_per_block, rows_per_band)):
            first_tile, tiles = (first * Pt + r0) * Qt, (last - first) * (r1 - r0) * Qt
            Z = Z_all[:tiles]
            if fill_Z is None:
                gradient_tiles(dy, Pt, Qt, first_tile, cells, Z)
            else:
                fill_Z(i, first_tile, Z)
            Z_by_position = Z.transpose(1, 0, 2)  # (16, tiles, K), rows 16 K apart: BLAS takes it as it is
            E = E_all[:tiles]
            position_products(Z_by_position, U_t, E.transpose(1, 0, 2))
            patch_gradients(E, carried_and_patches[Qt : Qt + tiles])
            if r1 - r0 == Pt:  # whole images
                add_patches_images(carried_and_patches[Qt : Qt + tiles], Pt, Qt, g.top, g.left, zero, dx[first:last])
            else:
                _add_band(carried_and_patches, r0, r1, Pt, Qt, g, zero, dx[first])
            V = V_all[: 16 * tiles * C].reshape(16, tiles, C)
            input_tiles(x, g.top, g.left, Pt, Qt, first_tile, V)
            add_filter_block(V, Z_by_position, number == 0, dU_partials[i])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx, filter_gradient_transform(sum_in_order(dU_partials))


def _one_pass_blocks(start, stop, Pt, images_per_block, rows_per_band):
    """The blocks (first image, last image + 1, first tile row, last tile row + 1) of images
    start .. stop - 1: ``images_per_block`` whole images at a time, or if that is 0, each image in
    bands of ``rows_per_band`` tile rows, top to bottom."""
    if images_per_block:
        return [(first, min(stop, first + images_per_block), 0, Pt) for first in range(start, stop, images_per_block)]
    return [(n, n + 1, r0, min(Pt, r0 + rows_per_band)) for n in range(start, stop) for r0 in range(0, Pt, rows_per_band)]


def _add_band(carried_and_patches, r0, r1, Pt, Qt, g, zero, dx_image):
    """The dx rows of one image that tile rows r0 .. r1 - 1 (a band of it) complete, by ``add_patches``:
    rows h with (h + top) // 2 in [r0, r1) (and, for the last band, the rows below the last tile
    row), which read tile rows i and i - 1 only. The band's patches are carried_and_patches[Qt:];
    for a band below the first, tile row r0 - 1's patches are the first Qt entries, carried from
    the band before, and the band's last tile row is carried on to the next (copied there after use)."""
    H = dx_image.shape[0]
    h0 = 0 if r0 == 0 else min(H, max(0, 2 * r0 - g.top))
    h1 = H if r1 == Pt else min(H, max(0, 2 * r1 - g.top))
    grid_start = Qt if r0 == 0 else 0  # the first tile row of the grid add_patches reads
    grid_top_row = r0 if r0 == 0 else r0 - 1
    grid = carried_and_patches[grid_start : Qt + (r1 - r0) * Qt]
    if h1 > h0:
        add_patches(grid, r1 - grid_top_row, Qt, h0 + g.top - 2 * grid_top_row, g.left, zero, dx_image[h0:h1])
    if r1 < Pt:  # carry the band's last tile row
        last_row = Qt + (r1 - r0 - 1) * Qt
        carried_and_patches[:Qt] = carried_and_patches[last_row : last_row + Qt]


# --- conv2d's entry points: Winograd where it applies and cannot overflow, else im2col ------------


def conv2d_forward(x, w, g):
    """y (N, P, Q, K): ``forward`` where ``forward_applies`` and ``in_range(x, w)``, else im2col."""
    if forward_applies(g) and in_range(x, w):
        return forward(x, w, g)
    return conv_kernels.conv2d_forward(x, w, g)


def conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C): ``backward_input`` where ``backward_input_applies`` and ``backward_input_in_range``, else im2col."""
    if backward_input_applies(g) and backward_input_in_range(dy, w, g):
        return backward_input(dy, w, g)
    return conv_kernels.conv2d_backward_input(dy, w, g)


def conv2d_backward_filter(x, dy, g):
    """dw (3, 3, C, K): ``backward_filter`` where ``backward_filter_applies`` and ``filter_gradient_in_range``, else im2col."""
    tiles = g.N * -(-g.P // 2) * -(-g.Q // 2)
    if backward_filter_applies(g) and filter_gradient_in_range(x, dy, tiles):
        return backward_filter(x, dy, g)
    return conv_kernels.conv2d_backward_filter(x, dy, g)
