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

Data comes as arrays (x, y) or, as in Keras, as a *dataset*: any re-iterable object that yields
(x, y) batches (x alone for ``predict``), e.g. ``miniconv.data.image_dataset_from_directory``'s
result or a ``tf.data.Dataset``. A dataset brings its own batches and order: ``batch_size`` and
``shuffle`` are ignored, ``y`` and ``validation_split`` refused, ``validation_data`` may be one.
Each pass over it is one epoch; its batches are checked against the model as they arrive.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from . import metrics as metrics_module
from .backend import get_backend
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
    """Run every layer; return the output (the last layer's logits when fused) and the backward functions.

    backward[i] is layer i's. Two neighbours that fuse (``Layer.forward_with_next``: a Conv2D(relu)
    and its MaxPooling2D) run as one op: backward[i] is the pair's and backward[i + 1] passes the
    gradient through, so the indices still match the layers.
    """
    backward = []
    h = x
    last = len(layers) - 1
    i = 0
    while i <= last:
        layer = layers[i]
        if i == last and fused:
            h, back = layer.forward(h, training, apply_activation=False)
        else:
            fuse = getattr(layer, "forward_with_next", None)  # a nested Sequential has none
            pair = fuse(layers[i + 1], h, training) if fuse and i < last and not (fused and i + 1 == last) else None
            if pair is not None:
                h, back = pair
                backward += [back, _pass_through]
                i += 2
                continue
            h, back = layer.forward(h, training)
        backward.append(back)
        i += 1
    return h, backward


def _pass_through(dy):
    return dy


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


def _device_trainer(model):
    """Under the cuda backend, a ``kernels_cuda.device.DeviceTrainer`` for the model; else False.

    Every array of a step then stays on the GPU (one batch in, the loss and predictions out). A
    model it cannot run whole is trained op by op (NumPy in and out of each kernel), with a warning.
    """
    if get_backend().name != "cuda":
        return False
    from kernels_cuda.device import DeviceTrainer

    try:
        return DeviceTrainer(model, seed=int(global_rng().integers(2**31)))
    except NotImplementedError as reason:
        warnings.warn(f"fit: training op by op on the cuda backend, each op copying its arrays to the GPU and back: {reason}",
                      stacklevel=3)
        return False


