"""Activation functions by Keras name: "relu", "relu6", "sigmoid", "softmax", "linear" (or None).

``get(identifier)`` resolves a name (or an op of ``miniconv.nn``) once, at layer construction, so a
typo fails there; ``apply(op, z)`` runs it and returns ``(y, pullback or None)``.
"""

from __future__ import annotations

from .. import nn
from ..ops import vjp

ACTIVATIONS = {"relu": nn.relu, "relu6": nn.relu6, "sigmoid": nn.sigmoid, "softmax": nn.softmax, "linear": None}


def get(identifier, owner: str = "activation"):
    """A name or ``miniconv.nn`` op -> (canonical name, op or None for linear)."""
    if identifier is None:
        return "linear", None
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ACTIVATIONS:
            return key, ACTIVATIONS[key]
        raise ValueError(f"{owner}: unknown activation {identifier!r}; expected one of {sorted(ACTIVATIONS)} or None")
    for name, op in ACTIVATIONS.items():
        if op is not None and identifier is op:
            return name, op
    raise ValueError(
        f"{owner}: activation must be one of {sorted(ACTIVATIONS)}, None, or one of the ops "
        f"miniconv.nn.relu / relu6 / sigmoid / softmax; got {identifier!r}"
    )


def apply(op, z):
    """(y, pullback) with pullback(dy) -> dz; (z, None) for the linear activation."""
    if op is None:
        return z, None
    y, pullback = vjp(op, z)
    return y, pullback
