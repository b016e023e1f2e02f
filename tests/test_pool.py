"""Pooling: max / avg, 1-D and 2-D, tf.nn.pool and global pooling vs TensorFlow, plus the pitfalls.

Shape legend: N batch, H W input size, C channels, R S window size, P Q output size.
Max-pool property tests use tie-free inputs (a shuffled arange): with ties the gradient's
destination is a convention, tested by name below.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import GlobalPoolCase, PoolCase, global_pool_cases, pool_cases
from tf_reference import assert_vjp_close, tf_vjp

import miniconv

LOWEST = np.finfo(np.float32).min  # -3.4028235e38: TF's max pool result for a window with no number


def check(case, backend: str) -> None:
    x, dy = case.arrays()
    kwargs = getattr(case, "kwargs", {})
    assert_vjp_close(case.mc_fn, case.tf_fn, (x,), dy, kwargs, backend=backend, tol=case.tolerance())


def pool2d_case(pooling_type, H, W, R, S, strides, padding, N=2, C=3, seed=0) -> PoolCase:
    return PoolCase(pooling_type, 2, "named", N, H, W, C, R, S, tuple(strides), padding, [R, S], list(strides), seed)


@pytest.mark.parametrize("pooling_type", ["MAX", "AVG"])
@pytest.mark.parametrize("R, S, strides", [(1000, 3, (1, 1)), (2**31 - 1, 2**31 - 1, (2, 1)), (4, 2**31 - 1, (3, 2)),
                                           (2, 2, (2**31 - 1, 1))])
def test_same_windows_up_to_tf_limit(backend, pooling_type, R, S, strides):
    """SAME windows up to 2**31 - 1 (TF's limit) pool only valid cells: the numpy reference once padded
    its input by the window (MemoryError) and looped over every cell of it."""
    check(pool2d_case(pooling_type, 5, 7, R, S, strides, "SAME", seed=R % 97), backend)


@given(size=st.integers(1, 12), window=st.integers(1, 40), stride=st.integers(1, 14))
def test_reachable_window_keeps_every_window_valid_cells(size, window, stride):
    """shapes._reachable_window: under SAME, every window's valid cells [max(p*s - top, 0),
    min(p*s - top + R, H)) stay the same after the unreachable padding is cut off."""
    from miniconv.shapes import _reachable_window, output_size

    out, before, _ = output_size(size, window, stride, 1, "SAME")
    cut, cut_before, cut_after = _reachable_window(size, window, stride, out, before)
    assert 1 <= cut <= max(window, 1) and cut <= 2 * size and cut_before <= before
    assert (out - 1) * stride + cut <= cut_before + size + cut_after  # the padded input holds every window
    for p in range(out):
        start, start_cut = p * stride - before, p * stride - cut_before
        assert (max(start, 0), min(start + window, size)) == (max(start_cut, 0), min(start_cut + cut, size))


@given(case=pool_cases("MAX", 2))
def test_max_pool2d_matches_tf(backend, case):
    check(case, backend)


@given(case=pool_cases("AVG", 2))
def test_avg_pool2d_matches_tf(backend, case):
    check(case, backend)


@given(case=pool_cases("MAX", 1))
def test_max_pool1d_matches_tf(backend, case):
    check(case, backend)


@given(case=pool_cases("AVG", 1))
def test_avg_pool1d_matches_tf(backend, case):
    check(case, backend)


@given(case=pool_cases(api="pool"))
def test_pool_matches_tf(backend, case):
    """``tf.nn.pool``: MAX and AVG, 1-D and 2-D, strides a list or None (= 1)."""
    check(case, backend)


@given(case=global_pool_cases())
def test_global_pool_matches_tf_reductions(backend, case):
    """global_{max,avg}_pool{1,2}d == tf.reduce_{max,mean} over the spatial axes (tie-free, finite)."""
    check(case, backend)


# --- named pitfalls ------------------------------------------------------------------------------


def test_same_avg_pool_divides_by_valid_cells(backend):
    """3x3 input, 2x2 window, stride 1, SAME: padding only on the bottom / right, and each window
    averages its valid cells: 4, 2 or 1 of them, never the window size 4."""
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    y, pullback = miniconv.vjp(miniconv.nn.avg_pool2d, x, 2, 1, "SAME", backend=backend)
    expected = np.array([[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]], np.float32)
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-6)
    # dx[i, j] = sum over the windows covering (i, j) of 1 / count(window); counts are
    # [[4, 4, 2], [4, 4, 2], [2, 2, 1]], and the gradient sums to the 9 outputs.
    (dx,) = pullback(np.ones_like(y))
    expected_dx = np.array([[0.25, 0.5, 0.75], [0.5, 1, 1.5], [0.75, 1.5, 2.25]], np.float32)
    np.testing.assert_allclose(dx[0, :, :, 0], expected_dx, rtol=1e-6)
    y_tf, (dx_tf,) = tf_vjp(tf.nn.avg_pool2d, (x,), np.ones_like(y), {"ksize": 2, "strides": 1, "padding": "SAME"})
    np.testing.assert_allclose(y_tf[0, :, :, 0], expected, rtol=1e-6)  # the hand values are TF's
    np.testing.assert_allclose(dx_tf[0, :, :, 0], expected_dx, rtol=1e-6)


@pytest.mark.parametrize("pooling_type", ["MAX", "AVG"])
@pytest.mark.parametrize("R, S, strides", [(2, 2, (1, 1)), (2, 4, (1, 2)), (4, 2, (3, 1)), (2, 2, (2, 2))])
def test_same_pool_even_windows(backend, pooling_type, R, S, strides):
    """Even windows under SAME pad one more cell on the bottom / right than on the top / left."""
    check(pool2d_case(pooling_type, 7, 6, R, S, strides, "SAME", seed=R * 10 + S), backend)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("pooling_type", ["MAX", "AVG"])
@pytest.mark.parametrize("R, S, strides", [(2, 2, (3, 3)), (1, 1, (2, 3)), (3, 2, (4, 5)), (2, 3, (6, 1))])
def test_pool_strides_larger_than_window(backend, pooling_type, R, S, strides, padding):
    """Cells between windows get exactly zero gradient."""
    check(pool2d_case(pooling_type, 11, 12, R, S, strides, padding, seed=5), backend)


def test_max_pool_tie_gradient_goes_to_first_max(backend):
    """TF: max_pool2d over [2, 2, 1, 1], window (1, 3), stride 1, VALID gives gradient [1, 1, 0, 0]:
    each of the two windows sends its gradient to the first 2 it scans."""
    x = np.array([2, 2, 1, 1], np.float32).reshape(1, 1, 4, 1)
    y, pullback = miniconv.vjp(miniconv.nn.max_pool2d, x, (1, 3), 1, "VALID", backend=backend)
    (dx,) = pullback(np.ones_like(y))
    np.testing.assert_array_equal(y.ravel(), [2, 2])
    np.testing.assert_array_equal(dx.ravel(), [1, 1, 0, 0])
    assert_vjp_close(miniconv.nn.max_pool2d, tf.nn.max_pool2d, (x,), np.ones_like(y),
                     {"ksize": (1, 3), "strides": 1, "padding": "VALID"}, backend=backend)  # fmt: skip


@pytest.mark.parametrize(
    "rows, ksize, strides, expected",
    [
        ([[0, 1], [1, 0]], 2, 2, [[0, 1], [0, 0]]),  # row-major scan: (0, 1) comes before (1, 0)
        ([[0, 1, 1], [1, 0, 1]], 2, 1, [[0, 2, 0], [0, 0, 0]]),  # both windows pick (0, 1)
        ([[5, 5], [5, 5]], 2, 1, [[1, 0], [0, 0]]),  # all equal: the window's first cell
    ],
)
def test_max_pool2d_tie_scan_order_2d(backend, rows, ksize, strides, expected):
    x = np.array(rows, np.float32)[None, :, :, None]
    y, pullback = miniconv.vjp(miniconv.nn.max_pool2d, x, ksize, strides, "VALID", backend=backend)
    (dx,) = pullback(np.ones_like(y))
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    assert_vjp_close(miniconv.nn.max_pool2d, tf.nn.max_pool2d, (x,), np.ones_like(y),
                     {"ksize": ksize, "strides": strides, "padding": "VALID"}, backend=backend)  # fmt: skip


NAN, INF = np.nan, np.inf


@pytest.mark.parametrize(
    "values, ksize, strides, padding, y_expected, dx_expected",
    [
        # all-NaN and all -inf windows: float32's lowest, the gradient to the window's first cell
        ([NAN, NAN, NAN, NAN], 2, 2, "VALID", [LOWEST, LOWEST], [1, 0, 10, 0]),
        ([-INF, -INF, -INF, -INF], 2, 2, "VALID", [LOWEST, LOWEST], [1, 0, 10, 0]),
        ([NAN, -INF, NAN, -INF], 2, 2, "VALID", [LOWEST, LOWEST], [1, 0, 10, 0]),
        # NaN after a number is skipped; +inf is a number and wins
        ([1, NAN, 3, NAN], 2, 2, "VALID", [1, 3], [1, 0, 10, 0]),
        ([-INF, 2, INF, NAN], 2, 2, "VALID", [2, INF], [0, 1, 10, 0]),
        # SAME: the first *valid* cell of a window (padding is never a cell of the input)
        ([NAN, NAN, NAN], 2, 2, "SAME", [LOWEST, LOWEST], [1, 0, 10]),
        ([NAN, NAN, NAN, NAN], 4, 1, "SAME", [LOWEST] * 4, [11, 100, 1000, 0]),
    ],
)
def test_max_pool_nan_and_inf_match_tf(backend, values, ksize, strides, padding, y_expected, dx_expected):
    """TF's max pool starts from float32's lowest and takes a cell only if it is greater (NaN never
    is); when nothing beats lowest, its gradient goes to the window's first valid cell."""
    x = np.array(values, np.float32).reshape(1, 1, -1, 1)
    y, pullback = miniconv.vjp(miniconv.nn.max_pool2d, x, (1, ksize), (1, strides), padding, backend=backend)
    dy = (10.0 ** np.arange(y.size, dtype=np.float32)).reshape(y.shape)  # 1, 10, 100: who got what
    (dx,) = pullback(dy)
    np.testing.assert_array_equal(y.ravel(), np.array(y_expected, np.float32))
    np.testing.assert_array_equal(dx.ravel(), np.array(dx_expected, np.float32))
    assert_vjp_close(miniconv.nn.max_pool2d, tf.nn.max_pool2d, (x,), dy,
                     {"ksize": (1, ksize), "strides": (1, strides), "padding": padding}, backend=backend)  # fmt: skip


