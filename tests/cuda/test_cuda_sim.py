"""The cuda backend in Numba's CUDA simulator: every op against TensorFlow, every tiled kernel
against its one-thread-per-output oracle, optimizer and loss kernels against miniconv's host
code, and training steps of a tiny model.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda          (its own process)

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

The simulator runs every GPU thread as a Python thread, so the cases are few, named and tiny
(no hypothesis), each chosen for a boundary that matters: more than one 64-row or 64-column
output tile, reductions of several 8-deep slices, split reductions summed in a second pass, a
softmax row longer than a block. The kernels are the ones a GPU runs; only the speed differs.
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip(
        "CUDA simulator tests: run `NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda` (a separate "
        "process: the variable must be set before Numba is imported)",
        allow_module_level=True,
    )

import math

import numpy as np
import tensorflow as tf
from strategies import ArrayCase, ConvCase, DenseCase, GlobalPoolCase, PoolCase, tie_free, uniform
from tf_reference import EPS32, Tolerance, assert_close, assert_vjp_close, tf_dense

import miniconv
from kernels_cuda import conv, dense, elementwise, losses, merge, optim, pool
from kernels_cuda._common import to_device
from miniconv.backend import numpy_ref
from miniconv.shapes import conv_geometry, pool_geometry

CUDA = "cuda"
NAN, INF = np.nan, np.inf
LOWEST = np.finfo(np.float32).min


def test_the_backend_is_listed_and_runs_in_the_simulator():
    assert "cuda" in miniconv.available_backends()
    backend = miniconv.get_backend("cuda")
    assert backend.name == "cuda" and backend.is_available()
    with miniconv.use_backend("cuda"):
        np.testing.assert_array_equal(miniconv.nn.relu(np.array([-1, 2], np.float32)), [0, 2])


def close_to_oracle(actual, expected, L: int, magnitude=None, what=""):
    """A tiled kernel and its oracle sum the same L terms in different orders."""
    assert_close(np.asarray(actual), np.asarray(expected, np.float64), rtol=4 * EPS32 * math.sqrt(max(L, 1)),
                 magnitude=magnitude, what=what)  # fmt: skip


# --- convolution -----------------------------------------------------------------------------


def conv2d_case(N, H, W, C, K, R, S, strides=(1, 1), padding="VALID", dilations=(1, 1), seed=0) -> ConvCase:
    return ConvCase(2, N, H, W, C, K, R, S, strides, dilations, padding, list(strides), list(dilations), seed)


def conv1d_case(N, W, C, K, S, stride=1, padding="VALID", dilation=1, seed=0) -> ConvCase:
    return ConvCase(1, N, 1, W, C, K, 1, S, (1, stride), (1, dilation), padding, stride, dilation, seed)


CONV_CASES = {
    "same_3x2": conv2d_case(2, 5, 6, 3, 4, 3, 2, padding="SAME", seed=1),
    "valid_strided": conv2d_case(1, 7, 5, 2, 3, 2, 3, strides=(2, 3), seed=2),
    "same_dilated": conv2d_case(2, 6, 6, 3, 2, 2, 2, padding="SAME", dilations=(2, 2), seed=3),
    "same_even_strided_deep": conv2d_case(1, 5, 4, 9, 5, 2, 2, strides=(2, 2), padding="SAME", seed=4),  # RSC = 36
    "conv1d_same_strided": conv1d_case(2, 9, 3, 4, 3, stride=2, padding="SAME", seed=5),
    "conv1d_valid_dilated": conv1d_case(1, 10, 2, 3, 3, dilation=3, seed=6),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_matches_tf(name):
    case = CONV_CASES[name]
    x, w, dy = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, (x, w), dy, case.kwargs, backend=CUDA, tol=case.tolerance())


@pytest.mark.parametrize(
    "shape, strides, padding, dilations, splits",
    [
        # N*P*Q = N*H*W = 72: two 64-row tiles (forward, backward-input); dw's 72 pixels in 3 slices
        ((2, 6, 6, 3, 5, 3, 3), (1, 1), "SAME", (1, 1), 3),
        # K = 66: two 64-column tiles (forward, backward-filter)
        ((1, 3, 3, 2, 66, 2, 2), (1, 1), "VALID", (1, 1), None),
        # C = 66: two column tiles of backward-input, 9 slices of the forward reduction
        ((1, 2, 2, 66, 2, 1, 1), (1, 1), "VALID", (1, 1), 2),
        # strided, uneven: most backward-input taps land nowhere; C = 10 > BK crosses slices
        ((1, 7, 6, 10, 3, 3, 2), (2, 3), "VALID", (1, 1), 2),
        ((1, 6, 5, 2, 3, 2, 3), (1, 1), "SAME", (2, 1), None),
    ],
)
def test_tiled_conv_kernels_match_their_oracles(shape, strides, padding, dilations, splits):
    N, H, W, C, K, R, S = shape
    rng = np.random.default_rng(sum(shape))
    x, w = uniform(rng, (N, H, W, C)), uniform(rng, (R, S, C, K))
    g = conv_geometry(x.shape, w.shape, strides, padding, dilations)
    dy = uniform(rng, g.output_shape)
    xd, wd, dyd = to_device(x), to_device(w), to_device(dy)
    mag = numpy_ref.conv2d_forward(np.abs(x), np.abs(w), g)
    close_to_oracle(conv.conv2d_forward(xd, wd, g).copy_to_host(), conv.conv2d_forward_naive(xd, wd, g).copy_to_host(),
                    R * S * C, mag, "forward")  # fmt: skip
    mag = numpy_ref.conv2d_backward_input(np.abs(dy), np.abs(w), g)
    close_to_oracle(conv.conv2d_backward_input(dyd, wd, g).copy_to_host(),
                    conv.conv2d_backward_input_naive(dyd, wd, g).copy_to_host(), R * S * K, mag, "backward input")  # fmt: skip
    oracle = conv.conv2d_backward_filter_naive(xd, dyd, g).copy_to_host()
    mag = numpy_ref.conv2d_backward_filter(np.abs(x), np.abs(dy), g)
    for n_splits in {None, splits}:
        close_to_oracle(conv.conv2d_backward_filter(xd, dyd, g, splits=n_splits).copy_to_host(), oracle,
                        g.N * g.P * g.Q, mag, f"backward filter, splits={n_splits}")  # fmt: skip


# --- pooling ---------------------------------------------------------------------------------


def pool_case(kind, dims, H, W, R, S, strides, padding, N=2, C=3, seed=0) -> PoolCase:
    ksize, stride_arg = ([R, S], list(strides)) if dims == 2 else (S, strides[1])
    return PoolCase(kind, dims, "named", N, H, W, C, R, S, tuple(strides), padding, ksize, stride_arg, seed)


POOL_CASES = {
    "max_same_3x3_s2": pool_case("MAX", 2, 5, 6, 3, 3, (2, 2), "SAME", seed=1),
    "max_valid_2x2_s1x2": pool_case("MAX", 2, 4, 7, 2, 2, (1, 2), "VALID", seed=2),
    "avg_same_even_2x3": pool_case("AVG", 2, 5, 5, 2, 3, (2, 1), "SAME", seed=3),
    "avg_valid_stride_past_window": pool_case("AVG", 2, 7, 8, 2, 3, (3, 4), "VALID", seed=4),
    "max1d_same": pool_case("MAX", 1, 1, 9, 1, 4, (1, 3), "SAME", seed=5),
    "avg1d_valid": pool_case("AVG", 1, 1, 8, 1, 3, (1, 2), "VALID", seed=6),
}


@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool_matches_tf(name):
    case = POOL_CASES[name]
    x, dy = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, (x,), dy, case.kwargs, backend=CUDA, tol=case.tolerance())


@pytest.mark.parametrize("kind, dims, shape", [("MAX", 2, (2, 3, 4, 5)), ("AVG", 2, (1, 4, 3, 3)), ("MAX", 1, (2, 7, 2)),
                                               ("AVG", 1, (1, 6, 4))])  # fmt: skip
def test_global_pool_matches_tf(kind, dims, shape):
    case = GlobalPoolCase(kind, dims, shape, seed=len(shape) + shape[0])
    x, dy = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, (x,), dy, {}, backend=CUDA, tol=case.tolerance())


def test_global_pool_reduction_matches_the_one_thread_per_output_kernel():
    """(1, 9, 9, 40): 81 cells over 8 lanes, 40 channels over two 32-column blocks."""
    rng = np.random.default_rng(7)
    x = tie_free(rng, (1, 9, 9, 40))
    x[0, 4, 4, :5] = x[0, 0, 0, :5] = 2.0  # ties: the first cell in scan order must win
    g = pool_geometry(x.shape, (9, 9), (1, 1), "VALID")
    xd = to_device(x)
    y, argmax = pool.max_pool2d_forward(xd, g, reduction=True)
    y_ref, argmax_ref = pool.max_pool2d_forward(xd, g, reduction=False)
    np.testing.assert_array_equal(y.copy_to_host(), y_ref.copy_to_host())
    np.testing.assert_array_equal(argmax.copy_to_host(), argmax_ref.copy_to_host())
    assert (argmax.copy_to_host()[0, 0, 0, :5] == 0).all()
    mean = pool.avg_pool2d_forward(xd, g, reduction=True).copy_to_host()
    close_to_oracle(mean, pool.avg_pool2d_forward(xd, g, reduction=False).copy_to_host(), 81,
                    numpy_ref.avg_pool2d_forward(np.abs(x), g))  # fmt: skip


def test_max_pool_ties_nan_and_all_nan_windows_follow_tf():
    """Ties: the first maximum in scan order; NaN never wins; an all-NaN window gives float32's
    lowest with its gradient on the window's first valid cell (SAME: padding is not a cell)."""
    x = np.array([2, 2, 1, NAN, NAN, NAN, -INF, 5], np.float32).reshape(1, 1, 8, 1)
    y, pullback = miniconv.vjp(miniconv.nn.max_pool2d, x, (1, 3), (1, 2), "SAME", backend=CUDA)
    dy = (10.0 ** np.arange(y.size, dtype=np.float32)).reshape(y.shape)
    (dx,) = pullback(dy)
    np.testing.assert_array_equal(y.ravel(), [2, 1, LOWEST, 5])
    np.testing.assert_array_equal(dx.ravel(), [1, 0, 10, 0, 100, 0, 0, 1000])
    assert_vjp_close(miniconv.nn.max_pool2d, tf.nn.max_pool2d, (x,), dy,
                     {"ksize": (1, 3), "strides": (1, 2), "padding": "SAME"}, backend=CUDA)  # fmt: skip


