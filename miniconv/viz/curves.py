"""Learning curves: loss and each metric per epoch, training (dots) vs validation (line), as Chollet plots them.

    show_learning_curves(model.fit(...))                # a History
    show_learning_curves("runs/mnist/report.json")      # the report `miniconv train` writes (its "history")
    show_learning_curves(history, smooth=True)          # Chollet's smoothed curves (ch. 5.3), factor 0.8

``smooth_curve`` is Chollet's exponential moving average: s[0] = x[0], s[i] = f s[i - 1] + (1 - f) x[i].
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


SMOOTHING = 0.8  # Chollet's factor


def smooth_curve(points, factor=SMOOTHING) -> list[float]:
    """Chollet's ``smooth_curve`` (ch. 5.3): the exponential moving average of ``points``, each smoothed
    point ``previous * factor + point * (1 - factor)``, the first point kept as it is."""
    factor = float(factor)
    if not 0 <= factor < 1:
        raise ValueError(f"smooth_curve: factor must be in [0, 1), got {factor!r}")
    smoothed: list[float] = []
    for point in points:
        smoothed.append(smoothed[-1] * factor + float(point) * (1 - factor) if smoothed else float(point))
    return smoothed


def show_learning_curves(source, figsize=None, smooth=False):
    """One panel per quantity (loss, accuracy, ...): training as dots, validation as a line, per epoch.

    ``source`` as ``history_dict``. ``smooth``: False (the raw curves), True (Chollet's smoothed curves,
    ``smooth_curve`` with factor 0.8) or a factor in [0, 1). The history is ``figure.history``; the
    curves drawn are ``figure.curves`` (the history itself, or its smoothed curves).
    """
    history = history_dict(source)
    factor = SMOOTHING if smooth is True else (float(smooth) if smooth not in (False, None) else None)
    curves = history if factor is None else {k: smooth_curve(v, factor) for k, v in history.items()}
    training, validation = ("Training", "Validation") if factor is None else ("Smoothed training", "Smoothed validation")
    names = curve_names(history)
    figure = new_figure(figsize or (5.0 * len(names), 3.8))
    for k, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), k + 1)
        if name in history:
            axes.plot(range(1, len(curves[name]) + 1), curves[name], "bo", label=f"{training} {name}")
        if f"val_{name}" in history:
            values = curves[f"val_{name}"]
            style = "b" if len(values) > 1 else "bx"  # one epoch has no line to draw: mark the point
            axes.plot(range(1, len(values) + 1), values, style, label=f"{validation} {name}")
        axes.set_title(f"{training} and validation {name}" + ("" if factor is None else f" (factor {factor:g})"))
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend()
    figure.history, figure.curves, figure.smoothing = history, curves, factor
    return figure
