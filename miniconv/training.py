"""The loops behind ``Sequential.fit`` / ``evaluate`` / ``predict``, and the checks that run first.

One training step (``train_step``):

    forward every layer with training=True, keeping each layer's ``backward``
    loss and d loss / d output            (from the logits when the last layer is softmax / sigmoid
                                           and the loss a crossentropy, as Keras does: dz = (p - y) / N)
    backward from the last layer down to the first layer with trainable weights
    optimizer.apply(gradients, weights)    in place, float32

Batches are taken once per step (``x[indices]``, converted to float32 there, so uint8 images stay
uint8 in memory); nothing is recomputed in the backward pass. Every check on the data (shapes,
dtypes, label ranges, the loss's expectations) runs before the first step.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import metrics as metrics_module
from .callbacks import Callback, History
from .layers.base import format_shape
from .progress import ProgressBar, resolve_verbose
from .utils import global_rng


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message says at which epoch and step."""


# --- checks ------------------------------------------------------------------------------------
def as_data_array(value, what: str) -> np.ndarray:
    """Numbers with a batch axis; tf tensors and lists are converted, strings and objects refused."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    if value is None:
        raise ValueError(f"{what}: expected an array, got None")
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{what}: expected a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{what}: expected a real-valued array, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{what}: expected an array with a batch axis, got a scalar")
    if len(array) == 0:
        raise ValueError(f"{what}: got an empty array of shape {array.shape}")
    return array


def check_batch_size(batch_size, what: str = "batch_size") -> int:
    if batch_size is None:
        return 32
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{what}: expected a positive int, got {batch_size!r}")
    return int(batch_size)


def check_model_input(model, x, what: str = "x") -> np.ndarray:
    """Build the model for x's shape if needed, then check x fits the model's input shape."""
    x = as_data_array(x, what)
    if not model.built:
        model.build((None, *x.shape[1:]))
    expected = model.input_shape
    if x.ndim != len(expected) or any(e is not None and e != d for e, d in zip(expected[1:], x.shape[1:])):
        raise ValueError(
            f"{what}: the model expects input of shape {format_shape(expected)}, got an array of shape {x.shape}"
        )
    return x


def _unsupported(**kwargs):
    for name, value in kwargs.items():
        if value is not None:
            raise ValueError(f"fit: {name} is not supported, got {value!r}")


def take(x, index) -> np.ndarray:
    """x[index] as float32 (a view for a slice of float32 data, one copy otherwise)."""
    batch = x[index]
    return batch if batch.dtype == np.float32 else batch.astype(np.float32)


def batch_indices(n: int, batch_size: int, order=None):
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


# --- the plan of one compiled model ------------------------------------------------------------
@dataclass
class Plan:
    """What a step needs, resolved once per fit / evaluate call."""

    layers: list
    loss: object
    optimizer: object
    fused: bool            # the loss takes the last layer's logits (its activation is skipped)
    first_backward: int | None  # backward stops at this layer (None: nothing trainable)
    slots: list            # (layer, index into layer.grads) of every trainable weight
    variables: list        # the trainable weight arrays, in the same order
    keys: list             # their names, keys of the optimizer's state
    output_op: object = None  # fused with a loss of the other activation: the op giving the model's output


def leaf_layers(layer) -> list:
    """The layers that own weights directly (a nested Sequential contributes its own leaves)."""
    inner = getattr(layer, "layers", None)
    return [layer] if inner is None else [leaf for sub in inner for leaf in leaf_layers(sub)]


def make_plan(model) -> Plan:
    layers = model.layers
    loss = model.loss
    last = layers[-1]
    # Keras takes the logits of any softmax or sigmoid output for any crossentropy (even a
    # sigmoid output under categorical crossentropy: it then computes softmax crossentropy of
    # the sigmoid's logits); so do we, to give the same numbers.
    activation = getattr(last, "activation", None)
    fused = loss.logits_activation is not None and activation in ("softmax", "sigmoid")
    output_op = last._activation_op if fused and activation != loss.logits_activation else None
    slots, variables, keys = [], [], []
    first = None
    for i, layer in enumerate(layers):
        for leaf in leaf_layers(layer):
            if leaf.trainable and leaf.params:
                first = i if first is None else first
                for j, (param, key) in enumerate(zip(leaf.params, leaf.weight_names)):
                    slots.append((leaf, j))
                    variables.append(param)
                    keys.append(key)
    return Plan(layers, loss, model.optimizer, fused, first, slots, variables, keys, output_op)


def forward(layers, x, training: bool, fused: bool = False):
    """Run every layer; return the output (the last layer's logits when fused) and the backward functions."""
    backward = []
    h = x
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        if i == last and fused:
            h, back = layer.forward(h, training, apply_activation=False)
        else:
            h, back = layer.forward(h, training)
        backward.append(back)
    return h, backward


def loss_and_prediction(plan: Plan, y, out):
    """(loss value, d loss / d out, prediction) for the last layer's output (its logits when fused)."""
    if plan.fused:
        value, grad, prediction = plan.loss.value_and_grad_logits(y, out)
        if plan.output_op is not None:
            prediction = plan.output_op(out)
        return value, grad, prediction
    value, grad = plan.loss.value_and_grad(y, out)
    return value, grad, out


def train_step(plan: Plan, x, y):
    """One optimizer step on one batch; returns (loss, prediction). Weights are untouched if the loss is not finite."""
    out, backward = forward(plan.layers, x, True, plan.fused)
    value, grad, prediction = loss_and_prediction(plan, y, out)
    if not math.isfinite(value) or plan.first_backward is None:
        return value, prediction
    for i in range(len(backward) - 1, plan.first_backward, -1):
        grad = backward[i](grad)
    first = plan.layers[plan.first_backward]
    if first.skips_input_gradient:  # nothing below the first trained layer needs dx
        backward[plan.first_backward](grad, input_gradient=False)
    else:
        backward[plan.first_backward](grad)
    plan.optimizer.apply([layer.grads[j] for layer, j in plan.slots], plan.variables, plan.keys)
    return value, prediction


# --- fit, evaluate, predict --------------------------------------------------------------------
def _require_compiled(model, what: str):
    if model.loss is None:
        raise RuntimeError(f"{what}: the model must be compiled first: model.compile(optimizer, loss, metrics=[...])")


def _make_metrics(model, y_shape):
    return [metrics_module.get(m, y_shape, model.output_shape) for m in model.compiled_metrics]


def _evaluate_arrays(plan, x, y, batch_size, metric_objects, verbose=0):
    total, seen = 0.0, 0
    for metric in metric_objects:
        metric.reset_state()
    steps = math.ceil(len(x) / batch_size)
    bar = ProgressBar(steps, verbose)
    logs = {}
    for step, index in enumerate(batch_indices(len(x), batch_size)):
        xb, yb = take(x, index), y[index]
        out, _ = forward(plan.layers, xb, False, plan.fused)
        if plan.fused:
            value, _, prediction = loss_and_prediction(plan, yb, out)
        else:
            value, prediction = float(plan.loss.per_sample(yb, out).mean(dtype=np.float64)), out
        total += value * len(xb)
        seen += len(xb)
        for metric in metric_objects:
            metric.update_state(yb, prediction)
        logs = {"loss": total / seen, **{m.name: m.result() for m in metric_objects}}
        bar.update(step + 1, logs)
    bar.finish(logs)
    return logs


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
    """See ``Sequential.fit``."""
    _require_compiled(model, "fit")
    _unsupported(class_weight=class_weight, sample_weight=sample_weight, steps_per_epoch=steps_per_epoch,
                 validation_steps=validation_steps)
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    val_batch_size = check_batch_size(validation_batch_size or batch_size, "validation_batch_size")
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch), ("validation_freq", validation_freq)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < (1 if name == "validation_freq" else 0):
            raise ValueError(f"fit: {name} must be a non-negative int (validation_freq positive), got {value!r}")
    if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}")
    if y is None:
        raise ValueError("fit: y (the labels) is required")
    x, y = as_data_array(x, "fit: x"), as_data_array(y, "fit: y")
    if len(x) != len(y):
        raise ValueError(f"fit: x and y must have the same number of samples, got {len(x)} inputs and {len(y)} labels")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
        x_val, y_val = (as_data_array(a, f"fit: validation_data[{i}]") for i, a in enumerate(validation_data))
    elif validation_split:
        split = math.floor(len(x) * (1.0 - validation_split))  # the last samples, before shuffling (Keras)
        if split in (0, len(x)):
            raise ValueError(f"fit: {len(x)} samples cannot be split with validation_split={validation_split}")
        x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
    else:
        x_val = y_val = None

    x = check_model_input(model, x, "fit: x")
    y_targets = model.loss.check_targets(y, model.output_shape, len(x))
    metric_objects = _make_metrics(model, y.shape)
    if x_val is not None:
        x_val = check_model_input(model, x_val, "fit: validation x")
        if len(x_val) != len(y_val):
            raise ValueError(f"fit: validation x and y must have the same number of samples, got {len(x_val)} and {len(y_val)}")
        y_val_targets = model.loss.check_targets(y_val, model.output_shape, len(x_val))
        val_metrics = _make_metrics(model, y_val.shape)

    plan = make_plan(model)
    n, steps = len(x), math.ceil(len(x) / batch_size)
    history = History()
    callback_list = [history, *(callbacks or [])]
    for callback in callback_list:
        if not isinstance(callback, Callback):
            raise TypeError(f"fit: callbacks must be miniconv.callbacks.Callback instances, got {callback!r}")
        callback.set_model(model)
        callback.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
    model.stop_training = False
    for callback in callback_list:
        callback.on_train_begin()
    rng = global_rng()
    for epoch in range(initial_epoch, epochs):
        for callback in callback_list:
            callback.on_epoch_begin(epoch)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        order = rng.permutation(n) if shuffle else None
        for metric in metric_objects:
            metric.reset_state()
        bar = ProgressBar(steps, verbose)
        total, seen, logs = 0.0, 0, {}
        for step, index in enumerate(batch_indices(n, batch_size, order)):
            xb, yb = take(x, index), y_targets[index]
            value, prediction = train_step(plan, xb, yb)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"fit: the loss became {value} at epoch {epoch + 1}/{epochs}, step {step + 1}/{steps}; training "
                    f"stopped before that step's update (the weights are those after the previous step)"
                )
            total += value * len(xb)
            seen += len(xb)
            for metric in metric_objects:
                metric.update_state(yb, prediction)
            logs = {"loss": total / seen, **{m.name: m.result() for m in metric_objects}}
            bar.update(step + 1, logs)
            for callback in callback_list[1:]:
                callback.on_train_batch_end(step, logs)
        if x_val is not None and (epoch + 1) % validation_freq == 0:
            val_logs = _evaluate_arrays(plan, x_val, y_val_targets, val_batch_size, val_metrics)
            logs.update({f"val_{key}": value for key, value in val_logs.items()})
        bar.finish(logs)
        model.epochs_completed = epoch + 1  # before the callbacks, so a checkpoint records it
        for callback in callback_list:
            callback.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    for callback in callback_list:
        callback.on_train_end()
    model.history = history
    return history