def test_same_avg_pool_divides_by_valid_cells():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    y = miniconv.nn.avg_pool2d(x, 2, 2, "SAME", backend=CUDA)
    np.testing.assert_allclose(y[0, :, :, 0], [[3, 4.5], [7.5, 9]])  # 2x2, 2x1, 1x2, 1x1 valid cells


# --- activations, bias, dense, dropout -------------------------------------------------------


def test_relu_and_sigmoid_match_tf_with_special_values():
    x = np.array([NAN, -INF, INF, 0.0, -0.0, -100.0, 100.0, -3.0, 2.5, 0.3], np.float32).reshape(2, 5)
    dy = np.linspace(-1, 1, x.size).astype(np.float32).reshape(x.shape)
    assert_vjp_close(miniconv.nn.relu, tf.nn.relu, (x,), dy, {}, backend=CUDA, tol=Tolerance((1, 1), c=0))
    tol = Tolerance((4, 4), floors=(float(np.finfo(np.float32).tiny), float(np.abs(dy).max())))
    assert_vjp_close(miniconv.nn.sigmoid, tf.nn.sigmoid, (x,), dy, {}, backend=CUDA, tol=tol)
    x, dy = ArrayCase((3, 4), scale=20.0, seed=3).arrays()
    assert_vjp_close(miniconv.nn.sigmoid, tf.nn.sigmoid, (x,), dy, {}, backend=CUDA,
                     tol=Tolerance((4, 4), floors=(0, float(np.abs(dy).max()))))  # fmt: skip


