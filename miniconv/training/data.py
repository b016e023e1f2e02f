"""Where batches come from, checked before any step: arrays, or a dataset that yields batches.

    batches = ArrayBatches(xs, targets, label_shape, batch_size=64, shuffle=True)
    for xs, y in batches: ...          # xs: one float32 array per model input

Arrays are sliced once per step (``x[indices]``, converted to float32 there, so uint8 images stay
uint8 in memory). A *dataset* is any re-iterable object that yields (x, y) batches (x alone for
``predict``): ``miniconv.data.image_dataset_from_directory``'s result, a ``tf.data.Dataset``,
a generator. It brings its own batches and order; its batches are checked against the model as
they arrive. A model with several inputs takes x as a list (or tuple) of arrays, one per input.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..shapes import format_shape
from ..utils import global_rng


# --- checks --------------------------------------------------------------------------------------
def as_data_array(value, what: str) -> np.ndarray:
    """Numbers with a batch axis; tf tensors and lists are converted, strings and objects refused."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    if value is None:
        raise ValueError(f"{what}: expected an array, got None")
    try:
        array = np.asarray(value)
    except ValueError as error:  # a ragged list
        raise ValueError(f"{what}: expected a rectangular array, got a ragged sequence ({error})") from None
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


def _input_shapes(model) -> list:
    shape = model.input_shape
    return list(shape) if isinstance(shape, list) else [shape]


def model_inputs(model, x, what: str = "x") -> list[np.ndarray]:
    """x as the list of arrays the model's inputs take, each checked against its input's shape.

    A model with one input takes one array; with several, a list or tuple of arrays, one per
    input, of one length. An unbuilt Sequential is built here for x's shape.
    """
    several = model.built and isinstance(model.input_shape, list)
    if several:
        if not isinstance(x, (list, tuple)) or len(x) != len(model.input_shape):
            raise ValueError(f"{what}: the model has {len(model.input_shape)} inputs; pass a list of as many arrays, "
                             f"got {type(x).__name__}")
        arrays = [as_data_array(v, f"{what}[{i}]") for i, v in enumerate(x)]
    else:
        arrays = [as_data_array(x, what)]
    if not model.built:
        model.build((None, *arrays[0].shape[1:]))
    for i, (array, expected) in enumerate(zip(arrays, _input_shapes(model))):
        if array.ndim != len(expected) or any(e is not None and e != d for e, d in zip(expected[1:], array.shape[1:])):
            name = f"{what}[{i}]" if several else what
            raise ValueError(f"{name}: the model expects input of shape {format_shape(expected)}, got an array of "
                             f"shape {array.shape}")
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"{what}: the input arrays have different numbers of samples: {[len(a) for a in arrays]}")
    return arrays


def check_model_input(model, x, what: str = "x") -> np.ndarray:
    """The one input array of a one-input model, checked (see ``model_inputs``)."""
    return model_inputs(model, x, what)[0]


def take(x, index) -> np.ndarray:
    """x[index] as float32 (a view for a slice of float32 data, one copy otherwise)."""
    batch = x[index]
    return batch if batch.dtype == np.float32 else batch.astype(np.float32)


