"""dense (with and without bias) vs TensorFlow; dropout's arithmetic, keep rate and seeding.

Dropout cannot match TensorFlow's random stream, so it is tested by its properties: identity at
rate 0, every output 0 or x / (1 - rate), the keep fraction within binomial bounds, seeded
reproducibility, and the kernel arithmetic with an injected mask (see ARCHITECTURE.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from strategies import DenseCase, dense_cases
from tf_reference import Tolerance, assert_vjp_close, tf_dense

import miniconv

# --- dense ---------------------------------------------------------------------------------------


@given(case=dense_cases())
def test_dense_matches_tf(backend, case):
    """x of rank 1 to 3, with or without bias; TF reference x @ kernel + bias."""
    arrays, dy = case.arrays()
    assert_vjp_close(miniconv.nn.dense, tf_dense, arrays, dy, {}, backend=backend, tol=case.tolerance())


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch", [(), (1,), (4,), (2, 3)], ids=lambda b: f"batch{b}")
def test_dense_named_cases(backend, bias, batch):
    """Both signatures, every x rank: the pullback gives (dx, dkernel) or (dx, dkernel, dbias)."""
    case = DenseCase(batch, 5, 3, bias, seed=len(batch))
    arrays, dy = case.arrays()
    assert_vjp_close(miniconv.nn.dense, tf_dense, arrays, dy, {}, backend=backend, tol=case.tolerance())
    _, pullback = miniconv.vjp(miniconv.nn.dense, *arrays, backend=backend)
    assert len(pullback(dy)) == (3 if bias else 2)


# --- dropout -------------------------------------------------------------------------------------


def test_dropout_rate_zero_is_identity(backend):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    y, pullback = miniconv.vjp(miniconv.nn.dropout, x, rate=0.0, seed=0, backend=backend)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(pullback(dy)[0], dy)
    assert_vjp_close(miniconv.nn.dropout, tf.nn.dropout, (x,), dy, {"rate": 0.0}, backend=backend,
                     tol=Tolerance((1, 1), c=0))  # fmt: skip


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_values_are_zero_or_scaled_and_gradient_uses_the_same_mask(backend, rate):
    """y is 0 or x * float32(1 / (1 - rate)) (TF's arithmetic, bit for bit); dx = mask * scale * dy."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 2.0, (4, 6, 7)).astype(np.float32) * rng.choice([-1, 1], (4, 6, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, pullback = miniconv.vjp(miniconv.nn.dropout, x, rate=rate, seed=7, backend=backend)
    scale = np.float32(1 / (1 - rate))
    kept = y != 0  # x has no zeros, so the zeros of y are the dropped units
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    assert 0 < kept.sum() < x.size
    (dx,) = pullback(dy)
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, np.float32(0)))


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.8])
def test_dropout_keep_fraction_within_binomial_bounds(backend, rate):
    """kept ~ Binomial(n, 1 - rate): within 5 standard deviations (a 1 in 1.7 million miss),
    and the output's mean stays the input's (inverted dropout is unbiased)."""
    n = 200_000
    x = np.ones(n, np.float32)
    y = miniconv.nn.dropout(x, rate, seed=12345, backend=backend)
    kept = int(np.count_nonzero(y))
    p = 1 - rate
    sd = math.sqrt(n * p * (1 - p))
    assert abs(kept - n * p) < 5 * sd, f"kept {kept} of {n} at rate {rate}: expected {n * p:.0f} +- {5 * sd:.0f}"
    assert abs(float(y.astype(np.float64).mean()) - 1) < 5 * sd / (n * p)


def test_dropout_seeding_is_reproducible(backend):
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    drop = miniconv.nn.dropout
    # an int seed: the same mask every time, and on every backend (the mask is drawn by NumPy)
    np.testing.assert_array_equal(drop(x, 0.5, seed=3, backend=backend), drop(x, 0.5, seed=3, backend=backend))
    np.testing.assert_array_equal(drop(x, 0.5, seed=3, backend=backend), drop(x, 0.5, seed=3, backend="numpy"))
    assert not np.array_equal(drop(x, 0.5, seed=3, backend=backend), drop(x, 0.5, seed=4, backend=backend))
    # a Generator: equal generators give equal masks; one generator advances between calls
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    first = drop(x, 0.5, seed=a, backend=backend)
    np.testing.assert_array_equal(first, drop(x, 0.5, seed=b, backend=backend))
    assert not np.array_equal(first, drop(x, 0.5, seed=a, backend=backend))
    # no seed: fresh entropy, still a valid dropout
    y = drop(x, 0.5, backend=backend)
    assert np.all((y == 0) | (y == x * np.float32(2)))


@pytest.mark.parametrize("scale", [1.0, 2.0, 1 / 0.7])
def test_dropout_kernel_arithmetic_with_injected_mask(backend, scale):
    """The backend's dropout_forward / dropout_backward with a known mask: kept -> value * scale,
    dropped -> exactly 0, NaN and inf included (TF selects with where(keep, x * scale, 0))."""
    be = miniconv.get_backend(backend)
    x = np.array([[1.5, -2.0, np.nan, np.inf], [-np.inf, 0.25, np.nan, 3.0]], np.float32)
    keep = np.array([[True, False, True, False], [False, True, False, True]])
    s = np.float32(scale)
    expected = np.array([[1.5 * s, 0, np.nan, 0], [0, 0.25 * s, 0, 3.0 * s]], np.float32)
    np.testing.assert_array_equal(be.dropout_forward(x, keep, scale), expected)
    np.testing.assert_array_equal(be.dropout_backward(x, keep, scale), expected)  # same rule for dy


def test_dropout_drops_nan_to_zero_like_tf(backend):
    """A NaN input in a dropped unit gives 0, as tf.nn.dropout does (rate 0.5, half of them)."""
    x = np.full(1000, np.nan, np.float32)
    y = miniconv.nn.dropout(x, 0.5, seed=1, backend=backend)
    y_tf = tf.nn.dropout(x, 0.5, seed=1).numpy()
    for out in (y, y_tf):  # both: every unit NaN (kept) or exactly 0 (dropped), some of each
        assert np.all(np.isnan(out) | (out == 0)) and 0 < np.count_nonzero(out == 0) < x.size