@pytest.mark.parametrize("shape, axis", [((2, 3, 5), -1), ((2, 3, 5), 1), ((2, 300), -1)])
def test_softmax_matches_tf(shape, axis):
    """A 300-long row crosses the 128-thread block three times."""
    x, dy = ArrayCase(shape, scale=10.0, seed=len(shape)).arrays()
    L = shape[axis]
    assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (x,), dy, {"axis": axis}, backend=CUDA,
                     tol=Tolerance((L, L), floors=(0.0, float(np.abs(dy).max()))))  # fmt: skip


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf, on purpose (simulator)
def test_softmax_rows_with_nan_and_inf_match_tf():
    x = np.array([[INF, 1, 2], [1, INF, 2], [INF, INF, 1], [INF, -INF, 1], [-INF, 1, 2], [-INF, -INF, 1],
                  [NAN, 1, 2], [NAN, INF, 1], [NAN, NAN, NAN], [-INF, -INF, -INF], [INF, INF, INF],
                  [1000, 1001, 999]], np.float32)  # fmt: skip
    dy = uniform(np.random.default_rng(0), x.shape)
    assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (x,), dy, {"axis": -1}, backend=CUDA,
                     tol=Tolerance((3, 3), floors=(0.0, float(np.abs(dy).max()))))  # fmt: skip


