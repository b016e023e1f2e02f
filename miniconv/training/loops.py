"""The loops behind ``Model.fit`` / ``evaluate`` / ``predict``, and the checks that run first.

    fit:       check the data, compile the model for the run (TrainStep), then per epoch:
               callbacks, one step per batch (metrics, progress bar), validation, callbacks
    evaluate:  the mean loss and metrics over batches, training=False
    predict:   the outputs of every batch, training=False

Every check on the data (shapes, dtypes, label ranges, the loss's expectations) runs before the
first step. Data comes as arrays or as a dataset (``data.py``). A dataset brings its own batches
and order: ``batch_size`` and ``shuffle`` are ignored, ``y`` and ``validation_split`` refused,
``validation_data`` may be one. Each pass over it is one epoch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

import warnings

from .. import metrics as metrics_module
from ..callbacks import CallbackList, History, TerminateOnNaN
from ..engine.execute import forward
from ..engine.plan import compile_plan
from ..ops.arrays import to_backend, to_host
from ..progress import ProgressBar, resolve_verbose
from .data import (
    ArrayBatches,
    DatasetBatches,
    LazyArrayBatches,
    as_data_array,
    batch_indices,
    check_batch_size,
    is_dataset,
    model_inputs,
    no_batches,
    take,
)
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


def _require_compiled(model, what: str):
    if model.loss is None:
        raise RuntimeError(f"{what}: the model must be compiled first: model.compile(optimizer, loss, metrics=[...])")


def _make_metrics(model, y_shape):
    return [metrics_module.get(m, y_shape, model.output_shape) for m in model.compiled_metrics]


def _check_count(name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"fit: {name} must be a non-negative int (validation_freq positive), got {value!r}")


# --- fit -----------------------------------------------------------------------------------------
def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
    """See ``Model.fit``."""
    _require_compiled(model, "fit")
    for name, value in (("class_weight", class_weight), ("sample_weight", sample_weight),
                        ("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
        if value is not None:
            raise ValueError(f"fit: {name} is not supported, got {value!r}")
    verbose = resolve_verbose(verbose)
    for name, value, minimum in (("epochs", epochs, 0), ("initial_epoch", initial_epoch, 0),
                                 ("validation_freq", validation_freq, 1)):
        _check_count(name, value, minimum)
    train, val = training_sources(model, x, y, check_batch_size(batch_size), validation_split, validation_data,
                                  shuffle, check_batch_size(validation_batch_size or batch_size, "validation_batch_size"))
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
                self.metrics = _make_metrics(self.model, self.train.label_shape)
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


def training_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size):
    """fit's data, checked as before any step: (training batches, validation batches or None)."""
    if is_dataset(x):
        if y is not None:
            raise ValueError("fit: y must not be given when x is a dataset: the dataset yields (x, y) batches")
        if validation_split and validation_data is None:
            raise ValueError("fit: validation_split needs arrays; with a dataset, pass validation_data= (as Keras)")
        train = DatasetBatches(model, x, "fit")
        if validation_data is None:
            return train, None
        if is_dataset(validation_data):
            return train, DatasetBatches(model, validation_data, "fit: validation_data")
        x_val, y_val = _validation_arrays(validation_data)
        return train, LazyArrayBatches(model, x_val, y_val, val_batch_size)
    return _array_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size)


def _array_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size):
    if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}")
    if y is None:
        raise ValueError("fit: y (the labels) is required")
    xs, y = model_inputs(model, x, "fit: x"), as_data_array(y, "fit: y")
    if len(xs[0]) != len(y):
        raise ValueError(f"fit: x and y must have the same number of samples, got {len(xs[0])} inputs and {len(y)} labels")
    val_xs = y_val = None
    if validation_data is not None:
        if is_dataset(validation_data):
            val = DatasetBatches(model, validation_data, "fit: validation_data")
            return ArrayBatches(xs, model.loss.check_targets(y, model.output_shape, len(y)), y.shape, batch_size, shuffle), val
        x_val, y_val = _validation_arrays(validation_data)
        val_xs = model_inputs(model, x_val, "fit: validation x")
    elif validation_split:
        split = math.floor(len(y) * (1.0 - validation_split))  # the last samples, before shuffling (Keras)
        if split in (0, len(y)):
            raise ValueError(f"fit: {len(y)} samples cannot be split with validation_split={validation_split}")
        val_xs, y_val = [a[split:] for a in xs], y[split:]
        xs, y = [a[:split] for a in xs], y[:split]
    train = ArrayBatches(xs, model.loss.check_targets(y, model.output_shape, len(y)), y.shape, batch_size, shuffle)
    if val_xs is None:
        return train, None
    if len(val_xs[0]) != len(y_val):
        raise ValueError(f"fit: validation x and y must have the same number of samples, got {len(val_xs[0])} and {len(y_val)}")
    targets = model.loss.check_targets(y_val, model.output_shape, len(y_val))
    return train, ArrayBatches(val_xs, targets, y_val.shape, val_batch_size, False)


