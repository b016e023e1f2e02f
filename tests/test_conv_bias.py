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

import zlib

import numpy as np
import pytest
import tf_reference
from hypothesis import given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases, depthwise_cases, seeds
from tf_reference import C_TOL, EPS32, assert_close, mc_vjp, tf_vjp

import miniconv
from miniconv import layers, nn
from miniconv.backend.interface import Backend
from miniconv.engine import fusion
from miniconv.engine import plan as plan_module
from miniconv.engine.plan import compile_plan

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


@pytest.mark.parametrize("block_bytes", [64, 4096])
def test_cpu_pointwise_blocks(block_bytes, monkeypatch):
    """The 1x1 product in many small blocks (16 rows, or 4 KiB of x and z rows), each with its epilogue; a last
    partial block."""
    from miniconv.backend.cpu import pointwise_kernels

    monkeypatch.setattr(pointwise_kernels, "BLOCK_BYTES", block_bytes)
    for activation in ACTIVATIONS:
        check_conv(conv_case(3, 7, 5, 8, 12, 1, 1, "SAME", seed=block_bytes), "cpu", activation)


def test_cpu_im2col_chunks(monkeypatch):
    from miniconv.backend.cpu import conv_kernels

    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 512)
    check_conv(conv_case(2, 9, 9, 5, 7, 3, 2, "SAME", seed=7), "cpu", "relu6")


