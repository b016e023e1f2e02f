"""Winograd F(2x2, 3x3) for conv2d + bias + ReLU + a 2x2 max pooling: each 2x2 output tile is one window.

Shape legend: N batch, H W input size, C in-channels, K filters, 3 x 3 kernel, stride 1,
dilation 1; Pp Qp the pooled size (= the tiles per image), Pz x Qz = 2Pp x 2Qp the conv cells
the windows read. Tile (n, i, j) computes the conv cells (2i + t, 2j + v), t, v < 2, from the
4 x 4 input patch d at rows 2i - top ..., columns 2j - left ... (zeros outside: padding):

    y = A^T [ (G g G^T) * (B^T d B) ] A     (Lavin & Gray 2015; * elementwise, 4 x 4 per (c, k))

          | 1  0 -1  0 |          | 1    0    0  |
    B^T = | 0  1  1  0 |      G = | 1/2  1/2  1/2|      A^T = | 1  1  1  0 |
          | 0 -1  1  0 |          | 1/2 -1/2  1/2|            | 0  1 -1 -1 |
          | 0  1  0 -1 |          | 0    0    1  |

With V = B^T d B and U = G g G^T laid out as (16, tiles, C) and (16, C, K), the sum over c is 16
matrix products M[pos] = V[pos] @ U[pos]: 16 * C * K multiplies per tile instead of 36 * C * K
(2.25x fewer), in products of (tiles, C) @ (C, K); bias, ReLU and the window's max follow on
each tile's four cells while M is in cache. MNIST's second layer: 1.78 -> 1.40 ms a forward.

Only the forward: the backward reads the same argmax and keeps im2col's path. (Plain conv2d's
three passes have their own Winograd in ``winograd_conv2d``, which reuses these transforms.) Its Winograd
form (dU = sum of V[pos].T @ (A dY A^T)[pos], dw = G^T dU G) measured no faster here (4.19 vs
4.14 ms for MNIST's second layer): the input gradient, half the work, gains nothing from it
(as a full correlation it has more tiles than the output), and the larger per-chunk partials
of dU cost back what the filter-gradient products save.

Used for the 3x3, stride 1, undilated convolutions of at least WINOGRAD_MIN_CHANNELS input
channels that a 2x2 max pooling follows (MNIST's second layer, cats-vs-dogs' second to fourth);
the results differ from im2col's by rounding only (a few float32 ulps of each term).

Only for inputs and filters whose transforms stay finite (``in_range``). The transforms add and
subtract input cells that the direct sum never combines: one +inf pixel makes inf - inf = NaN
in V, and NaN never wins a pooling window, so a window that TensorFlow gives inf would get
another cell or the lowest float; inputs of +-3e38 overflow in V where the direct sums (small
filters) stay near 1e36. ``in_range`` bounds every intermediate: |V| <= 4 max|x| (four cells
added), |U| <= 2.25 max|w| (G's rows sum to at most 1.5 in absolute value), and M, which sums C
products of them, then A^T M A, which adds nine M's, by 81 C max|x| max|w|. Anything that could
overflow, inf and NaN included, goes to im2col, which computes TensorFlow's products. The check is one pass over x and w
(``magnitude.largest_magnitude``): about 19 us of MNIST's second layer's 1.4 ms forward.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .conv_kernels import CHUNK_BYTES, MIN_CHUNKS
from .magnitude import largest_magnitude
from .small_products import position_products
from .work_sharing import chunk_bounds, run_chunks, scratch, single_threaded_blas

WINOGRAD_MIN_CHANNELS = 8  # fewer input channels: products of inner size C too thin to gain


def applies(g, pg) -> bool:
    """Whether the forward of the fused conv + pool of geometries g, pg can take the Winograd path
    (its arrays must also be ``in_range``)."""
    return ((g.R, g.S, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1) and (pg.R, pg.S) == (2, 2)
            and g.C >= WINOGRAD_MIN_CHANNELS)


def in_range(x, w) -> bool:
    """Whether no intermediate of the transforms can overflow (module docstring): x and w finite,
    |V| <= 4 max|x|, |U| <= 2.25 max|w| and everything after them <= 81 C max|x| max|w| within
    the dtype's largest finite value (the bounds in float64, exact enough)."""
    largest = float(np.finfo(x.dtype).max)
    x_max, w_max = largest_magnitude(x), largest_magnitude(w)  # inf if an array is not finite
    return 4 * x_max <= largest and 2.25 * w_max <= largest and 81 * x.shape[3] * x_max * w_max <= largest


