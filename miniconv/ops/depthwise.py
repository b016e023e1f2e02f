"""Depthwise and separable convolutions: depthwise_conv2d and separable_conv2d, forward and backward.

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K filters of the
pointwise (1 x 1) convolution, R S kernel size, P Q output size.

    depthwise_conv2d  y[n,p,q,c*M + m] = sum_{r,s} x[n, p*sh + r*dh - top, q*sw + s*dw - left, c] * w[r,s,c,m]
    separable_conv2d  z = conv2d(depthwise_conv2d(x, depthwise_filter), pointwise_filter), the latter
                      (1, 1, C*M, K), stride 1, VALID

with x read as 0 outside the input: SAME, or explicit [[0, 0], [top, bottom], [left, right], [0, 0]]
as ``tf.nn.conv2d`` takes it. Output channel c * M + m is input channel c under filter (c, m),
TensorFlow's order. Strides must be equal along rows and columns and dilation > 1 needs stride 1
(TensorFlow's rules). Matches ``tf.nn.depthwise_conv2d`` / ``tf.nn.separable_conv2d``.
"""

from __future__ import annotations

from ..backend import get_backend
from ..shapes import conv_geometry, depthwise_geometry, normalize_conv_padding, normalize_tuple
from ._checks import as_float_array, check_data_format, check_nonempty, check_upstream
from ._vjp import has_vjp
from .conv import check_activation


def _depthwise(x, w, strides, padding, dilations, op, filter_name):
    """The checked geometry of a depthwise convolution of x (N, H, W, C) by w (R, S, C, M)."""
    check_nonempty(x, "input", op)
    check_nonempty(w, filter_name, op)
    strides = normalize_tuple(strides, 2, "strides", allow_nc=True)
    dilations = normalize_tuple(1 if dilations is None else dilations, 2, "dilations", allow_nc=True)
    return depthwise_geometry(x.shape, w.shape, strides, normalize_conv_padding(padding, op), dilations, op,
                              filter_name)


def depthwise_conv2d_vjp(input, filter, strides, padding, dilations=None, *, backend=None, data_format=None,
                         name=None):
    """``depthwise_conv2d`` and its pullback ``dy (N, P, Q, C*M) -> (dx (N, H, W, C), dw (R, S, C, M))``.

    ``pullback(dy, input_gradient=False)`` skips dx (returns None for it), as conv2d's.
    """
    op = "depthwise_conv2d"
    check_data_format(data_format, "NHWC", op)
    x = as_float_array(input, "input", op, rank=4, layout="(N, H, W, C)")
    w = as_float_array(filter, "filter", op, rank=4, layout="(R, S, C, M)")
    g = _depthwise(x, w, strides, padding, dilations, op, "filter")
    be = get_backend(backend)
    y = be.depthwise_conv2d_forward(x, w, g)

    def pullback(dy, input_gradient=True):
        dy = check_upstream(dy, g.output_shape, op)
        return be.depthwise_conv2d_backward(x, w, dy, g, input_gradient)

    return y, pullback


@has_vjp(depthwise_conv2d_vjp)
def depthwise_conv2d(input, filter, strides, padding, dilations=None, *, backend=None, data_format=None, name=None):
    """Depthwise 2-D convolution: each input channel convolved with its own M filters.

    input (N, H, W, C), filter (R, S, C, M) -> (N, P, Q, C * M), float32; output channel c * M + m
    is channel c under filter[:, :, c, m]. strides: TensorFlow's ``[1, s, s, 1]`` (or an int, or
    a pair of equal ints); dilations: an int or a pair (TF's ``dilations=[d, d]``), > 1 only with
    stride 1. padding: "VALID", "SAME" or explicit ``[[0, 0], [top, bottom], [left, right], [0, 0]]``,
    output sizes as ``conv2d``. Matches ``tf.nn.depthwise_conv2d``.
    """
    return depthwise_conv2d_vjp(input, filter, strides, padding, dilations, backend=backend,
                                data_format=data_format)[0]


