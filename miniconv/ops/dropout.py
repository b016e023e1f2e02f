"""Dropout: inverted, as Keras and ``tf.nn.dropout`` do it.

    keep ~ Bernoulli(1 - rate) per element,   y = x * keep / (1 - rate),   dx = dy * keep / (1 - rate)

The mask comes from NumPy's generator (an int seed or a ``np.random.Generator``), so it cannot
equal TensorFlow's random stream; the arithmetic, the keep rate and the identity at rate 0 are
what match. A dropped unit is exactly 0 even where x is NaN or inf, as in TensorFlow
(``tf.nn.dropout`` selects with ``where(keep, x * scale, 0)``; ``inf * 0`` would be NaN).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..backend import get_backend
from ._checks import as_float_array, check_upstream
from ._vjp import has_vjp


def _generator(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:  # NumPy's own message ("expected non-negative integer") names nothing
            raise ValueError(f"dropout: seed must be a non-negative int, got {seed!r}")
        return np.random.default_rng(seed)
    raise TypeError(f"dropout: seed must be None, an int or a np.random.Generator, got {seed!r}")


def dropout_vjp(x, rate, seed=None, *, backend=None, name=None):
    """``dropout`` and its pullback ``dy -> (dx,)``."""
    op = "dropout"
    x = as_float_array(x, "x", op)
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"{op}: rate must be a number in [0, 1), got {rate!r}")
    rng = _generator(seed)
    be = get_backend(backend)
    keep = be.dropout_keep_mask(x, float(rate), rng)
    scale = 1.0 / (1.0 - float(rate))
    y = be.dropout_forward(x, keep, scale)
    return y, lambda dy: (be.dropout_backward(check_upstream(dy, x.shape, op), keep, scale),)


@has_vjp(dropout_vjp)
def dropout(x, rate, seed=None, *, backend=None, name=None):
    """Zero each element with probability ``rate``, scale the rest by 1 / (1 - rate).

    seed: None (fresh entropy), an int, or a ``np.random.Generator`` (advanced by the call).
    """
    return dropout_vjp(x, rate, seed, backend=backend)[0]
