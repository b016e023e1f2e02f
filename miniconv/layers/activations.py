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


def after_convolution(z, conv_pullback, bias, op):
    """y = op(z + bias) after a convolution's output z (no bias when ``bias`` is None; no activation
    when ``op`` is None), and the pullback back through all three:
    pullback(dy, input_gradient) -> (dx, [d kernels..., d bias])."""
    bias_pullback = None
    if bias is not None:
        z, bias_pullback = vjp(nn.bias_add, z, bias)
    z, activation_pullback = apply(op, z)

    def pullback(dy, input_gradient=True):
        if activation_pullback is not None:
            (dy,) = activation_pullback(dy)
        dbias = None
        if bias_pullback is not None:
            dy, dbias = bias_pullback(dy)
        dx, *dkernels = conv_pullback(dy, input_gradient=input_gradient)
        return dx, [*dkernels, *([dbias] if bias is not None else [])]

    return z, pullback


def apply(op, z):
    """(y, pullback) with pullback(dy) -> dz; (z, None) for the linear activation."""
    if op is None:
        return z, None
    y, pullback = vjp(op, z)
    return y, pullback