def test_cpu_pointwise_last_block_of_one_row(monkeypatch):
    """33 rows in blocks of 16: the last row joins the block before it. NumPy runs a 1-row product as
    gemv, which rounds otherwise than gemm (C = 320 here: 58 of 64 values differed), so a 1-row block
    would make a row's bits depend on the block size."""
    from miniconv.backend.cpu import pointwise_kernels

    monkeypatch.setattr(pointwise_kernels, "BLOCK_BYTES", 64)  # 16 rows a block
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 11, 320)).astype(np.float32)
    w = rng.standard_normal((1, 1, 320, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    z = nn.conv2d_bias(x, w, b, backend="cpu")
    whole = x.reshape(33, 320) @ w.reshape(320, 64)  # one gemm
    np.testing.assert_array_equal(z.reshape(33, 64), whole + b)


@pytest.mark.parametrize("piece", [3, 5])
def test_cpu_pointwise_pieces_keep_the_composition_bits(piece, monkeypatch):
    """1 x 1 products in OpenBLAS small-kernel pieces of a few rows (``small_products``, its bound cut to
    this shape), the fused backward in row chunks of 16 and blocks of 20 rows, so that pieces start at other
    rows in the fused and the plain paths: z and dx the same bits as conv2d, bias_add and relu6 composed (a
    row's bits do not depend on where its piece starts); dw and dbias, summed in another order, within
    rounding."""
    from miniconv.backend.cpu import pointwise_kernels, small_products

    C, K = 8, 5
    monkeypatch.setattr(small_products, "MIN_ROWS", 1)
    monkeypatch.setattr(small_products, "SMALL_MNK", piece * C * K)
    monkeypatch.setattr(pointwise_kernels, "MIN_CHUNK_ROWS", 16)
    monkeypatch.setattr(pointwise_kernels, "BLOCK_BYTES", 20 * 4 * (C + K))
    rng = np.random.default_rng(piece)
    x, w, b = (rng.standard_normal(s).astype(np.float32) * 3 for s in ((2, 7, 6, C), (1, 1, C, K), (K,)))
    z, pullback = miniconv.vjp(nn.conv2d_bias, x, w, b, 1, "SAME", activation="relu6", backend="cpu")
    y, conv_pullback = miniconv.vjp(nn.conv2d, x, w, 1, "SAME", backend="cpu")
    u, bias_pullback = miniconv.vjp(nn.bias_add, y, b, backend="cpu")
    v, relu6_pullback = miniconv.vjp(nn.relu6, u, backend="cpu")
    np.testing.assert_array_equal(z, v)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    du = relu6_pullback(dz)[0]
    dy, db = bias_pullback(du)
    dx, dw = conv_pullback(dy)
    got_dx, got_dw, got_db = pullback(dz)
    np.testing.assert_array_equal(got_dx, dx)
    terms = np.abs(x).reshape(-1, C).T @ np.abs(du).reshape(-1, K)
    np.testing.assert_allclose(got_dw, dw, rtol=0, atol=4 * EPS32 * 84**0.5 * terms.max())
    np.testing.assert_allclose(got_db, db, rtol=0, atol=4 * EPS32 * 84**0.5 * np.abs(du).reshape(-1, K).sum(0).max())


# --- the same bits as miniconv's composition ---------------------------------------------------------


@pytest.mark.parametrize("op, shapes, kwargs", [
    ("conv2d", ((4, 9, 8, 16), (1, 1, 16, 24), (24,)), {"strides": 1, "padding": "SAME"}),
    ("conv2d", ((3, 9, 8, 3), (3, 3, 3, 8), (8,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((3, 9, 8, 16), (3, 3, 16, 1), (16,)), {"strides": 2, "padding": "SAME"}),
    ("depthwise_conv2d", ((3, 9, 8, 16), (5, 5, 16, 1), (16,)), {"strides": 1, "padding": "SAME"}),
])  # fmt: skip
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_is_the_composition(backend, op, shapes, kwargs, activation):
    """Forward, dx and dw: the same bits as relu6(bias_add(conv)) of miniconv's own ops (the fused forward adds
    and clips in the same float32 operations; the backward forms the same dy). dbias: the same bits, except
    where the cpu backend forms dy inside the depthwise 3 x 3 backward and sums dbias per chunk of images,
    the same terms in another order: within rounding of their sum of |terms|."""
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
    np.testing.assert_array_equal(got[0], dx)
    np.testing.assert_array_equal(got[1], dw)
    if backend == "cpu" and op == "depthwise_conv2d" and shapes[1][0] == 3 and activation:
        terms = np.abs(du).reshape(-1, db.shape[0]).sum(axis=0)
        np.testing.assert_allclose(got[2], db, rtol=0, atol=np.max(terms) * du[..., 0].size * EPS32)
    else:
        np.testing.assert_array_equal(got[2], db)
    none, dw_only, db_only = pullback(dz, input_gradient=False)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, got[2])


@pytest.mark.parametrize("op, shapes", [
    ("depthwise_conv2d", ((2, 7, 6, 8), (3, 3, 8, 1), (8,))),
    ("conv2d", ((2, 7, 6, 8), (1, 1, 8, 5), (5,))),
])  # fmt: skip
def test_cpu_relu6_backward_forms_dy_in_the_pass(op, shapes, monkeypatch):
    """The cpu backend's fused backward with ReLU6 runs no separate ``bias_relu6_backward`` pass (3 x 3
    depthwise, multiplier 1, finite filter; 1 x 1 of two row chunks or more, cut small here); a depthwise
    filter with an inf (the general loops) and a 1 x 1 layer of one chunk run it first."""
    from miniconv.backend import cpu

    calls = []
    composed = cpu.elementwise_kernels.bias_relu6_backward  # (the composed path: bias_activation_backward)
    monkeypatch.setattr(cpu.elementwise_kernels, "bias_relu6_backward", lambda *a: calls.append(1) or composed(*a))
    monkeypatch.setattr(cpu.pointwise_kernels, "MIN_CHUNK_ROWS", 16)
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    fused = getattr(nn, op + "_bias")
    z, pullback = miniconv.vjp(fused, x, w, b, 1, "SAME", activation="relu6", backend="cpu")
    pullback(np.ones_like(z))
    assert calls == []
    if op == "depthwise_conv2d":
        w[0, 0, 0, 0] = np.inf
    else:
        monkeypatch.setattr(cpu.pointwise_kernels, "MIN_CHUNK_ROWS", 1024)
    z, pullback = miniconv.vjp(fused, x, w, b, 1, "SAME", activation="relu6", backend="cpu")
    pullback(np.ones_like(z))
    assert calls == [1]


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
    rng = np.random.default_rng(zlib.crc32(repr((op, kind, where, shapes[1])).encode()))  # (hash() is salted per process)
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


# --- property: the fused op is the unfused composition, inf and NaN included -----------------------------


def _composition(op, x, w, b, dy, kwargs, activation, backend):
    """z, dx, dw, dbias of relu6(bias_add(op(x, w), b)) as miniconv's separate ops (no relu6 for None)."""
    y, conv_pullback = miniconv.vjp(getattr(nn, op), x, w, **kwargs, backend=backend)
    u, bias_pullback = miniconv.vjp(nn.bias_add, y, b, backend=backend)
    z, relu6_pullback = miniconv.vjp(nn.relu6, u, backend=backend) if activation else (u, None)
    du = relu6_pullback(dy)[0] if activation else dy
    dy_conv, db = bias_pullback(du)
    return (z, *conv_pullback(dy_conv), db)


def _fused(op, x, w, b, dy, kwargs, activation, backend):
    z, pullback = miniconv.vjp(getattr(nn, op + "_bias"), x, w, b, **kwargs, activation=activation, backend=backend)
    return (z, *pullback(dy))


def _same_special_values(ours, ref, label):
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=label + " (NaN)")
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref), err_msg=label + " (+inf)")
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(ref), err_msg=label + " (-inf)")
    finite = np.isfinite(ref)
    scale = float(np.abs(ref[finite]).max()) if finite.any() else 1.0
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-5, atol=1e-5 * scale, err_msg=label)