def test_softmax_block_kernels_match_their_oracles():
    rng = np.random.default_rng(1)
    for M, L in [(3, 5), (2, 200)]:
        x, dy = uniform(rng, (M, L), -5, 5), uniform(rng, (M, L))
        xd = to_device(x)
        y = elementwise.softmax_forward(xd)
        close_to_oracle(y.copy_to_host(), elementwise.softmax_forward_naive(xd).copy_to_host(), L, 1.0)
        dyd = to_device(dy)
        close_to_oracle(elementwise.softmax_backward(dyd, y).copy_to_host(),
                        elementwise.softmax_backward_naive(dyd, y).copy_to_host(), L, float(np.abs(dy).max()))  # fmt: skip


@pytest.mark.parametrize("fused", [False, True], ids=["bias_add", "bias_add_relu"])
def test_bias_ops_match_tf(fused):
    rng = np.random.default_rng(2)
    x, b, dy = uniform(rng, (2, 3, 4, 5)), uniform(rng, (5,)), uniform(rng, (2, 3, 4, 5))
    x[0, 0, 0, 0] = -b[0]  # x + b == 0 exactly: relu's gradient is 0 there, as TF's
    if fused:
        mc, tf_fn, tol = miniconv.nn.bias_add_relu, lambda v, c: tf.nn.relu(tf.nn.bias_add(v, c)), Tolerance((1, 1, 24))
    else:
        mc, tf_fn, tol = miniconv.nn.bias_add, tf.nn.bias_add, Tolerance((1, 1, 24))
    assert_vjp_close(mc, tf_fn, (x, b), dy, {}, backend=CUDA, tol=tol)


@pytest.mark.parametrize("relu_mask", [False, True])
def test_column_sums_match_their_oracle(relu_mask):
    """M = 700 rows in 3 slices of 8 lanes, O = 40 columns over two 32-column blocks."""
    rng = np.random.default_rng(3)
    dy, y = uniform(rng, (700, 40)), uniform(rng, (700, 40))
    dyd, yd = to_device(dy), to_device(y)
    masked = np.where(y > 0, dy, 0).astype(np.float32)
    oracle = elementwise.column_sums_naive(to_device(masked)).copy_to_host()
    for splits in (1, 3):
        if relu_mask:
            dx, db = elementwise.bias_relu_backward(dyd, yd, splits=splits)
            np.testing.assert_array_equal(dx.copy_to_host(), masked)
        else:
            db = elementwise.bias_add_backward(to_device(masked), splits=splits)
        close_to_oracle(db.copy_to_host(), oracle, 700, np.abs(masked).sum(axis=0))


@pytest.mark.parametrize("batch, bias", [((), True), ((2, 3), False), ((70,), True)])
def test_dense_matches_tf(batch, bias):
    case = DenseCase(batch, 9, 5, bias, seed=len(batch))
    arrays, dy = case.arrays()
    assert_vjp_close(miniconv.nn.dense, tf_dense, arrays, dy, {}, backend=CUDA, tol=case.tolerance())