def test_max_pool_nan_first_gradient_follows_the_output(backend):
    """Window [NaN, 2]: the output is 2 (as TF) and miniconv's gradient goes to the 2.

    A documented divergence: TF's CPU MaxPoolGrad recomputes the argmax with a different scan
    (it starts from the window's first cell, NaN included, and `NaN < 2` is false), so TF sends
    this gradient to the NaN cell, which did not produce the output. miniconv keeps forward and
    gradient consistent. The TF behaviour is asserted too, so a TF change shows up here.
    """
    x = np.array([INF, 1, NAN, 2], np.float32).reshape(1, 1, 4, 1)
    kwargs = {"ksize": (1, 2), "strides": (1, 2), "padding": "VALID"}
    y, pullback = miniconv.vjp(miniconv.nn.max_pool2d, x, backend=backend, **kwargs)
    dy = np.array([1, 10], np.float32).reshape(y.shape)
    (dx,) = pullback(dy)
    np.testing.assert_array_equal(y.ravel(), [INF, 2])
    np.testing.assert_array_equal(dx.ravel(), [1, 0, 0, 10])
    y_tf, (dx_tf,) = tf_vjp(tf.nn.max_pool2d, (x,), dy, kwargs)
    np.testing.assert_array_equal(y_tf.ravel(), [INF, 2])
    np.testing.assert_array_equal(dx_tf.ravel(), [1, 0, 10, 0])  # TF: to the NaN cell


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf, on purpose
def test_avg_pool_nan_and_inf_match_tf(backend):
    """Average pooling propagates NaN, and inf - inf = NaN, only into the windows that hold them."""
    x = np.array([NAN, 1, 2, 3, INF, -INF, 5, INF, 6], np.float32).reshape(1, 1, 9, 1)
    dy = np.arange(1, 4, dtype=np.float32).reshape(1, 1, 3, 1)
    assert_vjp_close(miniconv.nn.avg_pool2d, tf.nn.avg_pool2d, (x,), dy,
                     {"ksize": (1, 3), "strides": (1, 3), "padding": "VALID"}, backend=backend, tol=3)  # fmt: skip


