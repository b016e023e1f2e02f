"""Symbolic tensors and nodes: how Keras's functional API records a graph of layer calls.

    x = miniconv.Input((28, 28, 1))          # a SymbolicTensor: shape (None, 28, 28, 1), no data
    y = layers.Conv2D(32, 3)(x)              # calling a layer on it adds a Node and returns its output
    model = miniconv.Model(x, y)             # the model walks the nodes back from y to x

A ``Node`` is one call of a layer: the tensors it read and the tensors it made. A layer called
twice (a shared layer) has two nodes and one set of weights. A ``SymbolicTensor`` remembers the
node that made it (``history``: layer, node index, tensor index, as Keras's ``_keras_history``),
which is all a model needs to find its layers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..shapes import format_shape

_TENSOR_IDS = itertools.count()


@dataclass(frozen=True)
class History:
    """Where a symbolic tensor comes from: ``layer._inbound_nodes[node_index].outputs[tensor_index]``."""

    layer: object
    node_index: int
    tensor_index: int

    @property
    def node(self) -> Node:
        return self.layer._inbound_nodes[self.node_index]


class SymbolicTensor:
    """A placeholder for an array in a graph of layer calls: a shape (batch axis None) and where it comes from.

    It holds no data. Layers called on it return new symbolic tensors; ``miniconv.Model(inputs,
    outputs)`` turns them into a model. As ``keras.KerasTensor``.
    """

    dtype = "float32"

    def __init__(self, shape, history: History | None = None, name: str | None = None):
        self.shape = tuple(shape)
        self.history = history
        self.name = name or f"symbolic_tensor_{next(_TENSOR_IDS)}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        where = "" if self.history is None else f", from {self.history.layer.name!r}"
        return f"<SymbolicTensor shape={format_shape(self.shape)}{where}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has a shape but no values; call a model or a layer on arrays "
                        f"to compute values")


class Node:
    """One call of ``layer`` in a graph: ``outputs = layer(inputs)``, recorded on the layer."""

    def __init__(self, layer, inputs: list[SymbolicTensor], output_shapes: list[tuple], call_structure: str = "single"):
        self.layer = layer
        self.inputs = list(inputs)
        #: "single": the layer took one tensor; "list": it took a list (merge layers, multi-input models)
        self.call_structure = call_structure
        layer._inbound_nodes.append(self)
        index = len(layer._inbound_nodes) - 1
        self.outputs = [SymbolicTensor(shape, History(layer, index, i)) for i, shape in enumerate(output_shapes)]

    @property
    def is_input(self) -> bool:
        """True for the node of an InputLayer: it reads nothing."""
        return not self.inputs

    @property
    def parent_nodes(self) -> list[Node]:
        return [t.history.node for t in self.inputs if t.history is not None]

    def __repr__(self) -> str:
        return f"<Node {self.layer.name!r}: {len(self.inputs)} input(s) -> {len(self.outputs)} output(s)>"


def is_symbolic(value) -> bool:
    """True for a SymbolicTensor or a non-empty list / tuple of them."""
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, SymbolicTensor) for v in value)


def flatten_tensors(value) -> list[SymbolicTensor]:
    """A tensor or a list / tuple / dict of tensors, as a flat list (dicts in key order, as Keras)."""
    if isinstance(value, SymbolicTensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value) for t in flatten_tensors(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flatten_tensors(item)]
    raise TypeError(f"expected a symbolic tensor (miniconv.Input(...) or a layer's output), got {value!r}")
