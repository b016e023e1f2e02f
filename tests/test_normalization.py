"""batch_normalization and moments: forward and VJP against TensorFlow on every backend (every way the
parameters broadcast, offset / scale None), inf / NaN against the reference, and the cpu kernels'
row blocks.

Tolerances. Both ops are not linear in their arrays, so the size of the terms each result sums
(the m of ``tf_reference``) is formed here in float64: |x| |inv| + |offset| + |mean| |inv| for y,
|dy| (|x| + |mean|) rstd (times |scale| rstd^2 / 2 for the variance) summed over the broadcast axes
for the parameters' gradients, and so on; L is the number of values summed (x.size at most).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from strategies import BatchNormCase, MomentsCase, batch_norm_cases, moments_cases, uniform
from tf_reference import EPS32, assert_close

import miniconv
from miniconv import nn

C_TOL = 4.0


def rtol(L: int) -> float:
    return C_TOL * EPS32 * math.sqrt(max(1, L))


def reduce_to(a, shape):
    """Sum a over the axes a parameter of ``shape`` is broadcast along (the shape of its gradient)."""
    aligned = (1,) * (a.ndim - len(shape)) + tuple(shape)
    axes = tuple(i for i, (p, n) in enumerate(zip(aligned, a.shape)) if p == 1 and n != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def tf_batch_norm_vjp(arrays, epsilon, dy):
    """TF's y and the gradient of each array (None for an offset / scale given as None)."""
    tensors = [None if a is None else tf.constant(a) for a in arrays]
    watched = [t for t in tensors if t is not None]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        y = tf.nn.batch_normalization(*tensors, variance_epsilon=epsilon)
    grads = iter(tape.gradient(y, watched, output_gradients=tf.constant(dy)))
    return y.numpy(), [None if t is None else next(grads).numpy() for t in tensors]


def batch_norm_magnitudes(arrays, epsilon, dy):
    """float64 sizes of the terms behind y, dx, dmean, dvariance, doffset, dscale (module docstring)."""
    x, mean, variance, offset, scale = (None if a is None else a.astype(np.float64) for a in arrays)
    dy = np.abs(dy.astype(np.float64))
    scale = np.ones(()) if scale is None else scale
    rstd = 1 / np.sqrt(variance + np.float32(epsilon))
    inv = np.abs(rstd * scale)
    spread = dy * (np.abs(x) + np.abs(mean))
    y = np.abs(x) * inv + (0 if offset is None else np.abs(offset)) + np.abs(mean) * inv
    return [y, dy * inv, reduce_to(dy * inv, mean.shape),
            reduce_to(spread * np.abs(scale) * rstd**3 / 2, variance.shape),
            None if arrays[3] is None else reduce_to(dy, arrays[3].shape),
            None if arrays[4] is None else reduce_to(spread * rstd, arrays[4].shape)]  # fmt: skip


def check_batch_norm(case: BatchNormCase, backend: str) -> None:
    arrays, dy = case.arrays()
    originals = [None if a is None else a.copy() for a in arrays]
    y, pullback = miniconv.vjp(nn.batch_normalization, *arrays, case.epsilon, backend=backend)
    grads = pullback(dy)
    y_tf, grads_tf = tf_batch_norm_vjp(arrays, case.epsilon, dy)
    magnitudes = batch_norm_magnitudes(arrays, case.epsilon, dy)
    names = ("dx", "dmean", "dvariance", "doffset", "dscale")
    assert_close(y, y_tf, rtol=rtol(8), magnitude=magnitudes[0], what=f"y {case}")
    for name, g, g_tf, m in zip(names, grads, grads_tf, magnitudes[1:]):
        if g_tf is None:
            assert g is None, f"{name}: expected None for a parameter given as None, got {g!r}"
            continue
        L = 8 if name == "dx" else 8 + x_size(arrays) // max(1, g_tf.size)
        assert_close(g, g_tf, rtol=rtol(L), magnitude=m, what=f"{name} {case}")
    np.testing.assert_array_equal(nn.batch_normalization(*arrays, case.epsilon, backend=backend), y)
    for before, after in zip(originals, arrays):
        if before is not None:
            np.testing.assert_array_equal(after, before, err_msg="an input was modified in place")


def x_size(arrays) -> int:
    return arrays[0].size


@given(case=batch_norm_cases())
def test_batch_normalization_matches_tf(backend, case):
    check_batch_norm(case, backend)


@pytest.mark.parametrize("shape", [(32, 7, 7, 24), (2, 3, 5, 1), (1, 1, 1, 3), (64, 130)])
def test_batch_normalization_nhwc_per_channel(backend, shape):
    """The kernels' case: per-channel parameters, many rows (several blocks of the cpu backend)."""
    check_batch_norm(BatchNormCase(shape, ("channel",) * 4, False, False, 1e-3, seed=len(shape)), backend)