@pytest.mark.parametrize("dims", [1, 2])
def test_global_max_pool_ties_nan_and_inf_follow_max_pool(backend, dims):
    """Global max pooling is max pooling with the whole input as window, so it keeps max pooling's
    rules: ties to the first cell, NaN skipped, an all-NaN / all -inf channel gives float32's lowest.

    A documented divergence from the ``tf.reduce_max`` reference (Keras's GlobalMaxPooling): that
    one propagates NaN, returns -inf for an all -inf channel, and splits a tie's gradient evenly.
    """
    channels = np.array(
        [[3, 1, 3, 0], [NAN, 1, NAN, 2], [NAN, NAN, NAN, NAN], [-INF, -INF, -INF, -INF], [-INF, 2, 7, INF]], np.float32
    ).T  # (4 cells, 5 channels)
    x = channels.reshape(1, 2, 2, 5) if dims == 2 else channels.reshape(1, 4, 5)
    op = miniconv.nn.global_max_pool2d if dims == 2 else miniconv.nn.global_max_pool1d
    y, pullback = miniconv.vjp(op, x, backend=backend)
    dy = np.array([[1, 10, 100, 1000, 10000]], np.float32)
    (dx,) = pullback(dy)
    np.testing.assert_array_equal(y, [[3, 2, LOWEST, LOWEST, INF]])
    expected_dx = np.array(
        [[1, 0, 0, 0], [0, 0, 0, 10], [100, 0, 0, 0], [1000, 0, 0, 0], [0, 0, 0, 10000]], np.float32
    ).T
    np.testing.assert_array_equal(dx.reshape(4, 5), expected_dx)


