"""TensorFlow as the spec: run a TF op and its vector-Jacobian product, compare miniconv's with it.

    assert_vjp_close(miniconv.nn.conv2d, tf_conv2d, (x, w), dy, {"strides": 2, "padding": "SAME"},
                     backend="numpy", tol=Tolerance((R * S * C, R * S * K, N * P * Q), abs_terms=True))

runs ``y, pullback = miniconv.vjp(op, *arrays, backend=backend, **kwargs)`` and ``pullback(dy)``,
runs the TF function under ``tf.GradientTape`` with the same random upstream gradient ``dy``
(never all ones: that hides transposed or mirrored gradients), and compares the outputs and
every gradient.

Tolerance. Each compared tensor t (the output, then one gradient per input) has a reduction
length L_t: how many float32 terms are summed into one of its elements (R*S*C for a
convolution's output, R*S*K for its input gradient, N*P*Q for its filter gradient, 1 for an
elementwise op). Element i of t must satisfy |miniconv - TF| <= atol_t[i] + rtol_t * |TF|, with

    rtol_t    = c * eps32 * sqrt(L_t),        eps32 = 2**-23,  c = 4
    atol_t[i] = rtol_t * m_t[i]

    m_t[i] = sum of |terms| of element i   for ops linear in each array (conv, dense, average
             pooling): the same op and VJP evaluated on |arrays| and |dy|, exactly;
           = max |TF's t| over its finite entries   for the others (max pooling, activations);
    raised to ``floor_t`` where the error does not scale with the result (see below).

Why: a float32 sum of L terms computed in any order is, with high probability, within
lambda * sqrt(L) * u * sum|terms| of the exact sum (u = eps32 / 2; Higham & Mary, "A new approach
to probabilistic rounding error analysis", 2019). Both miniconv and TF are within it, so their
difference is within 2 lambda sqrt(L) u sum|terms| = c eps32 sqrt(L) sum|terms| with c = lambda.
sum|terms| and not |result|: a dot product that cancels (terms of size 0.3 summing to 0.01) keeps
the absolute error of its terms. Measured over 400 hypothesis cases each of conv2d, dense and
average pooling, on the numpy and cpu backends, the worst |miniconv - TF| / (eps32 sqrt(L) m) was
0.84 (small L, where one rounding of each side dominates), so c = 4 leaves a 4-5x margin for other
summation orders (a Numba loop, BLAS blocking). It cannot hide a real bug: a missing,
extra or misplaced term changes an element by about m / L, i.e. by > m / 500 with L <= ~500 here,
while atol stays below 4 * 1.2e-7 * 23 * m ~ 1e-5 m; a gradient off by a factor 1 + 3e-5 fails.
Elements with no terms at all (input cells that a strided window skips) must be exactly 0.
``floor_t`` (default 0) covers errors that do not shrink with the result: sigmoid's gradient
dy * y * (1 - y) keeps only the absolute accuracy of 1 - y, about eps32 * |dy|.

Non-finite entries must match exactly (NaN where TF has NaN, the same infinities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

import miniconv

EPS32 = float(np.finfo(np.float32).eps)
C_TOL = 4.0


@dataclass(frozen=True)
class Tolerance:
    """Reduction lengths of the output and each gradient, and how to size their errors.

    ``lengths[0]`` is the output's L, ``lengths[i + 1]`` the L of the gradient of array i.
    ``abs_terms``: the op is linear in each array, so sum|terms| comes from running it on |arrays|.
    ``floors``: optional lower bounds on the magnitude m, one per tensor. ``c = 0``: exact.
    """

    lengths: tuple[int, ...]
    abs_terms: bool = False
    floors: tuple[float, ...] | None = None
    c: float = C_TOL

    def rtol(self, i: int) -> float:
        return self.c * EPS32 * math.sqrt(max(1, self.lengths[i]))

    def floor(self, i: int) -> float:
        return 0.0 if self.floors is None else float(self.floors[i])

    @classmethod
    def of(cls, tol, count: int) -> Tolerance:
        """A Tolerance, one reduction length for every tensor, or a sequence of ``count`` lengths."""
        if isinstance(tol, Tolerance):
            return tol
        if isinstance(tol, (int, float)):
            return cls((int(tol),) * count)
        return cls(tuple(int(L) for L in tol))


# --- TF references -------------------------------------------------------------------------------


def tf_conv2d(input, filters, strides=1, padding="VALID", dilations=1):
    """``tf.nn.conv2d``; with dilations > 1 ``tf.nn.convolution``, whose gradient TF's CPU supports.

    (TF's CPU Conv2DBackpropInput refuses dilation rates > 1; ``tf.nn.convolution`` computes the
    same convolution through space-to-batch and differentiates it.)
    """
    if _dilated(dilations):
        return tf.nn.convolution(
            input, filters, strides=_spatial(strides), padding=padding, dilations=_spatial(dilations)
        )
    return tf.nn.conv2d(input, filters, strides=strides, padding=padding, dilations=dilations)


def tf_conv1d(input, filters, stride=1, padding="VALID", dilations=1):
    """``tf.nn.conv1d``; with dilations > 1 ``tf.nn.convolution`` (see ``tf_conv2d``)."""
    if _dilated(dilations):
        return tf.nn.convolution(
            input, filters, strides=_spatial(stride), padding=padding, dilations=_spatial(dilations)
        )
    return tf.nn.conv1d(input, filters, stride=stride, padding=padding, dilations=dilations)


def tf_pool(input, window_shape, pooling_type, strides=None, padding="VALID"):
    """``tf.nn.pool``; where a stride exceeds the window (which ``tf.nn.pool`` refuses, while
    ``tf.nn.max_pool`` / ``tf.nn.avg_pool`` accept it) the latter, which ``tf.nn.pool`` calls anyway."""
    if strides is not None and any(s > w for s, w in zip(strides, window_shape)):
        op = tf.nn.max_pool if pooling_type.upper() == "MAX" else tf.nn.avg_pool
        return op(input, ksize=list(window_shape), strides=list(strides), padding=padding)
    return tf.nn.pool(input, window_shape, pooling_type, strides=strides, padding=padding)


def tf_dense(x, kernel, bias=None):
    """x @ kernel + bias over the last axis of x (any rank), as ``keras.layers.Dense``."""
    y = tf.tensordot(x, kernel, axes=1)
    return y if bias is None else y + bias


def tf_global_avg_pool1d(x):
    return tf.reduce_mean(x, axis=1)


def tf_global_avg_pool2d(x):
    return tf.reduce_mean(x, axis=[1, 2])


def tf_global_max_pool1d(x):
    return tf.reduce_max(x, axis=1)


def tf_global_max_pool2d(x):
    return tf.reduce_max(x, axis=[1, 2])


def _dilated(dilations) -> bool:
    return any(d > 1 for d in np.atleast_1d(dilations))


def _spatial(value):
    """TF long forms [1, s, s, 1] / [1, s, 1] -> the spatial entries ``tf.nn.convolution`` wants."""
    value = list(np.atleast_1d(value))
    return value[1:-1] if len(value) > 2 else value


# --- running and comparing -----------------------------------------------------------------------


def tf_vjp(tf_fn, arrays, dy, kwargs=None):
    """TF's output and the gradients of <dy, tf_fn(*arrays)> w.r.t. every array, as NumPy."""
    tensors = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        y = tf_fn(*tensors, **(kwargs or {}))
    grads = tape.gradient(
        y, tensors, output_gradients=tf.constant(dy, dtype=y.dtype), unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return y.numpy(), tuple(g.numpy() for g in grads)


def mc_vjp(mc_fn, arrays, dy, kwargs=None, backend=None):
    """miniconv's output and gradients for the same call."""
    y, pullback = miniconv.vjp(mc_fn, *arrays, backend=backend, **(kwargs or {}))
    return y, tuple(pullback(dy))


def assert_close(actual, expected, *, rtol, magnitude=None, floor=0.0, what="") -> None:
    """float32 ``actual`` equals ``expected``: |actual - expected| <= atol + rtol * |expected|.

    atol = rtol * max(magnitude, floor), ``magnitude`` an array of per-element scales (sum|terms|)
    or, when None, max |expected| over its finite entries. Non-finite entries must match exactly.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}, expected float32"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, TF gives {expected.shape}"
    finite = np.isfinite(expected)
    if magnitude is None:
        magnitude = float(np.abs(expected[finite]).max()) if finite.any() else 0.0
    atol = rtol * np.maximum(np.nan_to_num(np.asarray(magnitude, np.float64), posinf=0.0), floor)
    nonfinite_ok = np.where(finite, True, (actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    with np.errstate(invalid="ignore"):  # inf - inf, 0 * inf where TF has inf: judged by nonfinite_ok
        error = np.abs(actual.astype(np.float64) - expected)
        allowed = np.broadcast_to(atol + rtol * np.abs(expected.astype(np.float64)), error.shape)
    bad = ~nonfinite_ok | (finite & ~(error <= allowed))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(allowed > 0, error / allowed, np.where(error > 0, np.inf, 0.0))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {where}: "
            f"miniconv {actual[where]!r}, TF {expected[where]!r}, allowed {allowed[where]:.3g} "
            f"(rtol {rtol:.3g}); worst error / allowed {np.max(ratio[finite]) if finite.any() else float('nan'):.3g}"
        )


def assert_vjp_close(mc_fn, tf_fn, arrays, dy, kwargs=None, backend=None, tol=1, *, tf_kwargs=None):
    """miniconv's op and its pullback match TF's op and tape gradient for upstream gradient dy.

    ``kwargs`` go to the miniconv op and, unless ``tf_kwargs`` is given, to ``tf_fn`` too.
    ``tol``: a ``Tolerance``, or the reduction length(s) L (see the module docstring).
    Also checks that the plain op equals the vjp's output and that no input is written to.
    """
    kwargs = dict(kwargs or {})
    tf_kwargs = kwargs if tf_kwargs is None else tf_kwargs
    arrays = tuple(arrays)
    tol = Tolerance.of(tol, 1 + len(arrays))
    originals = [np.array(a, copy=True) for a in (*arrays, dy)]
    name = getattr(mc_fn, "__name__", repr(mc_fn))
    where = f"{name}[backend={backend}, kwargs={kwargs}, shapes={[np.shape(a) for a in arrays]}]"

    y, grads = mc_vjp(mc_fn, arrays, dy, kwargs, backend)
    y_tf, grads_tf = tf_vjp(tf_fn, arrays, dy, tf_kwargs)
    if tol.abs_terms:  # linear in each array: the op on |arrays|, |dy| sums |terms|, element by element
        magnitudes = tf_vjp(tf_fn, [np.abs(a) for a in arrays], np.abs(dy), tf_kwargs)
        magnitudes = (magnitudes[0], *magnitudes[1])
    else:
        magnitudes = (None,) * (1 + len(arrays))

    assert len(grads) == len(arrays), f"{where}: pullback returned {len(grads)} gradients for {len(arrays)} arrays"
    assert_close(y, y_tf, rtol=tol.rtol(0), magnitude=magnitudes[0], floor=tol.floor(0), what=f"{where} output")
    for i, (g, g_tf) in enumerate(zip(grads, grads_tf)):
        assert_close(g, g_tf, rtol=tol.rtol(i + 1), magnitude=magnitudes[i + 1], floor=tol.floor(i + 1),
                     what=f"{where} gradient of array {i}")  # fmt: skip
        assert g.shape == np.shape(arrays[i]), f"{where}: gradient {i} has shape {g.shape}, input {np.shape(arrays[i])}"

    np.testing.assert_array_equal(mc_fn(*arrays, backend=backend, **kwargs), y, err_msg=f"{where}: op != vjp output")
    for before, after in zip(originals, (*arrays, dy)):
        np.testing.assert_array_equal(after, before, err_msg=f"{where}: an input or dy was modified in place")
