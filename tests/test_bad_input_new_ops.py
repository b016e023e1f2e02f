"""Bad input to depthwise_conv2d, separable_conv2d, batch_normalization, moments, relu6 and explicit
padding fails early and says so, as in ``test_bad_input``: the error names the argument and shows
what came. Each case also runs on the abstract ``Backend``, whose every kernel raises
NotImplementedError: the check must fire before any kernel is called.
"""

from __future__ import annotations

import numpy as np
import pytest

import miniconv
from miniconv import nn
from miniconv.backend import Backend

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


X, DW, PW = f32(2, 6, 7, 3), f32(3, 3, 3, 2), f32(1, 1, 6, 4)  # NHWC, (R, S, C, M), (1, 1, C*M, K)
W4 = f32(3, 3, 3, 4)
S4 = [1, 1, 1, 1]
C3 = np.ones(3, np.float32)

BAD_CALLS = [
    # --- depthwise_conv2d ---
    ("depthwise input rank", lambda b: nn.depthwise_conv2d(X[0], DW, S4, "SAME", backend=b), ValueError,
     r"depthwise_conv2d: input must have rank 4 \(N, H, W, C\), got shape \(6, 7, 3\)"),
    ("depthwise filter rank", lambda b: nn.depthwise_conv2d(X, DW[0], S4, "SAME", backend=b), ValueError,
     r"depthwise_conv2d: filter must have rank 4 \(R, S, C, M\), got shape \(3, 3, 2\)"),
    ("depthwise filter channels", lambda b: nn.depthwise_conv2d(X, f32(3, 3, 4, 1), S4, "SAME", backend=b), ValueError,
     r"depthwise_conv2d: filter has 4 input channels \(axis 2 of \(R, S, C, M\)\) but the input has 3"),
    ("depthwise unequal strides", lambda b: nn.depthwise_conv2d(X, DW, [1, 1, 2, 1], "SAME", backend=b), ValueError,
     r"depthwise_conv2d: strides must be equal along rows and columns.*got \[1, 2\]"),
    ("depthwise batch stride", lambda b: nn.depthwise_conv2d(X, DW, [2, 1, 1, 1], "SAME", backend=b), ValueError,
     r"strides: the batch and channel entries .* must be 1, got \[2, 1, 1, 1\]"),
    ("depthwise dilation with stride", lambda b: nn.depthwise_conv2d(X, DW, [1, 2, 2, 1], "SAME", [2, 2], backend=b),
     ValueError, r"depthwise_conv2d: `strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    ("depthwise zero dilation", lambda b: nn.depthwise_conv2d(X, DW, S4, "SAME", [0, 1], backend=b), ValueError,
     r"dilations: expected positive values, got \[0, 1\]"),
    ("depthwise padding string", lambda b: nn.depthwise_conv2d(X, DW, S4, "FULL", backend=b), ValueError,
     r"padding: expected 'VALID' or 'SAME', got 'FULL'"),
    ("depthwise padding 2 pairs", lambda b: nn.depthwise_conv2d(X, DW, S4, [[1, 1], [1, 1]], backend=b), ValueError,
     r"depthwise_conv2d: padding as a list must have 4 pairs, \[\[0, 0\], \[pad_top, pad_bottom\].*got \[\[1, 1\], \[1, 1\]\]"),
    ("depthwise padding flat", lambda b: nn.depthwise_conv2d(X, DW, S4, [0, 0, 1, 1, 1, 1, 0, 0], backend=b), ValueError,
     r"depthwise_conv2d: padding as a list must have 4 pairs"),
    ("depthwise padding negative", lambda b: nn.depthwise_conv2d(X, DW, S4, [[0, 0], [1, -1], [0, 0], [0, 0]], backend=b),
     ValueError, r"depthwise_conv2d: explicit padding must be non-negative, got \[\[0, 0\], \[1, -1\], \[0, 0\], \[0, 0\]\]"),
    ("depthwise padding channel axis", lambda b: nn.depthwise_conv2d(X, DW, S4, [[0, 0], [1, 1], [1, 1], [0, 1]], backend=b),
     ValueError, r"depthwise_conv2d: explicit padding of the batch and channel axes must be \[0, 0\].*\[0, 1\]\]"),
    ("depthwise padding float", lambda b: nn.depthwise_conv2d(X, DW, S4, [[0, 0], [1.0, 1], [1, 1], [0, 0]], backend=b),
     TypeError, r"depthwise_conv2d: explicit padding must hold ints"),
    ("depthwise window", lambda b: nn.depthwise_conv2d(f32(1, 2, 2, 3), DW, S4, "VALID", backend=b), ValueError,
     r"depthwise_conv2d: the filter window \(3, 3\) .*larger than the VALID-padded input \(2, 2\)"),
    ("depthwise explicit window", lambda b: nn.depthwise_conv2d(f32(1, 1, 2, 3), DW, S4, [[0, 0], [0, 1], [1, 0], [0, 0]],
                                                                 backend=b), ValueError,
     r"depthwise_conv2d: the filter window \(3, 3\) .*larger than the explicitly padded input \(2, 3\)"),
    ("depthwise empty filter", lambda b: nn.depthwise_conv2d(X, f32(3, 3, 3, 0), S4, "SAME", backend=b), ValueError,
     r"depthwise_conv2d: filter must not be empty, got shape \(3, 3, 3, 0\)"),
    ("depthwise NCHW", lambda b: nn.depthwise_conv2d(X, DW, S4, "SAME", data_format="NCHW", backend=b), ValueError,
     r"depthwise_conv2d: data_format must be 'NHWC'"),
    ("depthwise int", lambda b: nn.depthwise_conv2d(X.astype(np.int32), DW, S4, "SAME", backend=b), TypeError,
     r"depthwise_conv2d: input must be a floating-point array, got dtype int32"),
    # --- separable_conv2d ---
    ("separable multiplier", lambda b: nn.separable_conv2d(X, DW, f32(1, 1, 3, 4), S4, "SAME", backend=b), ValueError,
     r"separable_conv2d: pointwise_filter expects 3 input channels but the depthwise convolution gives C \* M = 3 \* 2 = 6"),
    ("separable pointwise 3x3", lambda b: nn.separable_conv2d(X, DW, f32(3, 3, 6, 4), S4, "SAME", backend=b), ValueError,
     r"separable_conv2d: pointwise_filter must be 1 x 1, shape \(1, 1, C \* M, K\), got \(3, 3, 6, 4\)"),
    ("separable pointwise rank", lambda b: nn.separable_conv2d(X, DW, f32(6, 4), S4, "SAME", backend=b), ValueError,
     r"separable_conv2d: pointwise_filter must have rank 4 \(1, 1, C \* M, K\), got shape \(6, 4\)"),
    ("separable depthwise channels", lambda b: nn.separable_conv2d(X, f32(3, 3, 2, 3), PW, S4, "SAME", backend=b),
     ValueError, r"separable_conv2d: depthwise_filter has 2 input channels .* but the input has 3"),
    ("separable padding", lambda b: nn.separable_conv2d(X, DW, PW, S4, [[0, 0], [1, 1]], backend=b), ValueError,
     r"separable_conv2d: padding as a list must have 4 pairs"),
    # --- explicit padding of conv2d; conv1d takes none ---
    ("conv2d padding 2 pairs", lambda b: nn.conv2d(X, W4, 1, [[1, 1], [2, 0]], backend=b), ValueError,
     r"conv2d: padding as a list must have 4 pairs"),
    ("conv2d padding negative", lambda b: nn.conv2d(X, W4, 1, [[0, 0], [0, 0], [-2, 0], [0, 0]], backend=b), ValueError,
     r"conv2d: explicit padding must be non-negative"),
    ("conv2d padding batch", lambda b: nn.conv2d(X, W4, 1, [[1, 0], [1, 1], [1, 1], [0, 0]], backend=b), ValueError,
     r"conv2d: explicit padding of the batch and channel axes must be \[0, 0\]"),
    ("conv2d_bias_relu padding", lambda b: nn.conv2d_bias_relu(X, W4, np.zeros(4, np.float32), 1, [[0, 0], [1, 1, 1], [0, 0], [0, 0]], backend=b),
     ValueError, r"conv2d_bias_relu: padding as a list must have 4 pairs"),
    ("conv1d explicit padding", lambda b: nn.conv1d(X[:, 0], f32(3, 3, 4), 1, [[0, 0], [1, 1], [0, 0]], backend=b), ValueError,
     r"padding: expected 'VALID' or 'SAME', got \[\[0, 0\], \[1, 1\], \[0, 0\]\]"),
    # --- batch_normalization ---
    ("bn epsilon 0", lambda b: nn.batch_normalization(X, C3, C3, None, None, 0.0, backend=b), ValueError,
     r"batch_normalization: variance_epsilon must be a number > 0, got 0\.0"),
    ("bn epsilon negative", lambda b: nn.batch_normalization(X, C3, C3, None, None, -1e-3, backend=b), ValueError,
     r"batch_normalization: variance_epsilon must be a number > 0, got -0\.001"),
    ("bn epsilon NaN", lambda b: nn.batch_normalization(X, C3, C3, None, None, float("nan"), backend=b), ValueError,
     r"variance_epsilon must be a number > 0, got nan"),
    ("bn epsilon None", lambda b: nn.batch_normalization(X, C3, C3, None, None, None, backend=b), ValueError,
     r"variance_epsilon must be a number > 0, got None"),
    ("bn epsilon inf", lambda b: nn.batch_normalization(X, C3, C3, None, None, float("inf"), backend=b), ValueError,
     r"variance_epsilon must be finite, got inf"),
    ("bn mean shape", lambda b: nn.batch_normalization(X, np.ones(4, np.float32), C3, None, None, 1e-3, backend=b), ValueError,
     r"batch_normalization: mean must broadcast to x's shape \(2, 6, 7, 3\) \(NHWC batch normalization: \(3,\) or \(1, 1, 1, 3\)\), got shape \(4,\)"),
    ("bn variance rank", lambda b: nn.batch_normalization(X, C3, np.ones((1, 1, 1, 1, 3), np.float32), None, None, 1e-3, backend=b),
     ValueError, r"batch_normalization: variance must broadcast to x's shape .*got shape \(1, 1, 1, 1, 3\)"),
    ("bn offset shape", lambda b: nn.batch_normalization(X, C3, C3, np.ones((6, 2, 1), np.float32), None, 1e-3, backend=b),
     ValueError, r"batch_normalization: offset must broadcast to x's shape .*got shape \(6, 2, 1\)"),
    ("bn scale shape", lambda b: nn.batch_normalization(X, C3, C3, None, np.ones((2, 1, 1, 2), np.float32), 1e-3, backend=b),
     ValueError, r"batch_normalization: scale must broadcast to x's shape .*got shape \(2, 1, 1, 2\)"),
    ("bn mean None", lambda b: nn.batch_normalization(X, None, C3, None, None, 1e-3, backend=b), ValueError,
     r"batch_normalization: mean must be an array, got None"),
    ("bn int x", lambda b: nn.batch_normalization(X.astype(np.int64), C3, C3, None, None, 1e-3, backend=b), TypeError,
     r"batch_normalization: x must be a floating-point array, got dtype int64"),
    ("bn empty x", lambda b: nn.batch_normalization(f32(0, 3), C3, C3, None, None, 1e-3, backend=b), ValueError,
     r"batch_normalization: x must not be empty, got shape \(0, 3\)"),
    # --- moments ---
    ("moments axis out of range", lambda b: nn.moments(X, [0, 4], backend=b), ValueError,
     r"moments: axes must be in \[-4, 4\) for x of rank 4, got \[0, 4\]"),
    ("moments negative axis out of range", lambda b: nn.moments(X, -5, backend=b), ValueError,
     r"moments: axes must be in \[-4, 4\) for x of rank 4, got -5"),
    ("moments repeated axis", lambda b: nn.moments(X, [1, -3], backend=b), ValueError,
     r"moments: axes must not repeat an axis, got \[1, -3\]"),
    ("moments float axis", lambda b: nn.moments(X, [0.0], backend=b), TypeError,
     r"moments: axes must be an int or a list of ints, got \[0\.0\]"),
    ("moments axes None", lambda b: nn.moments(X, None, backend=b), TypeError,
     r"moments: axes must be an int or a list of ints, got None"),
    ("moments empty x", lambda b: nn.moments(f32(2, 0), [0], backend=b), ValueError,
     r"moments: x must not be empty, got shape \(2, 0\)"),
    # --- relu6 ---
    ("relu6 int", lambda b: nn.relu6(np.arange(3), backend=b), TypeError,
     r"relu6: features must be a floating-point array, got dtype int64"),
]  # fmt: skip


