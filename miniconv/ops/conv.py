"""Convolutions: conv2d and conv1d (conv2d with H = R = 1), forward and backward.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

    y[n,p,q,k] = sum_{r,s,c} x[n, p*sh + r*dh - top, q*sw + s*dw - left, c] * w[r,s,c,k]

with x read as 0 outside the input (SAME padding, extra pad on the bottom / right; or explicit
padding [[0, 0], [top, bottom], [left, right], [0, 0]], which conv2d accepts as TensorFlow's does
and conv1d, as TensorFlow's, does not). Matches ``tf.nn.conv2d`` / ``tf.nn.conv1d`` (channels last,
filters HWIO / WIO).
"""

from __future__ import annotations

from ..backend import get_backend
from ..shapes import conv_geometry, normalize_conv_padding, normalize_padding, normalize_tuple, pool_geometry
from ._checks import as_float_array, check_data_format, check_nonempty, check_upstream
from ._vjp import has_vjp


def _conv_vjp(x, w, strides, padding, dilations, backend, op, bias=None):
    """The shared body: checked 4-D arrays in, ``(y, pullback)`` out.

    With ``bias`` (checked, shape (K,)) the op is max(conv2d + bias, 0), fused, and the
    pullback returns (dx, dw, dbias).
    """
    check_nonempty(x, "input", op)
    check_nonempty(w, "filters", op)
    names = ("stride", 1) if op == "conv1d" else ("strides", 2)
    g = conv_geometry(x.shape, w.shape, strides, normalize_conv_padding(padding, op), dilations, op, *names)
    be = get_backend(backend)
    y = be.conv2d_forward(x, w, g) if bias is None else be.conv2d_bias_relu_forward(x, w, bias, g)

    def pullback(dy, input_gradient=True):
        dy = check_upstream(dy, g.output_shape, op)
        if bias is not None:
            return be.conv2d_bias_relu_backward(x, w, y, dy, g, input_gradient)
        return be.conv2d_backward(x, w, dy, g, input_gradient)

    return y, pullback


def conv2d_vjp(input, filters, strides=1, padding="VALID", dilations=1, *, backend=None, data_format=None, name=None):
    """``conv2d`` and its pullback ``dy (N, P, Q, K) -> (dx (N, H, W, C), dw (R, S, C, K))``.

    ``pullback(dy, input_gradient=False)`` skips dx (returns None for it): a network's first
    layer needs only its filter gradient.
    """
    op = "conv2d"
    check_data_format(data_format, "NHWC", op)
    x = as_float_array(input, "input", op, rank=4, layout="(N, H, W, C)")
    w = as_float_array(filters, "filters", op, rank=4, layout="(R, S, C, K)")
    strides = normalize_tuple(strides, 2, "strides", allow_nc=True)
    dilations = normalize_tuple(1 if dilations is None else dilations, 2, "dilations", allow_nc=True)
    return _conv_vjp(x, w, strides, padding, dilations, backend, op)


@has_vjp(conv2d_vjp)
def conv2d(input, filters, strides=1, padding="VALID", dilations=1, *, backend=None, data_format=None, name=None):
    """2-D convolution (cross-correlation, as every deep-learning library computes it).

    input (N, H, W, C), filters (R, S, C, K) -> (N, P, Q, K), float32.
    strides, dilations: an int, a pair, or TensorFlow's ``[1, sh, sw, 1]``.
    padding: "VALID" (P = ceil((H - (R-1)*dh) / sh)), "SAME" (P = ceil(H / sh), zeros padded,
    the odd extra at the bottom / right), or explicit [[0, 0], [top, bottom], [left, right], [0, 0]]
    (P = (H + top + bottom - (R-1)*dh - 1) // sh + 1). Dilation > 1 needs stride 1, as in
    TensorFlow's convolution layers. Matches ``tf.nn.conv2d``.
    """
    return conv2d_vjp(input, filters, strides, padding, dilations, backend=backend, data_format=data_format)[0]


def conv2d_bias_relu_vjp(input, filters, bias, strides=1, padding="VALID", dilations=1, *, backend=None):
    """``conv2d_bias_relu`` and its pullback ``dz -> (dx, dw, dbias)``; ``input_gradient=False`` as conv2d's."""
    op = "conv2d_bias_relu"
    x, w, b, strides, dilations = _check_bias_conv_arguments(input, filters, bias, strides, dilations, op)
    return _conv_vjp(x, w, strides, padding, dilations, backend, op, bias=b)


