"""Learning curves: loss and each metric per epoch, training (dots) vs validation (line), as Chollet plots them.

    show_learning_curves(model.fit(...))            # a History
    show_learning_curves("runs/mnist/report.json")  # the report `miniconv train` writes (its "history")
"""

from __future__ import annotations

import json
from pathlib import Path

from ._figures import new_figure


def history_dict(source) -> dict[str, list[float]]:
    """The per-epoch history in ``source``: a ``History`` (``.history``), a dict of lists, a training
    report dict with a ``"history"`` key, or the path of a JSON file holding either."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            source = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"learning curves: cannot read a history from {path}: {error}") from None
    history = getattr(source, "history", source)
    if isinstance(history, dict) and isinstance(history.get("history"), dict):
        history = history["history"]
    if not isinstance(history, dict) or not history or not all(isinstance(v, (list, tuple)) for v in history.values()):
        raise ValueError("learning curves: expected a History, a dict of per-epoch lists, or a report with a "
                         f"'history' dict; got {type(source).__name__}")
    return {str(k): [float(x) for x in v] for k, v in history.items()}


def curve_names(history: dict) -> list[str]:
    """The quantities to plot: "loss" first, then each training metric ("accuracy", ...), without "val_"."""
    names = [k for k in history if not k.startswith("val_")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in names]
    return sorted(names, key=lambda k: (k != "loss", names.index(k)))


def show_learning_curves(source, figsize=None):
    """One panel per quantity (loss, accuracy, ...): training as dots, validation as a line, per epoch.

    ``source`` as ``history_dict``. The history plotted is ``figure.history``.
    """
    history = history_dict(source)
    names = curve_names(history)
    figure = new_figure(figsize or (5.0 * len(names), 3.8))
    for k, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), k + 1)
        if name in history:
            axes.plot(range(1, len(history[name]) + 1), history[name], "bo", label=f"Training {name}")
        if f"val_{name}" in history:
            values = history[f"val_{name}"]
            style = "b" if len(values) > 1 else "bx"  # one epoch has no line to draw: mark the point
            axes.plot(range(1, len(values) + 1), values, style, label=f"Validation {name}")
        axes.set_title(f"Training and validation {name}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend()
    figure.history = history
    return figure
