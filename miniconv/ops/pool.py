"""Pooling: max and average, 1-D and 2-D, ``tf.nn.pool``, and global pooling.

Shape legend: N batch, H W input size, C channels, R S window size, P Q output size.

    max: y[n,p,q,c] = max over the window's valid cells of x[n, p*sh + r - top, q*sw + s - left, c]
    avg: y[n,p,q,c] = (sum over the window's valid cells) / (number of valid cells)

Padded cells never count: SAME max pooling ignores them, SAME average pooling divides by the
number of valid cells (TensorFlow's rule, not the window size). The max-pool gradient goes to
the first maximum of its window in row-major scan order, as TensorFlow's does; NaN never wins a
max window (TensorFlow compares with ``>``), and an all-NaN window gives the lowest float32.
1-D pooling is 2-D pooling with H = R = 1; global pooling is pooling with the whole input as
the window. Matches ``tf.nn.max_pool1d/2d``, ``tf.nn.avg_pool1d/2d``, ``tf.nn.pool`` and Keras's
``GlobalAveragePooling1D/2D``. Global max pooling matches Keras's ``GlobalMaxPooling1D/2D``
(``tf.reduce_max``) on finite inputs without ties; because it is max pooling, it keeps max
pooling's rules where ``reduce_max`` differs: NaN is ignored (reduce_max: NaN), an all -inf
input gives the lowest float32 (reduce_max: -inf), and a tie's gradient goes to the first
maximum (reduce_max: split evenly).
"""

from __future__ import annotations

from ..backend import get_backend
from ..shapes import normalize_padding, normalize_tuple, pool_geometry
from ._checks import as_float_array, check_data_format, check_nonempty, check_upstream
from ._vjp import has_vjp

POOLING_TYPES = ("MAX", "AVG")


def _pool2d_vjp(x, pooling_type, ksize, strides, padding, backend, op, window_name="ksize"):
    """The shared body: a checked (N, H, W, C) array in, ``(y, pullback)`` out."""
    check_nonempty(x, "input", op)
    g = pool_geometry(x.shape, ksize, strides, normalize_padding(padding), op, window_name)
    be = get_backend(backend)
    if pooling_type == "MAX":
        y, argmax = be.max_pool2d_forward(x, g)

        def pullback(dy):
            return (be.max_pool2d_backward(check_upstream(dy, g.output_shape, op), argmax, g),)

    else:
        y = be.avg_pool2d_forward(x, g)

        def pullback(dy):
            return (be.avg_pool2d_backward(check_upstream(dy, g.output_shape, op), g),)

    return y, pullback


def _pool_nd_vjp(input, pooling_type, ksize, strides, padding, backend, op, spatial_dims, window_name="ksize"):
    """1-D or 2-D pooling: lift 1-D to 2-D with H = R = 1 and back. ``window_name``: the argument
    ``ksize`` holds, for messages (``pool`` calls it window_shape)."""
    layout = "(N, W, C)" if spatial_dims == 1 else "(N, H, W, C)"
    x = as_float_array(input, "input", op, rank=spatial_dims + 2, layout=layout)
    named = window_name == "ksize"  # max_pool2d & co. take TF's [1, ..., 1] and [s]; tf.nn.pool neither
    ksize = normalize_tuple(ksize, spatial_dims, window_name, allow_nc=named)
    strides = normalize_tuple(strides, spatial_dims, "strides", allow_nc=named, allow_one=named)
    if spatial_dims == 2:
        return _pool2d_vjp(x, pooling_type, ksize, strides, padding, backend, op, window_name)
    y, pullback2d = _pool2d_vjp(x.reshape(x.shape[0], 1, *x.shape[1:]), pooling_type, (1, *ksize), (1, *strides),
                                padding, backend, op, window_name)

    def pullback(dy):
        dy = check_upstream(dy, (y.shape[0], y.shape[2], y.shape[3]), op)
        return (pullback2d(dy.reshape(dy.shape[0], 1, *dy.shape[1:]))[0].reshape(x.shape),)

    return y.reshape(y.shape[0], *y.shape[2:]), pullback


