"""Merge layers: ``Add``, ``Multiply`` and ``Concatenate``, as in ``keras.layers``.

    y = layers.Add()([a, b])                      a + b (a residual connection)
    y = layers.Multiply()([a, b])                 a * b elementwise
    y = layers.Concatenate(axis=-1)([a, b])       a and b joined along the channel axis

Each takes a list of tensors: equal shapes for Add and Multiply (no broadcasting), equal but for
``axis`` for Concatenate. Computed with ``ops.add_n``, ``ops.multiply`` and ``ops.concat``.
"""

from __future__ import annotations

from ..ops import vjp
from ..ops.merge import add_n, concat, multiply
from ..shapes import format_shape
from .base import Layer


class _Merge(Layer):
    input_structure = "list"

    def _check_inputs(self, input_shapes):
        if not isinstance(input_shapes, list) or len(input_shapes) < 1:
            raise ValueError(f"{self.describe()} must be called on a list of at least 1 input, got {input_shapes!r}")

    def compute_output_shape(self, input_shapes):
        self._check_inputs(input_shapes)
        first = input_shapes[0]
        for i, shape in enumerate(input_shapes[1:], 1):
            if tuple(shape[1:]) != tuple(first[1:]):
                raise ValueError(
                    f"{self.describe()}: inputs must have the same shape; input 0 has shape {format_shape(first)} "
                    f"and input {i} has shape {format_shape(shape)}"
                )
        return tuple(first)


class Add(_Merge):
    """The elementwise sum of its inputs, as ``keras.layers.Add``."""

    def call(self, inputs, weights, training=False):
        y, pullback = vjp(add_n, list(inputs))
        return y, lambda dy, input_gradient=True: (list(pullback(dy)), [])


class Multiply(_Merge):
    """The elementwise product of its inputs, as ``keras.layers.Multiply`` (left to right)."""

    def call(self, inputs, weights, training=False):
        inputs = list(inputs)
        y, pullbacks = inputs[0], []
        for other in inputs[1:]:
            y, pullback = vjp(multiply, y, other)
            pullbacks.append(pullback)

        def pullback_all(dy, input_gradient=True):
            grads = []
            for pullback in reversed(pullbacks):  # y_k = y_{k-1} * x_k
                dy, d_other = pullback(dy)
                grads.append(d_other)
            return [dy, *reversed(grads)], []

        return y, pullback_all


class Concatenate(Layer):
    """Its inputs joined along ``axis`` (default the last: channels), as ``keras.layers.Concatenate``."""

    input_structure = "list"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{self.describe()}: axis must be an int, got {axis!r}")
        self.axis = axis

    def compute_output_shape(self, input_shapes):
        if not isinstance(input_shapes, list) or len(input_shapes) < 1:
            raise ValueError(f"{self.describe()} must be called on a list of at least 1 input, got {input_shapes!r}")
        rank = len(input_shapes[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"{self.describe()}: axis {self.axis} is not a feature axis of inputs of rank {rank}")
        axis = self.axis % rank
        first = input_shapes[0]
        for i, shape in enumerate(input_shapes):
            if len(shape) != rank or tuple(shape[1:axis]) + tuple(shape[axis + 1:]) != tuple(first[1:axis]) + tuple(first[axis + 1:]):
                raise ValueError(
                    f"{self.describe()}: inputs must match on every axis but the concatenation axis ({self.axis}); "
                    f"input 0 has shape {format_shape(first)} and input {i} has shape {format_shape(shape)}"
                )
        sizes = [shape[axis] for shape in input_shapes]
        return (*first[:axis], None if None in sizes else sum(sizes), *first[axis + 1:])

    def call(self, inputs, weights, training=False):
        y, pullback = vjp(concat, list(inputs), self.axis)
        return y, lambda dy, input_gradient=True: (list(pullback(dy)), [])

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
