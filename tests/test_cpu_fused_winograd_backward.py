"""The fused conv + bias + ReLU + max pool op's backward through plain conv2d's Winograd passes (cpu).

Where ``winograd_conv2d`` takes the filter gradient (and the input gradient, when asked for),
``conv_pool_kernels.conv2d_bias_relu_max_pool_backward`` writes the gradient of every conv cell
(``conv_gradient``) and sends it through them. Checked: where it is taken (cats vs dogs' second
to fourth layers and MNIST's second); against TensorFlow's composition (the shared ``check`` of
test_conv_pool) on shapes where it runs with the default thresholds (cats vs dogs' fourth layer,
an odd P and Q whose last conv row and column no window reads, batch 1), that it did run, against the im2col path it replaces, inf and NaN inputs (the same NaN
products as TensorFlow's composition: im2col's fallback over every cell), and the same bits on
every call and whatever the threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import ConvCase
from test_conv_pool import check

from miniconv.backend.cpu import conv_pool_kernels, winograd_conv2d
from miniconv.shapes import conv_geometry, pool_geometry


@pytest.fixture
def conv_gradient_calls(monkeypatch):
    """How often the Winograd backward ran: ``conv_gradient`` (dz written whole) or ``pooled_one_pass``."""
    calls = []
    for name, geometry_at in (("conv_gradient", 3), ("pooled_one_pass", 5)):
        original = getattr(conv_pool_kernels, name)

        def counted(*args, _original=original, _at=geometry_at):
            calls.append(args[_at].N)
            return _original(*args)

        monkeypatch.setattr(conv_pool_kernels, name, counted)
    return calls


def arrays(N, H, W, C, K, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, C, K)).astype(np.float32) / np.sqrt(9 * C)
    bias = rng.uniform(-0.5, 0.5, K).astype(np.float32)
    return x, w, bias


def backward(x, w, bias, winograd: bool, input_gradient=True, seed=1):
    """(dx, dw, dbias) of the fused op's cpu backward at a random pooled upstream, by Winograd or not."""
    g = conv_geometry(x.shape, w.shape, (1, 1), ((0, 0), (0, 0)), (1, 1))
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID")
    y, argmax = conv_pool_kernels.conv2d_bias_relu_max_pool_forward(x, w, bias, g, pg)
    dy = np.random.default_rng(seed).uniform(-1, 1, y.shape).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        if not winograd:
            patch.setattr(winograd_conv2d, "backward_filter_applies", lambda g: False)
        return conv_pool_kernels.conv2d_bias_relu_max_pool_backward(x, w, y, argmax, dy, g, pg, input_gradient)


@pytest.mark.parametrize("shape, with_dx, taken", [
    ((64, 13, 13, 32, 64), True, True), ((64, 13, 13, 32, 64), False, True),  # MNIST's conv2 (the one pass)
    ((3, 13, 13, 32, 64), True, False),  # three images: no one pass, and the full correlation saves too little
    ((20, 74, 74, 32, 64), True, True), ((20, 36, 36, 64, 128), True, True), ((20, 17, 17, 128, 128), True, True),
    ((20, 150, 150, 3, 32), False, False)])  # cats vs dogs' conv2 to conv4 (and conv1: direct loops)
def test_where_the_winograd_backward_is_taken(shape, with_dx, taken):
    N, H, W, C, K = shape
    g = conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), ((0, 0), (0, 0)), (1, 1))
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID")
    assert conv_pool_kernels.winograd_backward_applies(g, pg, with_dx) == taken


@pytest.mark.parametrize("N, H, W, C, K", [(2, 18, 18, 32, 64), (2, 17, 17, 128, 128), (1, 12, 10, 32, 16)])
def test_cpu_winograd_backward_matches_tf(conv_gradient_calls, N, H, W, C, K):
    check(ConvCase(2, N, H, W, C, K, 3, 3, (1, 1), (1, 1), "VALID", [1, 1], [1, 1], 3), (2, 2), "cpu",
          require=lambda ok: None)
    assert conv_gradient_calls, "the Winograd backward did not run"