@pytest.mark.parametrize(
    "M, J, N, trans_a, trans_b, splits",
    [
        (70, 20, 9, False, False, None),
        (9, 70, 66, True, False, 3),
        (70, 12, 10, False, True, None),
        (5, 17, 70, True, True, 2),
    ],
)
def test_tiled_matmul_matches_its_oracle(M, J, N, trans_a, trans_b, splits):
    rng = np.random.default_rng(M + J + N)
    a = uniform(rng, (J, M) if trans_a else (M, J))
    b = uniform(rng, (N, J) if trans_b else (J, N))
    ad, bd = to_device(a), to_device(b)
    A, B = (a.T if trans_a else a), (b.T if trans_b else b)
    tiled = dense.matmul(ad, bd, trans_a, trans_b, splits=splits).copy_to_host()
    close_to_oracle(tiled, dense.matmul_naive(ad, bd, trans_a, trans_b).copy_to_host(), J, np.abs(A) @ np.abs(B))
    close_to_oracle(tiled, A @ B, J, np.abs(A) @ np.abs(B))


# In the simulator numba-cuda seeds xoroshiro128+ with NumPy uint64 arithmetic (wrapping on
# purpose) and compiles that helper in object mode: its warnings, not miniconv's.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::numba.NumbaWarning")
def test_dropout_with_an_injected_mask_and_on_device_masks():
    be = miniconv.get_backend(CUDA)
    x = np.array([[1.5, -2.0, NAN, INF], [-INF, 0.25, NAN, 3.0]], np.float32)
    keep = np.array([[True, False, True, False], [False, True, False, True]])
    s = np.float32(1 / 0.7)
    expected = np.array([[1.5 * s, 0, NAN, 0], [0, 0.25 * s, 0, 3.0 * s]], np.float32)
    np.testing.assert_array_equal(be.dropout_forward(x, keep, 1 / 0.7), expected)
    np.testing.assert_array_equal(be.dropout_backward(x, keep, 1 / 0.7), expected)
    # the device's own masks (xoroshiro128+): values 0 or x / (1 - rate), keep rate within 5 sigma
    n, rate = 2048, 0.3
    y, kept = elementwise.DropoutRandom(seed=1, threads=256)(to_device(np.ones(n, np.float32)), rate)
    y, kept = y.copy_to_host(), kept.copy_to_host()
    np.testing.assert_array_equal(y, np.where(kept, np.float32(1 / (1 - rate)), 0))
    assert abs(kept.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / n)


# --- optimizers and the fused loss -----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: miniconv.optimizers.SGD(0.1),
        lambda: miniconv.optimizers.SGD(0.1, momentum=0.9),
        lambda: miniconv.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: miniconv.optimizers.RMSprop(0.01),
        lambda: miniconv.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        lambda: miniconv.optimizers.Adam(0.01),
        lambda: miniconv.optimizers.Adam(0.01, amsgrad=True),
    ],
    ids=["sgd", "momentum", "nesterov", "rmsprop", "rmsprop_centered_momentum", "adam", "amsgrad"],
)
def test_device_optimizer_matches_the_host_optimizer(make):
    """Three steps on two variables: weights and every state array match Keras 3's rules (host code)."""
    rng = np.random.default_rng(4)
    weights = [uniform(rng, (3, 4)), uniform(rng, (5,))]
    grads = [[uniform(rng, w.shape) for w in weights] for _ in range(3)]
    host, device_host = make(), make()
    host_weights = [w.copy() for w in weights]
    device = optim.DeviceOptimizer(device_host)
    device_weights = [to_device(w) for w in weights]
    for step in grads:
        host.apply(step, host_weights, ["a", "b"])
        device.apply([to_device(g) for g in step], device_weights, ["a", "b"])
    for mine, reference in zip(device_weights, host_weights):
        np.testing.assert_allclose(mine.copy_to_host(), reference, rtol=2e-6, atol=1e-7)
    device.sync_to_host()
    assert device_host.iterations == host.iterations == 3
    assert device_host.state().keys() == host.state().keys()
    for key, reference in host.state().items():
        np.testing.assert_allclose(device_host.state()[key], reference, rtol=2e-6, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("M, L", [(4, 5), (2, 130)])
def test_fused_softmax_crossentropy_matches_keras_rule_and_tf(M, L):
    rng = np.random.default_rng(M * L)
    z = uniform(rng, (M, L), -4, 4)
    labels = rng.integers(0, L, M)
    soft = rng.random((M, L)).astype(np.float32)
    soft /= soft.sum(axis=1, keepdims=True)
    cases = [
        ("sparse", miniconv.losses.SparseCategoricalCrossentropy(from_logits=True), labels,
         losses.sparse_categorical_crossentropy_from_logits,
         tf.nn.sparse_softmax_cross_entropy_with_logits(labels, z).numpy()),
        ("dense", miniconv.losses.CategoricalCrossentropy(from_logits=True), soft,
         losses.categorical_crossentropy_from_logits, tf.nn.softmax_cross_entropy_with_logits(soft, z).numpy()),
    ]  # fmt: skip
    for what, loss, y, device_fn, tf_rows in cases:
        value, dz, p = device_fn(y, z)
        ref_value, ref_dz, ref_p = loss.value_and_grad_logits(loss.check_targets(y, (None, L), M), z)
        tol = 4 * EPS32 * math.sqrt(L)
        assert abs(value - ref_value) <= tol * max(1.0, abs(ref_value)), what
        assert abs(value - tf_rows.mean()) <= tol * max(1.0, abs(ref_value)), what
        assert_close(dz, ref_dz, rtol=tol, magnitude=1.0 / M, what=f"{what} dz")
        assert_close(p, ref_p, rtol=tol, magnitude=1.0, what=f"{what} p")
    # the block kernel against the one-thread-per-row oracle
    zd, ld = to_device(z), to_device(labels.astype(np.int64), np.int64)
    for a, b in zip(losses.softmax_crossentropy(zd, labels=ld), losses.softmax_crossentropy(zd, labels=ld, naive=True)):
        close_to_oracle(a.copy_to_host(), b.copy_to_host(), L, 10.0)


# --- training ------------------------------------------------------------------------------


def tiny_model(seed=0):
    miniconv.utils.set_random_seed(seed)
    layers = miniconv.layers
    return miniconv.Sequential([
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(4, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])  # fmt: skip


def twin_models(optimizer):
    a, b = tiny_model(), tiny_model(1)
    b.set_weights(a.get_weights())
    a.compile(optimizer(), "sparse_categorical_crossentropy")
    b.compile(optimizer(), "sparse_categorical_crossentropy")
    return a, b


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 6, 6, 1)).astype(np.float32), np.arange(n) % 3


