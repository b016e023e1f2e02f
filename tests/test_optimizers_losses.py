"""Optimizers, losses and metrics against Keras 3 (the installed ``keras`` package is the spec).

Optimizers: five steps on the same variables and gradients as Keras's optimizer of the same name
and arguments; both update float32 variables with the same formulas in the same order, so the
tolerance is a few float32 roundings (rtol 1e-6). Losses: value and gradient against the Keras
loss object under ``tf.GradientTape`` (rtol 1e-5: float32 logs and sums of <= 6 terms).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import miniconv
from miniconv import losses, metrics, optimizers

RNG = np.random.default_rng(1234)


# --- optimizers --------------------------------------------------------------------------------
OPTIMIZER_CASES = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5, "centered": True}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}),
    ("Adam", {"amsgrad": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZER_CASES, ids=[f"{n}-{k}" for n, k in OPTIMIZER_CASES])
def test_optimizer_steps_match_keras(name, kwargs):
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (5,)]
    initial = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    # Gradients of mixed sizes, some tiny: RMSprop and Adam divide by their running magnitude.
    steps = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-4, 1, s)).astype(np.float32) for s in shapes] for _ in range(5)]
    theirs = [keras.Variable(w) for w in initial]
    keras_optimizer = getattr(keras.optimizers, name)(**kwargs)
    ours = [w.copy() for w in initial]
    optimizer = getattr(optimizers, name)(**kwargs)
    for grads in steps:
        keras_optimizer.apply_gradients(zip([tf.constant(g) for g in grads], theirs))
        optimizer.apply(grads, ours)
    assert optimizer.iterations == 5
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZER_CASES, ids=[f"{n}-{k}" for n, k in OPTIMIZER_CASES])
def test_cpu_optimizer_kernels_give_the_numpy_formulas_bits(name, kwargs, monkeypatch):
    """The cpu backend's one-pass kernels against the NumPy formulas: the same bits, step after step.

    A small grain cuts the large variable into pieces shared between threads; the gradients hold
    exact zeros, an inf and a NaN.
    """
    from miniconv.backend.cpu import optimizer_kernels

    monkeypatch.setattr(optimizer_kernels, "GRAIN", 1000)
    rng = np.random.default_rng(11)
    shapes = [(3, 3, 2, 4), (1,), (70001,)]
    initial = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    steps = []
    for _ in range(4):
        grads = [(rng.standard_normal(s) * 10.0 ** rng.integers(-6, 2, s)).astype(np.float32) for s in shapes]
        grads[2][:100] = 0.0
        steps.append(grads)
    steps[1][2][500], steps[2][2][501] = np.inf, np.nan
    results = {}
    for backend in ("cpu", "numpy"):
        variables = [w.copy() for w in initial]
        optimizer = getattr(optimizers, name)(**kwargs)
        with miniconv.use_backend(backend):
            for grads in steps:
                optimizer.apply(grads, variables)
        results[backend] = (variables, optimizer.state())
    (kernel_weights, kernel_state), (numpy_weights, numpy_state) = results["cpu"], results["numpy"]
    for mine, reference in zip(kernel_weights, numpy_weights):
        np.testing.assert_array_equal(mine, reference)
    assert kernel_state.keys() == numpy_state.keys()
    for key in kernel_state:
        np.testing.assert_array_equal(kernel_state[key], numpy_state[key], err_msg=key)


def test_optimizer_updates_a_strided_variable_in_place():
    """A variable the kernels cannot take flat (a strided view) still gets the NumPy update, in place."""
    base = np.ones((4, 6), np.float32)
    view, grad = base[:, ::2], np.full((4, 3), 2.0, np.float32)
    optimizers.SGD(learning_rate=0.5).apply([grad], [view])
    np.testing.assert_array_equal(base[:, ::2], np.zeros((4, 3), np.float32))
    np.testing.assert_array_equal(base[:, 1::2], np.ones((4, 3), np.float32))


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "Adam", "RMSprop"])
def test_optimizer_names_give_keras_defaults(name):
    ours = optimizers.get(name).get_config()
    theirs = keras.optimizers.get(name.lower()).get_config()
    for key, value in ours.items():
        if key != "name":
            assert value == pytest.approx(theirs[key]), key


def test_optimizer_learning_rate_first_and_state_arrays():
    optimizer = optimizers.RMSprop(0.01)
    assert optimizer.learning_rate == 0.01
    w = np.ones(3, np.float32)
    optimizer.apply([np.full(3, 0.5, np.float32)], [w], keys=["dense/kernel"])
    state = optimizer.state()
    assert list(state) == ["velocity/dense/kernel"] and state["velocity/dense/kernel"].dtype == np.float32
    np.testing.assert_allclose(state["velocity/dense/kernel"], 0.1 * 0.25, rtol=1e-6)
    copy = optimizers.RMSprop(0.01)
    copy.set_state(state, optimizer.iterations)
    assert copy.iterations == 1 and np.array_equal(copy.state()["velocity/dense/kernel"], state["velocity/dense/kernel"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: optimizers.get("adamw"), "unknown optimizer 'adamw'"),
        (lambda: optimizers.SGD(-0.1), "learning_rate"),
        (lambda: optimizers.SGD(0.01, momentum=1.5), "momentum must be in"),
        (lambda: optimizers.Adam(beta_1=1.0), "beta_1 must be in"),
        (lambda: optimizers.RMSprop(rho=-0.1), "rho must be in"),
        (lambda: optimizers.Adam(clipnorm=1.0), "unsupported argument"),
    ],
)
def test_optimizer_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- losses --------------------------------------------------------------------------------------
def _probabilities(n, k):
    p = RNG.random((n, k)).astype(np.float32) + 0.01
    p /= p.sum(axis=-1, keepdims=True)
    p[0] = 0
    p[0, 1] = 1  # saturated rows: the clipping and its zero gradient matter here
    p[1] *= 1.3  # an unnormalised row: categorical crossentropy divides by its sum first
    return p


def _keras_value_and_grad(keras_loss, y, prediction):
    prediction = tf.constant(prediction)
    with tf.GradientTape() as tape:
        tape.watch(prediction)
        value = keras_loss(tf.constant(y), prediction)
    return float(value), tape.gradient(value, prediction).numpy()


def _labels(kind, n, k):
    classes = RNG.integers(0, k, n)
    return {
        "sparse": classes,
        "sparse_column": classes.reshape(-1, 1),
        "one_hot": np.eye(k, dtype=np.float32)[classes],
        "binary": RNG.integers(0, 2, (n, k)).astype(np.float32),
        "binary_flat": RNG.integers(0, 2, n).astype(np.float32),
        "regression": RNG.standard_normal((n, k)).astype(np.float32),
    }[kind]


LOSS_CASES = [
    # (ours, keras, labels, outputs per sample, predictions are logits)
    (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, "one_hot", 5, False),
    (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, "one_hot", 5, True),
    (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, "sparse", 5, False),
    (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, "sparse_column", 4, False),
    (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, "sparse", 5, True),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "binary", 3, False),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "binary", 1, False),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "binary_flat", 1, False),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "binary", 3, True),
    (losses.MeanSquaredError, keras.losses.MeanSquaredError, "regression", 3, False),
]


@pytest.mark.parametrize(("ours", "theirs", "labels", "k", "logits"), LOSS_CASES,
                         ids=[f"{c[0].__name__}-{c[2]}-{c[3]}{'-logits' if c[4] else ''}" for c in LOSS_CASES])
def test_loss_value_and_gradient_match_keras(ours, theirs, labels, k, logits):
    n = 6
    y = _labels(labels, n, k)
    if logits or ours is losses.MeanSquaredError:
        prediction = (RNG.standard_normal((n, k)) * 3).astype(np.float32)
    elif ours is losses.BinaryCrossentropy:
        prediction = RNG.random((n, k)).astype(np.float32)
        prediction[0] = 1.0  # clipped
        prediction[1] = 0.0
    else:
        prediction = _probabilities(n, k)
    kwargs = {"from_logits": True} if logits else {}
    loss = ours(**kwargs)
    expected_value, expected_grad = _keras_value_and_grad(theirs(**kwargs), y, prediction)
    targets = loss.check_targets(y, (None, k), n)
    value, grad = loss.value_and_grad(targets, prediction)
    assert value == pytest.approx(expected_value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
    assert grad.dtype == np.float32
    assert loss(y, prediction) == pytest.approx(expected_value, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(("ours", "theirs", "labels", "k"), [
    (losses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy, "one_hot", 5),
    (losses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy, "sparse", 5),
    (losses.BinaryCrossentropy, keras.losses.BinaryCrossentropy, "binary", 2),
])
def test_loss_from_the_logits_of_the_last_activation(ours, theirs, labels, k):
    """What fit uses after a softmax / sigmoid layer: Keras's from-logits value, gradient w.r.t. the logits."""
    n = 6
    y = _labels(labels, n, k)
    z = (RNG.standard_normal((n, k)) * 20).astype(np.float32)  # large logits: clipping would differ
    loss = ours()
    expected_value, expected_grad = _keras_value_and_grad(theirs(from_logits=True), y, z)
    value, dz, prediction = loss.value_and_grad_logits(loss.check_targets(y, (None, k), n), z)
    assert value == pytest.approx(expected_value, rel=1e-5)
    np.testing.assert_allclose(dz, expected_grad, rtol=1e-5, atol=1e-7)
    activation = tf.nn.sigmoid if ours is losses.BinaryCrossentropy else tf.nn.softmax
    np.testing.assert_allclose(prediction, activation(z).numpy(), rtol=1e-5, atol=1e-7)