@pytest.mark.parametrize("input_gradient", [True, False])
@pytest.mark.parametrize("N, H, W, C, K", [(4, 18, 18, 32, 64), (2, 10, 11, 32, 16)])
def test_cpu_winograd_backward_is_im2col_up_to_rounding(conv_gradient_calls, N, H, W, C, K, input_gradient):
    """(4, 18, 18, 32, 64) with dx takes the one pass for both gradients (``winograd_conv2d.backward``),
    its Z formed from the pooled gradient (``pooled_one_pass``)."""
    g = conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), ((0, 0), (0, 0)), (1, 1))
    assert winograd_conv2d.one_pass_applies(g) == (N == 4)
    x, w, bias = arrays(N, H, W, C, K)
    mine = backward(x, w, bias, True, input_gradient)
    assert len(conv_gradient_calls) == 1
    theirs = backward(x, w, bias, False, input_gradient)
    assert len(conv_gradient_calls) == 1  # (the im2col path does not call it)
    assert (mine[0] is None) == (theirs[0] is None) == (not input_gradient)
    for a, b in zip(mine, theirs):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_cpu_winograd_backward_nonfinite_input_gives_the_compositions_nan(conv_gradient_calls, value):
    """An inf or NaN pixel: the passes fall back to im2col over every conv cell, so dw has the NaN
    products (x * 0) that TensorFlow's composition has, as the im2col path with every cell does."""
    x, w, bias = arrays(2, 15, 15, 32, 16)  # P = Q = 13: the last conv row and column are read by no window
    x[1, 14, 14, 3] = value  # a pixel only the unread cells see
    mine = backward(x, w, bias, True)
    theirs = backward(x, w, bias, False)
    assert conv_gradient_calls
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert np.isnan(a).any() or not np.isnan(b).any()
        finite = np.isfinite(b)
        np.testing.assert_allclose(a[finite], b[finite], rtol=0, atol=2e-6 * max(1.0, float(np.abs(b[finite]).max())))


@pytest.mark.parametrize("N, H, W, C, K", [(4, 18, 18, 32, 64), (5, 17, 15, 16, 8)])  # P, Q even; P, Q odd
def test_pooled_one_pass_is_the_one_pass_over_dz(monkeypatch, N, H, W, C, K):
    """Z from the pooled gradient has dz's tiles' values: dx and dw equal, bit for bit, the one pass over
    ``conv_gradient``'s dz cut to the cells the windows read (``read_geometry``: an odd P or Q's last
    row or column, whose gradient is zero, left out), and up to rounding the one pass over all of dz;
    dbias (other chunks) equal up to rounding."""
    x, w, bias = arrays(N, H, W, C, K, seed=4)
    g = conv_geometry(x.shape, w.shape, (1, 1), ((0, 0), (0, 0)), (1, 1))
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID")
    y, argmax = conv_pool_kernels.conv2d_bias_relu_max_pool_forward(x, w, bias, g, pg)
    dy = np.random.default_rng(5).uniform(-1, 1, y.shape).astype(np.float32)
    monkeypatch.setattr(winograd_conv2d, "FORWARD_MIN_CHANNELS", (1, 1))
    monkeypatch.setattr(winograd_conv2d, "BACKWARD_INPUT_MIN_CHANNELS", (1, 1))
    monkeypatch.setattr(winograd_conv2d, "BACKWARD_FILTER_MIN_CHANNELS", (1, 1))
    monkeypatch.setattr(conv_pool_kernels, "FUSED_MAX_MULTIPLY_FRACTION", np.inf)
    monkeypatch.setattr(winograd_conv2d, "ONE_PASS_BLOCK_BYTES", 1 << 12)  # bands of tile rows
    pooled = conv_pool_kernels.conv2d_bias_relu_max_pool_backward(x, w, y, argmax, dy, g, pg)
    dz, dbias = conv_pool_kernels.conv_gradient(y, argmax, dy, g, pg)
    read = conv_pool_kernels.read_geometry(g, pg)
    assert (read.P, read.Q) == (2 * pg.P, 2 * pg.Q) and read.input_shape == g.input_shape
    assert conv_geometry(x.shape, w.shape, (1, 1), ((0, read.bottom), (0, read.right)), (1, 1)) == read
    dx, dw = winograd_conv2d.backward(x, w, np.ascontiguousarray(dz[:, : read.P, : read.Q]), read)
    np.testing.assert_array_equal(pooled[0], dx)
    np.testing.assert_array_equal(pooled[1], dw)
    np.testing.assert_allclose(pooled[2], dbias, rtol=1e-5, atol=1e-5)
    every_cell = winograd_conv2d.backward(x, w, dz, g)
    for mine, theirs in zip(pooled[:2], every_cell):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-6 * float(np.abs(theirs).max()))


