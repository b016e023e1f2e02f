"""Normalisation: batch_normalization and moments, forward and backward.

Shape legend: x of any shape (N, H, W, C for a convolution's activations); rows x C is x seen as
the 2-D array the kernels work on, C the columns (channels) the parameters or statistics vary along.

    batch_normalization  y = x * inv + (offset - mean * inv),  inv = scale / sqrt(variance + eps)
        dx = dy * inv;  doffset = sum dy;  dmean = -inv * sum dy;  dscale = sum dy (x - mean) / sqrt(variance + eps)
        dvariance = -scale / 2 * (variance + eps)^(-3/2) * sum dy (x - mean)
        (sums over the axes a parameter is broadcast along)
    moments              mean = sum x / n,  variance = sum (x - mean)^2 / n   over ``axes`` (n cells each)
        dx = dmean / n + 2 (dvariance / n) (x - mean)

Parameters broadcast against x as in TensorFlow (``(C,)`` or ``(1, 1, 1, C)`` for NHWC batch
normalization; offset and scale may be None). The kernels see x as (rows, C) with one parameter per
column: the columns are x's axes from the first one any parameter varies along to the last
(the channel axis alone in the NHWC case, no copy), and parameters that vary along fewer of them
are broadcast to that block. ``moments`` moves its reduced axes first (a copy unless they already
lead, as [0, 1, 2] of NHWC does) and reduces the rows. Matches ``tf.nn.batch_normalization`` and
``tf.nn.moments`` (whose ``shift`` TensorFlow ignores, as here).
"""

from __future__ import annotations

import math
import reprlib

import numpy as np

from ..backend import get_backend
from ._checks import as_float_array, check_nonempty, check_upstream
from ._vjp import has_vjp

_PARAMETERS = ("mean", "variance", "offset", "scale")


def _check_parameter(value, name, x, op):
    """A parameter as float32, which must broadcast to x's shape without changing it."""
    p = as_float_array(value, name, op)
    aligned = (1,) * (x.ndim - p.ndim) + p.shape
    if p.ndim > x.ndim or any(a not in (1, n) for a, n in zip(aligned, x.shape)):
        example = f" (NHWC batch normalization: ({x.shape[-1]},) or (1, 1, 1, {x.shape[-1]}))" if x.ndim == 4 else ""
        raise ValueError(f"{op}: {name} must broadcast to x's shape {x.shape}{example}, got shape {p.shape}")
    return p


def _check_epsilon(value, op) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{op}: variance_epsilon must be a number > 0, got {value!r}")
    try:
        epsilon = float(value)  # an int past float64's range (10**400) overflows here
    except OverflowError:
        epsilon = math.inf
    if not math.isfinite(epsilon):
        raise ValueError(f"{op}: variance_epsilon must be finite, got {reprlib.repr(value)}")
    return epsilon


def _column_block(x_shape, parameters) -> int:
    """The first axis of the column block: the first axis any parameter has more than one entry along
    (x.ndim when none does: a single column)."""
    ndim = len(x_shape)
    varying = [ndim - p.ndim + i for p in parameters for i, size in enumerate(p.shape) if size > 1]
    return min(varying, default=ndim)


def _reduce_to(gradient, shape, x_shape):
    """Sum a gradient of the column block's shape over the axes a parameter of ``shape`` is broadcast along."""
    if tuple(gradient.shape) == tuple(shape):  # one entry per column: nothing to sum (a GPU array stays one)
        return gradient
    full = gradient.reshape((1,) * (len(x_shape) - gradient.ndim) + gradient.shape)
    aligned = (1,) * (len(x_shape) - len(shape)) + tuple(shape)
    axes = tuple(i for i, (a, n) in enumerate(zip(aligned, full.shape)) if a == 1 and n != 1)
    return np.array(full.sum(axis=axes, keepdims=True).reshape(shape), order="C")  # (ascontiguousarray makes 0-d 1-d)


