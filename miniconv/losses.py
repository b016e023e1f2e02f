"""Losses with Keras's names, formulas and reduction, each with its gradient.

    categorical_crossentropy        -sum(y * log(clip(p / sum(p), eps, 1 - eps)))  per sample
    sparse_categorical_crossentropy -log(c[label] / sum(c)), c = clip(p, eps, 1 - eps)
    binary_crossentropy             mean over the last axis of -(y log c + (1 - y) log(1 - c))
    mse (mean_squared_error)        mean over the last axis of (y - p)^2

with eps = 1e-7 (Keras's ``backend.epsilon()``); ``from_logits=True`` computes the same from
logits, exactly (log-softmax / log-sigmoid). The reduction is Keras's default,
"sum_over_batch_size": the mean of the per-sample losses over the batch.

Keras computes a crossentropy from the *logits* when the predictions come out of a softmax or
sigmoid activation, ignoring the clipping (and, quirk included, whichever of the two it was: a
sigmoid output under categorical crossentropy gets softmax crossentropy of the sigmoid's
logits). ``fit`` and ``evaluate`` of a model whose last layer has such an activation do the
same here, through ``value_and_grad_logits``, which also skips the activation's backward pass
(dz = (p - y) / N). Called directly on probability arrays, the losses clip as above.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7
_F32 = np.float32


def _format(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _log_softmax(z):
    """(log p, p) along the last axis, max-subtracted, float32."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)
    return shifted - np.log(total), e / total


def _sigmoid(z):
    """1 / (1 + exp(-z)) without overflow."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _clip_mask(q):
    """TensorFlow's clip_by_value gradient: 1 where eps <= q <= 1 - eps, else 0."""
    return (q >= _F32(EPSILON)) & (q <= _F32(1 - EPSILON))


