"""Callbacks with Keras's hooks: ``Callback`` (the base), ``CallbackList`` (how ``fit`` calls them),
``History`` (what ``fit`` returns), ``EarlyStopping``, ``ModelCheckpoint``, ``TerminateOnNaN`` and
``EpochClock``. Hooks receive
``logs``, a dict of Python floats with Keras's keys ("loss", "accuracy", "val_loss", ...); a
callback stops training by setting ``self.model.stop_training = True``.
"""

from __future__ import annotations

import math
import time
import warnings


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


class Callback:
    """Base class; override any of the ``on_*`` hooks."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Several callbacks called as one, in order, as ``keras.callbacks.CallbackList``: every hook
    of the list calls the same hook of each callback (with its own copy of ``logs``)."""

    def __init__(self, callbacks=None, model=None, **params):
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be miniconv.callbacks.Callback instances, got {callback!r}")
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def set_model(self, model) -> None:
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params: dict) -> None:
        for callback in self.callbacks:
            callback.set_params(params)

    def _call(self, hook: str, *args, logs=None) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args, logs=None if logs is None else dict(logs))

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)


class History(Callback):
    """``history.history``: {"loss": [per epoch], "accuracy": [...], "val_loss": [...], ...}; ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []  # Keras keeps history across fit calls only through model.history; start fresh
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class EpochClock(Callback):
    """Seconds of each epoch, two ways: ``training`` from the epoch's start (its shuffle) to the end of
    its last step, what the epoch's training costs; ``with_validation`` to the epoch's end, after
    validation. The one epoch clock of ``miniconv train`` and the benchmarks."""

    def __init__(self, training: list | None = None, with_validation: list | None = None):
        super().__init__()
        self.training = [] if training is None else training
        self.with_validation = [] if with_validation is None else with_validation

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.stop = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.stop = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.training.append(self.stop - self.start)
        self.with_validation.append(time.perf_counter() - self.start)


class TerminateOnNaN(Callback):
    """Stop training at the first step whose loss (or a gradient) is NaN or infinite, as
    ``keras.callbacks.TerminateOnNaN``. That step makes no update (miniconv never applies a
    non-finite gradient), and fit returns instead of raising ``NonFiniteLossError``."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs. As ``keras.callbacks.EarlyStopping``.

    mode "auto" minimises unless the monitored name contains "acc"; ``restore_best_weights``
    puts back the best epoch's weights when training ends (as Keras 3 does, stopped early or not).
    A NaN value is no improvement and counts towards ``patience`` (so a run whose validation loss
    has gone NaN stops, as in Keras; unlike Keras, a NaN first epoch does not become the best). A
    missing ``monitor`` warns and skips the epoch, as in Keras.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights, self.start_from_epoch = baseline, restore_best_weights, start_from_epoch
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.min_delta = abs(min_delta) if mode == "max" else -abs(min_delta)

    def _better(self, value, reference) -> bool:
        if reference is None:
            return True
        return value - self.min_delta > reference if self.mode == "max" else value - self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {', '.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if not _is_nan(value) and self._better(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) at the end of each epoch, atomically (write, then rename).

    As ``keras.callbacks.ModelCheckpoint``: ``filepath`` may name the epoch and any log,
    e.g. "ckpt-{epoch:02d}-{val_loss:.2f}.miniconv"; ``save_best_only`` keeps only epochs where
    ``monitor`` improved (mode "auto": max for names containing "acc", else min). An epoch without
    ``monitor`` is saved with a warning, as in Keras; a NaN value is never the best (Keras saves a
    NaN first epoch and then nothing better than NaN).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: only save_freq='epoch' is supported, got {save_freq!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best = initial_value_threshold

    def _improves(self, value) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:  # as Keras: saved, with a warning (a misspelt monitor must not lose every epoch)
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            elif _is_nan(value) or not self._improves(value):
                return
            else:
                self.best = value
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


__all__ = ["Callback", "CallbackList", "EarlyStopping", "EpochClock", "History", "ModelCheckpoint", "TerminateOnNaN"]