def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None,
             return_dict=False):
    """See ``Sequential.evaluate``."""
    _require_compiled(model, "evaluate")
    if sample_weight is not None or steps is not None:
        raise ValueError("evaluate: sample_weight and steps are not supported")
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    if y is None:
        raise ValueError("evaluate: y (the labels) is required")
    x = check_model_input(model, x, "evaluate: x")
    y = as_data_array(y, "evaluate: y")
    if len(x) != len(y):
        raise ValueError(f"evaluate: x and y must have the same number of samples, got {len(x)} inputs and {len(y)} labels")
    targets = model.loss.check_targets(y, model.output_shape, len(x))
    metric_objects = _make_metrics(model, y.shape)
    logs = _evaluate_arrays(make_plan(model), x, targets, batch_size, metric_objects, verbose)
    if return_dict:
        return logs
    if not metric_objects:
        return logs["loss"]
    return [logs["loss"], *(logs[m.name] for m in metric_objects)]


def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """See ``Sequential.predict``."""
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    x = check_model_input(model, x, "predict: x")
    out = None
    steps = math.ceil(len(x) / batch_size)
    bar = ProgressBar(steps, verbose)
    for step, index in enumerate(batch_indices(len(x), batch_size)):
        y, _ = forward(model.layers, take(x, index), False)
        if out is None:
            out = np.empty((len(x), *y.shape[1:]), np.float32)
        out[index] = y
        bar.update(step + 1, {})
    bar.finish({})
    return out