def _tf_parameter_gradients(dy, x, params, epsilon):
    """(dmean, dvariance, dscale or None) by TensorFlow's own graph, in float32 on the host:

        inv = rsqrt(variance + eps) [* scale]        y = x * inv + (offset - mean * inv)
        d (mean inv) = -sum dy                       dmean = sum d(mean inv) inv
        d inv = sum dy x + sum d(mean inv) mean      each sum to the shape TF's broadcasts give it

    The column sums (``batch_norm_backward``) agree with it wherever the result is finite. Where the
    parameters are broadcast along part of the column block, TF sums dy over those axes before the
    product with mean (or inv), so an inf mean gives -inf * sum dy where the column sums added +inf and
    -inf column by column (NaN); likewise an inf inv (variance = -eps) for dmean. Used only where the
    column sums' result is not finite."""
    mean, variance, scale = params["mean"], params["variance"], params["scale"]
    eps = np.float32(epsilon)
    rstd = np.float32(1) / np.sqrt(variance + eps)
    inv = rstd if scale is None else rstd * scale
    mean_inv_shape = np.broadcast_shapes(mean.shape, inv.shape)
    d_mean_inv = -_reduce_to(dy, mean_inv_shape, x.shape)
    d_inv = _reduce_to(dy * x, inv.shape, x.shape) + _reduce_to(d_mean_inv * mean, inv.shape, x.shape)
    d_rstd = d_inv if scale is None else _reduce_to(d_inv * scale, variance.shape, x.shape)
    d_scale = None if scale is None else _reduce_to(d_inv * rstd, scale.shape, x.shape)
    d_mean = _reduce_to(d_mean_inv * inv, mean.shape, x.shape)
    return d_mean, (d_rstd * (np.float32(-0.5) * rstd * rstd * rstd)).reshape(variance.shape), d_scale


def batch_normalization_vjp(x, mean, variance, offset, scale, variance_epsilon, *, backend=None, name=None):
    """``batch_normalization`` and its pullback ``dy -> (dx, dmean, dvariance, doffset, dscale)``,
    each parameter's gradient of its own shape (None for an offset or scale given as None)."""
    op = "batch_normalization"
    x = as_float_array(x, "x", op)
    check_nonempty(x, "x", op)
    given = {"mean": mean, "variance": variance, "offset": offset, "scale": scale}
    for required in ("mean", "variance"):
        if given[required] is None:
            raise ValueError(f"{op}: {required} must be an array, got None")
    params = {k: None if v is None else _check_parameter(v, k, x, op) for k, v in given.items()}
    epsilon = _check_epsilon(variance_epsilon, op)
    first = _column_block(x.shape, [p for p in params.values() if p is not None])
    block = x.shape[first:]
    columns = math.prod(block)
    x2 = x.reshape(math.prod(x.shape) // columns, columns)  # explicit sizes: a GPU array's reshape takes no -1

    def column(parameter, default):
        p = params[parameter]
        if p is None:
            return np.full(columns, default, np.float32)
        if tuple(p.shape) == tuple(block):  # one per column already (a layer's (C,) parameter): no copy
            return p.reshape(columns)
        aligned = ((1,) * (x.ndim - p.ndim) + p.shape)[first:]  # the axes before the block are all 1
        return np.ascontiguousarray(np.broadcast_to(p.reshape(aligned), block)).reshape(columns)

    m, v, o, s = column("mean", 0.0), column("variance", 1.0), column("offset", 0.0), column("scale", 1.0)
    be = get_backend(backend)
    y = be.batch_norm_forward(x2, m, v, o, s, epsilon).reshape(x.shape)

    def pullback(dy):
        dy = check_upstream(dy, x.shape, op)
        dx, *grads = be.batch_norm_backward(dy.reshape(x2.shape), x2, m, v, s, epsilon)
        out = [dx.reshape(x.shape)]
        for parameter, g in zip(_PARAMETERS, grads):
            p = params[parameter]
            out.append(None if p is None else _reduce_to(g.reshape(block), p.shape, x.shape))
        positions = {"mean": 1, "variance": 2, "scale": 4}  # in out
        reduced = [i for k, i in positions.items() if params[k] is not None and tuple(params[k].shape) != tuple(block)]
        if any(not np.isfinite(out[i]).all() for i in reduced):
            for i, tf_gradient in zip(positions.values(), _tf_parameter_gradients(np.asarray(dy), x, params, epsilon)):
                if tf_gradient is not None:
                    out[i] = np.where(np.isfinite(out[i]), out[i], tf_gradient)
        return tuple(out)

    return y, pullback


@has_vjp(batch_normalization_vjp)
def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, *, backend=None, name=None):
    """y = (x - mean) * scale / sqrt(variance + variance_epsilon) + offset, computed as TensorFlow does:
    ``inv = scale / sqrt(variance + eps); y = x * inv + (offset - mean * inv)``.

    x any shape; mean, variance, offset, scale broadcast to it (offset, scale may be None: 0 and 1);
    variance_epsilon > 0. Matches ``tf.nn.batch_normalization``.
    """
    return batch_normalization_vjp(x, mean, variance, offset, scale, variance_epsilon, backend=backend)[0]