# --- where batches come from: arrays or a dataset ----------------------------------------------
def is_dataset(value) -> bool:
    """True for a source of batches (an object to iterate: a miniconv ImageDataset, a tf.data.Dataset,
    a generator), False for array-likes (arrays, lists, tuples, tensors)."""
    if value is None or isinstance(value, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(value, "__array__") or hasattr(value, "shape") or hasattr(value, "numpy"):
        return False
    return hasattr(value, "__iter__")


class ArrayBatches:
    """(x, targets) arrays checked beforehand, sliced per step; a new order each pass when shuffling."""

    def __init__(self, x, targets, label_shape, batch_size: int, shuffle: bool):
        self.x, self.targets, self.label_shape = x, targets, label_shape
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(len(x) / batch_size)
        self.rng = global_rng()

    def __iter__(self):
        order = self.rng.permutation(len(self.x)) if self.shuffle else None
        for index in batch_indices(len(self.x), self.batch_size, order):
            yield take(self.x, index), self.targets[index]


class DatasetBatches:
    """A dataset's batches, each checked as it arrives: x against the model (building it for the first
    batch's shape), y against the loss (``label_shape`` is the first batch's label shape)."""

    def __init__(self, model, data, what: str, labels: bool = True):
        self.model, self.data, self.what, self.labels = model, data, what, labels
        self.label_shape = None
        try:
            self.steps = len(data)
        except TypeError:  # a generator, an infinite tf.data.Dataset
            self.steps = None

    def _split(self, item):
        if isinstance(item, (tuple, list)):
            if len(item) == 3:
                raise ValueError(f"{self.what}: the dataset yields (x, y, sample_weight); sample weights are not supported")
            if len(item) not in (1, 2):
                raise ValueError(f"{self.what}: the dataset must yield (x, y) batches, got a {type(item).__name__} "
                                 f"of {len(item)} items")
            return item[0], (item[1] if len(item) == 2 else None)
        if isinstance(item, dict):
            raise TypeError(f"{self.what}: the dataset must yield (x, y) batches, got a dict")
        return item, None

    def __iter__(self):
        model, what = self.model, self.what
        for item in self.data:
            x, y = self._split(item)
            x = take(check_model_input(model, x, f"{what}: x"), slice(None))
            if not self.labels:
                yield x
                continue
            if y is None:
                raise ValueError(f"{what}: the dataset yields images without labels; fit and evaluate need (x, y) "
                                 f"batches (image_dataset_from_directory: label_mode='int', 'binary' or 'categorical')")
            y = as_data_array(y, f"{what}: y")
            if len(x) != len(y):
                raise ValueError(f"{what}: a batch has {len(x)} inputs and {len(y)} labels")
            if self.label_shape is None:
                self.label_shape = y.shape
            yield x, model.loss.check_targets(y, model.output_shape, len(x))


def _no_batches(what: str, epoch: int | None = None) -> ValueError:
    when = "" if epoch is None else f" in epoch {epoch + 1}"
    return ValueError(f"{what}: the dataset yielded no batches{when}; a generator can be iterated only once: "
                      f"pass a re-iterable dataset (an object whose iter() starts a new pass)")


def _bar_total(bar, steps, step_count) -> None:
    """A dataset of unknown length: the bar learns the count at the end."""
    if steps is None:
        bar.total = step_count


# --- fit, evaluate, predict --------------------------------------------------------------------
def _require_compiled(model, what: str):
    if model.loss is None:
        raise RuntimeError(f"{what}: the model must be compiled first: model.compile(optimizer, loss, metrics=[...])")


def _make_metrics(model, y_shape):
    return [metrics_module.get(m, y_shape, model.output_shape) for m in model.compiled_metrics]


def _evaluate_batches(model, plan, batches, verbose=0, what="evaluate"):
    """Mean loss and metrics over every batch of ``batches`` (training=False): {"loss": ..., metric: ...}.
    The plan and the metrics are made at the first batch when not given (a dataset builds the model there)."""
    total, seen = 0.0, 0
    metric_objects = None
    steps = batches.steps
    bar = ProgressBar(steps or 0, verbose)
    logs = {}
    step = -1
    for step, (xb, yb) in enumerate(batches):
        if plan is None:
            plan = make_plan(model)
        if metric_objects is None:
            metric_objects = _make_metrics(model, batches.label_shape)
            for metric in metric_objects:
                metric.reset_state()
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
        if steps is not None:
            bar.update(step + 1, logs)
    if step < 0:
        raise _no_batches(what)
    _bar_total(bar, steps, step + 1)
    bar.finish(logs)
    return logs, metric_objects


def _array_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size):
    """fit's arrays, checked as before any step: (training batches, validation batches or None)."""
    if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}")
    if y is None:
        raise ValueError("fit: y (the labels) is required")
    x, y = as_data_array(x, "fit: x"), as_data_array(y, "fit: y")
    if len(x) != len(y):
        raise ValueError(f"fit: x and y must have the same number of samples, got {len(x)} inputs and {len(y)} labels")
    val_dataset = None
    if validation_data is not None:
        if is_dataset(validation_data):
            val_dataset = validation_data
            x_val = y_val = None
        else:
            x_val, y_val = _validation_arrays(validation_data)
    elif validation_split:
        split = math.floor(len(x) * (1.0 - validation_split))  # the last samples, before shuffling (Keras)
        if split in (0, len(x)):
            raise ValueError(f"fit: {len(x)} samples cannot be split with validation_split={validation_split}")
        x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
    else:
        x_val = y_val = None

    x = check_model_input(model, x, "fit: x")
    train = ArrayBatches(x, model.loss.check_targets(y, model.output_shape, len(x)), y.shape, batch_size, shuffle)
    if val_dataset is not None:
        return train, DatasetBatches(model, val_dataset, "fit: validation_data")
    if x_val is None:
        return train, None
    x_val = check_model_input(model, x_val, "fit: validation x")
    if len(x_val) != len(y_val):
        raise ValueError(f"fit: validation x and y must have the same number of samples, got {len(x_val)} and {len(y_val)}")
    targets = model.loss.check_targets(y_val, model.output_shape, len(x_val))
    return train, ArrayBatches(x_val, targets, y_val.shape, val_batch_size, False)