def _validation_arrays(validation_data):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or a dataset of (x, y) batches")
    x_val, y_val = validation_data
    return x_val, as_data_array(y_val, "fit: validation_data[1]")


# --- evaluate ------------------------------------------------------------------------------------
def evaluate_batches(model, batches, verbose=0, what="evaluate", step=None):
    """Mean loss and metrics over every batch (training=False): ({"loss": ..., metric: ...}, metrics).
    ``step``: a TrainStep to evaluate with (fit's: the run's own arrays); else one is made."""
    total, seen, logs, count = 0.0, 0, {}, 0
    metric_objects = None
    bar = ProgressBar(batches.steps or 0, verbose)
    for count, (xs, y) in enumerate(batches, 1):
        if step is None:
            step = TrainStep(model)
        if metric_objects is None:
            metric_objects = _make_metrics(model, batches.label_shape)
        value, prediction = step.evaluate(xs, y)
        total, seen = total + value * len(xs[0]), seen + len(xs[0])
        for metric in metric_objects:
            metric.update_state(y, prediction)
        logs = {"loss": total / seen, **{m.name: m.result() for m in metric_objects}}
        if batches.steps is not None:
            bar.update(count, logs)
    if count == 0:
        raise no_batches(what)
    if batches.steps is None:
        bar.total = count
    bar.finish(logs)
    return logs, metric_objects


def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None,
             return_dict=False):
    """See ``Model.evaluate``."""
    _require_compiled(model, "evaluate")
    if sample_weight is not None or steps is not None:
        raise ValueError("evaluate: sample_weight and steps are not supported")
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    if is_dataset(x):
        if y is not None:
            raise ValueError("evaluate: y must not be given when x is a dataset: the dataset yields (x, y) batches")
        batches = DatasetBatches(model, x, "evaluate")
    else:
        if y is None:
            raise ValueError("evaluate: y (the labels) is required")
        xs, y = model_inputs(model, x, "evaluate: x"), as_data_array(y, "evaluate: y")
        if len(xs[0]) != len(y):
            raise ValueError(f"evaluate: x and y must have the same number of samples, got {len(xs[0])} inputs and {len(y)} labels")
        batches = ArrayBatches(xs, model.loss.check_targets(y, model.output_shape, len(y)), y.shape, batch_size, False)
    logs, metric_objects = evaluate_batches(model, batches, verbose)
    if return_dict:
        return logs
    if not metric_objects:
        return logs["loss"]
    return [logs["loss"], *(logs[m.name] for m in metric_objects)]


# --- predict -------------------------------------------------------------------------------------
def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """See ``Model.predict``: one array, or a list of arrays for a model with several outputs."""
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    outputs = run_inference(model, x, batch_size, verbose, "predict")
    return outputs[0] if len(model.outputs) == 1 else outputs


def run_inference(model, x, batch_size: int, verbose=0, what="predict", outputs=None) -> list[np.ndarray]:
    """The values of the model's outputs (or of the graph tensors ``outputs``) for every sample of x
    (arrays or a dataset), training=False, as host float32 arrays in x's order."""
    if is_dataset(x):
        batches = DatasetBatches(model, x, what, labels=False)
        total, places = None, None
    else:
        xs = model_inputs(model, x, f"{what}: x")
        total = len(xs[0])
        places = list(batch_indices(total, batch_size))
        batches = ([take(a, index) for a in xs] for index in places)
    plan = None
    steps = len(places) if places is not None else batches.steps
    bar = ProgressBar(steps or 0, verbose)
    results, count = None, 0
    for count, inputs in enumerate(batches, 1):
        if plan is None:
            plan = compile_plan(model, outputs=outputs)
        values, _ = forward(plan, [to_backend(a, backend=plan.backend) for a in inputs], False, keep_tape=False)
        values = [to_host(v, backend=plan.backend) for v in values]
        if total is None:  # a dataset: keep the pieces
            results = [[] for _ in values] if results is None else results
            for kept, value in zip(results, values):
                kept.append(value)
        else:
            if results is None:
                results = [np.empty((total, *v.shape[1:]), np.float32) for v in values]
            for kept, value in zip(results, values):
                kept[places[count - 1]] = value
        if steps is not None:
            bar.update(count, {})
    if count == 0:
        raise no_batches(what)
    if steps is None:
        bar.total = count
    bar.finish({})
    if total is None:
        return [np.concatenate(pieces).astype(np.float32, copy=False) for pieces in results]
    return results
