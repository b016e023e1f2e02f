"""What the course code calls beyond the basics, against Keras 3: weight regularizers in the loss and
its gradient, ``utils.to_categorical``, and ``fit`` on an endless generator with ``steps_per_epoch``
(Chollet's ``fit_generator`` idiom)."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

import miniconv
from miniconv import layers


def regularized(lib):
    L = keras.layers if lib is keras else layers
    R = lib.regularizers
    return lib.Sequential([
        lib.Input((8, 8, 2)),
        L.Conv2D(3, 3, activation="relu", kernel_regularizer=R.L2(0.01), bias_regularizer=R.L1(0.02)),
        L.Flatten(),
        L.Dense(4, activation="softmax", kernel_regularizer=R.L1L2(l1=0.001, l2=0.003)),
    ])


def test_regularized_training_steps_match_keras():
    keras.utils.set_random_seed(1)
    theirs = regularized(keras)
    ours = regularized(miniconv)
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 8, 8, 2), dtype=np.float32), rng.integers(0, 4, 12)
    for model, lib in ((theirs, keras), (ours, miniconv)):
        model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    expected = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    got = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # the loss includes the penalties, as Keras's
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)


def test_regularizers_save_load_and_convert(tmp_path):
    model = regularized(miniconv)
    model.save(tmp_path / "m.miniconv")
    loaded = miniconv.load_model(tmp_path / "m.miniconv")
    assert repr(loaded.layers[0].kernel_regularizer) == "L2(l2=0.01)"
    assert repr(loaded.layers[2].kernel_regularizer) == "L1L2(l1=0.001, l2=0.003)"
    back = miniconv.from_keras(model.to_keras())
    assert back.layers[0].bias_regularizer.l1 == pytest.approx(0.02)  # Keras keeps it in float32
    assert miniconv.regularizers.get("l2").l2 == keras.regularizers.get("l2").l2


@pytest.mark.parametrize("labels, classes", [([0, 2, 1], None), ([[1], [3]], 5), (np.array([[0, 1], [2, 0]]), 3)])
def test_to_categorical_is_keras(labels, classes):
    got = miniconv.utils.to_categorical(labels, classes)
    expected = keras.utils.to_categorical(labels, classes)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\]"):
        miniconv.utils.to_categorical([0, 2], 2)


def test_fit_on_an_endless_generator_with_steps_per_epoch():
    rng = np.random.default_rng(0)
    drawn = []

    def batches():
        for i in itertools.count():
            drawn.append(i)
            yield rng.random((4, 8, 8, 2), dtype=np.float32), rng.integers(0, 4, 4)

    model = regularized(miniconv)
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(batches(), steps_per_epoch=3, epochs=2, validation_data=batches(), validation_steps=2, verbose=0)
    assert len(history.history["loss"]) == 2 and len(history.history["val_loss"]) == 2
    assert model.optimizer.iterations == 6
    assert len(drawn) == 2 * 3 + 2 * 2  # one iterator kept across epochs, for training and for validation
    assert len(model.evaluate(batches(), steps=2, verbose=0)) == 2
    with pytest.raises(ValueError, match="steps_per_epoch needs a dataset or a generator"):
        model.fit(rng.random((4, 8, 8, 2)), np.zeros(4), steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive int"):
        model.fit(batches(), steps_per_epoch=0, verbose=0)