NAMES = ("output", "dx", "dw", "dbias")


def _sizes(op, arrays, dy, kwargs):
    """(rtol, per element of each result the sum of |terms| behind it): the numpy composition on |x|, |w|,
    |b|, |dy| without ReLU6 (its mask only drops terms); where that sum is inf or NaN (a term with an inf or
    NaN, which the mask may have dropped), the bound L * max|a| * max|b| + max|bias| of its finite terms."""
    absolute = [np.abs(a) for a in (*arrays, dy)]
    with np.errstate(all="ignore"):
        sizes = _composition(op, *absolute[:3], absolute[3], kwargs, None, "numpy")
    largest = max(float(a[np.isfinite(a)].max(initial=0.0)) for a in absolute)
    L = max(a.size for a in absolute)
    bound = L * largest**2 + largest
    return C_TOL * EPS32 * np.sqrt(L), [np.where(np.isfinite(size), size, bound) for size in sizes]


def check_fused_is_composition(op, x, w, b, dy, kwargs, activation, special, seed, exact):
    """The cpu fused op against (1) the cpu composition of the separate ops: the same bits for the results
    named in ``exact`` (of ``NAMES``: the same kernels, the same chunks), the others the same inf / NaN
    positions and finite values within rounding (1x1 products in other blocks, sums in another order); (2) the numpy reference's composition: the same inf / NaN
    positions, finite values within rounding (C_TOL * eps * sqrt(L) of the sum of |terms|, as against TF). ``special`` ("x", "inf"): a few cells of one array inf or NaN
    (finite values in [-3, 3] and small sums: no sum can overflow, so positions do not depend on order)."""
    values = {"x": x, "w": w, "b": b, "dy": dy}
    if special is not None:
        where, kind = special
        values[where] = _special(np.random.default_rng(seed), values[where].shape, kind)
    arrays = [values[k] for k in "xwb"]
    label = f"{op}_bias {kwargs} activation={activation} special={special} x{x.shape} w{w.shape}"
    with np.errstate(all="ignore"):
        fused = _fused(op, *arrays, values["dy"], kwargs, activation, "cpu")
        composed = _composition(op, *arrays, values["dy"], kwargs, activation, "cpu")
        reference = _composition(op, *arrays, values["dy"], kwargs, activation, "numpy")
    rtol, sizes = _sizes(op, arrays, values["dy"], kwargs)
    for name, ours, theirs, ref, size in zip(NAMES, fused, composed, reference, sizes):
        assert ours.shape == ref.shape, f"{label} {name}: shape {ours.shape}, reference {ref.shape}"
        if name in exact:
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{label} {name}: not the composition's bits")
        else:  # inf and NaN where the composition has them, finite values to rounding
            assert_close(ours, theirs, rtol=rtol, magnitude=size, what=f"{label} {name} vs the cpu composition")
        assert_close(ours, ref, rtol=rtol, magnitude=size, what=f"{label} {name} vs the numpy reference")


