"""The training loop behind ``Model.fit``.

    fit:   check the data (``data.training_sources``), then per epoch: callbacks, one training
           step per batch (``step.TrainStep``: the model compiled once for the run), metrics and
           the progress bar, validation (``inference.evaluate_batches``), callbacks

Every check on the data (shapes, dtypes, label ranges, the loss's expectations) runs before the
first step. ``evaluate`` and ``predict`` are in ``inference.py``.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ..callbacks import CallbackList, History, TerminateOnNaN
from ..progress import ProgressBar, resolve_verbose
from .data import check_batch_size, no_batches, training_sources
from .inference import evaluate_batches, make_metrics, require_compiled
from .step import NonFiniteStep, TrainStep

DIVERGENCE_FACTOR = 100.0  # an epoch's mean loss this many times the first step's (and > 10): a warning


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; the message says where, and what the input held."""


def describe_nonfinite_input(xs) -> str:
    """"; the input batch holds NaN or inf (first at x[3, 14, 14, 0] = nan)" or "" for a finite batch."""
    for k, x in enumerate(xs):
        bad = ~np.isfinite(x)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            name = "x" if len(xs) == 1 else f"x[{k}]"
            return (f"; the input batch holds {int(bad.sum())} NaN or infinite value(s), the first at "
                    f"{name}[{', '.join(map(str, where))}] = {x[where]}")
    return ""


def _check_count(name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"fit: {name} must be a non-negative int (validation_freq positive), got {value!r}")


# --- fit -----------------------------------------------------------------------------------------
def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
    """See ``Model.fit``."""
    require_compiled(model, "fit")
    for name, value in (("class_weight", class_weight), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"fit: {name} is not supported, got {value!r}")
    verbose = resolve_verbose(verbose)
    for name, value, minimum in (("epochs", epochs, 0), ("initial_epoch", initial_epoch, 0),
                                 ("validation_freq", validation_freq, 1)):
        _check_count(name, value, minimum)
    train, val = training_sources(model, x, y, check_batch_size(batch_size), validation_split, validation_data,
                                  shuffle, check_batch_size(validation_batch_size or batch_size, "validation_batch_size"),
                                  steps_per_epoch, validation_steps)
    history = History()
    callback_list = CallbackList([history, *(callbacks or [])], model=model,
                                 verbose=verbose, epochs=epochs, steps=train.steps)
    run = EpochRunner(model, train, verbose, stop_on_nan=any(isinstance(c, TerminateOnNaN) for c in callbacks or []))
    model.stop_training = False
    callback_list.on_train_begin()
    try:
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            logs = run.epoch(epoch, epochs, callback_list)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs, _ = evaluate_batches(model, val, step=run.step, what="fit: validation_data")
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            run.bar.finish(logs)
            run.warn_if_diverging(epoch, logs)
            model.epochs_completed = epoch + 1  # before the callbacks, so a checkpoint records it
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        run.sync_to_host()
    callback_list.on_train_end()
    model.history = history
    return history


class EpochRunner:
    """One epoch of training steps over ``train``; the TrainStep is made at the first batch (a dataset
    builds the model there). A step with a NaN or infinite loss or gradient makes no update and raises
    ``NonFiniteLossError`` naming the cause, or, with a ``TerminateOnNaN`` callback, ends training there."""

    def __init__(self, model, train, verbose, stop_on_nan: bool = False):
        self.model, self.train, self.verbose, self.stop_on_nan = model, train, verbose, stop_on_nan
        self.step = None
        self.metrics = None
        self.bar = None
        self.first_loss = None
        self.warned = False

    def epoch(self, epoch: int, epochs: int, callback_list) -> dict:
        steps = self.train.steps
        self.bar = ProgressBar(steps or 0, self.verbose)
        total, seen, logs, count = 0.0, 0, {}, 0
        for metric in self.metrics or []:
            metric.reset_state()
        for count, (xs, y) in enumerate(self.train, 1):
            if self.step is None:
                self.step = TrainStep(self.model)
                self.metrics = make_metrics(self.model, self.train.label_shape)
            try:
                value, prediction = self.step.train(xs, y)
            except NonFiniteStep as problem:
                where = f"step {count}/{steps}" if steps is not None else f"step {count}"
                if not self.stop_on_nan:
                    raise NonFiniteLossError(
                        f"fit: {problem.reason} at epoch {epoch + 1}/{epochs}, {where}{describe_nonfinite_input(xs)}; "
                        f"training stopped before that step's update (the weights are those after the previous "
                        f"step)") from None
                logs = {**logs, "loss": problem.loss}
                callback_list.on_train_batch_end(count - 1, logs)
                break
            if self.first_loss is None:
                self.first_loss = value
            total, seen = total + value * len(xs[0]), seen + len(xs[0])
            for metric in self.metrics:
                metric.update_state(y, prediction)
            logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
            if steps is not None:
                self.bar.update(count, logs)
            callback_list.on_train_batch_end(count - 1, logs)
            if self.model.stop_training:
                break
        if count == 0:
            raise no_batches("fit", epoch)
        if steps is None:
            self.bar.total = count
        return logs

    def warn_if_diverging(self, epoch: int, logs: dict) -> None:
        """One warning per fit when the epoch's loss is far above the first step's: a learning rate too large."""
        loss, first = logs.get("loss"), self.first_loss
        if self.warned or first is None or loss is None or not math.isfinite(loss):
            return
        if loss > 10.0 and loss > DIVERGENCE_FACTOR * max(first, 1e-12):
            self.warned = True
            rate = getattr(self.model.optimizer, "learning_rate", None)
            warnings.warn(f"fit: the training loss grew from {first:.4g} (first step) to {loss:.4g} (epoch {epoch + 1}): "
                          f"training is diverging; try a smaller learning rate (now {rate})", RuntimeWarning,
                          stacklevel=4)

    def sync_to_host(self) -> None:
        if self.step is not None:
            self.step.sync_to_host()