@given(N=st.integers(1, 3), P=st.integers(2, 9), Q=st.integers(2, 9), K=st.integers(1, 20), seed=st.integers(0, 2**16),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]))
def test_pooled_gradient_tiles_are_the_tiles_of_dz(N, P, Q, K, seed, special):
    """``pooled_gradient_tiles`` against ``gradient_tiles`` of the dz that ``pooled_gradient_images``
    writes (every conv cell), bit for bit, inf and NaN in dy included, from any first tile; its bias
    partial against the sum of dy where y > 0."""
    rng = np.random.default_rng(seed)
    Pp, Qp = P // 2, Q // 2
    Qz = 2 * Qp
    dy = rng.standard_normal((N, Pp, Qp, K)).astype(np.float32)
    y = np.maximum(rng.standard_normal((N, Pp, Qp, K)), 0).astype(np.float32)
    argmax = rng.choice(np.array([0, 1, Qz, Qz + 1], np.int32), (N, Pp, Qp, K))
    if special is not None:
        dy.flat[rng.integers(0, dy.size)] = special
    zero = np.float32(0)
    dz = np.empty((N * P * Q, K), np.float32)
    with np.errstate(invalid="ignore"):
        conv_pool_kernels.pooled_gradient_images(dy, y, argmax, Qz, 2, 2, P, Q, zero, dz, np.zeros(K, np.float32))
    Pt, Qt = -(-P // 2), -(-Q // 2)
    first = int(rng.integers(0, N * Pt * Qt))
    tiles = int(rng.integers(1, N * Pt * Qt - first + 1))
    expected = np.empty((tiles, 16, K), np.float32)
    got = np.full_like(expected, np.nan)
    bias = np.zeros(K, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        winograd_conv2d.gradient_tiles(dz.reshape(N, P, Q, K), Pt, Qt, first, np.empty((8, K), np.float32), expected)
        winograd_conv2d.pooled_gradient_tiles(dy, y, argmax, Qz, Pt, Qt, first, zero, np.empty((8, K), np.float32), got, bias)
    np.testing.assert_array_equal(got, expected)
    windows = [np.unravel_index(t, (N, Pt, Qt)) for t in range(first, first + tiles)]
    alive = np.where(y > 0, dy, 0).astype(np.float64)
    expected_bias = sum((alive[n, i, j] for n, i, j in windows if i < Pp and j < Qp), np.zeros(K))
    np.testing.assert_allclose(bias, expected_bias, rtol=1e-5, atol=1e-5)


def test_cpu_winograd_backward_same_bits_every_call_and_thread_count(monkeypatch):
    from miniconv.backend.cpu import work_sharing

    x, w, bias = arrays(9, 18, 18, 32, 64)
    first = backward(x, w, bias, True)
    again = backward(x, w, bias, True)
    monkeypatch.setattr(work_sharing, "_threads", 1)
    alone = backward(x, w, bias, True)
    for a, b, c in zip(first, again, alone):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