# mostly with an inf or NaN somewhere (one example in nine without), mostly with ReLU6 (its clipping is what
# an inf or NaN meets)
specials = st.sampled_from([None, *((where, kind) for where in ("x", "w", "b", "dy") for kind in ("inf", "nan"))])
fused_activations = st.sampled_from([None, "relu6", "relu6"])


@given(case=conv_cases(dims=2), activation=fused_activations, special=specials)
def test_conv2d_bias_is_the_composition(case, activation, special):
    """Drawn conv2d cases (batch 1, one channel, strides up to 4, dilations, SAME / VALID windows larger
    than the input): fused = conv2d -> bias_add -> relu6, forward and gradients, inf and NaN included."""
    x, w, dy = case.arrays()
    x = x * np.float32(3)  # outputs below 0, inside (0, 6) and above 6
    b = _bias(np.random.default_rng(case.seed + 1), case.K)
    pointwise = case.R == case.S == 1 and tuple(case.strides) == (1, 1)  # (a 1x1 window pads nothing)
    check_fused_is_composition("conv2d", x, w, b, dy, case.kwargs, activation, special, case.seed,
                               exact=() if pointwise else NAMES)


@given(case=depthwise_cases(), activation=fused_activations, special=specials)
def test_depthwise_conv2d_bias_is_the_composition(case, activation, special):
    check_depthwise_is_composition(case, activation, special)


@given(case=depthwise_cases(filter_size=(3, 3)), activation=fused_activations, special=specials)
def test_depthwise_conv2d_bias_3x3_is_the_composition(case, activation, special):
    """3x3: the row kernels, and with ReLU6 and multiplier 1 dy formed inside their backward's pass."""
    check_depthwise_is_composition(case, activation, special)


def check_depthwise_is_composition(case, activation, special):
    """Drawn depthwise cases (batch 1, one channel, strides 1-3, dilations, explicit padding, multipliers;
    3x3 ones take the row kernels): the same bits as depthwise_conv2d -> bias_add -> relu6, except dbias
    where the 3x3 kernels form dy inside their pass (ReLU6, multiplier 1): the same terms summed per chunk
    of images."""
    (x, w), dy = case.arrays()
    x = x * np.float32(3)
    b = _bias(np.random.default_rng(case.seed + 1), case.C * case.M)
    in_the_pass = case.R == case.S == 3 and case.M == 1 and activation == "relu6"
    check_fused_is_composition("depthwise_conv2d", x, w, b, dy, case.kwargs, activation, special, case.seed,
                               exact=NAMES[:3] if in_the_pass else NAMES)


@pytest.mark.parametrize("special", [None, ("x", "inf"), ("dy", "nan"), ("w", "nan")])
@pytest.mark.parametrize("shape, chunk_rows", [
    ((3, 9, 9, 5, 4), 40),  # 243 rows: chunks of 40 (blocks of 16, 16, 8) and a last one of 3
    ((1, 3, 11, 7, 6), 33),  # 33 rows, one chunk of 16 + 17 (no 1-row block)
])  # fmt: skip
def test_pointwise_relu6_backward_blocks(shape, chunk_rows, special, monkeypatch):
    """The 1x1 backward with ReLU6 in chunks of several blocks (64 B blocks: 16 rows): the composition's
    numbers."""
    from miniconv.backend.cpu import pointwise_kernels

    monkeypatch.setattr(pointwise_kernels, "BLOCK_BYTES", 64)
    monkeypatch.setattr(pointwise_kernels, "MIN_CHUNK_ROWS", chunk_rows)
    N, H, W, C, K = shape
    case = ConvCase(2, N, H, W, C, K, 1, 1, (1, 1), (1, 1), "VALID", 1, 1, sum(shape))
    x, w, dy = case.arrays()
    b = _bias(np.random.default_rng(case.seed + 1), K)
    check_fused_is_composition("conv2d", x * np.float32(3), w, b, dy, case.kwargs, "relu6", special, case.seed, exact=())