def test_batch_normalization_parameter_shapes_are_kept(backend):
    """Each gradient has its parameter's shape: (C,), (1, 1, 1, C), () and (H, 1, 1)."""
    rng = np.random.default_rng(0)
    x = uniform(rng, (2, 4, 3, 5))
    mean, variance = uniform(rng, (5,)), uniform(rng, (1, 1, 1, 5), 0.5, 1.0)
    offset, scale = np.float32(0.25), uniform(rng, (4, 1, 1))
    y, pullback = miniconv.vjp(nn.batch_normalization, x, mean, variance, offset, scale, 1e-3, backend=backend)
    dx, dmean, dvariance, doffset, dscale = pullback(np.ones_like(y))
    assert (dx.shape, dmean.shape, dvariance.shape, doffset.shape, dscale.shape) == (x.shape, (5,), (1, 1, 1, 5), (),
                                                                                     (4, 1, 1))  # fmt: skip
    np.testing.assert_allclose(doffset, x.size, rtol=1e-6)  # sum of ones over every cell


def test_moments_then_batch_normalization_is_keras_training(backend):
    """moments over [0, 1, 2] feeding batch_normalization (what a BatchNormalization layer trains
    with): gradients through both ops match TF's through both."""
    rng = np.random.default_rng(3)
    x, offset, scale, dy = uniform(rng, (4, 5, 6, 3)), uniform(rng, (3,)), uniform(rng, (3,), 0.5, 1.5), uniform(rng, (4, 5, 6, 3))
    (mean, variance), moments_pullback = miniconv.vjp(nn.moments, x, [0, 1, 2], backend=backend)
    y, bn_pullback = miniconv.vjp(nn.batch_normalization, x, mean, variance, offset, scale, 1e-3, backend=backend)
    dx_direct, dmean, dvariance, doffset, dscale = bn_pullback(dy)
    dx = dx_direct + moments_pullback(dmean, dvariance)[0]
    tensors = [tf.constant(a) for a in (x, offset, scale)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        m, v = tf.nn.moments(tensors[0], [0, 1, 2])
        y_tf = tf.nn.batch_normalization(tensors[0], m, v, tensors[1], tensors[2], 1e-3)
    dx_tf, doffset_tf, dscale_tf = tape.gradient(y_tf, tensors, output_gradients=tf.constant(dy))
    np.testing.assert_allclose(y, y_tf.numpy(), rtol=1e-5, atol=1e-5)
    # dx of a normalised batch cancels to ~0 in sum: compare against the size of its terms
    np.testing.assert_allclose(dx, dx_tf.numpy(), rtol=0, atol=2e-5 * np.abs(dy).max() * float(np.max(scale / np.sqrt(v.numpy() + 1e-3))))
    np.testing.assert_allclose(doffset, doffset_tf.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dscale, dscale_tf.numpy(), rtol=1e-4, atol=1e-4)


# --- moments -------------------------------------------------------------------------------------


def check_moments(case: MomentsCase, backend: str) -> None:
    x, dmean, dvariance = case.arrays()
    axes = list(case.axes)
    (mean, variance), pullback = miniconv.vjp(nn.moments, x, axes, keepdims=case.keepdims, backend=backend)
    (dx,) = pullback(dmean, dvariance)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        mean_tf, variance_tf = tf.nn.moments(xt, axes, keepdims=case.keepdims)
    dx_tf = tape.gradient([mean_tf, variance_tf], xt, output_gradients=[tf.constant(dmean), tf.constant(dvariance)])
    reduced = [a % x.ndim for a in axes]
    n = math.prod(x.shape[a] for a in reduced)
    x64 = x.astype(np.float64)
    mean64 = x64.mean(axis=tuple(reduced), keepdims=True)
    deviation = np.abs(x64 - mean64) + EPS32 * math.sqrt(n) * np.abs(x64)  # x - mean is rounded against |x|
    keep = (lambda a: a) if case.keepdims else (lambda a: a.reshape(mean_tf.shape))
    m_mean = keep(np.abs(x64).sum(axis=tuple(reduced), keepdims=True) / n)
    m_variance = keep((deviation**2).sum(axis=tuple(reduced), keepdims=True) / n)
    dm, dv = np.abs(dmean).reshape(mean64.shape), np.abs(dvariance).reshape(mean64.shape)
    m_dx = dm / n + 2 * dv / n * (np.abs(x64 - mean64) + np.abs(mean64))
    assert mean.shape == tuple(mean_tf.shape) and variance.shape == tuple(variance_tf.shape)
    assert_close(mean, mean_tf.numpy(), rtol=rtol(n), magnitude=m_mean, what=f"mean {case}")
    assert_close(variance, variance_tf.numpy(), rtol=rtol(n), magnitude=m_variance, what=f"variance {case}")
    assert_close(dx, dx_tf.numpy(), rtol=rtol(n), magnitude=m_dx, what=f"dx {case}")
    plain = nn.moments(x, axes, keepdims=case.keepdims, backend=backend)
    np.testing.assert_array_equal(plain[0], mean)
    np.testing.assert_array_equal(plain[1], variance)


@given(case=moments_cases())
def test_moments_matches_tf(backend, case):
    check_moments(case, backend)


@pytest.mark.parametrize("shape, axes", [((32, 7, 7, 24), [0, 1, 2]), ((3, 4, 5, 6), [1, 2, 3]), ((3, 4, 5, 6), [0, 2]),
                                         ((4, 6), 0), ((2, 3, 4), [])])  # fmt: skip
def test_moments_named_axes(backend, shape, axes):
    """NHWC statistics (no copy), layer-norm axes, non-adjacent axes, an int, no axes (variance 0)."""
    check_moments(MomentsCase(shape, tuple(np.atleast_1d(axes).tolist()), False, seed=len(shape)), backend)


def test_moments_is_population_variance_and_ignores_shift(backend):
    x = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    mean, variance = nn.moments(x, [0], shift=100.0, backend=backend)
    np.testing.assert_array_equal(mean, [2.0, 4.0])
    np.testing.assert_array_equal(variance, [1.0, 4.0])  # divided by n = 2, not n - 1


# --- inf and NaN ---------------------------------------------------------------------------------


def _sprinkle(rng, a, fraction=0.1, values=(np.inf, -np.inf, np.nan)):
    a = np.array(a, copy=True)
    where = rng.random(a.shape) < fraction
    a[where] = rng.choice(values, int(where.sum()))
    return a


def assert_same(actual, expected, what):
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected), err_msg=f"{what}: +inf positions")
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected), err_msg=f"{what}: -inf positions")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-4, atol=1e-4, err_msg=what)


