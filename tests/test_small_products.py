"""Thin products in OpenBLAS's small-matrix pieces (``miniconv/backend/cpu/small_products.py``): the pieces
cover every row once, the products equal one product up to rounding, inf and NaN land where one
product puts them, and the cut depends on the shape alone.

Shape legend: M rows, C inner dimension, K columns.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniconv.backend.cpu import small_products
from miniconv.backend.cpu.small_products import _pieces, add_transposed_product, matmul_into, piece_rows, rows_of

EPS32 = float(np.finfo(np.float32).eps)


@given(total=st.integers(1, 5000), rows=st.integers(1, 700))
def test_pieces_cover_the_rows_in_the_fewest_near_equal_pieces(total, rows):
    pieces = list(_pieces(total, rows))
    assert pieces[0][0] == 0 and pieces[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    sizes = [stop - start for start, stop in pieces]
    assert max(sizes) <= rows and max(sizes) - min(sizes) <= 1
    assert len(pieces) == -(-total // rows)
    if rows >= 4 and total > 1:
        assert min(sizes) >= 2  # no one-row product (NumPy would run it as gemv)


def test_piece_rows_is_openblas_small_kernel_bound_or_zero():
    assert piece_rows(32, 64) == 488  # 488 * 32 * 64 = 999,424 <= 1,000,000 < 489 * 32 * 64
    assert piece_rows(144, 24) == 289
    assert piece_rows(480, 80) == 0  # 26-row pieces: not worth their calls
    assert piece_rows(1, 1) == small_products.SMALL_MNK


@contextlib.contextmanager
def small_pieces(inner, columns, rows):
    """Products of (M, inner) @ (inner, columns) cut into pieces of ``rows`` rows however small they are."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(small_products, "MIN_ROWS", 1)
        patch.setattr(small_products, "SMALL_MNK", rows * inner * columns)
        assert piece_rows(inner, columns) == rows
        yield


