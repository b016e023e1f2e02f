"""The cuda backend's depthwise, separable, batch-norm, moments and relu6 in Numba's CUDA simulator:
the ops against TensorFlow, the faster kernels against their oracles, inf / NaN against the reference.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda          (its own process)

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K filters, R S kernel
size, P Q output size. Few, tiny, named cases (every GPU thread is a Python thread here), each for a
boundary: a row's last group of four cells cut short, a filter-gradient sum split over slices,
column reductions over several slices and more than one block of 32 columns.
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip(
        "CUDA simulator tests: run `NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda` (a separate process)",
        allow_module_level=True,
    )

import math

import numpy as np
import tensorflow as tf
from strategies import ArrayCase, BatchNormCase, DepthwiseCase, MomentsCase, uniform
from tf_reference import EPS32, Tolerance, assert_close, assert_vjp_close

import miniconv
from kernels_cuda import depthwise, normalization
from kernels_cuda._common import to_device
from miniconv.backend import numpy_ref
from miniconv.shapes import depthwise_geometry

CUDA = "cuda"


def dw_case(N, H, W, C, M, R=3, S=3, stride=1, padding="SAME", dilation=1, K=0, seed=0) -> DepthwiseCase:
    return DepthwiseCase(N, H, W, C, M, R, S, stride, dilation, padding, K, seed)


DEPTHWISE_CASES = {
    "same_3x3_q7": dw_case(2, 5, 7, 3, 1, seed=1),  # Q = 7: a group of four and one of three
    "strided_multiplier": dw_case(1, 7, 6, 2, 3, stride=2, padding="VALID", seed=2),
    "dilated_even_filter": dw_case(1, 6, 7, 2, 2, R=2, S=2, dilation=2, seed=3),
    "explicit_padding": dw_case(2, 4, 5, 3, 1, padding=[[0, 0], [2, 1], [0, 3], [0, 0]], seed=4),
    "separable": dw_case(2, 6, 5, 3, 2, stride=2, K=4, seed=5),
}


@pytest.mark.parametrize("name", list(DEPTHWISE_CASES))
def test_depthwise_and_separable_match_tf(name):
    case = DEPTHWISE_CASES[name]
    arrays, dy = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, arrays, dy, case.kwargs, backend=CUDA, tol=case.tolerance())


@pytest.mark.parametrize("shape, M, stride, padding, dilation, splits", [
    ((2, 6, 6, 3), 1, 1, "SAME", 1, 3),      # N*P*Q = 72 cells over 3 slices
    ((1, 7, 9, 2), 2, 2, "VALID", 1, 2),
    ((1, 5, 6, 33), 1, 1, "SAME", 2, None),  # R*S*K = 297 filter values: two blocks of 256
])  # fmt: skip
def test_depthwise_kernels_match_their_oracles(shape, M, stride, padding, dilation, splits):
    C = shape[3]
    rng = np.random.default_rng(sum(shape))
    x, w = uniform(rng, shape), uniform(rng, (3, 3, C, M))
    g = depthwise_geometry(x.shape, w.shape, (stride, stride), padding, (dilation, dilation))
    dy = uniform(rng, g.output_shape)
    xd, wd, dyd = to_device(x), to_device(w), to_device(dy)
    L = 9
    mag = numpy_ref.depthwise_conv2d_forward(np.abs(x), np.abs(w), g)
    assert_close(depthwise.depthwise_conv2d_forward(xd, wd, g).copy_to_host(),
                 depthwise.depthwise_conv2d_forward_naive(xd, wd, g).copy_to_host(), rtol=4 * EPS32 * math.sqrt(L),
                 magnitude=mag, what="forward")  # fmt: skip
    oracle = depthwise.depthwise_conv2d_backward_filter_naive(xd, dyd, g).copy_to_host()
    mag = numpy_ref.depthwise_conv2d_backward_filter(np.abs(x), np.abs(dy), g)
    for n_splits in {None, splits}:
        assert_close(depthwise.depthwise_conv2d_backward_filter(xd, dyd, g, splits=n_splits).copy_to_host(), oracle,
                     rtol=4 * EPS32 * math.sqrt(g.N * g.P * g.Q), magnitude=mag, what=f"filter, splits={n_splits}")  # fmt: skip


def _sprinkle(rng, a, values=(np.inf, -np.inf, np.nan)):
    a = np.array(a, copy=True)
    where = rng.random(a.shape) < 0.08
    a[where] = rng.choice(values, int(where.sum()))
    return a


def assert_same_nonfinite(actual, expected, what):
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected), err_msg=f"{what}: inf positions")
    np.testing.assert_array_equal(actual[np.isinf(actual)], expected[np.isinf(expected)], err_msg=f"{what}: infinities")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-4, atol=1e-4, err_msg=what)


def test_depthwise_nonfinite_like_the_reference():
    rng = np.random.default_rng(5)
    for case in (DEPTHWISE_CASES["same_3x3_q7"], DEPTHWISE_CASES["strided_multiplier"]):
        (x, w), dy = case.arrays()
        x, w, dy = _sprinkle(rng, x), _sprinkle(rng, w), _sprinkle(rng, dy, (np.inf, np.nan))
        with np.errstate(all="ignore"):
            y_ref, pullback_ref = miniconv.vjp(miniconv.nn.depthwise_conv2d, x, w, backend="numpy", **case.kwargs)
            ref = pullback_ref(dy)
        y, pullback = miniconv.vjp(miniconv.nn.depthwise_conv2d, x, w, backend=CUDA, **case.kwargs)
        for actual, expected, what in ((y, y_ref, "y"), *zip(pullback(dy), ref, ("dx", "dw"))):
            assert_same_nonfinite(actual, expected, what)


# --- batch normalization and moments ----------------------------------------------------------------


def _tf_batch_norm(arrays, epsilon, dy):
    tensors = [None if a is None else tf.constant(a) for a in arrays]
    watched = [t for t in tensors if t is not None]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        y = tf.nn.batch_normalization(*tensors, variance_epsilon=epsilon)
    grads = iter(tape.gradient(y, watched, output_gradients=tf.constant(dy)))
    return [y.numpy()] + [None if t is None else next(grads).numpy() for t in tensors]


@pytest.mark.parametrize("case", [
    BatchNormCase((2, 3, 5, 40), ("channel",) * 4, False, False, 1e-3, seed=1),     # 40 columns: two blocks
    BatchNormCase((3, 4, 2, 3), ("keepdims", "channel", "scalar", "channel"), True, False, 1e-5, shift=20.0, seed=2),
    BatchNormCase((2, 3, 4), ("inner", "full", "channel", "scalar"), False, True, 0.1, seed=3),
], ids=["nhwc", "keepdims_no_offset", "broadcast_no_scale"])  # fmt: skip
def test_batch_normalization_matches_tf(case):
    arrays, dy = case.arrays()
    y, pullback = miniconv.vjp(miniconv.nn.batch_normalization, *arrays, case.epsilon, backend=CUDA)
    ours = [y, *pullback(dy)]
    theirs = _tf_batch_norm(arrays, case.epsilon, dy)
    for what, a, b in zip(("y", "dx", "dmean", "dvariance", "doffset", "dscale"), ours, theirs):
        if b is None:
            assert a is None, what
            continue
        scale = float(np.abs(b).max()) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * max(scale, 1.0) * math.sqrt(arrays[0].size), err_msg=what)


@pytest.mark.parametrize("case", [
    MomentsCase((3, 4, 5, 6), (0, 1, 2), False, seed=1),
    MomentsCase((2, 3, 4), (-1,), True, shift=10.0, seed=2),
    MomentsCase((600, 3), (0,), False, seed=3),   # 600 rows: column sums over two slices
], ids=["nhwc", "last_axis_keepdims", "two_slices"])  # fmt: skip
def test_moments_matches_tf(case):
    x, dmean, dvariance = case.arrays()
    (mean, variance), pullback = miniconv.vjp(miniconv.nn.moments, x, list(case.axes), keepdims=case.keepdims, backend=CUDA)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        m, v = tf.nn.moments(xt, list(case.axes), keepdims=case.keepdims)
    dx_tf = tape.gradient([m, v], xt, output_gradients=[tf.constant(dmean), tf.constant(dvariance)])
    n = math.prod(x.shape[a] for a in case.axes)
    np.testing.assert_allclose(mean, m.numpy(), rtol=1e-5, atol=1e-6 * math.sqrt(n) * (1 + abs(case.shift)))
    np.testing.assert_allclose(variance, v.numpy(), rtol=1e-5, atol=1e-6 * math.sqrt(n) * (1 + abs(case.shift)))
    np.testing.assert_allclose(pullback(dmean, dvariance)[0], dx_tf.numpy(), rtol=1e-4, atol=1e-6 * (1 + abs(case.shift)))


@pytest.mark.parametrize("M, C, splits", [(70, 3, 3), (9, 40, None), (300, 33, 2)])
def test_normalization_reductions_match_their_oracles(M, C, splits):
    rng = np.random.default_rng(M + C)
    x, dy, mean = uniform(rng, (M, C)), uniform(rng, (M, C)), uniform(rng, (C,))
    variance, scale = uniform(rng, (C,), 0.5, 1.5), uniform(rng, (C,))
    xd, dyd, meand = to_device(x), to_device(dy), to_device(mean)
    tol = 4 * EPS32 * math.sqrt(M)
    m_ref, v_ref = (a.copy_to_host() for a in normalization.moments_naive(xd))
    m, v = (a.copy_to_host() for a in normalization.moments_forward(xd, splits=splits))
    assert_close(m, m_ref, rtol=tol, magnitude=np.abs(x).mean(axis=0), what="mean")
    assert_close(v, v_ref, rtol=tol, magnitude=((np.abs(x) + np.abs(m_ref)) ** 2).mean(axis=0), what="variance")
    sums_ref = normalization.batch_norm_backward_sums_naive(dyd, xd, meand).copy_to_host()
    dx, _, _, doffset, dscale = (a.copy_to_host() for a in normalization.batch_norm_backward(
        dyd, xd, meand, to_device(variance), to_device(scale), 1e-3, splits=splits))  # fmt: skip
    rstd = 1 / np.sqrt(variance + np.float32(1e-3))
    assert_close(doffset, sums_ref[0], rtol=tol, magnitude=np.abs(dy).sum(axis=0), what="sum dy")
    assert_close(dscale, sums_ref[1] * rstd, rtol=tol, magnitude=(np.abs(dy) * (np.abs(x) + np.abs(mean))).sum(axis=0) * rstd,
                 what="sum dy (x - mean)")  # fmt: skip
    np.testing.assert_allclose(dx, dy * (rstd * scale), rtol=1e-6, atol=1e-7)


def test_normalization_nonfinite_like_the_reference():
    rng = np.random.default_rng(9)
    (x, mean, variance, offset, scale), dy = BatchNormCase((2, 3, 4, 5), ("channel",) * 4, False, False, 1e-3, seed=4).arrays()
    x, mean, variance, dy = (_sprinkle(rng, a) for a in (x, mean, variance, dy))
    with np.errstate(all="ignore"):
        y_ref, pullback_ref = miniconv.vjp(miniconv.nn.batch_normalization, x, mean, variance, offset, scale, 1e-3,
                                           backend="numpy")  # fmt: skip
        ref = [y_ref, *pullback_ref(dy)]
        (m_ref, v_ref), moments_ref = miniconv.vjp(miniconv.nn.moments, x, [0, 1, 2], backend="numpy")
        dx_ref = moments_ref(mean, variance)[0]
    y, pullback = miniconv.vjp(miniconv.nn.batch_normalization, x, mean, variance, offset, scale, 1e-3, backend=CUDA)
    for actual, expected, what in zip([y, *pullback(dy)], ref, ("y", "dx", "dmean", "dvariance", "doffset", "dscale")):
        assert_same_nonfinite(actual, expected, what)
    (m, v), moments_pullback = miniconv.vjp(miniconv.nn.moments, x, [0, 1, 2], backend=CUDA)
    for actual, expected, what in ((m, m_ref, "mean"), (v, v_ref, "variance"), (moments_pullback(mean, variance)[0], dx_ref, "dx")):
        assert_same_nonfinite(actual, expected, what)


def test_relu6_matches_tf():
    x, dy = ArrayCase((3, 4, 5), scale=8.0, zeros=True, seed=1).arrays()
    x[0, 0, :4] = [0, 6, np.nan, np.inf]
    assert_vjp_close(miniconv.nn.relu6, tf.nn.relu6, (x,), dy, {}, backend=CUDA, tol=Tolerance((1, 1), c=0))


# --- conv2d_bias / depthwise_conv2d_bias: Backend's composition of the cuda kernels ----------------


@pytest.mark.parametrize("op, shapes, kwargs", [
    ("conv2d", ((2, 5, 4, 3), (1, 1, 3, 4), (4,)), {"strides": 1, "padding": "SAME"}),
    ("conv2d", ((1, 5, 6, 2), (3, 3, 2, 3), (3,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((2, 5, 4, 3), (3, 3, 3, 1), (3,)), {"strides": 1, "padding": "SAME"}),
    ("depthwise_conv2d", ((1, 6, 5, 2), (5, 5, 2, 1), (2,)), {"strides": 2, "padding": "SAME"}),
])  # fmt: skip
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_conv_bias_like_the_reference(op, shapes, kwargs, activation):
    """The fused ops a folded batch normalization (+ ReLU6) runs: on cuda, Backend's default composition
    (conv, bias_add, relu6); outputs and gradients as the numpy reference's, an inf and a NaN included."""
    rng = np.random.default_rng(len(shapes[0]) + shapes[1][0])
    x, w, b = (rng.uniform(-3, 3, s).astype(np.float32) for s in shapes)
    x[0, 1, 1, 0], x[-1, 2, 0, -1] = np.inf, np.nan
    fused = getattr(miniconv.nn, op + "_bias")
    results = {}
    with np.errstate(all="ignore"):
        for backend in ("numpy", CUDA):
            y, pullback = miniconv.vjp(fused, x, w, b, **kwargs, activation=activation, backend=backend)
            dy = np.random.default_rng(1).uniform(-1, 1, y.shape).astype(np.float32)
            results[backend] = (y, *pullback(dy))
    for ours, ref in zip(results[CUDA], results["numpy"]):
        ours = np.asarray(ours)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(ours[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-5, atol=1e-5 * np.abs(ref[finite]).max())
