"""1 x 1 convolutions (pointwise layers): against TensorFlow on every backend, and the cpu backend's
plain-product path against its im2col path.

Shape legend: N batch, H W input size, C in-channels, K filters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import uniform
from tf_reference import Tolerance, assert_vjp_close, tf_conv2d

import miniconv
from miniconv.shapes import conv_geometry

shapes = st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 40), st.integers(1, 40))


@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_conv2d_1x1_matches_tf(backend, shape, seed):
    N, H, W, C, K = shape
    rng = np.random.default_rng(seed)
    x, w, dy = uniform(rng, (N, H, W, C)), uniform(rng, (1, 1, C, K)), uniform(rng, (N, H, W, K))
    assert_vjp_close(miniconv.nn.conv2d, tf_conv2d, (x, w), dy, {"strides": 1, "padding": "VALID"}, backend=backend,
                     tol=Tolerance((C, K, N * H * W), abs_terms=True))  # fmt: skip


@given(shape=shapes, min_rows=st.sampled_from([1, 7, 1024]), piece=st.sampled_from([None, 2, 5]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_cpu_pointwise_is_im2col_up_to_rounding(shape, min_rows, piece, seed):
    """The plain products against im2col's path, the filter gradient's rows in chunks of a few rows
    (MIN_CHUNK_ROWS cut to 1 or 7) or one; every product whole, or in OpenBLAS small-kernel pieces of
    2 or 5 rows (``small_products``, its bound cut to this shape)."""
    from miniconv.backend.cpu import conv_kernels, pointwise_kernels, small_products

    N, H, W, C, K = shape
    rng = np.random.default_rng(seed)
    x, w, dy = uniform(rng, (N, H, W, C)), uniform(rng, (1, 1, C, K)), uniform(rng, (N, H, W, K))
    g = conv_geometry(x.shape, w.shape, (1, 1), "SAME", (1, 1))
    assert pointwise_kernels.applies(g)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pointwise_kernels, "MIN_CHUNK_ROWS", min_rows)
        if piece is not None:
            patch.setattr(small_products, "MIN_ROWS", 1)
            patch.setattr(small_products, "SMALL_MNK", piece * C * K)
        y = pointwise_kernels.conv2d_forward(x, w, g)
        dx = pointwise_kernels.conv2d_backward_input(dy, w, g)
        dw = pointwise_kernels.conv2d_backward_filter(x, dy, g)
    tol = {"rtol": 1e-5, "atol": 1e-5 * max(C, K, N * H * W) ** 0.5}
    np.testing.assert_allclose(y, conv_kernels.conv2d_forward(x, w, g), **tol)
    np.testing.assert_allclose(dx, conv_kernels.conv2d_backward_input(dy, w, g), **tol)
    np.testing.assert_allclose(dw, conv_kernels.conv2d_backward_filter(x, dy, g), **tol)


def test_cpu_pointwise_applies_to_unpadded_stride_1_only():
    from miniconv.backend.cpu import pointwise_kernels

    assert pointwise_kernels.applies(conv_geometry((1, 5, 5, 3), (1, 1, 3, 4), (1, 1), "VALID", (1, 1)))
    assert not pointwise_kernels.applies(conv_geometry((1, 5, 5, 3), (1, 1, 3, 4), (2, 2), "VALID", (1, 1)))
    assert not pointwise_kernels.applies(conv_geometry((1, 5, 5, 3), (1, 1, 3, 4), (1, 1), ((1, 0), (0, 0)), (1, 1)))
    assert not pointwise_kernels.applies(conv_geometry((1, 5, 5, 3), (3, 3, 3, 4), (1, 1), "SAME", (1, 1)))
