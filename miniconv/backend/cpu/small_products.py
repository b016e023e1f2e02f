"""Thin matrix products taken in the pieces OpenBLAS multiplies fastest: its small-matrix kernel.

OpenBLAS (0.3.31 in NumPy's wheels here) multiplies an sgemm with M * N * K <= 1,000,000 on cores
with AVX-512 by a small-matrix kernel that reads A and B where they lie. Above that it first
copies both into its own blocked layout ("packing"). For the thin products of 1 x 1 convolutions,
(M, C) @ (C, K) with C * K in the thousands, the packing costs more than the multiplies. One
thread, AMD EPYC (Zen 4), a batch-32 chunk of rows (GFLOP/s):

    product                           one call   pieces of SMALL_MNK // (C K) rows
    (M, 32) @ (32, 64)                 78           93-102
    (M, 144) @ (144, 24)               61-75        95-98
    dy (M, 24) @ w.T (24, 144)         74 (w.T a view)   99 (w.T copied to rows first)
    x.T (32, M) @ dy (M, 64)           45-57        68-84
    (M, 480) @ (480, 80)               101-104      104 (the piece would be 26 rows: not taken)

The threshold shows as a step: (488, 32) @ (32, 64), 999,424 multiplies, ran at 102 GFLOP/s in
pieces, (489, 32) @ (32, 64), 1,001,472, at 80. A product is cut where its pieces hold at least
``MIN_ROWS`` rows: with fewer, a piece's call costs more than packing does (the filter gradient's
x.T @ dy lost 15% at 26-row pieces). Where OpenBLAS has no small-matrix kernel (AVX2 cores), the
pieces cost only their calls, a few microseconds each.

Every function here cuts by the shape alone, so the bits do not depend on the threads.

The small-matrix kernel reads its operands as it goes, and from memory it waits on them where it
does little with each value: one thread, x (100,352 x 144, 58 MB) @ w (144 x 24) in pieces took
13.3-16.7 ms with x in memory, 9.5-11.0 with each piece's rows first read once by a loop that loads
one value a cache line (``bring_into_cache``, about 8 us a piece; all of x in 2.1 ms); two threads,
the layer's forward 7.1 -> 5.3 ms at best. Where each value takes part in many products the read
costs more than it saves (x (401,408 x 32) @ w (32 x 64), two threads: 9.1 -> 10.9 ms). So a piece's
operand is read into cache first where each of its values takes part in fewer than
``FEW_USES`` products; the values and bits are the products' own.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SMALL_MNK = 1_000_000  # OpenBLAS's small-matrix kernel takes an sgemm with M * N * K up to this
MIN_ROWS = 96  # pieces of fewer rows than this are not worth their calls: such products stay whole


def piece_rows(inner: int, columns: int) -> int:
    """Rows of a (rows, inner) @ (inner, columns) piece inside ``SMALL_MNK``, or 0 where such pieces
    would hold fewer than ``MIN_ROWS`` rows (then the product is taken whole)."""
    rows = SMALL_MNK // max(1, inner * columns)
    return rows if rows >= MIN_ROWS else 0


def _pieces(total: int, rows: int):
    """(start, stop) of the fewest pieces of at most ``rows`` rows covering [0, total), of near-equal size
    (so none of one row where ``rows`` >= 4: NumPy runs a one-row product as a matrix-vector product,
    which rounds otherwise)."""
    count = -(-total // rows)
    size, longer = divmod(total, count)
    start = 0
    for i in range(count):
        stop = start + size + (i < longer)
        yield start, stop
        start = stop


LINE_BYTES = 64  # a cache line
FEW_USES = 32  # an operand whose values each take part in fewer products than this is read into cache first


@njit(nogil=True, cache=True)
def bring_into_cache(a):
    """Load one value of every cache line of a (2-D, any strides): every LINE_BYTES-th value of each row
    and its last one; returns their sum, so that the loads are kept."""
    rows, columns = a.shape
    step = max(1, LINE_BYTES // a.itemsize)
    total = a.dtype.type(0)
    for i in range(rows):
        row = a[i]
        for j in range(0, columns, step):
            total += row[j]
        if columns:
            total += row[columns - 1]
    return total


def matmul_into(a, b, out) -> None:
    """out (M, K) = a (M, C) @ b (C, K), in pieces of ``piece_rows(C, K)`` rows where that is not 0; a
    piece's rows of a read into cache first where K < FEW_USES (module docstring).

    b should be C-contiguous: OpenBLAS's small kernel for a transposed b is slower than packing
    (``rows_of``)."""
    rows = piece_rows(a.shape[1], b.shape[1])
    if rows == 0 or rows >= a.shape[0]:
        np.matmul(a, b, out=out)
        return
    bring_a = b.shape[1] < FEW_USES
    for start, stop in _pieces(a.shape[0], rows):
        if bring_a:
            bring_into_cache(a[start:stop])
        np.matmul(a[start:stop], b, out=out[start:stop])


def rows_of(b):
    """b itself where a product would not be cut into pieces or b is C-contiguous, else a C-contiguous
    copy (a (C, K) filter, a few KiB: ``matmul_into`` with w.T a view ran 74 GFLOP/s, with a copy 99)."""
    if b.flags.c_contiguous or piece_rows(b.shape[0], b.shape[1]) == 0:
        return b
    return np.ascontiguousarray(b)


def add_transposed_product(a, b, total, product) -> None:
    """total (C, K) += a.T @ b for a (M, C), b (M, K): sum over pieces of ``piece_rows(C, K)`` rows,
    each piece's product (into ``product``, a (C, K) scratch) added in row order, its rows of a read
    into cache first where K < FEW_USES and of b where C < FEW_USES; one product into ``product``
    added to total where the product is not cut."""
    rows = piece_rows(a.shape[1], b.shape[1])
    if rows == 0 or rows >= a.shape[0]:
        np.matmul(a.T, b, out=product)
        total += product
        return
    bring_a, bring_b = b.shape[1] < FEW_USES, a.shape[1] < FEW_USES
    for start, stop in _pieces(a.shape[0], rows):
        if bring_a:
            bring_into_cache(a[start:stop])
        if bring_b:
            bring_into_cache(b[start:stop])
        np.matmul(a[start:stop].T, b[start:stop], out=product)
        total += product


# ``position_products`` cuts only where SMALL_MNK allows pieces of this many rows (256 channels by 256
# filters allow 15: 64 tiles in 5 pieces of 12-13, the smallest measured, still ran 9% faster than whole)
MIN_POSITION_ROWS = 15


def position_products(a, b, out) -> None:
    """out[i] = a[i] @ b[i] for every i: a (B, M, C), b (B, C, K), out (B, M, K) (strides BLAS takes), in
    pieces of M's rows inside ``SMALL_MNK`` where a whole product would be packed and the pieces hold at
    least MIN_POSITION_ROWS rows. Winograd's products by position (a tile per row): one thread, 64 tiles
    of 128 channels by 128 filters 83-86 -> 108-112 GFLOP/s, 64 x 256 by 256 90 -> 98, 128 x 64 by 256
    82-83 -> 104. Each row of out is one product's either way."""
    M, C = a.shape[1], a.shape[2]
    rows = SMALL_MNK // max(1, C * b.shape[2])
    if M <= rows or rows < MIN_POSITION_ROWS:
        np.matmul(a, b, out=out)
        return
    for start, stop in _pieces(M, rows):
        np.matmul(a[:, start:stop], b, out=out[:, start:stop])
