"""``model.summary()`` as Keras 3 prints it (the table rich draws at Keras's default 88 columns)."""

from __future__ import annotations

from .layers.base import format_shape

# Cell widths (padding included) of Keras's Sequential summary at its default line length of 88.
_CELLS = (38, 29, 17)


def readable_memory_size(size: float) -> str:
    """Bytes as Keras prints them: 364.54 KB, 13.17 MB."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _cell(text: str, width: int, right: bool = False) -> str:
    inner = width - 2
    if len(text) > inner:
        text = text[: inner - 1] + "…"
    return " " + (text.rjust(inner) if right else text.ljust(inner)) + " "


def summary_text(model) -> str:
    a, b, c = _CELLS
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "━" * a + "┳" + "━" * b + "┳" + "━" * c + "┓")
    lines.append("┃" + _cell("Layer (type)", a) + "┃" + _cell("Output Shape", b) + "┃" + _cell("Param #", c, True) + "┃")
    lines.append("┡" + "━" * a + "╇" + "━" * b + "╇" + "━" * c + "┩")
    rows = []
    for layer in model.layers:
        shape = format_shape(layer.output_shape) if layer.built else "?"
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        rows.append("│" + _cell(f"{layer.name} ({type(layer).__name__})", a) + "│" + _cell(shape, b) + "│"
                    + _cell(params, c, True) + "│")
    lines.append(("\n├" + "─" * a + "┼" + "─" * b + "┼" + "─" * c + "┤\n").join(rows) if rows else
                 "│" + " " * a + "│" + " " * b + "│" + " " * c + "│")
    lines.append("└" + "─" * a + "┴" + "─" * b + "┴" + "─" * c + "┘")
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