def _validation_arrays(validation_data):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or a dataset of (x, y) batches")
    return tuple(as_data_array(a, f"fit: validation_data[{i}]") for i, a in enumerate(validation_data))


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
    if is_dataset(x):
        if y is not None:
            raise ValueError("fit: y must not be given when x is a dataset: the dataset yields (x, y) batches")
        if validation_split and validation_data is None:
            raise ValueError("fit: validation_split needs arrays; with a dataset, pass validation_data= (as Keras)")
        train = DatasetBatches(model, x, "fit")
        if validation_data is None:
            val = None
        elif is_dataset(validation_data):
            val = DatasetBatches(model, validation_data, "fit: validation_data")
        else:
            x_val, y_val = _validation_arrays(validation_data)
            val = _LazyArrayBatches(model, x_val, y_val, val_batch_size)
    else:
        train, val = _array_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size)

    metric_objects = None if train.label_shape is None else _make_metrics(model, train.label_shape)
    plan = make_plan(model) if model.built else None
    device = None  # a DeviceTrainer under the cuda backend (False: train op by op), made at the first step
    steps = train.steps
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
    for epoch in range(initial_epoch, epochs):
        for callback in callback_list:
            callback.on_epoch_begin(epoch)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        batches = iter(train)
        for metric in metric_objects or []:
            metric.reset_state()
        bar = ProgressBar(steps or 0, verbose)
        total, seen, logs = 0.0, 0, {}
        step = -1
        try:
            for step, (xb, yb) in enumerate(batches):
                if plan is None:  # a dataset: the model was built by its first batch
                    plan = make_plan(model)
                if metric_objects is None:
                    metric_objects = _make_metrics(model, train.label_shape)
                if device is None:
                    device = _device_trainer(model)
                value, prediction = train_step(plan, xb, yb) if device is False else device.train_step(xb, yb, True)
                if not math.isfinite(value):
                    where = f"step {step + 1}/{steps}" if steps is not None else f"step {step + 1}"
                    raise NonFiniteLossError(
                        f"fit: the loss became {value} at epoch {epoch + 1}/{epochs}, {where}; training "
                        f"stopped before that step's update (the weights are those after the previous step)"
                    )
                total += value * len(xb)
                seen += len(xb)
                for metric in metric_objects:
                    metric.update_state(yb, prediction)
                logs = {"loss": total / seen, **{m.name: m.result() for m in metric_objects}}
                if steps is not None:
                    bar.update(step + 1, logs)
                for callback in callback_list[1:]:
                    callback.on_train_batch_end(step, logs)
        finally:
            if device:  # the host model (validation, callbacks, an interrupted run) gets the device's weights
                device.sync_to_host()
        if step < 0:
            raise _no_batches("fit", epoch)
        if val is not None and (epoch + 1) % validation_freq == 0:
            val_logs, _ = _evaluate_batches(model, plan, val, 0, "fit: validation_data")
            logs.update({f"val_{key}": value for key, value in val_logs.items()})
        _bar_total(bar, steps, step + 1)
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


class _LazyArrayBatches(ArrayBatches):
    """Validation arrays beside a training dataset: checked once the dataset has built the model."""

    def __init__(self, model, x, y, batch_size):
        self.model, self.raw_x, self.raw_y, self.batch_size, self.shuffle = model, x, y, batch_size, False
        self.steps = math.ceil(len(x) / batch_size)
        self.label_shape = y.shape
        self.x = None

    def __iter__(self):
        if self.x is None:
            self.x = check_model_input(self.model, self.raw_x, "fit: validation x")
            if len(self.x) != len(self.raw_y):
                raise ValueError(f"fit: validation x and y must have the same number of samples, got {len(self.x)} "
                                 f"and {len(self.raw_y)}")
            self.targets = self.model.loss.check_targets(self.raw_y, self.model.output_shape, len(self.x))
        return super().__iter__()


def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None,
             return_dict=False):
    """See ``Sequential.evaluate``."""
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
        x = check_model_input(model, x, "evaluate: x")
        y = as_data_array(y, "evaluate: y")
        if len(x) != len(y):
            raise ValueError(f"evaluate: x and y must have the same number of samples, got {len(x)} inputs and {len(y)} labels")
        targets = model.loss.check_targets(y, model.output_shape, len(x))
        batches = ArrayBatches(x, targets, y.shape, batch_size, False)
    plan = make_plan(model) if model.built else None
    logs, metric_objects = _evaluate_batches(model, plan, batches, verbose)
    if return_dict:
        return logs
    if not metric_objects:
        return logs["loss"]
    return [logs["loss"], *(logs[m.name] for m in metric_objects)]


def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """See ``Sequential.predict``."""
    verbose = resolve_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    if is_dataset(x):
        return _predict_dataset(model, x, verbose)
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


def _predict_dataset(model, data, verbose):
    """Outputs for every batch of a dataset (x, or the x of (x, y)), concatenated in its order."""
    batches = DatasetBatches(model, data, "predict", labels=False)
    bar = ProgressBar(batches.steps or 0, verbose)
    outputs = []
    for step, xb in enumerate(batches):
        outputs.append(forward(model.layers, xb, False)[0])
        if batches.steps is not None:
            bar.update(step + 1, {})
    if not outputs:
        raise _no_batches("predict")
    _bar_total(bar, batches.steps, len(outputs))
    bar.finish({})
    return np.concatenate(outputs).astype(np.float32, copy=False)