@st.composite
def pointwise_cases(draw):
    """1x1, stride 1, unpadded: the cpu backend's plain products, in blocks of rows (``BLOCK_BYTES``
    drawn small: many blocks and a partial last one)."""
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    C, K = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    padding = draw(st.sampled_from(["VALID", "SAME"]))
    return ConvCase(2, N, H, W, C, K, 1, 1, (1, 1), (1, 1), padding, 1, 1, draw(seeds))


@given(case=pointwise_cases(), activation=fused_activations, special=specials,
       block_bytes=st.sampled_from([64, 512, 4096, 1 << 18]), chunk_rows=st.sampled_from([1, 40, 1024]))
def test_pointwise_conv2d_bias_is_the_composition(case, activation, special, block_bytes, chunk_rows):
    """Blocks of rows cut small (64 B: 16 rows); the backward with ReLU6 in row chunks of ``chunk_rows`` (40: a
    chunk of three blocks; 1024: one chunk, which takes the composition)."""
    from miniconv.backend.cpu import pointwise_kernels

    x, w, dy = case.arrays()
    x = x * np.float32(3)
    b = _bias(np.random.default_rng(case.seed + 1), case.K)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pointwise_kernels, "BLOCK_BYTES", block_bytes)
        patch.setattr(pointwise_kernels, "MIN_CHUNK_ROWS", chunk_rows)
        check_fused_is_composition("conv2d", x, w, b, dy, case.kwargs, activation, special, case.seed, exact=())


# --- the fusion table: Conv -> BatchNormalization (frozen) -> ReLU6 as one step -----------------------------


def conv_bn_relu6(conv_kind, padding, frozen=True, activation_layer="ReLU"):
    """Input -> [ZeroPadding2D] -> conv -> BatchNormalization -> ReLU6 -> conv (so the ReLU6 is not the output)."""
    inputs = miniconv.Input((7, 6, 3), name="image")
    x = inputs
    if padding == "zero_padding":
        x = layers.ZeroPadding2D(((1, 1), (0, 1)), name="pad")(x)
    conv_padding = "valid" if padding == "zero_padding" else padding
    if conv_kind == "depthwise":
        x = layers.DepthwiseConv2D(3, strides=2, padding=conv_padding, depth_multiplier=2, use_bias=False,
                                   name="conv")(x)
    elif conv_kind == "pointwise":
        x = layers.Conv2D(5, 1, use_bias=False, name="conv")(x)
    else:
        x = layers.Conv2D(4, 3, strides=2, padding=conv_padding, use_bias=conv_kind == "conv_bias", name="conv")(x)
    x = layers.BatchNormalization(name="bn", trainable=not frozen)(x)
    x = layers.ReLU(6.0, name="relu6")(x) if activation_layer == "ReLU" else layers.Activation("relu6", name="relu6")(x)
    outputs = layers.Conv2D(2, 1, name="head")(x)
    model = miniconv.Model(inputs, outputs, name="block")
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    channels = bn.params[0].shape[0]
    bn.set_weights([rng.uniform(0.5, 1.5, channels).astype(np.float32), rng.normal(0, 1, channels).astype(np.float32),
                    rng.normal(0, 1, channels).astype(np.float32), rng.uniform(0.2, 2, channels).astype(np.float32)])
    conv = model.get_layer("conv")
    conv.set_weights([(w * 4).astype(np.float32) for w in conv.get_weights()])  # outputs past 6 as well
    return model


WITHOUT_RELU6 = tuple(f for f in fusion.FUSIONS if not f.op.endswith("_relu6"))  # ReLU6 as a step of its own