def _check_bias_conv_arguments(input, filters, bias, strides, dilations, op):
    x = as_float_array(input, "input", op, rank=4, layout="(N, H, W, C)")
    w = as_float_array(filters, "filters", op, rank=4, layout="(R, S, C, K)")
    b = as_float_array(bias, "bias", op, rank=1, layout="(K,)")
    if b.shape[0] != w.shape[3]:
        raise ValueError(f"{op}: bias must have shape ({w.shape[3]},), one value per filter of filters {w.shape}, got {b.shape}")
    strides = normalize_tuple(strides, 2, "strides", allow_nc=True)
    dilations = normalize_tuple(1 if dilations is None else dilations, 2, "dilations", allow_nc=True)
    return x, w, b, strides, dilations


@has_vjp(conv2d_bias_relu_vjp)
def conv2d_bias_relu(input, filters, bias, strides=1, padding="VALID", dilations=1, *, backend=None):
    """z = max(conv2d(input, filters) + bias, 0), fused: what a Conv2D layer with ``activation="relu"`` computes.

    input (N, H, W, C), filters (R, S, C, K), bias (K,) -> (N, P, Q, K); strides, padding and
    dilations as ``conv2d``. The same numbers as
    ``tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(input, filters, strides, padding, dilations=dilations), bias))``;
    the cpu backend adds the bias and applies ReLU to each block of output rows while it is still
    in cache, and forms the ReLU gradient block by block inside the filter-gradient pass.
    """
    return conv2d_bias_relu_vjp(input, filters, bias, strides, padding, dilations, backend=backend)[0]


ACTIVATIONS = (None, "relu6")  # what conv2d_bias / depthwise_conv2d_bias apply after the bias


def check_activation(activation, op):
    """None or the str "relu6" itself (not ``in ACTIVATIONS``: an array would compare element-wise, a
    one-element array of "relu6" would pass and reach the kernels)."""
    if not (activation is None or (isinstance(activation, str) and activation == "relu6")):
        raise ValueError(f"{op}: activation must be None or 'relu6', got {activation!r}")
    return activation


def conv2d_bias_vjp(input, filters, bias, strides=1, padding="VALID", dilations=1, *, activation=None, backend=None):
    """``conv2d_bias`` and its pullback ``dz -> (dx, dw, dbias)``; ``input_gradient=False`` as conv2d's."""
    op = "conv2d_bias"
    check_activation(activation, op)
    x, w, b, strides, dilations = _check_bias_conv_arguments(input, filters, bias, strides, dilations, op)
    check_nonempty(x, "input", op)
    check_nonempty(w, "filters", op)
    g = conv_geometry(x.shape, w.shape, strides, normalize_conv_padding(padding, op), dilations, op)
    be = get_backend(backend)
    z = be.conv2d_bias_forward(x, w, b, g, activation)

    def pullback(dz, input_gradient=True):
        dz = check_upstream(dz, g.output_shape, op)
        return be.conv2d_bias_backward(x, w, z, dz, g, activation, input_gradient)

    return z, pullback


@has_vjp(conv2d_bias_vjp)
def conv2d_bias(input, filters, bias, strides=1, padding="VALID", dilations=1, *, activation=None, backend=None):
    """z = conv2d(input, filters) + bias, then ReLU6 with ``activation="relu6"``, fused: a convolution with a
    batch normalization folded into its filters and bias (and the ReLU6 after it: MobileNet's and
    EfficientNet-Lite's conv -> BN -> ReLU6).

    input (N, H, W, C), filters (R, S, C, K), bias (K,) -> (N, P, Q, K); strides, padding and
    dilations as ``conv2d``; activation None or "relu6". The same numbers as
    ``tf.nn.relu6(tf.nn.bias_add(tf.nn.conv2d(input, filters, strides, padding, dilations=dilations), bias))``
    (without the relu6 for None); the cpu backend adds the bias and applies ReLU6 to each block of
    output rows while it is still in cache, instead of two more passes over the output.
    """
    return conv2d_bias_vjp(input, filters, bias, strides, padding, dilations, activation=activation,
                           backend=backend)[0]