def test_global_pools_equal_full_window_pooling(backend):
    """global_*_pool2d(x) == *_pool2d(x, ksize=(H, W), VALID) reshaped, gradients included."""
    case = GlobalPoolCase("MAX", 2, (2, 3, 5, 4), seed=1)
    x, dy = case.arrays()
    for op, pool in [
        (miniconv.nn.global_max_pool2d, miniconv.nn.max_pool2d),
        (miniconv.nn.global_avg_pool2d, miniconv.nn.avg_pool2d),
    ]:
        y, pullback = miniconv.vjp(op, x, backend=backend)
        y_pool, pullback_pool = miniconv.vjp(pool, x, (3, 5), 1, "VALID", backend=backend)
        np.testing.assert_array_equal(y, y_pool.reshape(2, 4))
        np.testing.assert_array_equal(pullback(dy)[0], pullback_pool(dy.reshape(2, 1, 1, 4))[0])


@given(case=pool_cases("MAX", 2), data=st.data())
def test_cpu_disjoint_max_pool_backward_is_the_scatter(case, data):
    """Where windows do not overlap the cpu backend writes each input cell once, a select per cell:
    the scatter kernel's bits (0 += dy: signed zeros, inf and NaN included), padding and the
    cells between strided windows included; overlapping windows keep the scatter."""
    from miniconv.backend.cpu import pool_kernels
    from miniconv.shapes import pool_geometry

    x = case.arrays()[0]
    g = pool_geometry(x.shape, (case.R, case.S), case.strides, case.padding)
    assume(g.sh >= g.R and g.sw >= g.S)
    y, argmax = pool_kernels.max_pool2d_forward(x, g)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dy = rng.standard_normal(g.output_shape).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32)
    dy.flat[rng.integers(0, dy.size, 3)] = specials[rng.integers(0, 5, 3)]
    scatter = np.full(g.input_shape, 7.0, np.float32)
    pool_kernels.max_pool2d_backward_kernel(dy, argmax, scatter, 0, g.N)
    got = pool_kernels.max_pool2d_backward(dy, argmax, g)
    assert np.array_equal(got.view(np.int32), scatter.view(np.int32))
