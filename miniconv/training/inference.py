"""The loops behind ``Model.evaluate`` and ``Model.predict`` (and fit's validation), training=False.

    evaluate:   the mean loss and metrics over batches (``evaluate_batches``)
    predict:    the outputs of every batch, in x's order (``run_inference``; also what
                ``model.activations`` runs, for the outputs of chosen layers)
"""

from __future__ import annotations

import numpy as np

from .. import metrics as metrics_module
from ..engine.execute import forward
from ..engine.plan import compile_plan
from ..ops.arrays import to_backend, to_host
from ..progress import ProgressBar, resolve_verbose
from .data import (
    ArrayBatches,
    DatasetBatches,
    as_data_array,
    batch_indices,
    check_batch_size,
    check_steps,
    is_dataset,
    model_inputs,
    no_batches,
    take,
)
from .step import TrainStep


def require_compiled(model, what: str):
    if model.loss is None:
        raise RuntimeError(f"{what}: the model must be compiled first: model.compile(optimizer, loss, metrics=[...])")


def make_metrics(model, y_shape):
    return [metrics_module.get(m, y_shape, model.output_shape) for m in model.compiled_metrics]


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
            metric_objects = make_metrics(model, batches.label_shape)
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
    require_compiled(model, "evaluate")
    if sample_weight is not None:
        raise ValueError("evaluate: sample_weight is not supported")
    check_steps(steps, "evaluate: steps")
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    if is_dataset(x):
        if y is not None:
            raise ValueError("evaluate: y must not be given when x is a dataset: the dataset yields (x, y) batches")
        batches = DatasetBatches(model, x, "evaluate", steps=steps)
    else:
        if steps is not None:
            raise ValueError("evaluate: steps needs a dataset or a generator of batches; with arrays, evaluate "
                             "takes every sample")
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