class Transfers:
    """Counts the host <-> device copies of the simulator's arrays while active."""

    def __init__(self, monkeypatch):
        from numba import cuda as numba_cuda
        from numba.cuda.simulator.cudadrv import devicearray

        self.to_device = self.to_host = 0
        self.active = False
        original_to_device = numba_cuda.to_device
        original_copy = devicearray.FakeCUDAArray.copy_to_host

        def to_device(*args, **kwargs):
            self.to_device += self.active
            return original_to_device(*args, **kwargs)

        def copy_to_host(array, *args, **kwargs):
            self.to_host += self.active
            return original_copy(array, *args, **kwargs)

        monkeypatch.setattr(numba_cuda, "to_device", to_device)
        monkeypatch.setattr(devicearray.FakeCUDAArray, "copy_to_host", copy_to_host)


def test_fit_with_use_backend_cuda_trains_on_the_device(monkeypatch):
    """fit under the cuda backend runs the one engine with every array of a step on the device: after
    the first step, a step copies in only the batch and its labels, and out only the loss, the
    predictions and one int (the count of non-finite gradient values); the result matches numpy's fit."""
    from miniconv.training import step as step_module

    transfers = Transfers(monkeypatch)
    per_step = []
    train = step_module.TrainStep.train

    def counted(self, xs, y):
        if self.backend != "cuda":
            return train(self, xs, y)
        transfers.active, transfers.to_device, transfers.to_host = True, 0, 0
        try:
            return train(self, xs, y)
        finally:
            transfers.active = False
            per_step.append((transfers.to_device, transfers.to_host))
            assert all(type(v.array).__name__ == "FakeCUDAArray" for v in self.plan.variables)

    monkeypatch.setattr(step_module.TrainStep, "train", counted)
    x, y = (np.concatenate(pair) for pair in zip(batch(4, 0), batch(4, 1), batch(4, 2)))
    a, b = twin_models(lambda: miniconv.optimizers.Adam(0.01))
    a.compile(a.optimizer, a.loss, metrics=["accuracy"])
    b.compile(b.optimizer, b.loss, metrics=["accuracy"])
    with miniconv.use_backend("cuda"):
        got = a.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    with miniconv.use_backend("numpy"):
        expected = b.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert len(per_step) == 3
    assert per_step[1:] == [(2, 3), (2, 3)]  # in: x, labels; out: the loss rows, the predictions, the count
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    assert got["accuracy"] == expected["accuracy"]
    assert a.optimizer.iterations == 3
    for mine, reference in zip(a.get_weights(), b.get_weights()):  # synced back at the end of the epoch
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def test_two_fits_on_the_device_continue_like_one():
    """A second fit copies the weights and the optimizer state (synced after the first) back in."""
    x, y = batch()
    a, b = twin_models(lambda: miniconv.optimizers.RMSprop(0.01))
    with miniconv.use_backend("cuda"):
        first = a.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"]
        second = a.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"]
    with miniconv.use_backend("numpy"):
        expected = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(first + second, expected, rtol=1e-5)
    assert a.optimizer.iterations == b.optimizer.iterations == 2
    for mine, reference in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def _fit_on(backend, make, x, y, epochs=2, **compile_args):
    model = make()
    model.compile(**compile_args)
    with miniconv.use_backend(backend):
        history = model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0).history
    return model, history