def max_pool2d_vjp(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """``max_pool2d`` and its pullback ``dy (N, P, Q, C) -> (dx (N, H, W, C),)``."""
    check_data_format(data_format, "NHWC", "max_pool2d")
    return _pool_nd_vjp(input, "MAX", ksize, strides, padding, backend, "max_pool2d", 2)


@has_vjp(max_pool2d_vjp)
def max_pool2d(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """Max pooling: (N, H, W, C) -> (N, P, Q, C). ksize, strides: int, pair or [1, r, s, 1].

    Matches ``tf.nn.max_pool2d``."""
    return max_pool2d_vjp(input, ksize, strides, padding, backend=backend, data_format=data_format)[0]


def avg_pool2d_vjp(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """``avg_pool2d`` and its pullback ``dy (N, P, Q, C) -> (dx (N, H, W, C),)``."""
    check_data_format(data_format, "NHWC", "avg_pool2d")
    return _pool_nd_vjp(input, "AVG", ksize, strides, padding, backend, "avg_pool2d", 2)


@has_vjp(avg_pool2d_vjp)
def avg_pool2d(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """Average pooling over valid cells: (N, H, W, C) -> (N, P, Q, C). Matches ``tf.nn.avg_pool2d``."""
    return avg_pool2d_vjp(input, ksize, strides, padding, backend=backend, data_format=data_format)[0]


def max_pool1d_vjp(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """``max_pool1d`` and its pullback ``dy (N, Q, C) -> (dx (N, W, C),)``."""
    check_data_format(data_format, "NWC", "max_pool1d")
    return _pool_nd_vjp(input, "MAX", ksize, strides, padding, backend, "max_pool1d", 1)


@has_vjp(max_pool1d_vjp)
def max_pool1d(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """Max pooling: (N, W, C) -> (N, Q, C). Matches ``tf.nn.max_pool1d``."""
    return max_pool1d_vjp(input, ksize, strides, padding, backend=backend, data_format=data_format)[0]


def avg_pool1d_vjp(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """``avg_pool1d`` and its pullback ``dy (N, Q, C) -> (dx (N, W, C),)``."""
    check_data_format(data_format, "NWC", "avg_pool1d")
    return _pool_nd_vjp(input, "AVG", ksize, strides, padding, backend, "avg_pool1d", 1)


@has_vjp(avg_pool1d_vjp)
def avg_pool1d(input, ksize, strides, padding, *, backend=None, data_format=None, name=None):
    """Average pooling over valid cells: (N, W, C) -> (N, Q, C). Matches ``tf.nn.avg_pool1d``."""
    return avg_pool1d_vjp(input, ksize, strides, padding, backend=backend, data_format=data_format)[0]


def pool_vjp(input, window_shape, pooling_type, strides=None, padding="VALID", *, backend=None, data_format=None, name=None):
    """``pool`` and its pullback ``dy -> (dx,)``."""
    op = "pool"
    if not isinstance(pooling_type, str) or pooling_type.upper() not in POOLING_TYPES:
        raise ValueError(f"pool: pooling_type must be 'MAX' or 'AVG', got {pooling_type!r}")
    try:
        spatial_dims = len(window_shape)
    except TypeError:
        raise TypeError(f"pool: window_shape must be a sequence of 1 or 2 ints, got {window_shape!r}") from None
    if spatial_dims not in (1, 2):
        raise ValueError(f"pool: window_shape must have 1 or 2 entries (1-D or 2-D pooling), got {list(window_shape)!r}")
    check_data_format(data_format, "NWC" if spatial_dims == 1 else "NHWC", op)
    strides = 1 if strides is None else strides
    return _pool_nd_vjp(input, pooling_type.upper(), window_shape, strides, padding, backend, op, spatial_dims,
                        "window_shape")


@has_vjp(pool_vjp)
def pool(input, window_shape, pooling_type, strides=None, padding="VALID", *, backend=None, data_format=None, name=None):
    """N-D pooling as ``tf.nn.pool``: window_shape of length 1 (input (N, W, C)) or 2 ((N, H, W, C)).

    pooling_type "MAX" or "AVG" (any letter case); strides a sequence of one int per spatial axis,
    default 1 on every axis, or (unlike ``tf.nn.pool``, as ``max_pool2d``) one int for every axis.
    """
    return pool_vjp(input, window_shape, pooling_type, strides, padding, backend=backend, data_format=data_format)[0]


def _global_pool_vjp(input, pooling_type, spatial_dims, backend, op):
    """Pool with the whole spatial extent as one VALID window, then drop the spatial axes."""
    layout = "(N, W, C)" if spatial_dims == 1 else "(N, H, W, C)"
    x = as_float_array(input, "input", op, rank=spatial_dims + 2, layout=layout)
    check_nonempty(x, "input", op)
    x4 = x.reshape(x.shape[0], 1, *x.shape[1:]) if spatial_dims == 1 else x
    window = x4.shape[1:3]
    y, pullback2d = _pool2d_vjp(x4, pooling_type, window, (1, 1), "VALID", backend, op)
    N, C = x.shape[0], tuple(x.shape)[-1]

    def pullback(dy):
        dy = check_upstream(dy, (N, C), op)
        dx = pullback2d(dy.reshape(N, 1, 1, C))[0]
        return (dx.reshape(x.shape),)

    return y.reshape(N, C), pullback


def global_avg_pool2d_vjp(input, *, backend=None):
    """``global_avg_pool2d`` and its pullback ``dy (N, C) -> (dx (N, H, W, C),)``."""
    return _global_pool_vjp(input, "AVG", 2, backend, "global_avg_pool2d")


@has_vjp(global_avg_pool2d_vjp)
def global_avg_pool2d(input, *, backend=None):
    """y[n, c] = mean over h, w of x[n, h, w, c]: (N, H, W, C) -> (N, C). As Keras's GlobalAveragePooling2D."""
    return global_avg_pool2d_vjp(input, backend=backend)[0]


def global_max_pool2d_vjp(input, *, backend=None):
    """``global_max_pool2d`` and its pullback ``dy (N, C) -> (dx (N, H, W, C),)``."""
    return _global_pool_vjp(input, "MAX", 2, backend, "global_max_pool2d")


@has_vjp(global_max_pool2d_vjp)
def global_max_pool2d(input, *, backend=None):
    """y[n, c] = max over h, w of x[n, h, w, c]: (N, H, W, C) -> (N, C). As Keras's GlobalMaxPooling2D."""
    return global_max_pool2d_vjp(input, backend=backend)[0]


def global_avg_pool1d_vjp(input, *, backend=None):
    """``global_avg_pool1d`` and its pullback ``dy (N, C) -> (dx (N, W, C),)``."""
    return _global_pool_vjp(input, "AVG", 1, backend, "global_avg_pool1d")


@has_vjp(global_avg_pool1d_vjp)
def global_avg_pool1d(input, *, backend=None):
    """y[n, c] = mean over w of x[n, w, c]: (N, W, C) -> (N, C). As Keras's GlobalAveragePooling1D."""
    return global_avg_pool1d_vjp(input, backend=backend)[0]


def global_max_pool1d_vjp(input, *, backend=None):
    """``global_max_pool1d`` and its pullback ``dy (N, C) -> (dx (N, W, C),)``."""
    return _global_pool_vjp(input, "MAX", 1, backend, "global_max_pool1d")


@has_vjp(global_max_pool1d_vjp)
def global_max_pool1d(input, *, backend=None):
    """y[n, c] = max over w of x[n, w, c]: (N, W, C) -> (N, C). As Keras's GlobalMaxPooling1D."""
    return global_max_pool1d_vjp(input, backend=backend)[0]
