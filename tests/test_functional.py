"""Functional models against Keras 3: a residual block and a two-branch model, built the same way in
both libraries (only the import differs), give the same parameter counts, summary, predictions and
training steps; they save, load, nest, convert and look inside like Sequential models; bad graphs
are named before anything runs.

Training steps use SGD: an update proportional to the gradient, so two correctly rounded engines
stay within float32 rounding of each other (RMSprop and Adam take about lr * sign(g) on their
first step, which turns a gradient within rounding of 0 into a full step either way).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import miniconv
from miniconv import layers
from miniconv.engine.plan import compile_plan


def residual_block(lib):
    """Conv -> (conv, conv) + skip -> pool -> dense: a residual block as in ResNet, on 10 x 10 x 3."""
    L = keras.layers if lib is keras else layers
    inputs = lib.Input((10, 10, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    h = L.Conv2D(8, 3, padding="same", name="conv_b")(h)
    x = L.Activation("relu", name="relu")(L.Add(name="add")([x, h]))
    x = L.MaxPooling2D(2, name="pool")(x)
    outputs = L.Dense(4, activation="softmax", name="head")(L.Flatten(name="flatten")(x))
    return lib.Model(inputs, outputs, name="residual")


def two_branch(lib):
    """A 1x1 and a 3x3 branch from one input, multiplied and joined, as an Inception-style block."""
    L = keras.layers if lib is keras else layers
    inputs = lib.Input((9, 8, 2), name="image")
    a = L.Conv2D(4, 1, activation="relu", name="branch_1x1")(inputs)
    b = L.Conv2D(4, 3, padding="same", activation="relu", name="branch_3x3")(inputs)
    joined = L.Concatenate(name="join")([a, b, L.Multiply(name="gate")([a, b])])
    x = L.MaxPooling2D(2, name="pool")(joined)
    x = L.Conv2D(5, 3, activation="relu", name="conv")(x)
    outputs = L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D(name="gap")(x))
    return lib.Model(inputs, outputs, name="two_branch")


BUILDERS = {"residual": residual_block, "two_branch": two_branch}


def twins(name):
    keras.utils.set_random_seed(0)
    theirs = BUILDERS[name](keras)
    ours = BUILDERS[name](miniconv)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def data(model, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_shape[1:]), dtype=np.float32)
    return x, rng.integers(0, model.output_shape[-1], n)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_layers_weights_and_summary_are_keras(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    theirs, ours = twins(name)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    expected, got = [], []
    theirs.summary(print_fn=lambda text, **_: expected.append(text))
    ours.summary(print_fn=got.append)
    assert got[0] == expected[0].rstrip("\n")
    assert "Connected to" in got[0]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_predictions_match_keras(name):
    theirs, ours = twins(name)
    x, _ = data(ours)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, batch_size=4), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_training_steps_match_keras(name):
    theirs, ours = twins(name)
    x, y = data(ours, n=12)
    for model in (theirs, ours):
        model.compile((keras if model is theirs else miniconv).optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    expected = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    got = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=2e-6)


def test_the_residual_gradient_is_the_sum_of_both_paths():
    """d/dx of a skip connection x + f(x) adds f's gradient to the identity's (the plan sums fan-out)."""
    inputs = miniconv.Input((5,))
    dense = layers.Dense(5, use_bias=False, name="f")
    model = miniconv.Model(inputs, layers.Add()([inputs, dense(inputs)]))
    kernel = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    dense.set_weights([kernel])
    x = np.ones((1, 5), np.float32)
    dy = np.random.default_rng(1).standard_normal((1, 5)).astype(np.float32)
    gradient = model.input_gradient(x, -1, upstream=dy)
    np.testing.assert_allclose(gradient, dy + dy @ kernel.T, rtol=1e-6)


def test_fusion_follows_the_graph():
    """Conv2D(relu) + MaxPooling2D fuse only when the pool alone reads the conv; a skip connection
    reading the conv's output keeps them apart."""
    inputs = miniconv.Input((8, 8, 1))
    conv = layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    chain = miniconv.Model(inputs, layers.MaxPooling2D(2)(conv))
    assert [step.op for step in compile_plan(chain).steps] == ["conv2d_bias_relu_max_pool2d"]
    pooled = layers.MaxPooling2D(2)(conv)
    shared = miniconv.Model(inputs, [pooled, conv])
    assert [step.op for step in compile_plan(shared).steps] == ["conv2d_bias_relu", "MaxPooling2D"]