def conv2d_bias_relu_max_pool2d_vjp(input, filters, bias, pool_size, strides=1, padding="VALID", dilations=1, *,
                                    backend=None):
    """``conv2d_bias_relu_max_pool2d`` and its pullback ``dy -> (dx, dw, dbias)``; ``input_gradient=False`` as conv2d's."""
    op = "conv2d_bias_relu_max_pool2d"
    x, w, b, strides, dilations = _check_bias_conv_arguments(input, filters, bias, strides, dilations, op)
    window = normalize_tuple(pool_size, 2, "pool_size")
    check_nonempty(x, "input", op)
    check_nonempty(w, "filters", op)
    g = conv_geometry(x.shape, w.shape, strides, normalize_conv_padding(padding, op), dilations, op)
    pg = pool_geometry(g.output_shape, window, window, "VALID", op, "pool_size", "output of the convolution of input")
    be = get_backend(backend)
    y, argmax = be.conv2d_bias_relu_max_pool_forward(x, w, b, g, pg)

    def pullback(dy, input_gradient=True):
        dy = check_upstream(dy, pg.output_shape, op)
        return be.conv2d_bias_relu_max_pool_backward(x, w, y, argmax, dy, g, pg, input_gradient)

    return y, pullback


@has_vjp(conv2d_bias_relu_max_pool2d_vjp)
def conv2d_bias_relu_max_pool2d(input, filters, bias, pool_size, strides=1, padding="VALID", dilations=1, *,
                                backend=None):
    """y = max_pool2d(max(conv2d(input, filters) + bias, 0), pool_size), fused: a Conv2D(relu) layer
    followed by a MaxPooling2D whose strides are its pool size, with VALID padding (Keras's default).

    input (N, H, W, C), filters (R, S, C, K), bias (K,), pool_size an int or a pair (Rp, Sp)
    -> (N, P // Rp, Q // Sp, K) with (P, Q) the convolution's output size; strides, padding and
    dilations as ``conv2d``. The same numbers as
    ``tf.nn.max_pool2d(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(...), bias)), pool_size, pool_size, "VALID")``,
    ties to the first maximum in scan order. The cpu backend pools each chunk of convolution rows
    while it is in cache, so the convolution's output is never written out whole, and (without
    dx) forms the convolution's gradient chunk by chunk inside the filter-gradient pass.
    """
    return conv2d_bias_relu_max_pool2d_vjp(input, filters, bias, pool_size, strides, padding, dilations,
                                           backend=backend)[0]


def conv1d_vjp(input, filters, stride=1, padding="VALID", dilations=1, *, backend=None, data_format=None, name=None):
    """``conv1d`` and its pullback ``dy (N, Q, K) -> (dx (N, W, C), dw (S, C, K))``; as conv2d_vjp."""
    op = "conv1d"
    check_data_format(data_format, "NWC", op)
    x = as_float_array(input, "input", op, rank=3, layout="(N, W, C)")
    w = as_float_array(filters, "filters", op, rank=3, layout="(S, C, K)")
    (s,) = normalize_tuple(stride, 1, "stride", allow_nc=True)
    (d,) = normalize_tuple(1 if dilations is None else dilations, 1, "dilations", allow_nc=True)
    if x.shape[2] != w.shape[1]:
        raise ValueError(
            f"{op}: filters expect {w.shape[1]} input channels but the input has {x.shape[2]} "
            f"(input shape {x.shape}, filters shape {w.shape})"
        )
    padding = normalize_padding(padding)  # a string: tf.nn.conv1d takes no explicit padding
    # (N, W, C) as (N, 1, W, C), filters (S, C, K) as (1, S, C, K): reshapes, which GPU arrays take too
    y, pullback2d = _conv_vjp(x.reshape(x.shape[0], 1, *x.shape[1:]), w.reshape(1, *w.shape), (1, s), padding, (1, d),
                              backend, op)
    N, _, Q, K = y.shape

    def pullback(dy, input_gradient=True):
        dy = check_upstream(dy, (N, Q, K), op)
        dx, dw = pullback2d(dy.reshape(N, 1, Q, K), input_gradient)
        return (dx.reshape(x.shape) if input_gradient else None), dw.reshape(w.shape)

    return y.reshape(N, Q, K), pullback


@has_vjp(conv1d_vjp)
def conv1d(input, filters, stride=1, padding="VALID", dilations=1, *, backend=None, data_format=None, name=None):
    """1-D convolution: input (N, W, C), filters (S, C, K) -> (N, Q, K). Matches ``tf.nn.conv1d``.

    Computed as ``conv2d`` with a height of 1; stride and dilations as there, padding "VALID" or
    "SAME" only (``tf.nn.conv1d`` refuses explicit padding too).
    """
    return conv1d_vjp(input, filters, stride, padding, dilations, backend=backend, data_format=data_format)[0]
