"""Merging arrays: the ops behind the ``Add``, ``Multiply`` and ``Concatenate`` layers.

    add_n([a, b, c])            ((a + b) + c), equal shapes          pullback: dy to every input
    multiply(a, b)              a * b elementwise, equal shapes      pullback: (dy * b, dy * a)
    concat([a, b], axis)        a and b joined along ``axis``        pullback: dy cut back into a's and b's parts

As ``tf.math.add_n``, ``tf.math.multiply`` and ``tf.concat`` (without broadcasting: the merge
layers of a model take tensors of one shape). A backend implements them on 2-D views: an array
joined along axis k is an (outer, inner) matrix with outer = prod(shape[:k]) and inner =
shape[k] * prod(shape[k+1:]), and joining is placing those matrices side by side.
"""

from __future__ import annotations

import math

from ..backend import get_backend
from ._checks import as_float_array, check_upstream
from ._vjp import has_vjp


def _check_list(values, name: str, op: str, minimum: int) -> list:
    if not isinstance(values, (list, tuple)) or len(values) < minimum:
        raise ValueError(f"{op}: {name} must be a list of at least {minimum} arrays, got {type(values).__name__}"
                         + (f" of {len(values)}" if isinstance(values, (list, tuple)) else ""))
    return [as_float_array(v, f"{name}[{i}]", op) for i, v in enumerate(values)]


def _check_same_shape(arrays, name: str, op: str) -> None:
    first = tuple(arrays[0].shape)
    for i, array in enumerate(arrays[1:], 1):
        if tuple(array.shape) != first:
            raise ValueError(f"{op}: every array of {name} must have the shape of {name}[0] {first}, "
                             f"got {name}[{i}] of shape {tuple(array.shape)}")


def add_n_vjp(inputs, *, backend=None, name=None):
    """``add_n`` and its pullback ``dy -> (dy, dy, ...)``, one gradient per input."""
    op = "add_n"
    arrays = _check_list(inputs, "inputs", op, 1)
    _check_same_shape(arrays, "inputs", op)
    be = get_backend(backend)
    y = arrays[0]
    for array in arrays[1:]:
        y = be.add_forward(y, array)
    shape = tuple(arrays[0].shape)
    return y, lambda dy: tuple(check_upstream(dy, shape, op) for _ in arrays)


@has_vjp(add_n_vjp)
def add_n(inputs, *, backend=None, name=None):
    """The elementwise sum of a list of equal-shape arrays, added left to right. Matches ``tf.math.add_n``."""
    return add_n_vjp(inputs, backend=backend)[0]


def multiply_vjp(x, y, *, backend=None, name=None):
    """``multiply`` and its pullback ``dz -> (dz * y, dz * x)``."""
    op = "multiply"
    x = as_float_array(x, "x", op)
    y = as_float_array(y, "y", op)
    _check_same_shape([x, y], "the inputs", op)
    be = get_backend(backend)
    z = be.multiply_forward(x, y)

    def pullback(dz):
        dz = check_upstream(dz, tuple(x.shape), op)
        return be.multiply_forward(dz, y), be.multiply_forward(dz, x)

    return z, pullback


@has_vjp(multiply_vjp)
def multiply(x, y, *, backend=None, name=None):
    """z = x * y elementwise, equal shapes. Matches ``tf.math.multiply`` without broadcasting."""
    return multiply_vjp(x, y, backend=backend)[0]


def concat_vjp(values, axis, *, backend=None, name=None):
    """``concat`` and its pullback ``dy -> (d values[0], d values[1], ...)``."""
    op = "concat"
    arrays = _check_list(values, "values", op, 1)
    rank = len(arrays[0].shape)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < max(rank, 1):
        raise ValueError(f"{op}: axis must be an int in [{-rank}, {rank - 1}] for values of rank {rank}, got {axis!r}")
    axis %= rank
    first = tuple(arrays[0].shape)
    for i, array in enumerate(arrays):
        shape = tuple(array.shape)
        if len(shape) != rank or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ValueError(f"{op}: values must agree on every axis but axis {axis}: values[0] has shape {first}, "
                             f"values[{i}] has shape {shape}")
    outer = math.prod(first[:axis])
    widths = [math.prod(tuple(a.shape)[axis:]) for a in arrays]
    be = get_backend(backend)
    joined = be.concat_columns([a.reshape(outer, w) for a, w in zip(arrays, widths)])
    out_shape = (*first[:axis], sum(a.shape[axis] for a in arrays), *first[axis + 1:])

    def pullback(dy):
        dy = check_upstream(dy, out_shape, op)
        pieces = be.split_columns(dy.reshape(outer, sum(widths)), widths)
        return tuple(piece.reshape(tuple(a.shape)) for piece, a in zip(pieces, arrays))

    return joined.reshape(out_shape), pullback


@has_vjp(concat_vjp)
def concat(values, axis, *, backend=None, name=None):
    """``values`` joined along ``axis``; every other axis must agree. Matches ``tf.concat``."""
    return concat_vjp(values, axis, backend=backend)[0]


__all__ = ["add_n", "add_n_vjp", "concat", "concat_vjp", "multiply", "multiply_vjp"]
