"""Metrics with Keras's names: accuracy (resolved as Keras resolves it), binary / categorical /
sparse-categorical accuracy, mse and mae. Each is a running mean of per-sample values.

    "accuracy" / "acc" -> binary_accuracy            if the model has one output unit,
                       -> sparse_categorical_accuracy if the labels have one fewer axis than the
                                                      output, or a last axis of 1,
                       -> categorical_accuracy        otherwise (one-hot labels).

binary_accuracy: mean over the last axis of [y == (p > threshold)], threshold 0.5.
"""

from __future__ import annotations

import numpy as np


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return (y_true == (y_pred > threshold)).mean(axis=-1)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim:
        y_true = y_true.reshape(y_true.shape[:-1])
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)


def mean_squared_error(y_true, y_pred):
    return np.square(np.asarray(y_true) - np.asarray(y_pred)).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.abs(np.asarray(y_true) - np.asarray(y_pred)).mean(axis=-1)


class Metric:
    """A running mean: ``update_state(y_true, y_pred)``, ``result()``, ``reset_state()``."""

    def __init__(self, fn, name: str, **kwargs):
        self.fn, self.name, self.kwargs = fn, name, kwargs
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred):
        values = self.fn(y_true, y_pred, **self.kwargs)
        self.total += float(np.sum(values, dtype=np.float64))
        self.count += int(np.size(values))

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def get_config(self):
        return {"name": self.name, **self.kwargs}


class BinaryAccuracy(Metric):
    def __init__(self, name="binary_accuracy", threshold=0.5):
        if not 0 <= threshold <= 1:
            raise ValueError(f"BinaryAccuracy: threshold must be in [0, 1], got {threshold!r}")
        super().__init__(binary_accuracy, name, threshold=threshold)


class CategoricalAccuracy(Metric):
    def __init__(self, name="categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


class MeanSquaredError(Metric):
    def __init__(self, name="mean_squared_error"):
        super().__init__(mean_squared_error, name)


class MeanAbsoluteError(Metric):
    def __init__(self, name="mean_absolute_error"):
        super().__init__(mean_absolute_error, name)


_BY_NAME = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
NAMES = sorted([*_BY_NAME, "accuracy", "acc"])


def resolve_accuracy(label_shape, output_shape):
    """Keras's choice for "accuracy": label and output shapes both include the batch axis."""
    if output_shape[-1] == 1:
        return BinaryAccuracy
    if len(label_shape) < len(output_shape) or (label_shape[-1] == 1 and output_shape[-1] > 1):
        return SparseCategoricalAccuracy
    return CategoricalAccuracy


def get(identifier, label_shape=None, output_shape=None) -> Metric:
    """A Metric from a name (given shapes resolve "accuracy") or a Metric instance (returned as is).

    The metric takes the name given, so ``metrics=["acc"]`` reports ``acc`` and ``val_acc``.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            if label_shape is None or output_shape is None:
                return SparseCategoricalAccuracy(name=identifier)  # placeholder until fit sees the labels
            return resolve_accuracy(label_shape, output_shape)(name=identifier)
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
    raise ValueError(f"metrics: unknown metric {identifier!r}; expected one of {NAMES} or a miniconv.metrics.Metric")


__all__ = [
    "NAMES",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "get",
    "mean_absolute_error",
    "mean_squared_error",
    "resolve_accuracy",
    "sparse_categorical_accuracy",
]