class Loss:
    """Base class: ``loss(y_true, y_pred) -> float`` (mean over the batch), with gradients for training."""

    name = "loss"
    #: "softmax" / "sigmoid": the activation whose logits this loss can take instead of its output.
    logits_activation: str | None = None

    def __init__(self, reduction="sum_over_batch_size", name=None):
        if reduction not in ("sum_over_batch_size", "auto", None):
            raise ValueError(f"{type(self).__name__}: only reduction='sum_over_batch_size' is supported, got {reduction!r}")
        if name is not None:
            self.name = name

    # --- what users call ---------------------------------------------------------------------
    def __call__(self, y_true, y_pred) -> float:
        y_pred = np.asarray(y_pred, _F32)
        y_true = self.check_targets(y_true, (None, *y_pred.shape[1:]), len(y_pred))
        return float(self.per_sample(y_true, y_pred).mean(dtype=np.float64))

    # --- what the trainer calls --------------------------------------------------------------
    def check_targets(self, y, output_shape, n: int | None = None):
        """Check labels against the model's output shape (with its None batch) and convert them once."""
        raise NotImplementedError

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def value_and_grad(self, y_true, y_pred):
        """(mean loss, d loss / d y_pred) for prepared targets (see ``check_targets``)."""
        raise NotImplementedError

    def value_and_grad_logits(self, y_true, logits):
        """(mean loss, d loss / d logits, activation(logits)) — only where ``logits_activation`` is set."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    # --- shared checks -----------------------------------------------------------------------
    def _labels_array(self, y, n):
        if hasattr(y, "numpy") and not isinstance(y, np.ndarray):
            y = y.numpy()
        y = np.asarray(y)
        if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise TypeError(f"{self.name}: labels must be numeric, got dtype {y.dtype}")
        if y.ndim == 0:
            raise ValueError(f"{self.name}: labels must have a batch axis, got a scalar")
        if n is not None and len(y) != n:
            raise ValueError(f"{self.name}: got {len(y)} labels for {n} samples")
        return y

    def _same_shape_targets(self, y, output_shape, n, hint=""):
        """Targets shaped like the output; (N,) is accepted for a (None, 1) output, as Keras squeezes it."""
        y = self._labels_array(y, n)
        if y.ndim == 1 and len(output_shape) == 2 and output_shape[1] == 1:
            y = y.reshape(-1, 1)
        expected = tuple(output_shape[1:])
        if tuple(y.shape[1:]) != expected:
            raise ValueError(
                f"{self.name}: labels must have shape (N, {', '.join(map(str, expected))}) to match the model's "
                f"output {_format(output_shape)}, got {y.shape}{hint}"
            )
        return np.ascontiguousarray(y, dtype=_F32)


class CategoricalCrossentropy(Loss):
    """One-hot (or soft) labels (N, K) against probabilities (N, K). As ``keras.losses.CategoricalCrossentropy``."""

    name = "categorical_crossentropy"
    logits_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        if label_smoothing:
            raise ValueError(f"{self.name}: label_smoothing is not supported, got {label_smoothing!r}")
        if axis != -1:
            raise ValueError(f"{self.name}: only axis=-1 is supported, got {axis!r}")
        self.from_logits = bool(from_logits)

    def check_targets(self, y, output_shape, n=None):
        hint = ""
        raw = self._labels_array(y, n)
        if raw.ndim == len(output_shape) - 1 or (raw.ndim == len(output_shape) and raw.shape[-1] == 1 != output_shape[-1]):
            hint = " (integer class labels need loss='sparse_categorical_crossentropy')"
        return self._same_shape_targets(raw, output_shape, n, hint)

    def per_sample(self, y, p):
        if self.from_logits:
            return -(y * _log_softmax(p)[0]).sum(axis=-1)
        q = p / p.sum(axis=-1, keepdims=True)
        return -(y * np.log(np.clip(q, _F32(EPSILON), _F32(1 - EPSILON)))).sum(axis=-1)

    def value_and_grad(self, y, p):
        if self.from_logits:
            return self.value_and_grad_logits(y, p)[:2]
        count = p.size // p.shape[-1]
        s = p.sum(axis=-1, keepdims=True)
        q = p / s
        c = np.clip(q, _F32(EPSILON), _F32(1 - EPSILON))
        value = -(y * np.log(c)).sum(axis=-1)
        g = -y / c * _clip_mask(q)                                  # d loss_i / d q
        dp = (g - (g * q).sum(axis=-1, keepdims=True)) / s          # through q = p / sum(p)
        return float(value.mean(dtype=np.float64)), (dp / _F32(count)).astype(_F32, copy=False)

    def value_and_grad_logits(self, y, z):
        count = z.size // z.shape[-1]
        log_p, p = _log_softmax(z)
        value = -(y * log_p).sum(axis=-1)
        dz = (p * y.sum(axis=-1, keepdims=True) - y) / _F32(count)
        return float(value.mean(dtype=np.float64)), dz.astype(_F32, copy=False), p

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(Loss):
    """Integer labels (N,) or (N, 1) in [0, K) against probabilities (N, K)."""

    name = "sparse_categorical_crossentropy"
    logits_activation = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        if ignore_class is not None:
            raise ValueError(f"{self.name}: ignore_class is not supported, got {ignore_class!r}")
        if axis != -1:
            raise ValueError(f"{self.name}: only axis=-1 is supported, got {axis!r}")
        self.from_logits = bool(from_logits)

    def check_targets(self, y, output_shape, n=None):
        y = self._labels_array(y, n)
        if y.ndim == len(output_shape) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        expected = tuple(output_shape[1:-1])
        if tuple(y.shape[1:]) != expected:
            one_hot = " (one-hot labels need loss='categorical_crossentropy')" if y.shape[1:] == tuple(output_shape[1:]) else ""
            shape = "(N,)" if not expected else f"(N, {', '.join(map(str, expected))})"
            raise ValueError(
                f"{self.name}: labels must be integer classes of shape {shape} (or with a trailing 1) for the "
                f"model's output {_format(output_shape)}, got shape {y.shape}{one_hot}"
            )
        classes = output_shape[-1]
        if y.size:
            whole = np.issubdtype(y.dtype, np.integer) or (np.all(np.isfinite(y)) and np.all(y == np.floor(y)))
            if not whole:
                raise ValueError(f"{self.name}: labels must be whole numbers (class indices), got dtype {y.dtype} with fractions or NaN")
            low, high = y.min(), y.max()
            if low < 0 or high >= classes:
                raise ValueError(
                    f"{self.name}: labels must be class indices in [0, {classes - 1}] for the model's "
                    f"{classes} outputs {_format(output_shape)}, got labels from {low:g} to {high:g}"
                )
        return np.ascontiguousarray(y, dtype=np.intp)

    def _rows(self, labels, values):
        flat = values.reshape(-1, values.shape[-1])
        return flat, labels.reshape(-1)

    def per_sample(self, labels, p):
        rows, idx = self._rows(labels, p)
        if self.from_logits:
            log_p = _log_softmax(rows)[0]
        else:
            c = np.clip(rows, _F32(EPSILON), _F32(1 - EPSILON))
            log_p = np.log(c) - np.log(c.sum(axis=-1, keepdims=True))
        return -log_p[np.arange(len(idx)), idx].reshape(labels.shape)

    def value_and_grad(self, labels, p):
        if self.from_logits:
            return self.value_and_grad_logits(labels, p)[:2]
        rows, idx = self._rows(labels, p)
        r = np.arange(len(idx))
        c = np.clip(rows, _F32(EPSILON), _F32(1 - EPSILON))
        total = c.sum(axis=-1, keepdims=True)
        value = np.log(total[:, 0]) - np.log(c[r, idx])
        g = np.broadcast_to(_F32(1) / total, c.shape).copy()      # d loss / d c = 1/sum(c) - [j = label] / c_label
        g[r, idx] -= _F32(1) / c[r, idx]
        dp = g * _clip_mask(rows) / _F32(len(idx))
        return float(value.mean(dtype=np.float64)), dp.reshape(p.shape).astype(_F32, copy=False)

    def value_and_grad_logits(self, labels, z):
        rows, idx = self._rows(labels, z)
        r = np.arange(len(idx))
        log_p, p = _log_softmax(rows)
        value = -log_p[r, idx]
        dz = p.copy()
        dz[r, idx] -= 1
        dz /= _F32(len(idx))
        return float(value.mean(dtype=np.float64)), dz.reshape(z.shape), p.reshape(z.shape)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class BinaryCrossentropy(Loss):
    """Labels in [0, 1] against probabilities, shaped like the output (or (N,) for one output)."""

    name = "binary_crossentropy"
    logits_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        if label_smoothing:
            raise ValueError(f"{self.name}: label_smoothing is not supported, got {label_smoothing!r}")
        if axis != -1:
            raise ValueError(f"{self.name}: only axis=-1 is supported, got {axis!r}")
        self.from_logits = bool(from_logits)

    def check_targets(self, y, output_shape, n=None):
        y = self._same_shape_targets(y, output_shape, n)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{self.name}: labels must lie in [0, 1], got values from {y.min():g} to {y.max():g}")
        return y

    def per_sample(self, y, p):
        if self.from_logits:
            return (np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))).mean(axis=-1)
        c = np.clip(p, _F32(EPSILON), _F32(1 - EPSILON))
        return -(y * np.log(c) + (1 - y) * np.log(1 - c)).mean(axis=-1)

    def value_and_grad(self, y, p):
        if self.from_logits:
            return self.value_and_grad_logits(y, p)[:2]
        c = np.clip(p, _F32(EPSILON), _F32(1 - EPSILON))
        value = -(y * np.log(c) + (1 - y) * np.log(1 - c)).mean(axis=-1)
        dp = (-(y / c) + (1 - y) / (1 - c)) * _clip_mask(p) / _F32(p.size)
        return float(value.mean(dtype=np.float64)), dp.astype(_F32, copy=False)

    def value_and_grad_logits(self, y, z):
        value = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean(axis=-1)
        p = _sigmoid(z)
        dz = (p - y) / _F32(z.size)
        return float(value.mean(dtype=np.float64)), dz.astype(_F32, copy=False), p

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """mean over the last axis of (y - p)^2, then over the batch."""

    name = "mean_squared_error"

    def check_targets(self, y, output_shape, n=None):
        return self._same_shape_targets(y, output_shape, n)

    def per_sample(self, y, p):
        return np.square(y - p).mean(axis=-1)

    def value_and_grad(self, y, p):
        diff = p - y
        value = np.square(diff).mean(axis=-1)
        return float(value.mean(dtype=np.float64)), (diff * _F32(2 / p.size)).astype(_F32, copy=False)


def _per_sample(loss_cls, y_true, y_pred, **kwargs):
    loss = loss_cls(**kwargs)
    y_pred = np.asarray(y_pred, _F32)
    return loss.per_sample(loss.check_targets(y_true, (None, *y_pred.shape[1:]), len(y_pred)), y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample loss (N,), as ``keras.losses.categorical_crossentropy``."""
    return _per_sample(CategoricalCrossentropy, y_true, y_pred, from_logits=from_logits)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample loss (N,), as ``keras.losses.sparse_categorical_crossentropy``."""
    return _per_sample(SparseCategoricalCrossentropy, y_true, y_pred, from_logits=from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample loss (N,), as ``keras.losses.binary_crossentropy``."""
    return _per_sample(BinaryCrossentropy, y_true, y_pred, from_logits=from_logits)