def test_loss_functions_return_per_sample_values_as_keras():
    y = np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
    p = _probabilities(4, 3)
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p), keras.losses.categorical_crossentropy(y, p).numpy(), rtol=1e-5)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([0, 2, 1, 1], p),
                               keras.losses.sparse_categorical_crossentropy(np.array([0, 2, 1, 1]), p).numpy(), rtol=1e-5)
    np.testing.assert_allclose(losses.mse(y, p), keras.losses.mean_squared_error(y, p).numpy(), rtol=1e-6)
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("BinaryCrossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get(losses.binary_crossentropy), losses.BinaryCrossentropy)


@pytest.mark.parametrize(
    ("loss", "y", "output_shape", "message"),
    [
        ("sparse_categorical_crossentropy", np.array([0, 3, 10]), (None, 10), r"class indices in \[0, 9\].*from 0 to 10"),
        ("sparse_categorical_crossentropy", np.array([0, -1, 2]), (None, 10), r"class indices in \[0, 9\]"),
        ("sparse_categorical_crossentropy", np.array([0.5, 1, 2]), (None, 10), "whole numbers"),
        ("sparse_categorical_crossentropy", np.eye(10)[[1, 2, 3]], (None, 10), "one-hot labels need loss='categorical_crossentropy'"),
        ("categorical_crossentropy", np.array([1, 2, 3]), (None, 10), "integer class labels need loss='sparse_categorical_crossentropy'"),
        ("categorical_crossentropy", np.eye(5)[[1, 2, 3]], (None, 10), r"shape \(N, 10\).*got \(3, 5\)"),
        ("binary_crossentropy", np.array([0, 1, 2]), (None, 1), r"in \[0, 1\]"),
        ("binary_crossentropy", np.array([[0, 1], [1, 0], [0, 0]]), (None, 1), r"shape \(N, 1\)"),
        ("mse", np.zeros((3, 2)), (None, 3), r"shape \(N, 3\)"),
        ("sparse_categorical_crossentropy", np.array(["a", "b", "c"]), (None, 10), "numeric"),
    ],
)
def test_loss_rejects_labels_that_do_not_fit(loss, y, output_shape, message):
    with pytest.raises((ValueError, TypeError), match=message):
        losses.get(loss).check_targets(y, output_shape, 3)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match=r"unknown loss 'crossentropyy'.*expected one of"):
        losses.get("crossentropyy")