def _same_training(make, x, y, **compile_args):
    """fit on cuda and on numpy from the same initial weights: same losses, same weights."""
    (a, got), (b, expected) = (_fit_on(backend, make, x, y, **compile_args) for backend in ("cuda", "numpy"))
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    for mine, reference in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    return a


def test_fit_on_cuda_matches_numpy_with_a_binary_crossentropy_loss():
    """A loss the device has no kernel for is taken on the host, inside the same engine."""
    layers = miniconv.layers

    def make():
        miniconv.utils.set_random_seed(0)
        return miniconv.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                                    layers.Flatten(), layers.Dense(1, activation="sigmoid")])  # fmt: skip

    _same_training(make, batch()[0], np.array([0, 1, 1, 0], np.float32), optimizer=miniconv.optimizers.SGD(0.1),
                   loss="binary_crossentropy")


def test_fit_on_cuda_matches_numpy_for_a_residual_functional_model():
    """A functional model with a residual Add and a Concatenate: the gradient of the shared input is summed."""
    layers = miniconv.layers

    def make():
        miniconv.utils.set_random_seed(3)
        inputs = miniconv.Input((6, 6, 1))
        h = layers.Conv2D(2, 3, padding="same", activation="relu", name="c1")(inputs)
        g = layers.Conv2D(2, 3, padding="same", name="c2")(h)
        joined = layers.Concatenate(name="cat")([layers.Add(name="add")([h, g]), layers.Multiply(name="mul")([h, g])])
        outputs = layers.Dense(3, activation="softmax", name="out")(layers.Flatten()(joined))
        return miniconv.Model(inputs, outputs)

    x, y = (np.concatenate(pair) for pair in zip(batch(4, 0), batch(4, 1)))
    # SGD: an update proportional to the gradient. RMSprop's first update is about lr * sign(g), so a
    # weight whose gradient is within rounding of 0 (here: through the Multiply) moves a full step
    # one way on one engine and the other way on the other.
    _same_training(make, x, y, optimizer=miniconv.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")


def test_fit_on_cuda_matches_numpy_for_a_fused_conv_pool_pair():
    """Conv2D(relu) + MaxPooling2D compile to one fused step on cuda as on numpy, with a dropout before
    the head (identity at inference, mask drawn on the device in training: rate 0 keeps runs comparable)."""
    from miniconv.engine.plan import compile_plan

    layers = miniconv.layers

    def make():
        miniconv.utils.set_random_seed(5)
        return miniconv.Sequential([layers.Input((7, 8, 2)), layers.Conv2D(3, 3, activation="relu"),
                                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.0),
                                    layers.Dense(3, activation="softmax")])  # fmt: skip

    x = np.random.default_rng(0).standard_normal((8, 7, 8, 2)).astype(np.float32)
    model = _same_training(make, x, np.arange(8) % 3, optimizer="adam", loss="sparse_categorical_crossentropy")
    with miniconv.use_backend("cuda"):
        assert compile_plan(model).steps[0].op == "conv2d_bias_relu_max_pool2d"


