"""The input of an application built on ``input_tensor`` (Keras's ``get_source_inputs``)."""

from __future__ import annotations

from ..engine.tensors import SymbolicTensor


def source_inputs(tensor: SymbolicTensor) -> list:
    """The Input tensors ``tensor`` is computed from (Keras's ``get_source_inputs``), in the order first met."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        node = t.history.node if t.history is not None else None
        if node is None or node.is_input:
            if id(t) not in seen:
                seen.add(id(t))
                found.append(t)
            continue
        stack.extend(reversed(node.inputs))
    return found[0] if len(found) == 1 else found
