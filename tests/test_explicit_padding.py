"""Explicit padding [[0, 0], [top, bottom], [left, right], [0, 0]] for conv2d and the fused
convolutions: against TensorFlow on every backend, and the same bits as SAME where the pads are SAME's.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from strategies import MAX_C, MAX_HW, MAX_N, padded_out_size, seeds, uniform
from tf_reference import Tolerance, assert_vjp_close, tf_conv2d

import miniconv
from miniconv.shapes import conv_geometry


@st.composite
def explicit_conv_cases(draw):
    """(x, w, dy, kwargs, tolerance): pads 0 to 4 on each side (more than a filter needs too),
    strides up to 3 or dilations up to 3, the dilated window fitting the padded input."""
    pads = [draw(st.integers(0, 4)) for _ in range(4)]
    padding = [[0, 0], pads[:2], pads[2:], [0, 0]]
    N, H, W = draw(st.integers(1, MAX_N)), draw(st.integers(1, MAX_HW)), draw(st.integers(1, MAX_HW))
    C, K = draw(st.integers(1, MAX_C)), draw(st.integers(1, MAX_C))
    stride, dilation = (draw(st.integers(1, 3)), 1) if draw(st.booleans()) else (1, draw(st.integers(1, 3)))
    R = draw(st.integers(1, max(1, (H + sum(pads[:2]) - 1) // dilation + 1)).filter(lambda r: r <= 5))
    S = draw(st.integers(1, max(1, (W + sum(pads[2:]) - 1) // dilation + 1)).filter(lambda s: s <= 5))
    P = padded_out_size(H, R, stride, dilation, padding, 0)
    Q = padded_out_size(W, S, stride, dilation, padding, 1)
    rng = np.random.default_rng(draw(seeds))
    x, w, dy = uniform(rng, (N, H, W, C)), uniform(rng, (R, S, C, K)), uniform(rng, (N, P, Q, K))
    kwargs = {"strides": stride, "padding": padding, "dilations": dilation}
    tol = Tolerance((R * S * C, R * S * K, N * P * Q), abs_terms=True)
    return x, w, dy, kwargs, tol


@given(case=explicit_conv_cases())
def test_conv2d_explicit_padding_matches_tf(backend, case):
    x, w, dy, kwargs, tol = case
    assert_vjp_close(miniconv.nn.conv2d, tf_conv2d, (x, w), dy, kwargs, backend=backend, tol=tol,
                     tf_kwargs=dict(kwargs, padding=kwargs["padding"]))  # fmt: skip


@pytest.mark.parametrize("shape, R, strides", [((2, 7, 6, 3), 3, 1), ((1, 9, 8, 2), 2, 2), ((2, 5, 5, 4), 4, 1)])
def test_conv2d_explicit_same_pads_equal_same(backend, shape, R, strides):
    """Explicit padding with SAME's resolved pads is SAME: the same bits, forward and backward."""
    rng = np.random.default_rng(R)
    x, w = uniform(rng, shape), uniform(rng, (R, R, shape[3], 3))
    g = conv_geometry(x.shape, w.shape, (strides, strides), "SAME", (1, 1))
    explicit = [[0, 0], [g.top, g.bottom], [g.left, g.right], [0, 0]]
    y, pullback = miniconv.vjp(miniconv.nn.conv2d, x, w, strides, "SAME", backend=backend)
    y2, pullback2 = miniconv.vjp(miniconv.nn.conv2d, x, w, strides, explicit, backend=backend)
    np.testing.assert_array_equal(y, y2)
    dy = uniform(rng, y.shape)
    for a, b in zip(pullback(dy), pullback2(dy)):
        np.testing.assert_array_equal(a, b)


def _tf_conv_bias_relu_pool(x, w, b, pool_size=None, strides=1, padding="VALID", dilations=1):
    z = tf.nn.relu(tf.nn.bias_add(tf_conv2d(x, w, strides, padding, dilations), b))
    return z if pool_size is None else tf.nn.max_pool2d(z, pool_size, pool_size, "VALID")


@pytest.mark.parametrize("C, padding", [
    (1, [[0, 0], [1, 2], [2, 1], [0, 0]]),   # few channels: the cpu backend's direct 3x3 loops
    (9, [[0, 0], [2, 2], [1, 1], [0, 0]]),   # many: its Winograd forward
    (5, [[0, 0], [0, 3], [3, 0], [0, 0]]),   # in between: im2col
])  # fmt: skip
@pytest.mark.parametrize("pool", [None, 2])
def test_fused_convolutions_take_explicit_padding(backend, C, padding, pool):
    """conv2d_bias_relu and conv2d_bias_relu_max_pool2d with explicit padding, against TF's composition."""
    rng = np.random.default_rng(C)
    x, w, b = uniform(rng, (3, 9, 8, C)), uniform(rng, (3, 3, C, 6)), uniform(rng, (6,), -0.3, 0.3)
    g = conv_geometry(x.shape, w.shape, (1, 1), ((padding[1][0], padding[1][1]), (padding[2][0], padding[2][1])),
                      (1, 1))  # fmt: skip
    out = (3, g.P, g.Q, 6) if pool is None else (3, g.P // 2, g.Q // 2, 6)
    dy = uniform(rng, out)
    RS, NPQ = 9, 3 * g.P * g.Q
    tol = Tolerance((RS * C, RS * 6, NPQ, NPQ), abs_terms=True)
    if pool is None:
        op, kwargs = miniconv.nn.conv2d_bias_relu, {"padding": padding}
        tf_kwargs = {"padding": padding}
    else:
        op, kwargs = miniconv.nn.conv2d_bias_relu_max_pool2d, {"pool_size": pool, "padding": padding}
        tf_kwargs = {"pool_size": pool, "padding": padding}
    assert_vjp_close(op, _tf_conv_bias_relu_pool, (x, w, b), dy, kwargs, backend=backend, tol=tol, tf_kwargs=tf_kwargs)
