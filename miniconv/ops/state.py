"""Ops that update a layer's state in place: the moving statistics of batch normalization.

    assign_moving_average(variable, value, momentum)     variable <- variable * momentum + value * (1 - momentum)

in float32, as Keras's ``BatchNormalization`` computes it (``moving * momentum + batch * (1.0 - momentum)``,
each factor rounded to float32). ``variable`` is the backend's array of a weight (a layer's own
host array on numpy / cpu, a device array on cuda): it changes where it lives, nothing is returned.
"""

from __future__ import annotations

import numbers

from ..backend import get_backend
from ._checks import as_float_array


def assign_moving_average(variable, value, momentum, *, backend=None) -> None:
    """variable <- variable * momentum + value * (1 - momentum), in place; value has variable's shape."""
    op = "assign_moving_average"
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool) or not 0 <= momentum <= 1:
        raise ValueError(f"{op}: momentum must be a number in [0, 1], got {momentum!r}")
    value = as_float_array(value, "value", op)
    if tuple(value.shape) != tuple(variable.shape):
        raise ValueError(f"{op}: value must have the variable's shape {tuple(variable.shape)}, got {tuple(value.shape)}")
    get_backend(backend).moving_average_update(variable, value, float(momentum))


__all__ = ["assign_moving_average"]
