"""``model.summary()`` as Keras 3 prints it (the table rich draws at Keras's default widths).

A Sequential, and a functional model that is a plain chain, get three columns at 88 characters;
any other graph gets a fourth, "Connected to", at 108, each input named as Keras names it:
``layer[node index][tensor index]``. Keras narrows its table to the terminal; this one never
does (the same text everywhere).
"""

from __future__ import annotations

from ..shapes import format_shape

# Cell widths (padding included) of Keras's tables at its default line lengths, 88 and 108.
CHAIN_CELLS = (38, 29, 17)
GRAPH_CELLS = (31, 27, 17, 28)


def readable_memory_size(size: float) -> str:
    """Bytes as Keras prints them: 364.54 KB, 13.17 MB."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _wrap(text: str, width: int) -> list[str]:
    """rich's wrapping: words onto lines of at most ``width``; a word too long is cut with an ellipsis."""
    lines, line = [], ""
    for word in text.split(" "):
        if len(word) > width:
            word = word[: width - 1] + "…"
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


def _row(fields: list[str], cells, right: tuple[int, ...]) -> list[str]:
    wrapped = [_wrap(text, width - 2) for text, width in zip(fields, cells)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = []
        for k, (w, width) in enumerate(zip(wrapped, cells)):
            text = w[i] if i < len(w) else ""
            parts.append(" " + (text.rjust(width - 2) if k in right else text.ljust(width - 2)) + " ")
        lines.append("│" + "│".join(parts) + "│")
    return lines


def is_chain(model) -> bool:
    """Keras's "sequential-like" test: one node per depth with at most one input, no layer called twice."""
    if model.is_sequential:
        return True
    graph = model.subgraph()
    for nodes in graph.nodes_by_depth.values():
        if len(nodes) > 1 or (nodes and len(nodes[0].inputs) > 1):
            return False
    layers = [node.layer for node in graph.nodes]
    return len(layers) == len({id(layer) for layer in layers})


def _connections(layer, graph) -> str:
    mine = set(graph.nodes)
    names = [f"{t.history.layer.name}[{t.history.node_index}][{t.history.tensor_index}]"
             for node in layer._inbound_nodes if node in mine for t in node.inputs]
    return ", ".join(names) or "-"


def _shape_text(layer) -> str:
    shape = layer.output_shape
    if not layer.built or shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return format_shape(shape)


def summary_text(model) -> str:
    chain = is_chain(model) if model.built else True
    cells = CHAIN_CELLS if chain else GRAPH_CELLS
    header = ["Layer (type)", "Output Shape", "Param #"] + ([] if chain else ["Connected to"])
    right = (2,)
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * c for c in cells) + "┓")
    lines += [line.replace("│", "┃") for line in _row(header, cells, right)]
    lines.append("┡" + "╇".join("━" * c for c in cells) + "┩")
    rows = []
    for layer in model.layers:
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        fields = [f"{layer.name} ({type(layer).__name__})", _shape_text(layer), params]
        if not chain:
            fields.append(_connections(layer, model.subgraph()))
        rows.append(_row(fields, cells, right))
    separator = "├" + "┼".join("─" * c for c in cells) + "┤"
    if rows:
        for i, row in enumerate(rows):
            if i:
                lines.append(separator)
            lines += row
    else:
        lines.append("│" + "│".join(" " * c for c in cells) + "│")
    lines.append("└" + "┴".join("─" * c for c in cells) + "┘")
    trainable = sum(p.size for p in model.trainable_weights)
    frozen = sum(p.size for p in model.non_trainable_weights)
    optimizer = model.optimizer if model.optimizer is not None and model.optimizer.built else None
    optimizer_count = 0 if optimizer is None else sum(v.size for v in optimizer.variables)
    optimizer_bytes = 0 if optimizer is None else sum(v.nbytes for v in optimizer.variables)
    total = trainable + frozen + optimizer_count
    lines.append(f" Total params: {total:,} ({readable_memory_size(4 * (trainable + frozen) + optimizer_bytes)})")
    lines.append(f" Trainable params: {trainable:,} ({readable_memory_size(4 * trainable)})")
    lines.append(f" Non-trainable params: {frozen:,} ({readable_memory_size(4 * frozen)})")
    if optimizer is not None:
        lines.append(f" Optimizer params: {optimizer_count:,} ({readable_memory_size(optimizer_bytes)})")
    return "\n".join(lines)
