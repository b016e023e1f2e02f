"""What a run leaves besides its checkpoint: report.json, history.png, a few printed lines; and its warm-up.

report.json (every recipe): history, epochs, seconds_per_epoch and epoch_seconds (training only:
from an epoch's start to the end of its last step), seconds_per_epoch_with_validation and
epoch_seconds_with_validation, timing (what the clocks measure), backend, versions, seed,
settings, date, model_file, cpu_count, and the recipe's own fields (MNIST: test_accuracy,
test_loss; cats vs dogs: validation_accuracy, best_validation_accuracy, best_epoch, ...).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
from pathlib import Path

from .. import saving
from .checkpoint import sigint_deferred

REPORT_FILE = "report.json"
PLOT_FILE = "history.png"
TIMING_NOTE = ("training only: from the start of each epoch (shuffle) to the end of its last step; excludes "
               "validation, checkpointing and kernel compilation (an untimed warm-up step runs first)")


def warm_up(model, x, y, batch_size: int) -> None:
    """One step (and one evaluation) on a throwaway copy of the model, so kernel compilation and cache
    loading are not timed. The copy is initialised from its own generator and the global generator's
    state is put back afterwards (augmentation and dropout draw from it): the run's draws are untouched."""
    from .. import losses, optimizers, utils
    from ..models.loading import model_from_config

    saved = utils.get_rng_state()
    try:
        clone = model_from_config(type(model).__name__, model.get_config())
        clone.compile(optimizers.deserialize(optimizers.serialize(model.optimizer)),
                      losses.deserialize(losses.serialize(model.loss)))
        n = min(len(x), batch_size)
        clone.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        clone.evaluate(x[:n], y[:n], batch_size=batch_size, verbose=0)
    finally:
        utils.set_rng_state(saved)


def versions() -> dict:
    from .. import __version__

    found = {"miniconv": __version__, "python": platform.python_version()}
    for name in ("numpy", "numba"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    found["platform"] = platform.platform()
    return found


def write_json(path: Path, data: dict) -> None:
    text = (json.dumps(data, indent=1) + "\n").encode()
    saving.atomic_write(path, lambda handle: handle.write(text))


def plot_history(history: dict, path: Path, smooth=False) -> bool:
    """Loss and accuracy per epoch, training 'bo' vs validation 'b' as in the book; False without matplotlib.

    ``smooth``: True (Chollet's exponential moving average, factor 0.8) or a factor in [0, 1) draws the
    smoothed curves instead (``viz.curves.smooth_curve``); the default draws the raw ones, as before.
    """
    try:
        from ..viz.curves import show_learning_curves
    except ImportError:
        return False
    figure = show_learning_curves({k: v for k, v in history.items() if k.split("val_")[-1] in ("loss", "accuracy", "binary_accuracy")}, smooth=smooth)
    saving.atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
    return True


def write(recipe, args, state: dict) -> dict:
    """report.json and history.png from the run's state; returns the report (with ``plotted``)."""
    history, seconds = state["history"], state["epoch_seconds"]
    with_validation = state["epoch_seconds_with_validation"]
    data = {
        "history": history,
        "epochs": len(seconds),
        **recipe.report_fields(history),
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "epoch_seconds": seconds,
        "seconds_per_epoch_with_validation": sum(with_validation) / len(with_validation),
        "epoch_seconds_with_validation": with_validation,
        "timing": TIMING_NOTE + "; 'with validation' runs from an epoch's start to after its validation",
        "backend": args.backend,
        "versions": versions(),
        "seed": args.seed,
        "settings": state["settings"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": recipe.model_file,
        "cpu_count": os.cpu_count(),
    }
    with sigint_deferred():
        write_json(args.out / REPORT_FILE, data)
    data["plotted"] = plot_history(history, args.out / PLOT_FILE)
    data["out"] = str(args.out)
    return data


def print_summary(recipe, data: dict) -> None:
    print()
    for line in recipe.summary_lines(data):
        print(line)
    print(f"Seconds per epoch: {data['seconds_per_epoch']:.2f} training only, "
          f"{data['seconds_per_epoch_with_validation']:.2f} with validation (mean of {data['epochs']}; {TIMING_NOTE})")
    written = [recipe.model_file, REPORT_FILE] + ([PLOT_FILE] if data["plotted"] else [])
    print(f"Wrote {', '.join(written)} to {data['out']}"
          + ("" if data["plotted"] else " (no history.png: matplotlib is not installed)"))
