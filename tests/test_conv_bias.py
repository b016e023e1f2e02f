"""conv2d_bias and depthwise_conv2d_bias: a convolution + bias [+ ReLU6] in one op, what a
convolution with a batch normalization folded in (and the ReLU6 after it) runs.

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K filters (C * M for
the depthwise op), R S kernel size, P Q output size.

Against TensorFlow's composition ``relu6(bias_add(conv(x, w), bias))`` (forward and every
gradient, a random upstream gradient) on every backend; the same bits as the composition of
miniconv's own ops; inf and NaN against the numpy reference (same NaN and inf positions); the
cpu backend's blocks (the 1x1 product's 256 KiB blocks, im2col's chunks) cut small; bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import tf_reference
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases, depthwise_cases
from tf_reference import C_TOL, EPS32, assert_close, mc_vjp, tf_vjp

import miniconv
from miniconv import nn
from miniconv.backend.interface import Backend

tf = tf_reference.tf
ACTIVATIONS = (None, "relu6")


def _tf_conv(x, w, strides, padding, dilations):
    return tf_reference.tf_conv2d(x, w, strides, padding, dilations)


def _tf_depthwise(x, w, strides, padding, dilations):
    return tf.nn.depthwise_conv2d(x, w, strides, padding, dilations=dilations)


def _tf_fused(conv, activation):
    def fn(x, w, b, strides=1, padding="VALID", dilations=1):
        z = tf.nn.bias_add(conv(x, w, strides, padding, dilations), b)
        return tf.nn.relu6(z) if activation == "relu6" else z

    return fn


def check(mc_fn, tf_conv, x, w, b, dy, kwargs, activation, lengths, backend):
    """Output and gradients against TF's composition. The error bound of each tensor is the sum of
    |terms| (``tf_reference``): TF's linear composition (no ReLU6) on |x|, |w|, |b|, |dy| bounds it,
    the ReLU6 mask only dropping terms."""
    y, grads = mc_vjp(mc_fn, (x, w, b), dy, dict(kwargs, activation=activation), backend)
    y_tf, grads_tf = tf_vjp(_tf_fused(tf_conv, activation), (x, w, b), dy, kwargs)
    size_y, size_grads = tf_vjp(_tf_fused(tf_conv, None), [np.abs(a) for a in (x, w, b)], np.abs(dy), kwargs)
    where = f"{mc_fn.__name__}[backend={backend}, activation={activation}, shapes {x.shape} {w.shape}, {kwargs}]"
    for i, (ours, theirs, size, length) in enumerate(zip((y, *grads), (y_tf, *grads_tf), (size_y, *size_grads),
                                                         lengths)):
        label = "output" if i == 0 else f"gradient of array {i - 1}"
        assert ours.shape == theirs.shape, f"{where} {label}: shape {ours.shape}, TF {theirs.shape}"
        assert_close(ours, theirs, rtol=C_TOL * EPS32 * np.sqrt(max(1, length)), magnitude=size,
                     what=f"{where} {label}")
    np.testing.assert_array_equal(mc_fn(x, w, b, backend=backend, **kwargs, activation=activation), y)


def _bias(rng, K, scale=2.0):
    return rng.uniform(-scale, scale, K).astype(np.float32)


def check_conv(case, backend, activation, scale=3.0):
    """x and w at ``scale`` (so outputs fall below 0, inside (0, 6) and above 6), bias in [-2, 2)."""
    x, w, dy = case.arrays()
    x = x * np.float32(scale)
    b = _bias(np.random.default_rng(case.seed + 1), case.K)
    RS, NPQ = case.R * case.S, case.N * case.P * case.Q
    check(nn.conv2d_bias, _tf_conv, x, w, b, dy, case.kwargs, activation, (RS * case.C + 1, RS * case.K, NPQ, NPQ),
          backend)


def check_depthwise(case, backend, activation, scale=3.0):
    (x, w), dy = case.arrays()
    x = x * np.float32(scale)
    b = _bias(np.random.default_rng(case.seed + 1), case.C * case.M)
    RS, NPQ = case.R * case.S, case.N * case.P * case.Q
    check(nn.depthwise_conv2d_bias, _tf_depthwise, x, w, b, dy, case.kwargs, activation,
          (RS + 1, RS * case.M, NPQ, NPQ), backend)


@given(case=conv_cases(dims=2), activation=st.sampled_from(ACTIVATIONS))
def test_conv2d_bias_matches_tf(backend, case, activation):
    check_conv(case, backend, activation)


@given(case=depthwise_cases(), activation=st.sampled_from(ACTIVATIONS))
def test_depthwise_conv2d_bias_matches_tf(backend, case, activation):
    check_depthwise(case, backend, activation)


@given(case=depthwise_cases(filter_size=(3, 3)), activation=st.sampled_from(ACTIVATIONS))
def test_depthwise_conv2d_bias_3x3_matches_tf(backend, case, activation):
    """3x3 filters: the cpu backend's row kernels, their epilogue on each finished row."""
    check_depthwise(case, backend, activation)


