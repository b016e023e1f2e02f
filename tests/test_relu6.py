"""relu6: forward and VJP against TensorFlow, its gradient at the kinks, and inf / NaN.

relu6(x) = min(max(x, 0), 6); TensorFlow's gradient is dy * (0 < x < 6), a product: 0 at x = 0 and
x = 6 exactly, and an inf or NaN dy gives NaN even where the mask is 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from hypothesis import given
from strategies import array_cases
from tf_reference import Tolerance, assert_vjp_close, tf_vjp

import miniconv

EXACT = Tolerance((1, 1), c=0)


@given(case=array_cases(scales=(1.0, 8.0, 100.0), zeros=True))
def test_relu6_matches_tf(backend, case):
    """Exact: a selection and one product, no rounding. Values around 0, 6 and beyond."""
    x, dy = case.arrays()
    assert_vjp_close(miniconv.nn.relu6, tf.nn.relu6, (x,), dy, {}, backend=backend, tol=EXACT)


def test_relu6_kinks_and_nonfinite_match_tf(backend):
    """The gradient is 0 at exactly 0 and 6; NaN stays NaN; inf clips to 6; an inf / NaN upstream
    gradient gives NaN where the mask is 0 (TensorFlow's product), inf where it is 1."""
    x = np.array([-1, 0, 3, 6, 7, np.nan, np.inf, -np.inf, 6, 0, 2, 5.999999], np.float32)
    dy = np.array([1, 1, 1, 1, 1, 1, 1, 1, np.inf, np.nan, -np.inf, np.nan], np.float32)
    y, (dx,) = miniconv.vjp(miniconv.nn.relu6, x, backend=backend)[0], miniconv.vjp(miniconv.nn.relu6, x, backend=backend)[1](dy)
    y_tf, (dx_tf,) = tf_vjp(tf.nn.relu6, (x,), dy)
    np.testing.assert_array_equal(y, y_tf)
    np.testing.assert_array_equal(dx, dx_tf)
    np.testing.assert_array_equal(y, np.array([0, 0, 3, 6, 6, np.nan, 6, 0, 6, 0, 2, 5.999999], np.float32))
    np.testing.assert_array_equal(dx, [0, 0, 1, 0, 0, 0, 0, 0, np.nan, np.nan, -np.inf, np.nan])


def test_relu6_any_shape(backend):
    for shape in [(), (1,), (2, 3, 4, 5)]:
        x = np.full(shape, 7.5, np.float32)
        y, pullback = miniconv.vjp(miniconv.nn.relu6, x, backend=backend)
        assert y.shape == shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, np.full(shape, 6, np.float32))
        assert pullback(np.ones(shape, np.float32))[0].shape == shape