def depthwise_conv2d_bias_vjp(input, filter, bias, strides, padding, dilations=None, *, activation=None, backend=None):
    """``depthwise_conv2d_bias`` and its pullback ``dz -> (dx, dw, dbias)``; ``input_gradient=False`` as conv2d's."""
    op = "depthwise_conv2d_bias"
    check_activation(activation, op)
    x = as_float_array(input, "input", op, rank=4, layout="(N, H, W, C)")
    w = as_float_array(filter, "filter", op, rank=4, layout="(R, S, C, M)")
    b = as_float_array(bias, "bias", op, rank=1, layout="(C * M,)")
    g = _depthwise(x, w, strides, padding, dilations, op, "filter")
    if b.shape[0] != g.K:
        raise ValueError(f"{op}: bias must have shape ({g.K},), one value per output channel (C * M = {g.C} * {g.M} "
                         f"for filter {w.shape}), got {b.shape}")
    be = get_backend(backend)
    z = be.depthwise_conv2d_bias_forward(x, w, b, g, activation)

    def pullback(dz, input_gradient=True):
        dz = check_upstream(dz, g.output_shape, op)
        return be.depthwise_conv2d_bias_backward(x, w, z, dz, g, activation, input_gradient)

    return z, pullback


@has_vjp(depthwise_conv2d_bias_vjp)
def depthwise_conv2d_bias(input, filter, bias, strides, padding, dilations=None, *, activation=None, backend=None):
    """z = depthwise_conv2d(input, filter) + bias, then ReLU6 with ``activation="relu6"``, fused: a depthwise
    convolution with a batch normalization folded in (and the ReLU6 after it).

    input (N, H, W, C), filter (R, S, C, M), bias (C * M,) -> (N, P, Q, C * M); strides, padding and
    dilations as ``depthwise_conv2d``; activation None or "relu6". The same numbers as
    ``tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(input, filter, strides, padding, dilations=dilations),
    bias))`` (without the relu6 for None); the cpu backend applies bias and ReLU6 to each chunk of
    output rows as it is computed.
    """
    return depthwise_conv2d_bias_vjp(input, filter, bias, strides, padding, dilations, activation=activation,
                                     backend=backend)[0]


def separable_conv2d_vjp(input, depthwise_filter, pointwise_filter, strides, padding, dilations=None, *,
                         backend=None, data_format=None, name=None):
    """``separable_conv2d`` and its pullback ``dz (N, P, Q, K) -> (dx, d depthwise_filter, d pointwise_filter)``.

    ``pullback(dz, input_gradient=False)`` skips dx (returns None for it).
    """
    op = "separable_conv2d"
    check_data_format(data_format, "NHWC", op)
    x = as_float_array(input, "input", op, rank=4, layout="(N, H, W, C)")
    dw = as_float_array(depthwise_filter, "depthwise_filter", op, rank=4, layout="(R, S, C, M)")
    pw = as_float_array(pointwise_filter, "pointwise_filter", op, rank=4, layout="(1, 1, C * M, K)")
    g = _depthwise(x, dw, strides, padding, dilations, op, "depthwise_filter")
    check_nonempty(pw, "pointwise_filter", op)
    if pw.shape[:2] != (1, 1):
        raise ValueError(f"{op}: pointwise_filter must be 1 x 1, shape (1, 1, C * M, K), got {pw.shape}")
    if pw.shape[2] != g.K:
        raise ValueError(
            f"{op}: pointwise_filter expects {pw.shape[2]} input channels but the depthwise convolution gives "
            f"C * M = {g.C} * {g.M} = {g.K} (input channels times the channel multiplier of depthwise_filter "
            f"{dw.shape})"
        )
    pg = conv_geometry(g.output_shape, pw.shape, (1, 1), "VALID", (1, 1), op)
    be = get_backend(backend)
    y = be.depthwise_conv2d_forward(x, dw, g)  # (N, P, Q, C*M)
    z = be.conv2d_forward(y, pw, pg)  # (N, P, Q, K)

    def pullback(dz, input_gradient=True):
        dz = check_upstream(dz, pg.output_shape, op)
        dy, dpw = be.conv2d_backward(y, pw, dz, pg)
        dx, ddw = be.depthwise_conv2d_backward(x, dw, dy, g, input_gradient)
        return dx, ddw, dpw

    return z, pullback


@has_vjp(separable_conv2d_vjp)
def separable_conv2d(input, depthwise_filter, pointwise_filter, strides, padding, dilations=None, *, backend=None,
                     data_format=None, name=None):
    """Depthwise convolution, then a 1 x 1 convolution mixing its channels.

    input (N, H, W, C), depthwise_filter (R, S, C, M), pointwise_filter (1, 1, C * M, K)
    -> (N, P, Q, K): ``conv2d(depthwise_conv2d(input, depthwise_filter, strides, padding, dilations),
    pointwise_filter, 1, "VALID")``; strides, padding and dilations as ``depthwise_conv2d``.
    Matches ``tf.nn.separable_conv2d``.
    """
    return separable_conv2d_vjp(input, depthwise_filter, pointwise_filter, strides, padding, dilations,
                                backend=backend, data_format=data_format)[0]