# --- named cases: EfficientNet-Lite's layers, small ------------------------------------------------


def conv_case(N, H, W, C, K, R, stride, padding, seed):
    from strategies import ConvCase

    return ConvCase(2, N, H, W, C, K, R, R, (stride, stride), (1, 1), padding, stride, 1, seed)


def depthwise_case(N, H, W, C, R, stride, padding, seed, M=1):
    from strategies import DepthwiseCase

    return DepthwiseCase(N, H, W, C, M, R, R, stride, 1, padding, 0, seed)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [
    (2, 7, 9, 16, 24, 1, 1, "SAME"),    # expand / project 1x1: plain products
    (1, 5, 5, 40, 1280 // 16, 1, 1, "VALID"),  # the head, batch 1: fewer rows than columns
    (3, 9, 7, 3, 8, 3, 2, "SAME"),      # the stem: 3x3 stride 2, odd sizes (im2col, patch-major)
    (2, 11, 10, 12, 6, 3, 1, "VALID"),  # im2col, row-major patches
    (2, 8, 8, 6, 5, 1, 2, "SAME"),      # 1x1 stride 2: im2col, not the plain product
])  # fmt: skip
def test_conv2d_bias_named(backend, shape, activation):
    N, H, W, C, K, R, stride, padding = shape
    check_conv(conv_case(N, H, W, C, K, R, stride, padding, seed=sum(shape[:5])), backend, activation)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [
    (2, 14, 14, 24, 3, 1, "SAME"),   # EfficientNet's 3x3 stride 1
    (1, 15, 17, 16, 3, 2, "SAME"),   # 3x3 stride 2, odd sizes, batch 1
    (2, 14, 14, 40, 5, 2, "SAME"),   # 5x5 stride 2: the general row loops
    (1, 9, 11, 8, 5, 1, "SAME"),     # 5x5 stride 1
    (2, 7, 9, 3, 3, 1, "VALID"),
])  # fmt: skip
def test_depthwise_conv2d_bias_named(backend, shape, activation):
    N, H, W, C, R, stride, padding = shape
    check_depthwise(depthwise_case(N, H, W, C, R, stride, padding, seed=sum(shape[:5])), backend, activation)


def test_depthwise_conv2d_bias_multiplier(backend):
    check_depthwise(depthwise_case(2, 6, 7, 3, 3, 1, "SAME", seed=5, M=3), backend, "relu6")


@pytest.mark.parametrize("epilogue_bytes", [64, 4096])
def test_cpu_pointwise_blocks(epilogue_bytes, monkeypatch):
    """The 1x1 product in many small blocks (16 rows, or 4 KiB), each with its epilogue; a last partial block."""
    from miniconv.backend.cpu import pointwise_kernels

    monkeypatch.setattr(pointwise_kernels, "EPILOGUE_BYTES", epilogue_bytes)
    for activation in ACTIVATIONS:
        check_conv(conv_case(3, 7, 5, 8, 12, 1, 1, "SAME", seed=epilogue_bytes), "cpu", activation)


def test_cpu_im2col_chunks(monkeypatch):
    from miniconv.backend.cpu import conv_kernels

    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 512)
    check_conv(conv_case(2, 9, 9, 5, 7, 3, 2, "SAME", seed=7), "cpu", "relu6")