@pytest.mark.parametrize("special", [None, "inf", "nan"])
@pytest.mark.parametrize("conv_kind, padding", [
    ("conv", "same"), ("conv_bias", "valid"), ("conv", "zero_padding"), ("pointwise", "same"),
    ("depthwise", "same"), ("depthwise", "zero_padding"),
])  # fmt: skip
def test_fused_step_is_the_unfused_sequence(monkeypatch, conv_kind, padding, special):
    """The model's output, input gradient and every weight gradient: one fused step
    (conv -> frozen BN folded -> ReLU6) gives the same bits as conv (BN folded) then ReLU6 as a step of its
    own, inf and NaN in the input included; and the same inf / NaN positions as the numpy backend."""
    model = conv_bn_relu6(conv_kind, padding)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (2, 7, 6, 3)).astype(np.float32)
    if special is not None:
        x[0, 3, 2, 1], x[1, 0, 0, 0] = (np.inf, -np.inf) if special == "inf" else (np.nan, np.nan)
    fused_op = ("conv_explicit_padding_bn_folded_relu6" if padding == "zero_padding" else "conv_bn_folded_relu6")
    assert compile_plan(model).steps[0].op == fused_op

    def run(backend="cpu"):
        with miniconv.use_backend(backend), np.errstate(all="ignore"):
            y, backward = model.forward(x)
            dy = np.random.default_rng(3).uniform(-1, 1, y.shape).astype(np.float32)
            dx = backward(dy)
            grads = {f"{layer.name}/{i}": g for layer in model.leaf_layers() for i, g in enumerate(layer.grads)
                     if g is not None}
        return y, dx, grads

    fused = run()
    reference = run("numpy")
    monkeypatch.setattr(plan_module, "FUSIONS", WITHOUT_RELU6)
    assert [s.op for s in compile_plan(model).steps][:2] == [fused_op[: -len("_relu6")], "ReLU"]
    unfused = run()
    assert fused[2].keys() == unfused[2].keys() == reference[2].keys() and {"conv/0", "head/0"} <= fused[2].keys()
    label = f"{conv_kind} {padding} special={special}"
    for what, ours, theirs, ref in [("output", fused[0], unfused[0], reference[0]), ("dx", fused[1], unfused[1], reference[1])] + [
            (name, fused[2][name], unfused[2][name], reference[2][name]) for name in fused[2]]:  # fmt: skip
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{label} {what}: fused vs unfused")
        _same_special_values(np.asarray(ours), np.asarray(ref), f"{label} {what}: cpu vs numpy")
    if special is not None:  # (inf clips to 6 or 0 in the output; dw = x * masked dy is NaN there)
        assert any(not np.isfinite(a).all() for a in (fused[0], fused[1], *fused[2].values())), label


def test_activation_layer_relu6_fuses_too():
    model = conv_bn_relu6("conv", "same", activation_layer="Activation")
    assert compile_plan(model).steps[0].op == "conv_bn_folded_relu6"


def test_training_mode_batch_norm_is_not_folded():
    """fit's plan: a trainable BatchNormalization uses its batch's statistics, so it is not folded and the
    ReLU6 after it is a step of its own; a frozen one (Keras 3: inference mode in fit) is folded with the
    ReLU6. Checked on the steps and on what fit does: the trainable BN's moving statistics move."""
    trainable = conv_bn_relu6("conv", "same", frozen=False)
    trainable.compile(optimizer="sgd", loss="mse")
    ops = [s.op for s in compile_plan(trainable, loss=trainable.loss).steps]
    assert "BatchNormalization" in ops and "ReLU" in ops and not any("folded" in op for op in ops), ops
    assert compile_plan(trainable).steps[0].op == "conv_bn_folded_relu6"  # predict's plan folds it
    frozen = conv_bn_relu6("conv", "same", frozen=True)
    frozen.compile(optimizer="sgd", loss="mse")
    assert compile_plan(frozen, loss=frozen.loss).steps[0].op == "conv_bn_folded_relu6"
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, (8, 7, 6, 3)).astype(np.float32), rng.uniform(-1, 1, (8, 4, 3, 2)).astype(np.float32)
    for model, moves in ((trainable, True), (frozen, False)):
        before = [w.copy() for w in model.get_layer("bn").get_weights()]
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        after = model.get_layer("bn").get_weights()
        assert (not np.array_equal(before[2], after[2])) == moves, f"moving mean moved: {moves} expected"
        assert (not np.array_equal(before[0], after[0])) == moves, f"gamma trained: {moves} expected"