def batch_indices(n: int, batch_size: int, order=None):
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def is_dataset(value) -> bool:
    """True for a source of batches (an object to iterate: a miniconv ImageDataset, a tf.data.Dataset,
    a generator), False for array-likes (arrays, lists, tuples, tensors)."""
    if value is None or isinstance(value, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(value, "__array__") or hasattr(value, "shape") or hasattr(value, "numpy"):
        return False
    return hasattr(value, "__iter__")


def no_batches(what: str, epoch: int | None = None) -> ValueError:
    when = "" if epoch is None else f" in epoch {epoch + 1}"
    return ValueError(f"{what}: the dataset yielded no batches{when}; a generator can be iterated only once: "
                      f"pass a re-iterable dataset (an object whose iter() starts a new pass)")


# --- batches -------------------------------------------------------------------------------------
class ArrayBatches:
    """(inputs, targets) arrays checked beforehand, sliced per step; a new order each pass when shuffling."""

    def __init__(self, xs: list, targets, label_shape, batch_size: int, shuffle: bool):
        self.xs, self.targets, self.label_shape = xs, targets, label_shape
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(len(xs[0]) / batch_size)
        self.rng = global_rng()

    def __iter__(self):
        n = len(self.xs[0])
        order = self.rng.permutation(n) if self.shuffle else None
        for index in batch_indices(n, self.batch_size, order):
            yield [take(x, index) for x in self.xs], self.targets[index]


class LazyArrayBatches(ArrayBatches):
    """Validation arrays beside a training dataset: checked once the dataset has built the model."""

    def __init__(self, model, x, y, batch_size):
        self.model, self.raw_x, self.raw_y, self.batch_size, self.shuffle = model, x, y, batch_size, False
        self.steps = math.ceil(len(y) / batch_size)
        self.label_shape = y.shape
        self.xs = None

    def __iter__(self):
        if self.xs is None:
            self.xs = model_inputs(self.model, self.raw_x, "fit: validation x")
            if len(self.xs[0]) != len(self.raw_y):
                raise ValueError(f"fit: validation x and y must have the same number of samples, got {len(self.xs[0])} "
                                 f"and {len(self.raw_y)}")
            self.targets = self.model.loss.check_targets(self.raw_y, self.model.output_shape, len(self.xs[0]))
        return super().__iter__()


class DatasetBatches:
    """A dataset's batches, each checked as it arrives: x against the model (building it for the first
    batch's shape), y against the loss (``label_shape`` is the first batch's label shape).

    ``steps`` (fit's ``steps_per_epoch`` / ``validation_steps``, evaluate's ``steps``): each pass takes
    that many batches from one iterator kept across passes, as Keras does, so an endless generator
    (Chollet's ``fit_generator`` idiom) works; an iterator that ends is started again for the next pass,
    and one that ends within a pass ends that pass with a warning.
    """

    def __init__(self, model, data, what: str, labels: bool = True, steps: int | None = None):
        self.model, self.data, self.what, self.labels = model, data, what, labels
        self.label_shape = None
        self.fixed_steps = steps
        self._iterator = None
        if steps is not None:
            self.steps = steps
            return
        try:
            self.steps = len(data)
        except TypeError:  # a generator, an infinite tf.data.Dataset
            self.steps = None

    def _items(self):
        if self.fixed_steps is None:
            yield from self.data
            return
        for taken in range(self.fixed_steps):
            if self._iterator is None:
                self._iterator = iter(self.data)
            try:
                yield next(self._iterator)
            except StopIteration:
                self._iterator = None
                if taken:
                    import warnings

                    warnings.warn(f"{self.what}: the data ran out after {taken} of {self.fixed_steps} steps; the pass "
                                  f"ends there (make the dataset repeat, or lower the steps)", UserWarning, stacklevel=4)
                return

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
        for item in self._items():
            x, y = self._split(item)
            xs = [take(a, slice(None)) for a in model_inputs(model, x, f"{what}: x")]
            if not self.labels:
                yield xs
                continue
            if y is None:
                raise ValueError(f"{what}: the dataset yields images without labels; fit and evaluate need (x, y) "
                                 f"batches (image_dataset_from_directory: label_mode='int', 'binary' or 'categorical')")
            y = as_data_array(y, f"{what}: y")
            if len(xs[0]) != len(y):
                raise ValueError(f"{what}: a batch has {len(xs[0])} inputs and {len(y)} labels")
            if self.label_shape is None:
                self.label_shape = y.shape
            yield xs, model.loss.check_targets(y, model.output_shape, len(xs[0]))


# --- fit's data ------------------------------------------------------------------------------------
def check_steps(value, name: str):
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return value


def training_sources(model, x, y, batch_size, validation_split, validation_data, shuffle, val_batch_size,
                     steps_per_epoch=None, validation_steps=None):
    """fit's data, checked as before any step: (training batches, validation batches or None)."""
    check_steps(steps_per_epoch, "fit: steps_per_epoch")
    check_steps(validation_steps, "fit: validation_steps")
    if is_dataset(x):
        if y is not None:
            raise ValueError("fit: y must not be given when x is a dataset: the dataset yields (x, y) batches")
        if validation_split and validation_data is None:
            raise ValueError("fit: validation_split needs arrays; with a dataset, pass validation_data= (as Keras)")
        train = DatasetBatches(model, x, "fit", steps=steps_per_epoch)
        if validation_data is None:
            return train, None
        if is_dataset(validation_data):
            return train, DatasetBatches(model, validation_data, "fit: validation_data", steps=validation_steps)
        x_val, y_val = _validation_arrays(validation_data)
        return train, LazyArrayBatches(model, x_val, y_val, val_batch_size)
    if steps_per_epoch is not None:
        raise ValueError("fit: steps_per_epoch needs a dataset or a generator of batches; with arrays every epoch is "
                         "one pass over them (set batch_size instead)")
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