def test_cpu_pointwise_last_block_of_one_row(monkeypatch):
    """33 rows in blocks of 16: the last row joins the block before it. NumPy runs a 1-row product as
    gemv, which rounds otherwise than gemm (C = 320 here: 58 of 64 values differed), so a 1-row block
    would make a row's bits depend on the block size."""
    from miniconv.backend.cpu import pointwise_kernels

    monkeypatch.setattr(pointwise_kernels, "EPILOGUE_BYTES", 64)  # 16 rows a block
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 11, 320)).astype(np.float32)
    w = rng.standard_normal((1, 1, 320, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    z = nn.conv2d_bias(x, w, b, backend="cpu")
    whole = x.reshape(33, 320) @ w.reshape(320, 64)  # one gemm
    np.testing.assert_array_equal(z.reshape(33, 64), whole + b)


# --- the same bits as miniconv's composition ---------------------------------------------------------


@pytest.mark.parametrize("op, shapes, kwargs", [
    ("conv2d", ((4, 9, 8, 16), (1, 1, 16, 24), (24,)), {"strides": 1, "padding": "SAME"}),
    ("conv2d", ((3, 9, 8, 3), (3, 3, 3, 8), (8,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((3, 9, 8, 16), (3, 3, 16, 1), (16,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((3, 9, 8, 16), (5, 5, 16, 1), (16,)), {"strides": 1, "padding": "SAME"}),
])  # fmt: skip
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_is_the_composition(backend, op, shapes, kwargs, activation):
    """Forward and every gradient: the same bits as relu6(bias_add(conv)) of miniconv's own ops (the fused
    forward adds and clips in the same float32 operations; the backward is those ops' pullbacks)."""
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) * 3 for s in shapes)
    fused = getattr(nn, op + "_bias")
    z, pullback = miniconv.vjp(fused, x, w, b, **kwargs, activation=activation, backend=backend)
    y, conv_pullback = miniconv.vjp(getattr(nn, op), x, w, **kwargs, backend=backend)
    u, bias_pullback = miniconv.vjp(nn.bias_add, y, b, backend=backend)
    v, relu6_pullback = miniconv.vjp(nn.relu6, u, backend=backend) if activation else (u, None)
    np.testing.assert_array_equal(z, v)
    assert 0 < np.mean((z > 0) & (z < 6)) < 1 if activation else True
    dz = rng.standard_normal(z.shape).astype(np.float32)
    du = relu6_pullback(dz)[0] if activation else dz
    dy, db = bias_pullback(du)
    dx, dw = conv_pullback(dy)
    got = pullback(dz)
    for a, e in zip(got, (dx, dw, db)):
        np.testing.assert_array_equal(a, e)
    none, dw_only, db_only = pullback(dz, input_gradient=False)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


# --- inf and NaN: the numpy reference's numbers ------------------------------------------------------


def _special(rng, shape, kind):
    a = rng.uniform(-3, 3, shape).astype(np.float32)
    flat = a.reshape(-1)
    picks = rng.choice(flat.size, max(1, flat.size // 20), replace=False)
    if kind == "inf":
        flat[picks] = rng.choice([np.inf, -np.inf], picks.size)
    else:
        flat[picks] = np.nan
    return a


@pytest.mark.parametrize("where", ["x", "w", "b", "dy"])
@pytest.mark.parametrize("kind", ["inf", "nan"])
@pytest.mark.parametrize("op, shapes, kwargs", [
    ("conv2d", ((2, 7, 6, 8), (1, 1, 8, 12), (12,)), {"strides": 1, "padding": "SAME"}),
    ("conv2d", ((2, 7, 6, 3), (3, 3, 3, 8), (8,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((2, 7, 6, 8), (3, 3, 8, 1), (8,)), {"strides": 1, "padding": "SAME"}),
    ("depthwise_conv2d", ((2, 7, 6, 8), (3, 3, 8, 1), (8,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((1, 9, 8, 4), (5, 5, 4, 1), (4,)), {"strides": 2, "padding": "SAME"}),
])  # fmt: skip
def test_special_values_match_the_reference(op, shapes, kwargs, kind, where):
    """A few cells inf or NaN in one array (no finite sum can overflow: the positions of inf and NaN do not
    depend on the order of the sums, which the backends do not share): the cpu backend's output and gradients have NaN and
    inf exactly where the numpy reference has them (ReLU6 clips inf to 6 and keeps NaN; its gradient
    is a product, so an inf dy gives NaN under a zero mask), finite values within rounding."""
    rng = np.random.default_rng(abs(hash((op, kind, where, shapes[1]))) % 2**32)
    arrays = {name: rng.uniform(-3, 3, shape).astype(np.float32) for name, shape in zip("xwb", shapes)}
    fused = getattr(nn, op + "_bias")
    for activation in ACTIVATIONS:
        out_shape = fused(arrays["x"], arrays["w"], arrays["b"], **kwargs, backend="numpy").shape
        dy = rng.uniform(-1, 1, out_shape).astype(np.float32)
        values = dict(arrays, dy=dy)
        values[where] = _special(rng, values[where].shape, kind)
        results = {}
        with np.errstate(all="ignore"):
            for backend in ("numpy", "cpu"):
                y, pullback = miniconv.vjp(fused, values["x"], values["w"], values["b"], **kwargs,
                                           activation=activation, backend=backend)
                results[backend] = (y, *pullback(values["dy"]))
        for i, (ours, ref) in enumerate(zip(results["cpu"], results["numpy"])):
            label = f"{op}_bias {kwargs} {kind} in {where}, activation={activation}: " + \
                    ("output" if i == 0 else f"gradient {i - 1}")
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=label)
            np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref), err_msg=label)
            np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(ref), err_msg=label)
            finite = np.isfinite(ref)
            scale = np.abs(ref[finite]).max() if finite.any() else 1.0
            np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-5, atol=1e-5 * scale, err_msg=label)


def test_relu6_clips_inf_and_keeps_nan(backend):
    x = np.zeros((1, 1, 4, 1), np.float32)
    x[0, 0, :, 0] = [np.inf, -np.inf, np.nan, 2.0]
    w = np.ones((1, 1, 1, 1), np.float32)
    z = nn.conv2d_bias(x, w, np.zeros(1, np.float32), activation="relu6", backend=backend)
    np.testing.assert_array_equal(z.reshape(-1), [6.0, 0.0, np.nan, 2.0])
    z = nn.depthwise_conv2d_bias(x, w, np.ones(1, np.float32), 1, "VALID", activation="relu6", backend=backend)
    np.testing.assert_array_equal(z.reshape(-1), [6.0, 0.0, np.nan, 3.0])


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", ["numpy", "abstract"])
def test_bad_arguments_are_named_before_any_kernel(backend_name):
    be = Backend() if backend_name == "abstract" else backend_name  # the abstract one raises in every kernel
    x = np.zeros((1, 5, 5, 4), np.float32)
    w, wd = np.zeros((1, 1, 4, 6), np.float32), np.zeros((3, 3, 4, 2), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_bias: bias must have shape \(6,\).*got \(4,\)"):
        nn.conv2d_bias(x, w, np.zeros(4, np.float32), backend=be)
    with pytest.raises(ValueError, match=r"conv2d_bias: activation must be None or 'relu6', got 'relu'"):
        nn.conv2d_bias(x, w, np.zeros(6, np.float32), activation="relu", backend=be)
    with pytest.raises(ValueError, match=r"depthwise_conv2d_bias: bias must have shape \(8,\).*got \(4,\)"):
        nn.depthwise_conv2d_bias(x, wd, np.zeros(4, np.float32), 1, "SAME", backend=be)
    with pytest.raises(ValueError, match=r"depthwise_conv2d_bias: activation must be None or 'relu6'"):
        nn.depthwise_conv2d_bias(x, wd, np.zeros(8, np.float32), 1, "SAME", activation="sigmoid", backend=be)
    with pytest.raises(ValueError, match="bias"):
        nn.depthwise_conv2d_bias(x, wd, np.zeros((8, 1), np.float32), 1, "SAME", backend=be)
    for activation in (np.array(["relu6"]), np.array(["relu6", "relu6"]), ["relu6"], "RELU6", 6):
        # (an array of "relu6" passed an ``in`` check and reached the kernels; two of them made it raise
        # NumPy's "truth value of an array is ambiguous")
        with pytest.raises(ValueError, match=r"conv2d_bias: activation must be None or 'relu6', got"):
            nn.conv2d_bias(x, w, np.zeros(6, np.float32), activation=activation, backend=be)
        with pytest.raises(ValueError, match=r"depthwise_conv2d_bias: activation must be None or 'relu6', got"):
            nn.depthwise_conv2d_bias(x, wd, np.zeros(8, np.float32), 1, "SAME", activation=activation, backend=be)
    with pytest.raises(ValueError, match="conv2d_bias"):
        nn.conv2d_bias(x, np.zeros((1, 1, 3, 6), np.float32), np.zeros(6, np.float32), backend=be)