def _check_axes(axes, ndim, op) -> tuple[int, ...]:
    values = [axes] if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool) else axes
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"{op}: axes must be an int or a list of ints, got {axes!r}") from None
    for a in values:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axes must be an int or a list of ints, got {axes!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axes must be in [{-ndim}, {ndim}) for x of rank {ndim}, got {axes!r}")
    normalized = tuple(int(a) % ndim for a in values)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: axes must not repeat an axis, got {axes!r}")
    return normalized


def _check_output_gradient(gradient, output, shape, op):
    """One of a two-output op's upstream gradients: the shape of its output."""
    gradient = as_float_array(gradient, f"upstream gradient of {output}", op)
    if tuple(gradient.shape) != tuple(shape):
        raise ValueError(f"{op} pullback: upstream gradient of {output} must have {output}'s shape {shape}, "
                         f"got {gradient.shape}")
    return gradient


def moments_vjp(x, axes, shift=None, keepdims=False, *, backend=None, name=None):
    """``moments`` -> ((mean, variance), pullback); ``pullback(dmean, dvariance) -> (dx,)``."""
    op = "moments"
    x = as_float_array(x, "x", op)
    check_nonempty(x, "x", op)
    reduced = _check_axes(axes, x.ndim, op)
    if not isinstance(keepdims, (bool, np.bool_)):  # (an array's truth value is an error of its own)
        raise TypeError(f"{op}: keepdims must be a bool, got {reprlib.repr(keepdims)}")
    kept = tuple(a for a in range(x.ndim) if a not in reduced)
    order = tuple(sorted(reduced)) + kept
    moved = order != tuple(range(x.ndim))
    xt = np.ascontiguousarray(np.transpose(x, order)) if moved else x
    rows = math.prod(x.shape[a] for a in reduced)
    x2 = xt.reshape(rows, math.prod(xt.shape) // rows)
    be = get_backend(backend)
    mean, variance = be.moments_forward(x2)
    if keepdims:
        shape = tuple(1 if a in reduced else x.shape[a] for a in range(x.ndim))
    elif reduced:
        shape = tuple(x.shape[a] for a in kept)
    else:  # TensorFlow squeezes with axis=[], which drops every axis of size 1
        shape = tuple(n for n in x.shape if n != 1)

    def pullback(dmean, dvariance):
        dmean = _check_output_gradient(dmean, "mean", shape, op).reshape(x2.shape[1])
        dvariance = _check_output_gradient(dvariance, "variance", shape, op).reshape(x2.shape[1])
        dx = be.moments_backward(dmean, dvariance, x2, mean).reshape(xt.shape)
        return (np.ascontiguousarray(np.transpose(dx, np.argsort(order))) if moved else dx,)

    return (mean.reshape(shape), variance.reshape(shape)), pullback


@has_vjp(moments_vjp)
def moments(x, axes, shift=None, keepdims=False, *, backend=None, name=None):
    """(mean, variance) of x over ``axes`` (an int or a list): the mean, then the mean of the squared
    deviations from it (the population variance, divided by n, not n - 1).

    The results keep x's other axes (and the reduced ones with size 1 when ``keepdims``, a bool). With no
    axes at all the mean is x and the variance 0, and (as TensorFlow, whose ``squeeze(axis=[])``
    drops every axis of size 1) without ``keepdims`` the axes of size 1 go. ``shift`` is accepted
    and ignored, as TensorFlow 2 does. Matches ``tf.nn.moments``.
    """
    return moments_vjp(x, axes, shift, keepdims, backend=backend)[0]