# --- metrics -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label_shape", "output_shape", "expected"),
    [
        ((8,), (None, 10), metrics.SparseCategoricalAccuracy),
        ((8, 1), (None, 10), metrics.SparseCategoricalAccuracy),
        ((8, 10), (None, 10), metrics.CategoricalAccuracy),
        ((8,), (None, 1), metrics.BinaryAccuracy),
        ((8, 1), (None, 1), metrics.BinaryAccuracy),
        ((8, 3), (None, 3), metrics.CategoricalAccuracy),
    ],
)
def test_accuracy_resolves_as_keras(label_shape, output_shape, expected):
    metric = metrics.get("accuracy", label_shape, output_shape)
    assert type(metric) is expected and metric.name == "accuracy"
    assert metrics.get("acc", label_shape, output_shape).name == "acc"


def test_metric_values_match_keras():
    p = RNG.random((10, 4)).astype(np.float32)
    classes = RNG.integers(0, 4, 10)
    one_hot = np.eye(4, dtype=np.float32)[classes]
    binary_p = np.array([[0.2], [0.5], [0.51], [0.9], [0.5]], np.float32)  # 0.5 is not > 0.5
    binary_y = np.array([[0], [0], [1], [0], [1]], np.float32)
    for ours, theirs, y, pred in [
        (metrics.SparseCategoricalAccuracy(), keras.metrics.SparseCategoricalAccuracy(), classes, p),
        (metrics.CategoricalAccuracy(), keras.metrics.CategoricalAccuracy(), one_hot, p),
        (metrics.BinaryAccuracy(), keras.metrics.BinaryAccuracy(), binary_y, binary_p),
        (metrics.BinaryAccuracy(threshold=0.3), keras.metrics.BinaryAccuracy(threshold=0.3), binary_y, binary_p),
    ]:
        ours.update_state(y, pred)
        ours.update_state(y[:3], pred[:3])
        theirs.update_state(y, pred)
        theirs.update_state(y[:3], pred[:3])
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-6)


def test_unknown_metric_name():
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'"):
        metrics.get("acuracy")


def test_initializers_and_seeding():
    miniconv.utils.set_random_seed(3)
    a = miniconv.initializers.glorot_uniform(None, (3, 3, 4, 8))
    miniconv.utils.set_random_seed(3)
    b = miniconv.initializers.glorot_uniform(None, (3, 3, 4, 8))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    limit = np.sqrt(6 / (9 * 4 + 9 * 8))
    assert np.abs(a).max() <= limit and np.abs(a).max() > 0.9 * limit
    assert miniconv.initializers.compute_fans((3, 3, 4, 8)) == (36, 72)
    with pytest.raises(ValueError, match="set_random_seed"):
        miniconv.utils.set_random_seed(-1)
