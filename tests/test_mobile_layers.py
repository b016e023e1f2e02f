"""The layers of modern pretrained bases against Keras 3: DepthwiseConv2D, SeparableConv2D,
BatchNormalization, ZeroPadding2D, ReLU(max_value=6) and the "relu6" activation.

Same weights, same predictions; a few SGD steps of a small convnet with batch normalization give
Keras's weights *and* moving statistics; a frozen batch normalization runs on its moving
statistics in fit, as in Keras 3; summaries count the moving statistics as non-trainable; files
keep them. The compiled model folds an inference-mode batch normalization into the convolution
before it and a ZeroPadding2D into the next convolution's padding: the same numbers, to float32
rounding, and the same gradients for a trainable convolution under a frozen batch normalization.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import miniconv
from miniconv import layers
from miniconv.engine import plan as plan_module
from miniconv.engine.plan import compile_plan


def mobile_block(lib, frozen_bn=False):
    """A stem and an inverted-residual-like block: pad, conv, BN, ReLU6, depthwise, BN, relu6, separable."""
    L = keras.layers if lib is keras else layers
    inputs = lib.Input((11, 10, 3), name="image")
    x = L.ZeroPadding2D(((0, 1), (1, 1)), name="pad")(inputs)
    x = L.Conv2D(8, 3, strides=2, use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn", trainable=not frozen_bn)(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False, name="dw")(x)
    y = L.BatchNormalization(name="dw_bn", momentum=0.9)(y)
    y = L.Activation("relu6", name="dw_relu")(y)
    y = L.SeparableConv2D(8, 3, padding="same", name="sep")(y)
    x = L.Add(name="add")([x, y])
    outputs = L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling2D(name="gap")(x))
    return lib.Model(inputs, outputs, name="mobile")


def twins(**kwargs):
    keras.utils.set_random_seed(3)
    theirs = mobile_block(keras, **kwargs)
    ours = mobile_block(miniconv, **kwargs)
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    for layer in theirs.layers:  # moving statistics away from their initial 0 / 1, the same on both sides
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 11, 10, 3), dtype=np.float32), rng.integers(0, 3, n)


def test_weights_and_summary_are_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    theirs, ours = twins()
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.weight_names == [w.path for w in theirs.weights]
    expected, got = [], []
    theirs.summary(print_fn=lambda text, **_: expected.append(text))
    ours.summary(print_fn=got.append)
    assert got[0] == expected[0].rstrip("\n")
    assert sum(w.size for w in ours.non_trainable_weights) == sum(np.prod(w.shape) for w in theirs.non_trainable_weights)


def test_predictions_match_keras_with_folding_and_without(monkeypatch):
    theirs, ours = twins()
    x, _ = data()
    expected = theirs.predict(x, verbose=0)
    steps = [s.op for s in compile_plan(ours).steps]
    assert steps[0] == "conv_explicit_padding_bn_folded_relu6" and "conv_bn_folded_relu6" in steps
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(plan_module, "FUSIONS", ())  # every layer on its own
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_training_steps_match_keras_weights_and_moving_statistics():
    theirs, ours = twins()
    x, y = data(12)
    for model, lib in ((theirs, keras), (ours, miniconv)):
        model.compile(lib.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    expected = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    got = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    for name, mine, reference in zip(ours.weight_names, ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6, err_msg=name)
    moving = [n for n in ours.weight_names if "moving" in n]
    assert len(moving) == 4 and not np.allclose(ours.get_layer("dw_bn").moving_mean, 0)


def test_a_frozen_batch_norm_runs_on_its_moving_statistics_in_fit():
    theirs, ours = twins(frozen_bn=True)
    bn = ours.get_layer("stem_bn")
    before = [w.copy() for w in bn.get_weights()]
    x, y = data(8)
    for model, lib in ((theirs, keras), (ours, miniconv)):
        model.compile(lib.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, bn.get_weights()))  # moving statistics untouched
    for name, mine, reference in zip(ours.weight_names, ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6, err_msg=name)
    train_plan = compile_plan(ours, loss=ours.loss)  # frozen: folded even in fit, the stem conv still trains
    assert train_plan.steps[0].op == "conv_explicit_padding_bn_folded_relu6"
    assert any("stem/kernel" == v.name for v in train_plan.trainable_variables)


def test_folding_keeps_a_trainable_convs_gradient(monkeypatch):
    """The kernel's gradient through the folded weights (batch_normalization's pullback) and the fused
    ReLU6 is the gradient of the layer-by-layer computation; so are the input gradient and the others."""
    _, ours = twins(frozen_bn=True)
    x, _ = data(4)
    dy = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    y, backward = ours.forward(x)
    dx = backward(dy)
    convs = ("stem", "dw", "sep", "head")
    folded = {name: [g.copy() for g in ours.get_layer(name).grads] for name in convs}
    assert [s.op for s in compile_plan(ours).steps][:2] == ["conv_explicit_padding_bn_folded_relu6",
                                                            "conv_bn_folded_relu6"]
    monkeypatch.setattr(plan_module, "FUSIONS", ())
    y_plain, backward = ours.forward(x)
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dx, backward(dy), rtol=2e-5, atol=1e-7)
    for name in convs:  # the stem and the depthwise conv through BN + ReLU6 folded into one op
        for mine, plain in zip(folded[name], ours.get_layer(name).grads):
            np.testing.assert_allclose(mine, plain, rtol=2e-5, atol=1e-7, err_msg=name)


def test_moving_statistics_are_saved_and_converted(tmp_path):
    theirs, ours = twins()
    x, y = data(8)
    ours.compile("adam", "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=4, verbose=0)
    ours.save(tmp_path / "m.miniconv")
    loaded = miniconv.load_model(tmp_path / "m.miniconv")
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), ours.get_weights()))
    np.testing.assert_array_equal(loaded.predict(x), ours.predict(x))
    keras_again = ours.to_keras()
    np.testing.assert_allclose(keras_again.predict(x, verbose=0), ours.predict(x), rtol=1e-5, atol=1e-6)
    back = miniconv.from_keras(theirs)
    assert [type(la).__name__ for la in back.layers] == [type(la).__name__ for la in ours.layers]
    np.testing.assert_allclose(back.predict(x), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="momentum must be a number in"):
        layers.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon must be a number in"):
        layers.BatchNormalization(epsilon=0)
    with pytest.raises(ValueError, match="renorm and synchronized are not supported"):
        layers.BatchNormalization(renorm=True)
    with pytest.raises(ValueError, match="strides must be equal along rows and columns"):
        layers.DepthwiseConv2D(3, strides=(1, 2))
    with pytest.raises(ValueError, match="padding must be an int"):
        layers.ZeroPadding2D(((1, -1), (0, 0)))
    with pytest.raises(ValueError, match="only max_value None or 6"):
        layers.ReLU(max_value=4)
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        layers.BatchNormalization(axis=0)(miniconv.Input((4, 4, 2)))


def test_a_padded_output_conv_whose_activation_the_loss_takes():
    """ZeroPadding2D -> Conv2D(sigmoid) as the output under binary crossentropy: the loss takes the conv's
    logits, so that conv is left out of fusion chains (the pair ran as conv_explicit_padding, and the plan
    then called ZeroPadding2D.call(activation=False): a TypeError in fit). A step of SGD equals Keras's."""

    def build(lib):
        L = keras.layers if lib is keras else layers
        inputs = lib.Input((6, 5, 2), name="image")
        x = L.ZeroPadding2D(((1, 0), (1, 1)), name="pad")(inputs)
        return lib.Model(inputs, L.Conv2D(2, 3, activation="sigmoid", name="out")(x), name="padded")

    keras.utils.set_random_seed(0)
    theirs, ours = build(keras), build(miniconv)
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.1) if model is theirs else miniconv.optimizers.SGD(0.1),
                      loss="binary_crossentropy")
    plan = compile_plan(ours, loss=ours.loss)
    assert [s.op for s in plan.steps] == ["ZeroPadding2D", "Conv2D"] and plan.folded
    rng = np.random.default_rng(0)
    x = rng.random((4, 6, 5, 2), dtype=np.float32)
    y = (rng.random((4, 5, 5, 2)) < 0.5).astype(np.float32)
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for name, mine, reference in zip(ours.weight_names, ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
