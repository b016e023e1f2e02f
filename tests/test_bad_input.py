"""Bad input fails early and says so: the error names the argument and shows what came.

Every case runs on every backend: the checks live in the ops layer and must fire before any
kernel sees the arrays (a Numba kernel with a bad shape reads out of bounds silently). Also:
float16 / float64 inputs are computed in float32, and the backend registry's scoping rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tf_reference import Tolerance, assert_vjp_close

import miniconv
from miniconv import nn
from miniconv.backend import Backend, BackendUnavailableError, numpy_ref

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


X4, W4 = f32(2, 5, 6, 3), f32(3, 2, 3, 4)  # NHWC, HWIO
X3, W3 = f32(2, 7, 3), f32(3, 3, 4)  # NWC, WIO


# (id, call(backend), exception, regex the message must match). Each regex has the argument's
# name and the offending value or shape.
BAD_CALLS = [
    # --- wrong rank ---
    ("conv2d input rank", lambda b: nn.conv2d(X3, W4, backend=b), ValueError,
     r"conv2d: input must have rank 4 \(N, H, W, C\), got shape \(2, 7, 3\)"),
    ("conv2d filters rank", lambda b: nn.conv2d(X4, W3, backend=b), ValueError,
     r"conv2d: filters must have rank 4 \(R, S, C, K\), got shape \(3, 3, 4\)"),
    ("conv1d input rank", lambda b: nn.conv1d(X4, W3, backend=b), ValueError,
     r"conv1d: input must have rank 3 \(N, W, C\), got shape \(2, 5, 6, 3\)"),
    ("max_pool2d input rank", lambda b: nn.max_pool2d(X3, 2, 1, "VALID", backend=b), ValueError,
     r"max_pool2d: input must have rank 4 .*got shape \(2, 7, 3\)"),
    ("avg_pool1d input rank", lambda b: nn.avg_pool1d(X4, 2, 1, "VALID", backend=b), ValueError,
     r"avg_pool1d: input must have rank 3 .*got shape \(2, 5, 6, 3\)"),
    ("global_max_pool2d input rank", lambda b: nn.global_max_pool2d(X3, backend=b), ValueError,
     r"global_max_pool2d: input must have rank 4 .*got shape \(2, 7, 3\)"),
    ("global_avg_pool1d input rank", lambda b: nn.global_avg_pool1d(X4, backend=b), ValueError,
     r"global_avg_pool1d: input must have rank 3 .*got shape \(2, 5, 6, 3\)"),
    ("dense kernel rank", lambda b: nn.dense(f32(2, 3), f32(3), backend=b), ValueError,
     r"dense: kernel must have rank 2 \(in, out\), got shape \(3,\)"),
    ("softmax scalar", lambda b: nn.softmax(np.float32(1.0), backend=b), ValueError, r"softmax: logits must have rank >= 1"),
    ("softmax axis", lambda b: nn.softmax(f32(2, 3), axis=2, backend=b), ValueError,
     r"softmax: axis must be an int in \[-2, 2\) .*\(2, 3\), got 2"),
    # --- channel / size mismatch ---
    ("conv2d channels", lambda b: nn.conv2d(X4, f32(3, 2, 2, 4), backend=b), ValueError,
     r"conv2d: filters expect 2 input channels but the input has 3"),
    ("conv1d channels", lambda b: nn.conv1d(X3, f32(3, 5, 4), backend=b), ValueError,
     r"conv1d: filters expect 5 input channels but the input has 3"),
    ("dense inputs", lambda b: nn.dense(f32(2, 3), f32(4, 5), backend=b), ValueError,
     r"dense: kernel expects 4 inputs .*but x has 3"),
    ("dense bias", lambda b: nn.dense(f32(2, 3), f32(3, 5), f32(4), backend=b), ValueError,
     r"dense: bias must have shape \(5,\) .*got \(4,\)"),
    # --- window larger than the input (VALID) ---
    ("conv2d window", lambda b: nn.conv2d(f32(1, 3, 3, 1), f32(5, 5, 1, 1), padding="VALID", backend=b), ValueError,
     r"conv2d: the filters window \(5, 5\) .*larger than the VALID-padded input \(3, 3\)"),
    ("conv2d dilated window", lambda b: nn.conv2d(f32(1, 4, 9, 1), f32(3, 3, 1, 1), dilations=2, backend=b), ValueError,
     r"conv2d: the filters window \(5, 5\) \(after dilation\) is larger than the VALID-padded input \(4, 9\)"),
    ("conv1d window", lambda b: nn.conv1d(f32(1, 2, 1), f32(3, 1, 1), padding="VALID", backend=b), ValueError,
     r"conv1d: the filters window \(1, 3\) .*larger than the VALID-padded input \(1, 2\)"),
    ("max_pool2d window", lambda b: nn.max_pool2d(f32(1, 3, 8, 1), (4, 2), 1, "VALID", backend=b), ValueError,
     r"max_pool2d: the ksize window \(4, 2\) .*larger than the VALID-padded input \(3, 8\)"),
    ("avg_pool1d window", lambda b: nn.avg_pool1d(f32(1, 2, 1), 3, 1, "VALID", backend=b), ValueError,
     r"avg_pool1d: the ksize window \(1, 3\) .*larger than the VALID-padded input \(1, 2\)"),
    ("empty input", lambda b: nn.conv2d(f32(0, 3, 3, 1), f32(1, 1, 1, 1), backend=b), ValueError,
     r"conv2d: input must not be empty, got shape \(0, 3, 3, 1\)"),
    # --- non-positive or malformed strides / ksize / dilations ---
    ("conv2d zero stride", lambda b: nn.conv2d(X4, W4, strides=0, backend=b), ValueError,
     r"strides: expected positive values, got \[0, 0\]"),
    ("conv2d negative stride", lambda b: nn.conv2d(X4, W4, strides=(1, -2), backend=b), ValueError,
     r"strides: expected positive values, got \[1, -2\]"),
    ("conv1d zero stride", lambda b: nn.conv1d(X3, W3, stride=0, backend=b), ValueError,
     r"stride: expected positive values, got \[0\]"),
    ("conv2d zero dilation", lambda b: nn.conv2d(X4, W4, dilations=[0, 1], backend=b), ValueError,
     r"dilations: expected positive values, got \[0, 1\]"),
    ("max_pool2d zero ksize", lambda b: nn.max_pool2d(X4, 0, 1, "VALID", backend=b), ValueError,
     r"ksize: expected positive values, got \[0, 0\]"),
    ("avg_pool2d negative ksize", lambda b: nn.avg_pool2d(X4, (2, -1), 1, "VALID", backend=b), ValueError,
     r"ksize: expected positive values, got \[2, -1\]"),
    ("max_pool1d zero stride", lambda b: nn.max_pool1d(X3, 2, 0, "VALID", backend=b), ValueError,
     r"strides: expected positive values, got \[0\]"),
    ("pool zero stride", lambda b: nn.pool(X3, [2], "MAX", strides=[0], backend=b), ValueError,
     r"strides: expected positive values, got \[0\]"),
    ("pool strides too short", lambda b: nn.pool(X4, [2, 2], "MAX", strides=[1], backend=b), ValueError,
     r"strides: expected an int or 2 ints, got 1 values \[1\]"),  # tf.nn.pool refuses it too
    ("pool long-form strides", lambda b: nn.pool(X3, [2], "AVG", strides=[1, 2, 1], backend=b), ValueError,
     r"strides: expected an int or 1 ints, got 3 values \[1, 2, 1\]"),
    ("strides of 3 for 2-D", lambda b: nn.conv2d(X4, W4, strides=(1, 2, 1), backend=b), ValueError,
     r"strides: expected an int or 2 ints, got 3 values \[1, 2, 1\]"),
    ("long-form strides with batch stride", lambda b: nn.max_pool2d(X4, 2, [2, 1, 1, 1], "VALID", backend=b), ValueError,
     r"strides: the batch and channel entries .* must be 1, got \[2, 1, 1, 1\]"),
    ("float stride", lambda b: nn.conv2d(X4, W4, strides=2.0, backend=b), TypeError,
     r"strides: expected an int or a sequence of 2 ints, got 2\.0"),
    ("dilation with stride", lambda b: nn.conv2d(X4, W4, strides=2, dilations=2, backend=b), ValueError,
     r"conv2d: `strides > 1` not supported in conjunction with `dilation_rate > 1`.*strides=\[2, 2\] and dilations=\[2, 2\]"),
    ("conv1d dilation with stride", lambda b: nn.conv1d(X3, W3, stride=2, dilations=2, padding="SAME", backend=b), ValueError,
     r"conv1d: `strides > 1` not supported in conjunction with `dilation_rate > 1`.*stride=\[2\] and dilations=\[2\]"),
    # --- padding, pooling type, data format ---
    ("conv2d padding", lambda b: nn.conv2d(X4, W4, padding="FULL", backend=b), ValueError,
     r"padding: expected 'VALID' or 'SAME', got 'FULL'"),
    ("max_pool2d padding", lambda b: nn.max_pool2d(X4, 2, 1, "CAUSAL", backend=b), ValueError,
     r"padding: expected 'VALID' or 'SAME', got 'CAUSAL'"),
    ("conv1d padding None", lambda b: nn.conv1d(X3, W3, padding=None, backend=b), ValueError,
     r"padding: expected 'VALID' or 'SAME', got None"),
    ("pool type", lambda b: nn.pool(X4, [2, 2], "MIN", backend=b), ValueError,
     r"pool: pooling_type must be 'MAX' or 'AVG', got 'MIN'"),
    ("pool window rank", lambda b: nn.pool(X4, [2, 2, 2], "MAX", backend=b), ValueError,
     r"pool: window_shape must have 1 or 2 entries .*got \[2, 2, 2\]"),
    ("conv2d NCHW", lambda b: nn.conv2d(X4, W4, data_format="NCHW", backend=b), ValueError,
     r"conv2d: data_format must be 'NHWC' \(channels last\), got 'NCHW'"),
    # --- dtype ---
    ("conv2d int input", lambda b: nn.conv2d(X4.astype(np.int64), W4, backend=b), TypeError,
     r"conv2d: input must be a floating-point array, got dtype int64"),
    ("conv2d int filters", lambda b: nn.conv2d(X4, W4.astype(np.int32), backend=b), TypeError,
     r"conv2d: filters must be a floating-point array, got dtype int32"),
    ("max_pool2d bool input", lambda b: nn.max_pool2d(X4 > 0, 2, 1, "VALID", backend=b), TypeError,
     r"max_pool2d: input must be a floating-point array, got dtype bool"),
    ("relu int", lambda b: nn.relu(np.arange(3), backend=b), TypeError,
     r"relu: features must be a floating-point array, got dtype int64"),
    ("softmax complex", lambda b: nn.softmax(np.ones(3, np.complex64), backend=b), TypeError,
     r"softmax: logits must be a floating-point array, got dtype complex64"),
    ("dense int x", lambda b: nn.dense(np.ones((2, 3), np.int8), f32(3, 2), backend=b), TypeError,
     r"dense: x must be a floating-point array, got dtype int8"),
    ("dropout int", lambda b: nn.dropout(np.ones(4, np.int16), 0.5, backend=b), TypeError,
     r"dropout: x must be a floating-point array, got dtype int16"),
    # --- dropout rate and seed ---
    ("dropout rate 1", lambda b: nn.dropout(X3, 1.0, backend=b), ValueError, r"dropout: rate must be a number in \[0, 1\), got 1\.0"),
    ("dropout rate > 1", lambda b: nn.dropout(X3, 1.5, backend=b), ValueError, r"rate must be a number in \[0, 1\), got 1\.5"),
    ("dropout rate < 0", lambda b: nn.dropout(X3, -0.1, backend=b), ValueError, r"rate must be a number in \[0, 1\), got -0\.1"),
    ("dropout rate NaN", lambda b: nn.dropout(X3, float("nan"), backend=b), ValueError, r"rate must be a number in \[0, 1\), got nan"),
    ("dropout rate str", lambda b: nn.dropout(X3, "0.5", backend=b), ValueError, r"rate must be a number in \[0, 1\), got '0\.5'"),
    ("dropout seed", lambda b: nn.dropout(X3, 0.5, seed="abc", backend=b), TypeError,
     r"dropout: seed must be None, an int or a np.random.Generator, got 'abc'"),
    ("dropout negative seed", lambda b: nn.dropout(X3, 0.5, seed=-1, backend=b), ValueError,
     r"dropout: seed must be a non-negative int, got -1"),
    # --- absurdly large strides / windows / dilations: above TF's int32 limit (past 2**63 they
    # once gave an OverflowError, or on one backend a result that depended on earlier calls) ---
    ("conv2d stride 2**31", lambda b: nn.conv2d(X4, W4, strides=2**31, backend=b), ValueError,
     r"strides: expected values of at most 2\*\*31 - 1 = 2147483647 .*got \[2147483648, 2147483648\]"),
    ("conv2d stride 2**63", lambda b: nn.conv2d(X4, W4, strides=(1, 2**63), backend=b), ValueError,
     r"strides: expected values of at most 2\*\*31 - 1 .*got \[1, 9223372036854775808\]"),
    ("conv1d dilation 2**64", lambda b: nn.conv1d(X3, W3, dilations=2**64, padding="SAME", backend=b), ValueError,
     r"dilations: expected values of at most 2\*\*31 - 1 .*got \[18446744073709551616\]"),
    ("max_pool2d ksize 2**63", lambda b: nn.max_pool2d(X4, [1, 2**63, 2, 1], 1, "SAME", backend=b), ValueError,
     r"ksize: expected values of at most 2\*\*31 - 1 .*got \[9223372036854775808, 2\]"),
    ("avg_pool1d stride 2**63", lambda b: nn.avg_pool1d(X3, 2, np.uint64(2**63), "VALID", backend=b), ValueError,
     r"strides: expected values of at most 2\*\*31 - 1 .*got \[9223372036854775808\]"),
    ("pool window 2**70", lambda b: nn.pool(X4, [2, 2**70], "AVG", padding="SAME", backend=b), ValueError,
     r"window_shape: expected values of at most 2\*\*31 - 1 .*got \[2, 1180591620717411303424\]"),
    ("fused pool_size 2**63", lambda b: nn.conv2d_bias_relu_max_pool2d(X4, W4, f32(4), 2**63, backend=b), ValueError,
     r"pool_size: expected values of at most 2\*\*31 - 1 .*got \[9223372036854775808, 9223372036854775808\]"),
    # --- ragged lists and None as arrays ---
    ("relu ragged", lambda b: nn.relu([[1.0, 2.0], [3.0]], backend=b), ValueError,
     (r"relu: features must be a rectangular array \(nested lists of equal lengths\), got a ragged sequence "
      r"\[\[1\.0, 2\.0\], \[3\.0\]\]")),
    ("conv2d ragged filters", lambda b: nn.conv2d(X4, [[[[1.0]]], [[[1.0], [2.0]]]], backend=b), ValueError,
     r"conv2d: filters must be a rectangular array .*got a ragged sequence"),
    ("dense ragged bias", lambda b: nn.dense(f32(2, 3), f32(3, 2), [1.0, [2.0]], backend=b), ValueError,
     r"dense: bias must be a rectangular array .*got a ragged sequence"),
    ("softmax ragged", lambda b: nn.softmax([[1.0], [2.0, 3.0]], backend=b), ValueError,
     r"softmax: logits must be a rectangular array .*ragged"),
    ("max_pool1d None", lambda b: nn.max_pool1d(None, 2, 1, "VALID", backend=b), TypeError,
     r"max_pool1d: input must be a floating-point array, got None"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_named(backend, call, error, message):
    with pytest.raises(error, match=message):
        call(backend)


def test_huge_values_fail_alike_before_and_after_other_calls(backend):
    """The same ValueError on every backend, whatever ran before (Numba once compiled a uint64
    version of a pooling kernel for 2**63, whose result then depended on the earlier calls)."""
    for _ in range(2):
        with pytest.raises(ValueError, match=r"strides: expected values of at most 2\*\*31 - 1"):
            nn.max_pool2d(X4, 2, 2**63, "VALID", backend=backend)
        nn.max_pool2d(X4, 2, 2**31 - 1, "VALID", backend=backend)  # TF's largest: a 1 x 1 output


# --- empty arrays: TF's empty results, not reshape errors -----------------------------------------

EMPTY = [
    ("softmax (5, 0)", nn.softmax, tf_softmax := lambda x: tf.nn.softmax(x), [(5, 0)]),
    ("softmax (0, 5)", nn.softmax, tf_softmax, [(0, 5)]),
    ("dense no inputs", nn.dense, lambda x, k, b: tf.tensordot(x, k, axes=1) + b, [(3, 0), (0, 4), (4,)]),
    ("dense no inputs 3-D", nn.dense, lambda x, k: tf.tensordot(x, k, axes=1), [(2, 3, 0), (0, 2)]),
    ("dense no rows", nn.dense, lambda x, k, b: tf.tensordot(x, k, axes=1) + b, [(0, 3), (3, 4), (4,)]),
    ("dense no outputs", nn.dense, lambda x, k, b: tf.tensordot(x, k, axes=1) + b, [(2, 3), (3, 0), (0,)]),
    ("bias_add no channels", nn.bias_add, lambda v, b: tf.nn.bias_add(v, b), [(5, 0), (0,)]),
    ("bias_add no rows", nn.bias_add, lambda v, b: tf.nn.bias_add(v, b), [(0, 2, 3), (3,)]),
    ("bias_add_relu no rows", nn.bias_add_relu, lambda v, b: tf.nn.relu(tf.nn.bias_add(v, b)), [(0, 3), (3,)]),
]  # fmt: skip


@pytest.mark.parametrize("op, tf_op, shapes", [e[1:] for e in EMPTY], ids=[e[0] for e in EMPTY])
def test_empty_arrays_give_tf_results(backend, op, tf_op, shapes):
    """As TF: softmax of (5, 0) is (5, 0); dense with no inputs is 0 + bias, its dbias the sum of dy."""
    arrays = tuple(f32(*shape) for shape in shapes)
    y_tf = tf_op(*arrays)
    dy = f32(*y_tf.shape)
    assert_vjp_close(op, tf_op, arrays, dy, backend=backend, tol=Tolerance((8,) * (1 + len(arrays))))


# --- upstream gradient of the wrong shape --------------------------------------------------------

PULLBACKS = [
    ("conv2d", nn.conv2d, (X4, W4), {"padding": "SAME"}, r"conv2d pullback: upstream gradient must have the output's shape \(2, 5, 6, 4\), got \(2, 5, 6, 3\)"),
    ("conv1d", nn.conv1d, (X3, W3), {}, r"conv1d pullback: upstream gradient must have the output's shape \(2, 5, 4\), got \(2, 5, 3\)"),
    ("max_pool2d", nn.max_pool2d, (X4,), {"ksize": 2, "strides": 2, "padding": "VALID"}, r"max_pool2d pullback: .*shape \(2, 2, 3, 3\), got \(2, 2, 3, 2\)"),
    ("avg_pool1d", nn.avg_pool1d, (X3,), {"ksize": 2, "strides": 1, "padding": "SAME"}, r"avg_pool1d pullback: .*shape \(2, 7, 3\), got \(2, 7, 2\)"),
    ("pool", nn.pool, (X4,), {"window_shape": [2, 2], "pooling_type": "AVG"}, r"pool pullback: .*shape \(2, 4, 5, 3\), got \(2, 4, 5, 2\)"),
    ("global_max_pool2d", nn.global_max_pool2d, (X4,), {}, r"global_max_pool2d pullback: .*shape \(2, 3\), got \(2, 2\)"),
    ("global_avg_pool1d", nn.global_avg_pool1d, (X3,), {}, r"global_avg_pool1d pullback: .*shape \(2, 3\), got \(2, 2\)"),
    ("relu", nn.relu, (X3,), {}, r"relu pullback: .*shape \(2, 7, 3\), got \(2, 7, 2\)"),
    ("sigmoid", nn.sigmoid, (X3,), {}, r"sigmoid pullback: .*shape \(2, 7, 3\), got \(2, 7, 2\)"),
    ("softmax", nn.softmax, (X3,), {"axis": 1}, r"softmax pullback: .*shape \(2, 7, 3\), got \(2, 7, 2\)"),
    ("dense", nn.dense, (f32(4, 3), f32(3, 2), f32(2)), {}, r"dense pullback: .*shape \(4, 2\), got \(4, 1\)"),
    ("dropout", nn.dropout, (X3,), {"rate": 0.5, "seed": 0}, r"dropout pullback: .*shape \(2, 7, 3\), got \(2, 7, 2\)"),
]  # fmt: skip


@pytest.mark.parametrize("op, arrays, kwargs, message", [p[1:] for p in PULLBACKS], ids=[p[0] for p in PULLBACKS])
def test_pullback_rejects_wrong_upstream_shape(backend, op, arrays, kwargs, message):
    y, pullback = miniconv.vjp(op, *arrays, backend=backend, **kwargs)
    wrong = np.zeros((*y.shape[:-1], y.shape[-1] - 1), np.float32)
    with pytest.raises(ValueError, match=message):
        pullback(wrong)
    with pytest.raises(TypeError, match=r"upstream gradient must be a floating-point array, got dtype int64"):
        pullback(np.zeros(y.shape, np.int64))


def test_vjp_of_a_non_op_is_a_type_error():
    with pytest.raises(TypeError, match=r"vjp: expected an op of miniconv.nn .*got <built-in function max>"):
        miniconv.vjp(max, X3)


# --- float16 / float64 in, float32 out -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_dtypes_are_computed_in_float32(backend, dtype):
    x, w = X4.astype(dtype), W4.astype(dtype)
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend=backend)
    dx, dw = pullback(np.ones(y.shape, dtype))
    assert y.dtype == dx.dtype == dw.dtype == np.float32
    y32, pullback32 = miniconv.vjp(
        nn.conv2d, x.astype(np.float32), w.astype(np.float32), padding="SAME", backend="numpy"
    )
    np.testing.assert_allclose(y, y32, rtol=1e-5, atol=1e-5)
    for g, g32 in zip((dx, dw), pullback32(np.ones(y.shape, np.float32))):
        np.testing.assert_allclose(g, g32, rtol=1e-5, atol=1e-5)
    others = [
        nn.max_pool2d(x, 2, 2, "SAME", backend=backend), nn.avg_pool1d(x[:, 0], 2, 1, "VALID", backend=backend),
        nn.relu(x, backend=backend), nn.sigmoid(x, backend=backend), nn.softmax(x, backend=backend),
        nn.dense(x, w[0, 0], backend=backend), nn.dropout(x, 0.5, seed=0, backend=backend),
        nn.global_avg_pool2d(x, backend=backend), nn.conv1d(x[:, 0], w[0], backend=backend),
    ]  # fmt: skip
    assert all(out.dtype == np.float32 for out in others), [out.dtype for out in others]


# --- backend selection ---------------------------------------------------------------------------


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match=r"backend: expected one of \[.*'numpy'.*\], got 'gpu'"):
        nn.relu(X3, backend="gpu")
    with pytest.raises(ValueError, match=r"backend: expected one of .*got 'gpu'"), miniconv.use_backend("gpu"):
        pass
    with pytest.raises(ValueError, match=r"backend: expected one of .*got 'gpu'"):
        miniconv.get_backend("gpu")


@pytest.mark.parametrize("name", ["numpy", "cpu", "cuda"])
def test_every_registered_backend_loads_or_says_why(name):
    """A registered backend either loads as a Backend or raises BackendUnavailableError; anything
    else (a half-written module, an import-time crash) is a bug that conftest's fallback must not hide."""
    try:
        be = miniconv.get_backend(name)
    except BackendUnavailableError:
        assert name not in miniconv.available_backends()
        return
    assert isinstance(be, Backend) and be.name == name
    assert (name in miniconv.available_backends()) == (getattr(be, "is_available", lambda: True)())