def test_save_load_activations_and_keras_round_trip(tmp_path):
    theirs, ours = twins("residual")
    x, y = data(ours)
    ours.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ours.fit(x, y, batch_size=3, epochs=1, verbose=0)
    ours.save(tmp_path / "residual.miniconv")
    loaded = miniconv.load_model(tmp_path / "residual.miniconv")
    assert type(loaded) is miniconv.Model and [la.name for la in loaded.layers] == [la.name for la in ours.layers]
    assert loaded.optimizer.iterations == ours.optimizer.iterations
    np.testing.assert_array_equal(loaded.predict(x), ours.predict(x))
    assert [a.shape for a in loaded.activations(x)] == [a.shape for a in ours.activations(x)]
    keras_again = ours.to_keras()
    np.testing.assert_allclose(keras_again.predict(x, verbose=0), ours.predict(x), rtol=1e-5, atol=1e-6)
    back = miniconv.from_keras(keras_again)
    np.testing.assert_allclose(back.predict(x), ours.predict(x), rtol=1e-6, atol=1e-7)
    picked = miniconv.Model(ours.input, [ours.get_layer("add").output, ours.get_layer("head").output])
    add, head = picked.predict(x)
    np.testing.assert_array_equal(head, ours.predict(x))
    np.testing.assert_array_equal(add, ours.activations(x, layers=["add"])[0])


def test_a_functional_base_nests_frozen_under_a_new_head():
    """The transfer pattern: a trained model called on a new Input as one layer, frozen, with a new head."""
    _, base = twins("two_branch")
    base_features = miniconv.Model(base.input, base.get_layer("gap").output, name="features")
    base_features.trainable = False
    inputs = miniconv.Input((9, 8, 2))
    outputs = layers.Dense(1, activation="sigmoid", name="new_head")(base_features(inputs))
    model = miniconv.Model(inputs, outputs)
    assert [layer.name for layer in model.layers] == ["input_layer", "features", "new_head"] or \
        [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Model", "Dense"]
    frozen = sum(w.size for w in model.non_trainable_weights)
    assert frozen == base_features.count_params() and sum(w.size for w in model.trainable_weights) == 6
    x, _ = data(model)
    before = [w.copy() for w in model.get_weights()]
    model.compile("rmsprop", "binary_crossentropy")
    model.fit(x, np.array([0, 1, 0, 1, 1, 0]), batch_size=3, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert not any(changed[:-2]) and all(changed[-2:])


def test_a_frozen_prefix_keeps_no_tape_and_the_head_gradient_is_unchanged():
    """fit's forward keeps no pullback for steps no gradient reaches (a frozen base below a trained
    head), and the head's gradient equals the one of the head trained on the base's outputs alone."""
    from miniconv.engine.execute import backward, forward, gradients

    _, base = twins("two_branch")
    base.trainable = False
    inputs = miniconv.Input((9, 8, 2))
    head = layers.Dense(3, name="new_head")
    model = miniconv.Model(inputs, head(base(inputs)))
    x, _ = data(model)
    plan = compile_plan(model, training=True)
    (y,), tape = forward(plan, [x], training=True)
    kept = [step.name for step, pullback in zip(plan.steps, tape.pullbacks) if pullback is not None]
    assert kept == ["new_head"]
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    backward(plan, tape, [dy])
    mine = gradients(plan)

    features = base.predict(x)
    head_alone = miniconv.Sequential([miniconv.Input(features.shape[1:]), head])
    alone = compile_plan(head_alone, training=True)
    (y_alone,), tape_alone = forward(alone, [features], training=True)
    np.testing.assert_array_equal(y, y_alone)
    backward(alone, tape_alone, [dy])
    for a, b in zip(mine, gradients(alone)):
        np.testing.assert_array_equal(a, b)


def test_bad_graphs_are_named():
    a = miniconv.Input((4,), name="a")
    b = miniconv.Input((4,), name="b")
    out = layers.Dense(2, name="d")(layers.Add(name="sum")([a, b]))
    with pytest.raises(ValueError, match=r"disconnected.*Input 'b' of shape \(None, 4\).*inputs="):
        miniconv.Model(a, out)
    with pytest.raises(ValueError, match=r"Add layer 'bad_add'.*same shape.*\(None, 4\).*\(None, 3\)"):
        layers.Add(name="bad_add")([a, miniconv.Input((3,))])
    with pytest.raises(ValueError, match=r"Concatenate layer 'bad_join'.*\(None, 2, 4\).*\(None, 3, 4\)"):
        layers.Concatenate(name="bad_join")([miniconv.Input((2, 4)), miniconv.Input((3, 4))])
    with pytest.raises(TypeError, match="takes a list of tensors"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="Model needs both inputs= and outputs="):
        miniconv.Model(a, None)
    with pytest.raises(TypeError, match="symbolic tensor"):
        miniconv.Model(a, np.zeros((1, 4)))
    model = miniconv.Model([a, b], out)
    with pytest.raises(ValueError, match=r"the model has 2 inputs; pass a list"):
        model.predict(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"x\[1\]: the model expects input of shape \(None, 4\)"):
        model.predict([np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32)])
    np.testing.assert_array_equal(model.predict([np.ones((3, 4), np.float32)] * 2).shape, (3, 2))
