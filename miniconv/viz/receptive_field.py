"""Receptive fields: how much of the input each layer's units see, and how far apart they are.

    >>> print(miniconv.receptive_field(model))        # a table
    >>> miniconv.receptive_field(model)["conv2d_2"].size
    (18, 18)

Per spatial axis, through a layer with kernel (window) k, stride s, dilation d and left padding p,
starting from the input's r = 1, j = 1, c = 0:

    r_out = r_in + (k - 1) * d * j_in        receptive field: input pixels one output unit sees
    j_out = j_in * s                         jump: input pixels between neighbouring output units
    c_out = c_in + ((k - 1) * d / 2 - p) * j_in
                                             centre of the first output unit's field, in input
                                             pixel coordinates (negative: it reaches into padding)

so three stacked 3x3 convolutions see 7x7, and a 2x2 stride-2 pooling doubles the jump. p is
TensorFlow's SAME left padding, ``((P - 1) * s + (k - 1) * d + 1 - H) // 2`` (0 for VALID).
Flatten, Dense and global pooling see the whole input; activations and dropout change nothing.
This module needs no matplotlib except for ``show_receptive_field``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_WHOLE = ("Flatten", "Dense", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
          "GlobalMaxPooling2D")


@dataclass(frozen=True)
class LayerField:
    """One layer's row: its window and the receptive field, jump and first centre after it (per spatial axis)."""

    name: str
    kind: str
    output_shape: tuple  # without the batch axis
    kernel: tuple | None
    stride: tuple | None
    dilation: tuple | None
    padding: str | None
    size: tuple | None  # receptive field; for a whole-input layer the input's size (None if unknown)
    jump: tuple | None
    start: tuple | None  # None when an input size it depends on is unknown
    whole_input: bool = False

    def field_of(self, index) -> list[tuple[float, float]]:
        """Per axis, the (first, last) input pixel (fractional for even sizes, may lie outside the input)
        seen by the output unit at ``index`` (a tuple, one int per spatial axis)."""
        if self.whole_input or self.start is None:
            raise ValueError(f"{self.name}: no single field per unit (whole input, or unknown input size)")
        index = (index,) if np.isscalar(index) else tuple(index)
        centres = [c + i * j for c, i, j in zip(self.start, index, self.jump)]
        return [(c - (r - 1) / 2, c + (r - 1) / 2) for c, r in zip(centres, self.size)]


def _text(values, sep="x") -> str:
    if values is None:
        return "-"
    return sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _shape(shape) -> str:
    """(26, 26, 32) -> '(26, 26, 32)', (64,) -> '(64,)'."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class ReceptiveFields:
    """The rows of ``receptive_field(model)``: index by position or layer name, iterate, print."""

    COLUMNS = ("layer", "type", "output", "kernel", "stride", "dilation", "padding", "receptive field", "jump",
               "first centre")

    def __init__(self, model_name: str, input_shape, rows: list[LayerField]):
        self.model_name, self.input_shape, self.rows = model_name, input_shape, rows

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key) -> LayerField:
        if isinstance(key, str):
            for row in self.rows:
                if row.name == key:
                    return row
            raise KeyError(f"no layer named {key!r}; layers are {[row.name for row in self.rows]}")
        return self.rows[key]

    def to_dicts(self) -> list[dict]:
        return [asdict(row) for row in self.rows]

    def table(self) -> list[tuple[str, ...]]:
        """The printed table's cells, header first (an "input" row before the layers)."""
        spatial = len(self.input_shape) - 2 if self.input_shape is not None else 2
        input_size = self.input_shape[1:-1] if self.input_shape is not None else None
        lines = [self.COLUMNS, ("input", "-", _shape(self.input_shape[1:]) if self.input_shape else "?", "-", "-",
                                "-", "-", _text((1,) * spatial), _text((1,) * spatial), _text((0,) * spatial, ", "))]
        for row in self.rows:
            if row.whole_input:
                field = "whole input" + (f" {_text(input_size)}" if input_size and None not in input_size else "")
            else:
                field = _text(row.size)
            lines.append((row.name, row.kind, _shape(row.output_shape) if row.output_shape else "?", _text(row.kernel),
                          _text(row.stride), _text(row.dilation), row.padding or "-", field, _text(row.jump),
                          _text(row.start, ", ") if row.start is not None else "-"))
        return lines

    def __str__(self):
        lines = self.table()
        widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
        text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        return f"Receptive fields of {self.model_name!r} (per spatial axis; centres in input pixels)\n" + "\n".join(text)

    __repr__ = __str__