@given(case=batch_norm_cases(), data=st.data())
def test_batch_normalization_nonfinite_like_the_reference(backend, case, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays, dy = case.arrays()
    arrays = tuple(None if a is None else _sprinkle(rng, a) for a in arrays)
    dy = _sprinkle(rng, dy)
    with np.errstate(all="ignore"):
        y_ref, pullback_ref = miniconv.vjp(nn.batch_normalization, *arrays, case.epsilon, backend="numpy")
        ref = pullback_ref(dy)
        y, pullback = miniconv.vjp(nn.batch_normalization, *arrays, case.epsilon, backend=backend)
        grads = pullback(dy)
    assert_same(y, y_ref, "y")
    for name, g, g_ref in zip(("dx", "dmean", "dvariance", "doffset", "dscale"), grads, ref):
        if g_ref is None:
            assert g is None
        else:
            assert_same(g, g_ref, name)


@given(case=moments_cases(), data=st.data())
def test_moments_nonfinite_like_the_reference(backend, case, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, dmean, dvariance = (_sprinkle(rng, a) for a in case.arrays())
    axes = list(case.axes)
    with np.errstate(all="ignore"):
        ref, pullback_ref = miniconv.vjp(nn.moments, x, axes, keepdims=case.keepdims, backend="numpy")
        out, pullback = miniconv.vjp(nn.moments, x, axes, keepdims=case.keepdims, backend=backend)
        dx_ref, dx = pullback_ref(dmean, dvariance)[0], pullback(dmean, dvariance)[0]
    for actual, expected, what in ((out[0], ref[0], "mean"), (out[1], ref[1], "variance"), (dx, dx_ref, "dx")):
        assert_same(actual, expected, what)


# --- the cpu kernels' row blocks -------------------------------------------------------------------


@given(case=batch_norm_cases(), grain=st.sampled_from([1, 7, 64]))
def test_cpu_normalization_in_small_blocks(case, grain):
    """With GRAIN cut to 1, 7 or 64 values a block holds one row or a few: many partial sums,
    added in order; the results match TF as with the default blocks."""
    from miniconv.backend.cpu import normalization_kernels

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(normalization_kernels, "GRAIN", grain)
        check_batch_norm(case, "cpu")
        x = case.arrays()[0][0]
        check_moments(MomentsCase(x.shape, tuple(range(x.ndim - 1)), False, seed=case.seed), "cpu")
