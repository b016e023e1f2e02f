"""From a model's input and output tensors to its nodes and layers, in Keras's order.

    graph = map_graph(inputs, outputs)
    graph.nodes     every node between them, inputs first (a topological order: the execution order)
    graph.layers    every layer, in Keras's order (by depth from the outputs, deepest first; ties in
                    the order a depth-first walk from the outputs meets them), as ``model.layers``
                    and ``model.summary()`` list them

This is Keras 3's ``map_graph`` / ``_build_map`` (keras/src/ops/function.py), so layer order,
weight order and summaries agree with Keras. An input may be any tensor, not only an Input's: the
walk stops there (``Model(model.input, layer.output)`` takes part of another model). A graph whose
outputs need a tensor the inputs do not give raises ``ValueError`` naming the layer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..shapes import format_shape
from .tensors import Node, SymbolicTensor


@dataclass
class Graph:
    inputs: list[SymbolicTensor]
    outputs: list[SymbolicTensor]
    nodes: list[Node]  # inputs first: each node after the nodes that make its inputs
    layers: list  # Keras's order
    nodes_by_depth: dict[int, list[Node]]

    def consumers(self) -> dict[int, list[Node]]:
        """id(tensor) -> the nodes of this graph that read it."""
        readers: dict[int, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for tensor in node.inputs:
                readers[id(tensor)].append(node)
        return readers


def _walk(inputs, outputs):
    """Depth-first from the outputs: nodes inputs-first, and the order layers were first met."""
    finished, in_progress, ordered, first_seen = set(), set(), [], {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        if tensor.history is None:
            raise ValueError(f"Model: {tensor!r} was not made by a layer (use miniconv.Input(...) and layer calls)")
        layer = tensor.history.layer
        node = tensor.history.node
        if node in finished:
            return
        if not node.is_input and id(tensor) in input_ids:  # an intermediate tensor given as an input
            finished.add(node)
            return
        if node in in_progress:
            raise ValueError(f"Model: the tensor made by {layer.name!r} is part of a cycle")
        first_seen.setdefault(layer, len(first_seen))
        in_progress.add(node)
        if not node.is_input:
            for parent in node.inputs:
                visit(parent)
        finished.add(node)
        in_progress.remove(node)
        ordered.append(node)

    for tensor in outputs:
        visit(tensor)
    return ordered, first_seen


def map_graph(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]) -> Graph:
    """The nodes and layers between ``inputs`` and ``outputs``; see the module docstring."""
    ordered, first_seen = _walk(inputs, outputs)
    in_graph = set(ordered)
    node_depth: dict[Node, int] = {}
    layer_depth: dict = {}
    for node in reversed(ordered):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = node_depth[node] = depth
        for parent in node.parent_nodes:
            if parent in in_graph:
                node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for tensor in inputs:  # an Input that no output reads is still a layer of the model
        node = tensor.history.node
        if node.is_input and node.layer not in layer_depth:
            layer_depth[node.layer] = node_depth[node] = 0
            first_seen[node.layer] = -1
            ordered.insert(0, node)

    by_depth: dict[int, list] = defaultdict(list)
    for layer, depth in layer_depth.items():
        by_depth[depth].append(layer)
    layers = [layer for depth in sorted(by_depth, reverse=True)
              for layer in sorted(by_depth[depth], key=lambda item: first_seen[item])]
    nodes_by_depth: dict[int, list[Node]] = defaultdict(list)
    for node, depth in node_depth.items():
        nodes_by_depth[depth].append(node)

    computable = {id(t) for t in inputs}
    for node in ordered:
        if node.is_input and not any(id(t) in computable for t in node.outputs):
            raise ValueError(
                f"Model: the graph is disconnected: the outputs depend on the Input {node.layer.name!r} of shape "
                f"{format_shape(node.outputs[0].shape)}, which is not among the model's inputs; pass it in inputs="
            )
        for tensor in node.inputs:
            if id(tensor) not in computable:
                raise ValueError(
                    f"Model: the graph is disconnected: layer {node.layer.name!r} reads a tensor of shape "
                    f"{tensor.shape} made by {tensor.history.layer.name!r}, which the model's inputs do not reach; "
                    f"pass the Input it comes from in inputs="
                )
        computable.update(id(t) for t in node.outputs)
    for tensor in outputs:
        if id(tensor) not in computable:
            raise ValueError(f"Model: output {tensor!r} cannot be computed from the model's inputs")
    names = [layer.name for layer in layers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Model: layer names must be unique in a model; {duplicates} appear more than once")
    return Graph(list(inputs), list(outputs), ordered, layers, dict(nodes_by_depth))