def mean_squared_error(y_true, y_pred):
    """Per-sample loss (N,), as ``keras.losses.mean_squared_error``."""
    return _per_sample(MeanSquaredError, y_true, y_pred)


mse = MSE = mean_squared_error

_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
_BY_CLASS_NAME = {cls.__name__.lower(): cls for cls in set(_BY_NAME.values())}
_BY_FUNCTION = {
    categorical_crossentropy: CategoricalCrossentropy, sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError,
}
NAMES = sorted(_BY_NAME)


def get(identifier) -> Loss:
    """A Loss from a Keras name ("categorical_crossentropy", "mse", "BinaryCrossentropy", ...), a
    loss function of this module, or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            loss = _BY_NAME[key]()
            loss.name = identifier
            return loss
        if key in _BY_CLASS_NAME:
            return _BY_CLASS_NAME[key]()
    elif callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    raise ValueError(f"loss: unknown loss {identifier!r}; expected one of {NAMES} or a miniconv.losses.Loss")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config: dict) -> Loss:
    classes = {cls.__name__: cls for cls in set(_BY_NAME.values())}
    return classes[config["class_name"]](**config.get("config", {}))


__all__ = [
    "EPSILON",
    "NAMES",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "categorical_crossentropy",
    "deserialize",
    "get",
    "mean_squared_error",
    "mse",
    "serialize",
    "sparse_categorical_crossentropy",
]
