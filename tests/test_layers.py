"""Layer contracts, each layer against its Keras twin with the same weights.

For every layer: the output shape is the declared ``compute_output_shape``; the forward pass
matches Keras's layer; ``backward`` gives the input gradient and one gradient per parameter,
each matching ``tf.GradientTape`` on the Keras layer, for a random upstream gradient. Tolerance
rtol 1e-5 / atol 1e-6 (float32 sums of at most ~100 terms, in different orders).
"""

from __future__ import annotations

import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import miniconv
from miniconv import layers
from miniconv.layers.base import to_snake_case

# (class name, kwargs, input shape with batch): every layer kind, the options that change the math.
CASES = [
    ("Conv2D", {"filters": 4, "kernel_size": 3}, (2, 7, 6, 3)),
    ("Conv2D", {"filters": 3, "kernel_size": (2, 3), "strides": 2, "padding": "same", "activation": "relu"}, (2, 7, 6, 2)),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "activation": "sigmoid",
                "use_bias": False}, (1, 8, 8, 2)),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (2, 9, 2)),
    ("Conv1D", {"filters": 2, "kernel_size": 2, "activation": "softmax"}, (2, 5, 3)),
    ("Dense", {"units": 5, "activation": "softmax"}, (3, 4)),
    ("Dense", {"units": 3, "activation": "linear"}, (2, 3, 4)),
    ("Dense", {"units": 2, "use_bias": False, "activation": "relu"}, (4, 6)),
    ("MaxPooling2D", {"pool_size": 2}, (2, 5, 5, 3)),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 5, 2)),
    ("AveragePooling2D", {"pool_size": (2, 3), "padding": "same"}, (2, 5, 7, 2)),
    ("MaxPooling1D", {}, (2, 7, 3)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (2, 7, 3)),
    ("GlobalAveragePooling2D", {}, (2, 4, 3, 5)),
    ("GlobalMaxPooling2D", {"keepdims": True}, (2, 4, 3, 5)),
    ("GlobalAveragePooling1D", {}, (2, 6, 3)),
    ("GlobalMaxPooling1D", {}, (2, 6, 3)),
    ("Flatten", {}, (2, 3, 4, 2)),
    ("Activation", {"activation": "softmax"}, (3, 5)),
    ("Activation", {"activation": "sigmoid"}, (3, 5)),
    ("ReLU", {}, (2, 4, 3)),
    ("Dropout", {"rate": 0.3}, (2, 6)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items())}" for name, kwargs, _ in CASES]


@pytest.mark.parametrize(("name", "kwargs", "shape"), CASES, ids=IDS)
def test_layer_matches_keras_forward_and_gradients(name, kwargs, shape):
    rng = np.random.default_rng(zlib.crc32(f"{name} {kwargs}".encode()))  # the same inputs in every process
    ours = getattr(layers, name)(**kwargs)
    theirs = getattr(keras.layers, name)(**kwargs)
    declared = ours.build((None, *shape[1:]))
    assert declared == tuple(theirs.compute_output_shape((None, *shape[1:])))
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())  # Keras shapes and order, or set_weights would refuse
    x = rng.standard_normal(shape).astype(np.float32)  # continuous: no ties in max pooling, no zeros in relu

    y, backward = ours.forward(x, training=False)
    assert y.shape[1:] == declared[1:] and y.dtype == np.float32
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        y_tf = theirs(x_tf, training=False)
        dy = rng.standard_normal(y_tf.shape).astype(np.float32)
        objective = tf.reduce_sum(y_tf * dy)
    expected = tape.gradient(objective, [x_tf, *theirs.trainable_weights])
    np.testing.assert_allclose(y, y_tf.numpy(), rtol=1e-5, atol=1e-6)
    dx = backward(dy)
    np.testing.assert_allclose(dx, expected[0].numpy(), rtol=1e-5, atol=1e-6)
    assert len(ours.grads) == len(ours.params) == len(expected) - 1
    for param, grad, reference in zip(ours.params, ours.grads, expected[1:]):
        assert grad is not None and grad.shape == param.shape
        np.testing.assert_allclose(grad, reference.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "kwargs", "shape"), CASES, ids=IDS)
def test_layer_config_round_trip(name, kwargs, shape):
    layer = getattr(layers, name)(**kwargs)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.compute_output_shape((None, *shape[1:])) == layer.compute_output_shape((None, *shape[1:]))


def test_default_initialisation_is_glorot_uniform_and_zeros_and_seeded():
    miniconv.utils.set_random_seed(11)
    a = layers.Conv2D(16, 3)
    a.build((None, 8, 8, 4))
    limit = np.sqrt(6 / (9 * 4 + 9 * 16))
    assert a.kernel.shape == (3, 3, 4, 16) and a.kernel.dtype == np.float32
    assert np.abs(a.kernel).max() <= limit and a.kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.1)
    assert np.array_equal(a.bias, np.zeros(16, np.float32))
    miniconv.utils.set_random_seed(11)
    b = layers.Conv2D(16, 3)
    b.build((None, 8, 8, 4))
    assert np.array_equal(a.kernel, b.kernel)
    seeded = layers.Dense(4, kernel_initializer=miniconv.initializers.GlorotUniform(seed=5))
    seeded.build((None, 3))
    again = layers.Dense(4, kernel_initializer=miniconv.initializers.GlorotUniform(seed=5))
    again.build((None, 3))
    assert np.array_equal(seeded.kernel, again.kernel)


def test_dropout_mask_arithmetic_and_rate():
    layer = layers.Dropout(0.25, seed=0)
    x = np.random.default_rng(0).uniform(1, 2, (200, 100)).astype(np.float32)  # no zeros: y == 0 marks a drop
    assert layer.forward(x, training=False)[0] is x
    y, backward = layer.forward(x, training=True)
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.01)  # 20,000 draws: 4 standard deviations ~ 0.012
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(backward(dy), np.where(kept, dy / 0.75, 0), rtol=1e-6)