def _operands(rng, M, C, K, special):
    a = rng.uniform(-1, 1, (M, C)).astype(np.float32)
    b = rng.uniform(-1, 1, (C, K)).astype(np.float32)
    dy = rng.uniform(-1, 1, (M, K)).astype(np.float32)
    if special:
        for array in (a, dy):
            flat = array.reshape(-1)
            picks = rng.choice(flat.size, max(1, flat.size // 25), replace=False)
            flat[picks] = rng.choice(np.array([np.inf, -np.inf, np.nan], np.float32), picks.size)
    return a, b, dy


def _assert_close_to(got, a64, b64):
    """got against the float64 product a64 @ b64: NaN where it has NaN, the same infinities, the finite values
    within 4 eps32 sqrt(C) sum |terms|."""
    with np.errstate(invalid="ignore"):
        want = a64 @ b64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    with np.errstate(invalid="ignore"):
        terms = np.abs(a64) @ np.abs(b64)
    bound = 4 * EPS32 * np.sqrt(a64.shape[1]) * terms[finite] + 1e-30
    assert np.all(np.abs(got[finite] - want[finite]) <= bound)


@given(M=st.integers(1, 60), C=st.integers(1, 9), K=st.integers(1, 9), rows=st.integers(1, 20),
       special=st.booleans(), seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_matmul_into_pieces_is_the_product(M, C, K, rows, special, seed):
    a, b, _ = _operands(np.random.default_rng(seed), M, C, K, special)
    out = np.full((M, K), 7.0, np.float32)
    with small_pieces(C, K, rows), np.errstate(invalid="ignore"):
        matmul_into(a, rows_of(b), out)
    _assert_close_to(out, a.astype(np.float64), b.astype(np.float64))


@given(M=st.integers(1, 60), C=st.integers(1, 9), K=st.integers(1, 9), rows=st.integers(1, 20),
       special=st.booleans(), seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_add_transposed_product_pieces_is_the_product(M, C, K, rows, special, seed):
    x, _, dy = _operands(np.random.default_rng(seed), M, C, K, special)
    total = np.zeros((C, K), np.float32)
    with small_pieces(C, K, rows), np.errstate(invalid="ignore"):
        add_transposed_product(x, dy, total, np.empty((C, K), np.float32))
    _assert_close_to(total, x.T.astype(np.float64), dy.astype(np.float64))


def test_transposed_filter_is_copied_to_rows_only_where_products_are_cut():
    w = np.arange(32 * 64, dtype=np.float32).reshape(32, 64)
    copied = rows_of(w.T)
    assert copied.flags.c_contiguous and np.array_equal(copied, w.T)
    assert rows_of(w) is w  # already rows
    wide = np.zeros((480, 80), np.float32)
    assert rows_of(wide.T).base is wide  # not cut: the view itself


def test_pieces_are_openblas_products_of_real_size():
    """Unpatched: (2000, 32) @ (32, 64) in five pieces of at most 488 rows against float64, and the same
    bits for any first row (the cut is the shape's, a row's bits the small kernel's)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2000, 32)).astype(np.float32), rng.standard_normal((32, 64)).astype(np.float32)
    out = np.empty((2000, 64), np.float32)
    matmul_into(a, b, out)
    _assert_close_to(out, a.astype(np.float64), b.astype(np.float64))
    shifted = np.empty((1999, 64), np.float32)
    matmul_into(a[1:], b, shifted)
    np.testing.assert_array_equal(shifted, out[1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bring_into_cache_loads_a_value_of_every_line(dtype):
    """It sums every LINE_BYTES-th value of each row and the row's last one (the loads it makes), on
    views with any strides."""
    rng = np.random.default_rng(3)
    step = small_products.LINE_BYTES // np.dtype(dtype).itemsize
    for a in (rng.standard_normal((7, 37)).astype(dtype), rng.standard_normal((9, 80)).astype(dtype)[1::2, 3:],
              np.zeros((0, 5), dtype), np.zeros((4, 0), dtype)):
        expected = sum(float(row[j]) for row in a for j in range(0, a.shape[1], step))
        expected += sum(float(row[-1]) for row in a if a.shape[1])
        assert small_products.bring_into_cache(a) == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("C, K, brought", [(144, 24, ["a"]), (32, 64, []), (24, 144, [])])
def test_thin_operands_are_brought_into_cache_before_their_pieces(C, K, brought, monkeypatch):
    """matmul_into reads a piece's rows of a first where each value meets fewer than FEW_USES filters (K);
    add_transposed_product the same for a (K) and for b (C). The products are unchanged."""
    seen = []
    real = small_products.bring_into_cache
    monkeypatch.setattr(small_products, "bring_into_cache", lambda block: seen.append(block.shape[1]) or real(block))
    rng = np.random.default_rng(4)
    M = 4 * small_products.piece_rows(C, K)
    a, b = rng.standard_normal((M, C)).astype(np.float32), rng.standard_normal((C, K)).astype(np.float32)
    out = np.empty((M, K), np.float32)
    matmul_into(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)
    assert set(seen) == ({C} if "a" in brought else set())
    seen.clear()
    dy = rng.standard_normal((M, K)).astype(np.float32)
    total = np.zeros((C, K), np.float32)
    add_transposed_product(a, dy, total, np.empty((C, K), np.float32))
    np.testing.assert_allclose(total, a.T @ dy, rtol=1e-3, atol=1e-3)
    expected = ({C} if K < small_products.FEW_USES else set()) | ({K} if C < small_products.FEW_USES else set())
    assert set(seen) == expected


@pytest.mark.parametrize("B, M, C, K, pieces", [(16, 64, 128, 128, 2), (16, 61, 128, 128, 1), (4, 100, 256, 256, 7),
                                                (3, 130, 64, 256, 3), (16, 7, 32, 64, 1), (2, 40, 512, 512, 1)])
def test_position_products_in_pieces_inside_the_small_kernel(B, M, C, K, pieces, monkeypatch):
    """Each position's product, out written by BLAS where it lies (rows B K apart, as Winograd's M), in
    near-equal pieces of rows inside SMALL_MNK where a piece holds MIN_POSITION_ROWS rows or more (256 x
    256: 15 rows a piece, cut; 512 x 512: 3 rows, whole); a product inside SMALL_MNK stays whole."""
    calls = []
    real = np.matmul
    monkeypatch.setattr(small_products.np, "matmul", lambda a, b, out: calls.append(a.shape[1]) or real(a, b, out=out))
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((B, M, C)).astype(np.float32), rng.standard_normal((B, C, K)).astype(np.float32)
    out = np.full((M, B, K), np.nan, np.float32).transpose(1, 0, 2)
    small_products.position_products(a, b, out)
    np.testing.assert_allclose(out, np.einsum("bmc,bck->bmk", a, b), rtol=1e-4, atol=1e-3)
    assert len(calls) == pieces and sum(calls) == M
    assert max(calls) * C * K <= small_products.SMALL_MNK or pieces == 1