PAGE_BYTES = 4096  # rows a multiple of this apart fall in the same L1 cache sets (64 sets of 64 bytes)


def rows_apart_off_pages(units, tiles_per_unit, widths, itemsize) -> int:
    """``units``, or the largest smaller count of units (at least one) for which the 16 rows of every
    array laid out by position, (16, units * tiles_per_unit, width) for each width in ``widths``, do
    not lie a multiple of PAGE_BYTES apart. Rows that do share the L1 cache sets their first lines
    map to, and a loop over a tile's 16 positions evicts its own lines: cats vs dogs' conv2 + pool
    forward, chunks of 4 units of 36 tiles of 64 filters (M's rows 9 x 4 KiB apart) took 5.6 us a unit
    in ``output_tiles_bias_relu_max_pool``, at 3, 5 or 6 units 1.8-2.2 us; ``input_tiles`` of 32
    channels 5.7 us a unit at 8 units (9 x 4 KiB), 4.1-4.7 at 2-6 units."""
    while units > 1 and any(units * tiles_per_unit * width * itemsize % PAGE_BYTES == 0 for width in widths):
        units -= 1
    return units


G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def filter_transform(w):
    """U (16, C, K): U[4a + b, c, k] = (G g G^T)[a, b], g = w[:, :, c, k] (3, 3).

    Two BLAS products over all (c, k) at once: G on the rows (r), then, for each a, on the
    columns (s). 13 us for MNIST's 3 x 3 x 32 x 64 (a Numba loop over (c, k) took 130 us).
    """
    _, _, C, K = w.shape
    g = G.astype(w.dtype)
    rows = (g @ w.reshape(3, 3 * C * K)).reshape(4, 3, C * K)  # [a, s, (c, k)]
    return np.matmul(g, rows).reshape(16, C, K)  # [a, b, (c, k)]: g @ rows[a] for each a


@njit(nogil=True, cache=True)
def input_tiles(x, top, left, Pp, Qp, first_tile, V):
    """V[4a + b, tile, c] = (B^T d B)[a, b] of tile first_tile + tile's 4 x 4 patch d of channel c.

    Tiles are numbered (n * Pp + i) * Qp + j; tile (i, j)'s patch is input rows 2i - top + a and
    columns 2j - left + b, a, b < 4 (zeros outside x). Tile row by tile row: first the rows of
    B^T d, d0 - d2, d1 + d2, d2 - d1, d1 - d3 (dk the patch's row k, input row 2i - top + k),
    for every column the tile row reads at once, into r (4, 2 Qp + 2, C): a tile's last two
    columns are the next tile's first two, so each is formed once. Then B acts the same way on
    each tile's four columns of r. The same operations on the same values as tile by tile, so
    the same bits.

    The indices into r and V computed from the tile are unsigned (np.uint64): Numba handles a
    negative signed index by wrapping it, a check per element that keeps LLVM from vectorising
    the loop over c (this form with signed indices ran 3x slower than tile by tile; unsigned,
    cats vs dogs' conv2, 20 x 74 x 74 x 32, 3.6 -> 2.4 ms on one thread).
    """
    _, H, W, C = x.shape
    r = np.empty((4, 2 * Qp + 2, C), x.dtype)
    zero_row = np.zeros((W, C), x.dtype)
    tiles = V.shape[1]
    tile = 0
    while tile < tiles:  # one tile row, or the part of one in V, a pass
        number = first_tile + tile
        n = number // (Pp * Qp)
        i = number // Qp % Pp
        j0 = number % Qp
        j1 = min(Qp, j0 + tiles - tile)
        h = 2 * i - top
        x0 = x[n, h] if 0 <= h < H else zero_row
        x1 = x[n, h + 1] if 0 <= h + 1 < H else zero_row
        x2 = x[n, h + 2] if 0 <= h + 2 < H else zero_row
        x3 = x[n, h + 3] if 0 <= h + 3 < H else zero_row
        for b in range(2 * j0, 2 * j1 + 2):  # r's columns: b - left in x
            column = np.uint64(b)
            if 0 <= b - left < W:
                col = np.uint64(b - left)
                for c in range(C):
                    d0, d1, d2, d3 = x0[col, c], x1[col, c], x2[col, c], x3[col, c]
                    r[0, column, c] = d0 - d2
                    r[1, column, c] = d1 + d2
                    r[2, column, c] = d2 - d1
                    r[3, column, c] = d1 - d3
            else:
                for a in range(4):
                    for c in range(C):
                        r[a, column, c] = 0.0
        for j in range(j1 - j0):
            t = np.uint64(tile + j)
            b = np.uint64(2 * (j0 + j))  # the tile's first column in r
            for a in range(4):
                for c in range(C):
                    r0, r1 = r[a, b, c], r[a, b + np.uint64(1), c]
                    r2, r3 = r[a, b + np.uint64(2), c], r[a, b + np.uint64(3), c]
                    V[4 * a + 0, t, c] = r0 - r2
                    V[4 * a + 1, t, c] = r1 + r2
                    V[4 * a + 2, t, c] = r2 - r1
                    V[4 * a + 3, t, c] = r1 - r3
        tile += j1 - j0


