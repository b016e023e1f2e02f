"""Finite-difference gradient checks in float64 for depthwise conv2d, batch normalization, moments
and relu6, on the backend methods (as ``test_gradcheck``, whose helpers and tolerance these use).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from strategies import array_cases, depthwise_cases
from test_gradcheck import assert_directional_derivatives, call64, f64

import miniconv
from miniconv.shapes import depthwise_geometry, normalize_conv_padding


@given(case=depthwise_cases())
def test_depthwise_conv2d_gradients_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x, w = f64(rng, (case.N, case.H, case.W, case.C)), f64(rng, (case.R, case.S, case.C, case.M))
    g = depthwise_geometry(x.shape, w.shape, (case.stride,) * 2, normalize_conv_padding(case.padding),
                           (case.dilation,) * 2)  # fmt: skip
    dy = f64(rng, g.output_shape)
    assert call64(backend, "depthwise_conv2d_forward", x, w, g).shape == g.output_shape
    dx, dw = call64(backend, "depthwise_conv2d_backward", x, w, dy, g)
    forward = miniconv.get_backend(backend).depthwise_conv2d_forward
    assert_directional_derivatives(lambda x_: forward(x_, w, g), x, dx, dy, rng, f"depthwise input gradient {case}")
    assert_directional_derivatives(lambda w_: forward(x, w_, g), w, dw, dy, rng, f"depthwise filter gradient {case}")
    np.testing.assert_allclose(call64(backend, "depthwise_conv2d_backward_input", dy, w, g), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(call64(backend, "depthwise_conv2d_backward_filter", x, dy, g), dw, rtol=1e-12, atol=1e-12)


@given(case=array_cases())
def test_batch_norm_gradients_fd(backend, case):
    """x (rows, C) with per-column parameters, as the backends see it; variance + eps kept >= 0.5."""
    rng = np.random.default_rng(case.seed)
    rows, C = int(np.prod(case.shape[:-1])), case.shape[-1]
    x, dy = f64(rng, (rows, C)), f64(rng, (rows, C))
    mean, variance, offset, scale = f64(rng, C), f64(rng, C, 0.5, 1.5), f64(rng, C), f64(rng, C, -2, 2)
    eps = 1e-3
    forward = miniconv.get_backend(backend).batch_norm_forward
    call64(backend, "batch_norm_forward", x, mean, variance, offset, scale, eps)
    dx, dmean, dvariance, doffset, dscale = call64(backend, "batch_norm_backward", dy, x, mean, variance, scale, eps)
    checks = [
        (lambda a: forward(a, mean, variance, offset, scale, eps), x, dx, "x"),
        (lambda a: forward(x, a, variance, offset, scale, eps), mean, dmean, "mean"),
        (lambda a: forward(x, mean, a, offset, scale, eps), variance, dvariance, "variance"),
        (lambda a: forward(x, mean, variance, a, scale, eps), offset, doffset, "offset"),
        (lambda a: forward(x, mean, variance, offset, a, eps), scale, dscale, "scale"),
    ]  # fmt: skip
    for f, at, grad, name in checks:
        assert_directional_derivatives(f, at, grad, dy, rng, f"batch_norm d{name} {case}")


@given(case=array_cases())
def test_moments_gradient_fd(backend, case):
    """<dmean, mean(x)> + <dvariance, variance(x)>: both outputs' gradients at once."""
    rng = np.random.default_rng(case.seed)
    rows, C = int(np.prod(case.shape[:-1])), case.shape[-1]
    x, dmean, dvariance = f64(rng, (rows, C), -2, 3), f64(rng, C), f64(rng, C)
    mean, _ = call64(backend, "moments_forward", x)
    dx = call64(backend, "moments_backward", dmean, dvariance, x, mean)
    forward = miniconv.get_backend(backend).moments_forward
    assert_directional_derivatives(lambda a: np.concatenate(forward(a)), x, dx, np.concatenate([dmean, dvariance]), rng,
                                   f"moments {case}")  # fmt: skip


@given(case=array_cases())
def test_relu6_gradient_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x = rng.choice([-1.0, 1.0, 1.0, 7.0], case.shape) * f64(rng, case.shape, 0.1, 0.9) + rng.choice([0.0, 5.0], case.shape)
    dy = f64(rng, case.shape)  # x stays >= 0.1 away from the kinks at 0 and 6
    dx = call64(backend, "relu6_backward", dy, call64(backend, "relu6_forward", x))
    assert_directional_derivatives(miniconv.get_backend(backend).relu6_forward, x, dx, dy, rng, f"relu6 {case}")
