"""``ModelCheckpoint`` and ``EarlyStopping`` on their own, as Keras 3 defines them: which epochs are
saved and where, when training stops, and the arguments they refuse. A stub model records the calls,
so the rules are checked epoch by epoch without training (``tests/test_models.py`` runs both inside
``fit``)."""

from __future__ import annotations

import math

import pytest

from miniconv.callbacks import EarlyStopping, ModelCheckpoint


class StubModel:
    """What the two callbacks touch: saving, weights, and the stop flag."""

    def __init__(self):
        self.saved, self.weights_saved, self.stop_training = [], [], False
        self.weights = [0]

    def save(self, path):
        self.saved.append(path)

    def save_weights(self, path):
        self.weights_saved.append(path)

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)


def _run(callback, logs_by_epoch, model=None):
    model = model or StubModel()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, logs in enumerate(logs_by_epoch):
        model.weights = [epoch]
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback.on_train_end()
    return model


def test_checkpoint_names_each_epoch_from_one_and_the_logs(tmp_path):
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.miniconv")
    model = _run(ModelCheckpoint(pattern), [{"val_loss": 0.5}, {"val_loss": 0.25}])
    assert model.saved == [str(tmp_path / "ckpt-01-0.50.miniconv"), str(tmp_path / "ckpt-02-0.25.miniconv")]


def test_checkpoint_save_best_only_keeps_strict_improvements():
    """Ties and NaN are not improvements; an epoch without the monitored value is saved with a
    warning, as in Keras (a misspelt monitor must not leave no checkpoint at all)."""
    logs = [{"val_loss": v} for v in (0.9, 0.7, 0.7, 0.8, math.nan, 0.6)] + [{"loss": 0.1}]
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        model = _run(ModelCheckpoint("e{epoch}", save_best_only=True), logs)
    assert model.saved == ["e1", "e2", "e6", "e7"]


def test_checkpoint_auto_mode_maximises_accuracy_and_starts_from_the_threshold():
    logs = [{"val_accuracy": v} for v in (0.80, 0.85, 0.84, 0.90)]
    model = _run(ModelCheckpoint("e{epoch}", monitor="val_accuracy", save_best_only=True,
                                 initial_value_threshold=0.82), logs)
    assert model.saved == ["e2", "e4"]
    model = _run(ModelCheckpoint("e{epoch}", monitor="val_accuracy", mode="min", save_best_only=True), logs)
    assert model.saved == ["e1"]


def test_checkpoint_weights_only():
    model = _run(ModelCheckpoint("w{epoch}.weights.h5", save_weights_only=True), [{}, {}])
    assert model.weights_saved == ["w1.weights.h5", "w2.weights.h5"] and model.saved == []


@pytest.mark.parametrize("kwargs, message", [
    ({"save_freq": 100}, "save_freq='epoch'"),
    ({"mode": "maximum"}, "mode must be 'auto', 'min' or 'max', got 'maximum'"),
])
def test_checkpoint_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint("x", **kwargs)


def test_early_stopping_waits_patience_epochs_without_improvement():
    logs = [{"val_loss": v} for v in (1.0, 0.8, 0.85, 0.9, 0.7)]
    stopper = EarlyStopping(patience=2)
    _run(stopper, logs)
    assert stopper.stopped_epoch == 3 and stopper.best == 0.8 and stopper.best_epoch == 1


def test_early_stopping_min_delta_and_restoring_the_best_weights():
    logs = [{"val_loss": v} for v in (1.0, 0.95, 0.92, 0.91)]  # each gain under min_delta = 0.1
    stopper = EarlyStopping(min_delta=0.1, patience=1, restore_best_weights=True)
    model = _run(stopper, logs)
    assert stopper.stopped_epoch == 1 and model.weights == [0]  # epoch 0's weights put back


def test_early_stopping_baseline_must_be_beaten():
    """Keras 3: improving on the best so far resets the wait only if it also beats the baseline."""
    logs = [{"val_loss": v} for v in (0.9, 0.8, 0.8, 0.8)]
    stopper = EarlyStopping(patience=2, baseline=0.5)
    _run(stopper, logs)
    assert stopper.stopped_epoch == 2
    stopper = EarlyStopping(patience=2)
    _run(stopper, logs)
    assert stopper.stopped_epoch == 3


def test_early_stopping_start_from_epoch_and_nan():
    """Epochs before start_from_epoch are not looked at; a NaN is no improvement and counts."""
    logs = [{"val_loss": v} for v in (0.1, 0.2, 0.3, math.nan, 0.4)]
    stopper = EarlyStopping(patience=1, start_from_epoch=2)
    _run(stopper, logs)
    assert stopper.best == 0.3 and stopper.stopped_epoch == 3


def test_early_stopping_stops_a_run_gone_nan():
    logs = [{"val_loss": 0.5}] + [{"val_loss": math.nan}] * 5
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    model = _run(stopper, logs)
    assert stopper.stopped_epoch == 2 and model.stop_training and model.weights == [0]


def test_early_stopping_warns_without_its_monitor():
    stopper = EarlyStopping(monitor="val_acc", patience=0)
    with pytest.warns(UserWarning, match="val_acc.*not available. Available metrics are: loss, val_accuracy"):
        model = _run(stopper, [{"loss": 1.0, "val_accuracy": 0.5}] * 3)
    assert not model.stop_training


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "up"}, "mode must be 'auto', 'min' or 'max', got 'up'"),
    ({"patience": -1}, "patience must be an int >= 0, got -1"),
    ({"patience": 1.5}, "patience must be an int >= 0, got 1.5"),
])
def test_early_stopping_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)
