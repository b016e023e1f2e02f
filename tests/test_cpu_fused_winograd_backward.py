"""The fused conv + bias + ReLU + max pool op's backward through plain conv2d's Winograd passes (cpu).

Where ``winograd_conv2d`` takes the filter gradient (and the input gradient, when asked for),
``conv_pool_kernels.conv2d_bias_relu_max_pool_backward`` writes the gradient of every conv cell
(``conv_gradient``) and sends it through them. Checked: where it is taken (cats vs dogs' second
to fourth layers, not MNIST's second); against TensorFlow's composition (the shared ``check`` of
test_conv_pool) on shapes where it runs with the default thresholds (cats vs dogs' fourth layer,
an odd P and Q whose last conv row and column no window reads, batch 1), that it did run, against the im2col path it replaces, inf and NaN inputs (the same NaN
products as TensorFlow's composition: im2col's fallback over every cell), and the same bits on
every call and whatever the threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import ConvCase
from test_conv_pool import check

from miniconv.backend.cpu import conv_pool_kernels, winograd_conv2d
from miniconv.shapes import conv_geometry, pool_geometry


@pytest.fixture
def conv_gradient_calls(monkeypatch):
    """How often the Winograd backward ran (``conv_gradient`` is its first step)."""
    calls = []
    original = conv_pool_kernels.conv_gradient

    def counted(*args):
        calls.append(args[3].N)
        return original(*args)

    monkeypatch.setattr(conv_pool_kernels, "conv_gradient", counted)
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
    ((64, 13, 13, 32, 64), True, False), ((64, 13, 13, 32, 64), False, True),  # MNIST's conv2
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
    """(4, 18, 18, 32, 64) with dx takes the one pass for both gradients (``winograd_conv2d.backward``)."""
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