def _leaves(model) -> list:
    inner = getattr(model, "layers", None)
    return [model] if inner is None else [leaf for layer in inner for leaf in _leaves(layer)]


def _same_left_pad(size, k, s, d):
    if size is None:
        return None
    out = -(-size // s)
    return max(0, (out - 1) * s + (k - 1) * d + 1 - size) // 2


def receptive_field(model) -> ReceptiveFields:
    """Each layer's receptive field, jump (stride on the input) and first field centre; see the module doc.

    ``model``: a ``Sequential`` (nested ones are expanded) or a list of layers (the input size is
    then the first layer's, if built; unknown sizes leave SAME layers' centres None). Returns a ``ReceptiveFields`` table: print it, or
    read rows by index or layer name (``.size``, ``.jump``, ``.start``, ``.field_of(index)``).
    """
    layers = _leaves(model) if not isinstance(model, (list, tuple)) else [leaf for m in model for leaf in _leaves(m)]
    input_shape = getattr(model, "input_shape", None)
    if input_shape is None and layers and getattr(layers[0], "input_shape", None) is not None:
        input_shape = layers[0].input_shape
    spatial = len(input_shape) - 2 if input_shape is not None else None
    sizes = list(input_shape[1:-1]) if input_shape is not None else None
    size = jump = None
    start: tuple | None = None
    whole = False
    rows = []
    for layer in layers:
        kind = type(layer).__name__
        window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        out_shape = tuple(layer.output_shape[1:]) if getattr(layer, "output_shape", None) is not None else ()
        if size is None:  # the first layer fixes the number of spatial axes
            spatial = spatial or (len(window) if window else 2)
            size, jump, start = (1,) * spatial, (1,) * spatial, (0.0,) * spatial
            sizes = sizes if sizes is not None else [None] * spatial
        row = {"name": layer.name, "kind": kind, "output_shape": out_shape, "kernel": None, "stride": None,
               "dilation": None, "padding": None}
        if whole or kind in _WHOLE:
            whole = True
            known = input_shape is not None and None not in input_shape[1:-1]
            full = tuple(input_shape[1:-1]) if known else None
            rows.append(LayerField(**row, size=full, jump=None, start=None, whole_input=True))
            continue
        if window:
            k = tuple(window)
            s = tuple(layer.strides)
            d = tuple(getattr(layer, "dilation_rate", (1,) * len(k)))
            padding = layer.padding
            lefts = [_same_left_pad(n, ki, si, di) if padding == "same" else 0 for n, ki, si, di in zip(sizes, k, s, d)]
            new_start = None
            if start is not None and None not in lefts:
                new_start = tuple(c + ((ki - 1) * di / 2 - p) * j for c, ki, di, p, j in zip(start, k, d, lefts, jump))
            size = tuple(r + (ki - 1) * di * j for r, ki, di, j in zip(size, k, d, jump))
            jump = tuple(j * si for j, si in zip(jump, s))
            start = new_start
            sizes = list(out_shape[:-1]) if out_shape else [None] * len(k)
            row.update(kernel=k, stride=s, dilation=d, padding=padding)
        rows.append(LayerField(**row, size=size, jump=jump, start=_tidy(start), whole_input=False))
    return ReceptiveFields(getattr(model, "name", "layers"), input_shape, rows)


def _tidy(start):
    """Centres as ints where whole (1.0 -> 1), halves kept (1.5)."""
    if start is None:
        return None
    return tuple(int(c) if float(c).is_integer() else float(c) for c in start)


def stacked_versus_single(kernel=3, depth=3) -> dict:
    """Why stacks of small kernels: ``depth`` stacked ``kernel`` x ``kernel`` convolutions see as far as one
    convolution of (depth (kernel - 1) + 1)^2, with fewer weights per (input channel, output channel) pair.

    Counted on miniconv models (one input and one output channel, no bias):
    {"stacked": {"layers", "kernel", "field", "weights"}, "single": {...}}; for 3 and 3: fields 7x7 both,
    27 weights against 49.
    """
    from .. import layers
    from ..models import Sequential

    side = depth * (kernel - 1) + 1
    shape = (2 * side, 2 * side, 1)
    models = {
        "stacked": Sequential([layers.Conv2D(1, kernel, use_bias=False, input_shape=shape)]
                              + [layers.Conv2D(1, kernel, use_bias=False) for _ in range(depth - 1)]),
        "single": Sequential([layers.Conv2D(1, side, use_bias=False, input_shape=shape)]),
    }
    return {name: {"layers": len(model.layers), "kernel": model.layers[0].kernel_size,
                   "field": receptive_field(model)[-1].size, "weights": model.count_params()}
            for name, model in models.items()}


def comparison_text(comparison) -> str:
    """Two lines: the stacked kernels' and the single kernel's receptive field and weights per channel pair."""
    stacked, single = comparison["stacked"], comparison["single"]
    k, s = stacked["kernel"], single["kernel"]
    labels = [f"{stacked['layers']} stacked {_text(k)} convolutions:", f"one {_text(s)} convolution:"]
    width = max(map(len, labels))
    return (f"{labels[0].ljust(width)} receptive field {_text(stacked['field'])}, "
            f"{stacked['layers']} x {k[0] * k[1]} = {stacked['weights']} weights per channel pair\n"
            f"{labels[1].ljust(width)} receptive field {_text(single['field'])}, "
            f"{s[0]} x {s[1]} = {single['weights']} weights per channel pair")


def show_receptive_field(model, image, colors=None, figsize=None, cmap="gray"):
    """``image`` with the receptive field of the centre unit of each convolution / pooling layer drawn
    on it as a square, beside the table of ``receptive_field(model)`` and, under it, the legend of the
    squares and the parameter comparison of three stacked 3x3 kernels with one 7x7
    (``stacked_versus_single``). 2-D models only. The right side is three rows sized by their lines of
    text, and the default height grows with the table, so a deep model's table never runs into the
    legend.

    The table is ``figure.fields``, the comparison ``figure.parameter_comparison``.
    """
    from matplotlib.patches import Rectangle

    from ._figures import new_figure, show_array

    fields = receptive_field(model)
    if fields.input_shape is None or len(fields.input_shape) != 4:
        raise ValueError("show_receptive_field: needs a built model with 2-D input (None, H, W, C)")
    drawn = [row for row in fields if row.kernel is not None and row.start is not None]
    table = str(fields).split("\n", 1)[1]
    comparison = stacked_versus_single(3, 3)
    texts = {"table": table,
             "comparison": "Stacking small kernels: the same field for fewer weights\n" + comparison_text(comparison)}
    legend_columns = 2 if len(drawn) > 4 else 1
    lines = {"table": table.count("\n") + 1, "legend": -(-len(drawn) // legend_columns) + 1 if drawn else 0,
             "comparison": texts["comparison"].count("\n") + 1}
    figsize = figsize or (12.5, max(4.8, 0.15 * (sum(lines.values()) + 4)))
    figure = new_figure(figsize)
    left, right = figure.subfigures(1, 2, width_ratios=[1.0, 2.4])
    axes = show_array(left.add_subplot(), image, "the centre unit's field", cmap=cmap)
    colors = colors or [f"C{k}" for k in range(10)]
    for k, row in enumerate(drawn):
        centre_unit = tuple((n - 1) // 2 for n in row.output_shape[:2])
        (top, bottom), (lo, hi) = row.field_of(centre_unit)
        axes.add_patch(Rectangle((lo - 0.5, top - 0.5), hi - lo + 1, bottom - top + 1, fill=False, linewidth=2,
                                 edgecolor=colors[k % len(colors)], label=f"{row.name}: {_text(row.size)}"))
    rows = [name for name in ("table", "legend", "comparison") if lines[name]]
    panels = dict(zip(rows, right.subplots(len(rows), 1, gridspec_kw={"height_ratios": [lines[n] for n in rows]})))
    for panel in panels.values():
        panel.axis("off")
    # monospace glyphs are about 0.6 em wide: shrink the text until the widest line fits the panel
    fontsize = min(8.0, 0.85 * figsize[0] * 2.4 / 3.4 * 72 / (0.6 * max(map(len, table.splitlines()))))
    for name in ("table", "comparison"):
        panels[name].text(0, 1, texts[name], family="monospace", fontsize=fontsize, va="top", ha="left",
                          transform=panels[name].transAxes)
    if drawn:
        panels["legend"].legend(*axes.get_legend_handles_labels(), loc="upper left", fontsize=8, frameon=False,
                                title="squares on the image (the centre output unit's field)", title_fontsize=8,
                                ncols=legend_columns)
    right.suptitle(f"miniconv.receptive_field(model) of {fields.model_name!r} (per spatial axis; centres in input pixels)",
                   fontsize=10)
    figure.fields, figure.parameter_comparison = fields, comparison
    return figure