def test_keras_names_and_aliases():
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool1D is layers.AveragePooling1D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D and layers.GlobalMaxPool1D is layers.GlobalMaxPooling1D
    assert [to_snake_case(n) for n in ("Conv2D", "MaxPooling2D", "ReLU", "GlobalAveragePooling1D")] == [
        "conv2d", "max_pooling2d", "re_lu", "global_average_pooling1d"]
    pool = layers.MaxPooling2D(3)
    assert pool.pool_size == (3, 3) and pool.strides == (3, 3) and pool.padding == "valid"
    assert layers.Conv2D(8, 3, padding="SAME").padding == "same"
    assert layers.Conv2D(8, 3, input_shape=(28, 28, 1)).declared_input_shape == (28, 28, 1)


def test_clear_session_restarts_automatic_names_as_keras_does():
    import miniconv

    layers.Conv2D(4, 3), layers.Conv2D(4, 3)
    assert layers.Conv2D(4, 3).name not in ("conv2d", "conv2d_1")
    miniconv.utils.clear_session()
    keras.utils.clear_session()
    assert [layers.Conv2D(4, 3).name, layers.Conv2D(4, 3).name] == ["conv2d", "conv2d_1"]
    assert [keras.layers.Conv2D(4, 3).name, keras.layers.Conv2D(4, 3).name] == ["conv2d", "conv2d_1"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: layers.Conv2D(0, 3), r"filters must be an int >= 1, got 0"),
        (lambda: layers.Conv2D(8.5, 3), r"filters must be an int >= 1, got 8.5"),
        (lambda: layers.Conv2D(8, 0), r"kernel_size: expected positive values"),
        (lambda: layers.Conv2D(8, (3, 3, 3)), r"kernel_size: expected an int or 2 ints"),
        (lambda: layers.Conv2D(8, 3, strides=-1), r"strides: expected positive values"),
        (lambda: layers.Conv2D(8, 3, strides=2, dilation_rate=2), r"strides > 1 is not supported together with dilation_rate > 1"),
        (lambda: layers.Conv2D(8, 3, padding="full"), r"padding must be 'valid' or 'same', got 'full'"),
        (lambda: layers.Conv1D(8, 3, padding="causal"), r"padding must be 'valid' or 'same', got 'causal'"),
        (lambda: layers.Conv2D(8, 3, data_format="channels_first"), r"channels_last"),
        (lambda: layers.Conv2D(8, 3, activation="tanhh"), r"unknown activation 'tanhh'; expected one of"),
        (lambda: layers.Dense(0), r"units must be an int >= 1, got 0"),
        (lambda: layers.Dense(4, activation="swish"), r"unknown activation 'swish'"),
        (lambda: layers.Dense(4, kernel_initializer="he_normal"), r"initializer: expected one of"),
        (lambda: layers.Dense(4, activity_regularizer="l2"), r"activity_regularizer is not supported"),
        (lambda: layers.Dense(4, kernel_regularizer="l3"), r"unknown regularizer .l3."),
        (lambda: layers.Dropout(1.0), r"rate must be a number in \[0, 1\), got 1.0"),
        (lambda: layers.Dropout(-0.1), r"rate must be a number in \[0, 1\)"),
        (lambda: layers.MaxPooling2D(0), r"pool_size: expected positive values"),
        (lambda: layers.AveragePooling1D(2, padding="reflect"), r"padding must be 'valid' or 'same'"),
        (lambda: layers.Activation("gelu"), r"unknown activation 'gelu'"),
        (lambda: layers.ReLU(max_value=4), r"only max_value None or 6"),
        (lambda: layers.Dense(4, unknown_arg=1), r"unexpected keyword argument"),
        (lambda: layers.Conv2D(8, 3, input_shape=(28, -28, 1)), r"input_shape must be a tuple of positive ints"),
        (lambda: layers.Input(shape=None), r"shape is required"),
    ],
)
def test_layer_arguments_out_of_range_are_named(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (lambda: layers.Conv2D(2, 5), (None, 3, 3, 1), r"kernel size \(5, 5\).*larger than its input \(None, 3, 3, 1\)"),
        (lambda: layers.Conv2D(2, 3), (None, 28, 28), r"expects input of rank 4 \(batch, height, width, channels\), got shape \(None, 28, 28\)"),
        (lambda: layers.MaxPooling2D(4), (None, 3, 3, 2), r"pool size \(4, 4\).*larger than its input"),
        (lambda: layers.Conv1D(2, 3), (None, 8, 8, 1), r"expects input of rank 3"),
        (lambda: layers.Dense(3), (None,), r"expects input of rank >= 2"),
        (lambda: layers.GlobalAveragePooling2D(), (None, 5, 2), r"expects input of rank 4"),
    ],
)
def test_layer_rejects_an_input_shape_it_cannot_take(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer().build(shape)


def test_set_weights_checks_shapes_and_keeps_arrays():
    dense = layers.Dense(3)
    dense.build((None, 4))
    kernel = dense.kernel
    dense.set_weights([np.ones((4, 3)), np.arange(3)])
    assert dense.kernel is kernel and dense.kernel.dtype == np.float32 and dense.bias[2] == 2
    with pytest.raises(ValueError, match=r"weight 'kernel' has shape \(4, 3\), got \(3, 4\)"):
        dense.set_weights([np.ones((3, 4)), np.zeros(3)])
    with pytest.raises(ValueError, match=r"has 2 weight arrays, got 1"):
        dense.set_weights([np.ones((4, 3))])