def test_unavailable_backend_says_why():
    """cuda is registered but not importable here: a clear BackendUnavailableError, not an ImportError."""
    if "cuda" in miniconv.available_backends():
        pytest.skip("the cuda backend is available on this machine")
    with pytest.raises(BackendUnavailableError, match=r"backend 'cuda' cannot (be loaded|run) here"):
        miniconv.get_backend("cuda")


def test_use_backend_scopes_and_restores_the_default(backend):
    before = miniconv.current_backend()
    other = "numpy" if backend != "numpy" else backend
    with miniconv.use_backend(backend) as be:
        assert miniconv.current_backend() == backend
        assert be is miniconv.get_backend(backend) is miniconv.get_backend()
        with miniconv.use_backend(other):
            assert miniconv.current_backend() == other
        assert miniconv.current_backend() == backend
    assert miniconv.current_backend() == before
    # restored on the way out of an exception too
    with pytest.raises(RuntimeError, match="boom"), miniconv.use_backend(backend):
        raise RuntimeError("boom")
    assert miniconv.current_backend() == before


class CountingBackend(Backend):
    """A backend with only relu_forward (the reference's), counting its calls."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def relu_forward(self, x):
        self.calls += 1
        return numpy_ref.relu_forward(x)


def test_backend_argument_overrides_the_default(backend, monkeypatch):
    """Inside use_backend(b) an op runs on b, unless its backend= names another."""
    chosen = miniconv.get_backend(backend)
    calls = []
    original = chosen.relu_forward
    # patch the class, not the instance: undoing an instance patch would leave a shadowing attribute
    monkeypatch.setattr(type(chosen), "relu_forward", staticmethod(lambda x: calls.append(1) or original(x)))
    counting = CountingBackend()
    with miniconv.use_backend(backend):
        nn.relu(X3)  # the scoped default
        assert (len(calls), counting.calls) == (1, 0)
        nn.relu(X3, backend=counting)  # the argument wins
        assert (len(calls), counting.calls) == (1, 1)
    other = "numpy" if backend != "numpy" else "cpu"
    if other in miniconv.available_backends():
        with miniconv.use_backend(other):
            nn.relu(X3, backend=backend)
            assert len(calls) == 2