def test_dropout_on_cuda_draws_its_mask_on_the_device():
    """In training, a dropout layer's mask comes from the device's generator: no mask crosses the bus,
    about rate of the units are zero, the rest scaled by 1 / (1 - rate)."""
    x = to_device(np.ones((64, 50), np.float32))
    rng = np.random.default_rng(0)
    with miniconv.use_backend("cuda"):
        y = miniconv.nn.dropout(x, 0.3, rng)
        assert type(y).__name__ == "FakeCUDAArray"
        host = y.copy_to_host()
    assert set(np.unique(host)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((host == 0).mean() - 0.3) < 0.05


def test_merge_kernels_match_numpy():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((5, 7)).astype(np.float32) for _ in range(2))
    np.testing.assert_array_equal(merge.add_forward(to_device(a), to_device(b)).copy_to_host(), a + b)
    np.testing.assert_array_equal(merge.multiply_forward(to_device(a), to_device(b)).copy_to_host(), a * b)
    parts = [rng.standard_normal((3, w)).astype(np.float32) for w in (2, 5, 1)]
    joined = merge.concat_columns([to_device(p) for p in parts])
    np.testing.assert_array_equal(joined.copy_to_host(), np.concatenate(parts, axis=1))
    for got, part in zip(merge.split_columns(joined, [2, 5, 1]), parts):
        np.testing.assert_array_equal(got.copy_to_host(), part)


def test_device_resident_training_steps_match_host_training_steps():
    """Two TrainSteps on the cuda backend (everything on the device) against two on numpy."""
    from miniconv.training.step import TrainStep

    xs = [batch(4, seed) for seed in (1, 2)]
    a, b = twin_models(lambda: miniconv.optimizers.RMSprop(0.01, momentum=0.5))
    device = TrainStep(a, backend="cuda")
    host = TrainStep(b, backend="numpy")
    for x, y in xs:
        with miniconv.use_backend("cuda"):
            got, _ = device.train([x], a.loss.check_targets(y, a.output_shape, len(x)))
        with miniconv.use_backend("numpy"):
            expected, _ = host.train([x], b.loss.check_targets(y, b.output_shape, len(x)))
        assert got == pytest.approx(expected, rel=1e-5)
    before = [w.copy() for w in a.get_weights()]
    device.sync_to_host()
    assert any(not np.array_equal(w, v) for w, v in zip(before, a.get_weights()))  # the host copy was stale
    for mine, reference in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    assert a.optimizer.iterations == b.optimizer.iterations == 2
    renamed = {la.name: lb.name for la, lb in zip(a.layers, b.layers)}  # state keys name the layers
    mine = {f"{slot}/{renamed[layer]}/{rest}": v for k, v in a.optimizer.state().items()
            for slot, layer, rest in [k.split("/", 2)]}  # fmt: skip
    theirs = b.optimizer.state()
    assert sorted(mine) == sorted(theirs) and len(theirs) == 12  # velocity and momentum of 6 variables
    for key, reference in theirs.items():
        np.testing.assert_allclose(mine[key], reference, rtol=1e-4, atol=1e-7, err_msg=key)

def test_fit_on_cuda_matches_numpy_with_batch_normalization_and_depthwise():
    """BatchNormalization's moving statistics update on the device (optim.moving_average_kernel), a
    depthwise convolution and a ZeroPadding2D folded into the next convolution, all in one engine."""
    layers = miniconv.layers

    def make():
        miniconv.utils.set_random_seed(7)
        return miniconv.Sequential([layers.Input((7, 7, 2)), layers.ZeroPadding2D(1), layers.Conv2D(3, 3, use_bias=False),
                                    layers.BatchNormalization(momentum=0.5), layers.ReLU(6.0),
                                    layers.DepthwiseConv2D(3, depth_multiplier=2), layers.GlobalAveragePooling2D(),
                                    layers.Dense(3, activation="softmax")])  # fmt: skip

    x = np.random.default_rng(2).standard_normal((8, 7, 7, 2)).astype(np.float32)
    model = _same_training(make, x, np.arange(8) % 3, optimizer=miniconv.optimizers.SGD(0.05),
                           loss="sparse_categorical_crossentropy")
    bn = model.layers[2]
    assert not np.allclose(bn.moving_mean, 0) and not np.allclose(bn.moving_variance, 1)  # synced back, updated