@njit(nogil=True, cache=True, inline="always")
def _scan(conv, cell, bias, zero, best, best_cell):
    """One cell of max pooling's scan over relu(conv + bias): (best, best_cell) after it."""
    value = conv + bias
    value = zero if value <= zero else value  # noqa: FURB136 (NaN stays NaN; max() would drop it)
    take = value > best
    return (value if take else best), (np.int32(cell) if take else best_cell)


@njit(nogil=True, cache=True)
def output_tiles_bias_relu_max_pool(M, bias, Qz, lowest, zero, y, argmax):
    """y[u, j, k] = max over the tile's 2x2 of relu(A^T M A + bias[k]), M (16, tiles, K), tile = u * Qp + j.

    The scan of max_pool2d (``conv_pool_kernels.bias_relu_max_pool_rows``): cells (0, 0), (0, 1),
    (1, 0), (1, 1), taken only if strictly greater, from lowest; argmax = t * Qz + v of the winner.
    """
    units, Qp, K = y.shape
    for u in range(units):
        for j in range(Qp):
            tile = u * Qp + j
            for k in range(K):
                # A^T M: two rows of four; then A on the columns
                s00 = M[0, tile, k] + M[4, tile, k] + M[8, tile, k]
                s01 = M[1, tile, k] + M[5, tile, k] + M[9, tile, k]
                s02 = M[2, tile, k] + M[6, tile, k] + M[10, tile, k]
                s03 = M[3, tile, k] + M[7, tile, k] + M[11, tile, k]
                s10 = M[4, tile, k] - M[8, tile, k] - M[12, tile, k]
                s11 = M[5, tile, k] - M[9, tile, k] - M[13, tile, k]
                s12 = M[6, tile, k] - M[10, tile, k] - M[14, tile, k]
                s13 = M[7, tile, k] - M[11, tile, k] - M[15, tile, k]
                best, best_cell = _scan(s00 + s01 + s02, 0, bias[k], zero, lowest, np.int32(0))
                best, best_cell = _scan(s01 - s02 - s03, 1, bias[k], zero, best, best_cell)
                best, best_cell = _scan(s10 + s11 + s12, Qz, bias[k], zero, best, best_cell)
                best, best_cell = _scan(s11 - s12 - s13, Qz + 1, bias[k], zero, best, best_cell)
                y[u, j, k] = best
                argmax[u, j, k] = best_cell


def forward(x, w, bias, g, pg):
    """(y, argmax) as ``conv_pool_kernels.conv2d_bias_relu_max_pool_forward``, per chunk of tile rows."""
    lowest = x.dtype.type(np.finfo(x.dtype).min)
    Pp, Qp = pg.P, pg.Q
    U = filter_transform(w)
    units = g.N * Pp
    y = np.empty((units, Qp, g.K), x.dtype)
    argmax = np.empty((units, Qp, g.K), np.int32)
    per_unit = 4 * 16 * Qp * (g.C + g.K)  # V and M of one tile row
    per_chunk = max(1, min(CHUNK_BYTES // per_unit, -(-units // MIN_CHUNKS)))
    bounds = chunk_bounds(units, rows_apart_off_pages(per_chunk, Qp, (g.C, g.K), x.dtype.itemsize))

    def task(i):
        start, stop = bounds[i]
        tiles = (stop - start) * Qp
        V = scratch("winograd_V", (16, tiles, g.C), x.dtype)
        input_tiles(x, g.top, g.left, Pp, Qp, start * Qp, V)
        M = scratch("winograd_M", (16, tiles, g.K), x.dtype)
        position_products(V, U, M)
        output_tiles_bias_relu_max_pool(M, bias, 2 * Qp, lowest, x.dtype.type(0), y[start:stop], argmax[start:stop])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return y.reshape(pg.output_shape), argmax.reshape(pg.output_shape)
