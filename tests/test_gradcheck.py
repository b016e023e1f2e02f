"""Finite-difference gradient checks in float64, independent of TensorFlow.

The public ops compute in float32, too coarse for finite differences, so these call the backend
methods directly with float64 arrays and the geometry records of ``miniconv.shapes``. For a
random upstream gradient dy and random directions v, the backward kernel's gradient g must give

    <g, v>  ==  (<dy, f(x + h v)> - <dy, f(x - h v)>) / (2 h)        (central difference)

within 1e-6 * |g| * |v| + 16 * eps64 * sum|dy * f(x)| / h. The first term is the Cauchy-Schwarz
scale (a wrong gradient errs by about that much; the difference quotient is exact for the linear
ops and off by O(h^2) ~ 1e-12 for the smooth ones), the second the rounding of the two
evaluations of <dy, f>, amplified by 1 / 2h (it dominates only where the gradient is tiny).
Max pooling uses tie-free inputs whose gaps (>= 1e-3) dwarf h |v|; relu stays 0.1 away from 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from strategies import array_cases, conv_cases, pool_cases, tie_free

import miniconv
from miniconv.shapes import conv_geometry, pool_geometry

H_STEP = 1e-6
RTOL = 1e-6
DIRECTIONS = 3
EPS64 = float(np.finfo(np.float64).eps)


def call64(backend: str, method: str, *args):
    """Run ``backend.method`` on float64 arrays; skip (saying why) if the backend is float32-only."""
    fn = getattr(miniconv.get_backend(backend), method)
    try:
        out = fn(*args)
    except Exception as error:  # a Numba typing error or a kernel hard-wired to float32
        if type(error).__module__.startswith("numba") or isinstance(error, TypeError):
            pytest.skip(f"{backend} backend: {method} does not run on float64 ({type(error).__name__}: {error})")
        raise
    first = out[0] if isinstance(out, tuple) else out
    if first.dtype != np.float64:
        pytest.skip(
            f"{backend} backend: {method} returns {first.dtype} for float64 input, too coarse for finite differences"
        )
    return out


def assert_directional_derivatives(f, x, grad, dy, rng, what: str) -> None:
    """<grad, v> equals the central difference of <dy, f> along random directions v."""
    for _ in range(DIRECTIONS):
        v = rng.standard_normal(x.shape)
        plus, minus = f(x + H_STEP * v), f(x - H_STEP * v)
        numeric = (np.vdot(dy, plus) - np.vdot(dy, minus)) / (2 * H_STEP)
        analytic = np.vdot(grad, v)
        scale = np.linalg.norm(grad) * np.linalg.norm(v)
        rounding = 16 * EPS64 * np.sum(np.abs(dy * f(x))) / H_STEP
        assert abs(numeric - analytic) <= RTOL * scale + rounding, (
            f"{what}: <grad, v> = {analytic!r}, finite difference {numeric!r} (scale {scale:.3g}, rounding {rounding:.3g})"
        )


def f64(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape)


@given(case=conv_cases(dims=2))
def test_conv2d_gradients_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x, w = f64(rng, (case.N, case.H, case.W, case.C)), f64(rng, (case.R, case.S, case.C, case.K))
    g = conv_geometry(x.shape, w.shape, case.strides, case.padding, case.dilations)
    dy = f64(rng, g.output_shape)
    assert call64(backend, "conv2d_forward", x, w, g).shape == g.output_shape
    dx = call64(backend, "conv2d_backward_input", dy, w, g)
    dw = call64(backend, "conv2d_backward_filter", x, dy, g)
    forward = miniconv.get_backend(backend).conv2d_forward
    assert_directional_derivatives(lambda x_: forward(x_, w, g), x, dx, dy, rng, f"conv2d input gradient {case}")
    assert_directional_derivatives(lambda w_: forward(x, w_, g), w, dw, dy, rng, f"conv2d filter gradient {case}")


@given(case=pool_cases("AVG", 2))
def test_avg_pool2d_gradient_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x = f64(rng, case.input_shape)
    g = pool_geometry(x.shape, (case.R, case.S), case.strides, case.padding)
    dy = f64(rng, g.output_shape)
    call64(backend, "avg_pool2d_forward", x, g)
    dx = call64(backend, "avg_pool2d_backward", dy, g)
    forward = miniconv.get_backend(backend).avg_pool2d_forward
    assert_directional_derivatives(lambda x_: forward(x_, g), x, dx, dy, rng, f"avg_pool2d {case}")


@given(case=pool_cases("MAX", 2))
def test_max_pool2d_gradient_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x = tie_free(rng, case.input_shape).astype(np.float64)
    g = pool_geometry(x.shape, (case.R, case.S), case.strides, case.padding)
    dy = f64(rng, g.output_shape)
    _, argmax = call64(backend, "max_pool2d_forward", x, g)
    dx = call64(backend, "max_pool2d_backward", dy, argmax, g)
    forward = miniconv.get_backend(backend).max_pool2d_forward
    assert_directional_derivatives(lambda x_: forward(x_, g)[0], x, dx, dy, rng, f"max_pool2d {case}")


@given(case=array_cases())
def test_relu_gradient_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x = f64(rng, case.shape, 0.1, 1.0) * rng.choice([-1.0, 1.0], case.shape)  # away from the kink
    dy = f64(rng, case.shape)
    dx = call64(backend, "relu_backward", dy, call64(backend, "relu_forward", x))
    forward = miniconv.get_backend(backend).relu_forward
    assert_directional_derivatives(forward, x, dx, dy, rng, f"relu {case}")


@given(case=array_cases())
def test_sigmoid_gradient_fd(backend, case):
    rng = np.random.default_rng(case.seed)
    x, dy = f64(rng, case.shape, -6.0, 6.0), f64(rng, case.shape)
    dx = call64(backend, "sigmoid_backward", dy, call64(backend, "sigmoid_forward", x))
    forward = miniconv.get_backend(backend).sigmoid_forward
    assert_directional_derivatives(forward, x, dx, dy, rng, f"sigmoid {case}")


@given(case=array_cases())
def test_softmax_gradient_fd(backend, case):
    """The backend's softmax works on (M, L) rows; the ops layer moves the axis."""
    rng = np.random.default_rng(case.seed)
    rows = (int(np.prod(case.shape[:-1])), case.shape[-1])
    x, dy = f64(rng, rows, -4.0, 4.0), f64(rng, rows)
    dx = call64(backend, "softmax_backward", dy, call64(backend, "softmax_forward", x))
    forward = miniconv.get_backend(backend).softmax_forward
    assert_directional_derivatives(forward, x, dx, dy, rng, f"softmax {case}")


@pytest.mark.parametrize("M, I, O", [(1, 1, 1), (4, 5, 3), (7, 2, 6)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_gradients_fd(backend, M, I, O, with_bias):
    rng = np.random.default_rng(M * 100 + I * 10 + O)
    x, kernel, bias = f64(rng, (M, I)), f64(rng, (I, O)), f64(rng, (O,)) if with_bias else None
    dy = f64(rng, (M, O))
    call64(backend, "dense_forward", x, kernel, bias)
    dx, dkernel, dbias = call64(backend, "dense_backward", dy, x, kernel, with_bias)
    forward = miniconv.get_backend(backend).dense_forward
    assert_directional_derivatives(lambda x_: forward(x_, kernel, bias), x, dx, dy, rng, "dense x")
    assert_directional_derivatives(lambda k_: forward(x, k_, bias), kernel, dkernel, dy, rng, "dense kernel")
    if with_bias:
        assert_directional_derivatives(lambda b_: forward(x, kernel, b_), bias, dbias, dy, rng, "dense bias")
    else:
        assert dbias is None