@pytest.fixture(params=["backend", "no kernels"])
def target(request, backend):
    """A backend of the test run, or the abstract Backend whose every kernel raises NotImplementedError."""
    return backend if request.param == "backend" else Backend()


@pytest.mark.parametrize("call, error, message", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_named(target, call, error, message):
    with pytest.raises(error, match=message):
        call(target)


PULLBACKS = [
    ("depthwise_conv2d", nn.depthwise_conv2d, (X, DW), {"strides": S4, "padding": "SAME"},
     r"depthwise_conv2d pullback: upstream gradient must have the output's shape \(2, 6, 7, 6\), got \(2, 6, 7, 5\)"),
    ("separable_conv2d", nn.separable_conv2d, (X, DW, PW), {"strides": [1, 2, 2, 1], "padding": "VALID"},
     r"separable_conv2d pullback: upstream gradient must have the output's shape \(2, 2, 3, 4\), got \(2, 2, 3, 3\)"),
    ("batch_normalization", nn.batch_normalization, (X, C3, C3, C3, C3), {"variance_epsilon": 1e-3},
     r"batch_normalization pullback: upstream gradient must have the output's shape \(2, 6, 7, 3\), got \(2, 6, 7, 2\)"),
    ("relu6", nn.relu6, (X,), {}, r"relu6 pullback: upstream gradient must have the output's shape \(2, 6, 7, 3\), got \(2, 6, 7, 2\)"),
]  # fmt: skip


@pytest.mark.parametrize("op, arrays, kwargs, message", [p[1:] for p in PULLBACKS], ids=[p[0] for p in PULLBACKS])
def test_pullback_rejects_wrong_upstream_shape(backend, op, arrays, kwargs, message):
    y, pullback = miniconv.vjp(op, *arrays, backend=backend, **kwargs)
    with pytest.raises(ValueError, match=message):
        pullback(np.zeros((*y.shape[:-1], y.shape[-1] - 1), np.float32))
    with pytest.raises(TypeError, match=r"upstream gradient must be a floating-point array, got dtype int64"):
        pullback(np.zeros(y.shape, np.int64))


def test_moments_pullback_names_the_output(backend):
    """Two outputs, two upstream gradients: a wrong one is named."""
    (mean, _), pullback = miniconv.vjp(nn.moments, X, [0, 1, 2], backend=backend)
    good = np.zeros(mean.shape, np.float32)
    with pytest.raises(ValueError, match=r"moments pullback: upstream gradient of mean must have mean's shape \(3,\), got \(2,\)"):
        pullback(np.zeros(2, np.float32), good)
    with pytest.raises(ValueError, match=r"moments pullback: upstream gradient of variance must have variance's shape \(3,\), got \(1, 3\)"):
        pullback(good, np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match=r"moments: upstream gradient of variance must be a floating-point array, got dtype int64"):
        pullback(good, np.zeros(3, np.int64))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_new_ops_compute_in_float32(backend, dtype):
    x = X.astype(dtype)
    outs = [nn.depthwise_conv2d(x, DW.astype(dtype), S4, "SAME", backend=backend),
            nn.separable_conv2d(x, DW, PW.astype(dtype), S4, "SAME", backend=backend),
            nn.batch_normalization(x, C3.astype(dtype), C3, None, None, 1e-3, backend=backend),
            *nn.moments(x, [0, 1, 2], backend=backend), nn.relu6(x, backend=backend)]  # fmt: skip
    assert all(out.dtype == np.float32 for out in outs), [out.dtype for out in outs]
