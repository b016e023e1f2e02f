"""``miniconv train cats-dogs --base NAME --transfer MODE`` end to end, on a tiny base and a tiny folder.

The real bases (EfficientNet-Lite0, VGG16) take minutes per epoch on 2 cores; their loaders are tested
in ``test_efficientnet.py`` and ``test_vgg16.py``. Here a small base of the same kind (rescaling, conv,
batch normalization, ReLU6, depthwise, a last block named as the real bases' are) is registered under
a test name, so what is checked is the recipes' mechanics: the features cached and reused, the frozen
base left untouched by training, fine-tuning's phases (head first, then the last block with batch
normalization in inference mode), resuming inside either phase, the reports and the errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import miniconv
from miniconv import cli
from miniconv.recipes import transfer
from miniconv.recipes.cats_dogs import load_splits

SIZE = (24, 24)


def tiny_base(weights="imagenet", input_shape=(*SIZE, 3)):
    """A small pretrained-style base: its "imagenet" weights are a fixed random draw (seed 7)."""
    L = miniconv.layers
    inputs = miniconv.Input(input_shape)
    x = L.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="block1_dw")(x)
    x = L.BatchNormalization(name="block1_bn")(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(12, 1, use_bias=False, name="top_conv")(x)
    x = L.BatchNormalization(name="top_bn")(x)
    x = L.ReLU(6.0)(x)
    outputs = L.GlobalAveragePooling2D()(x)
    model = miniconv.Model(inputs, outputs, name="tiny_base")
    rng = np.random.default_rng(7)
    weights_now = [rng.normal(0, 0.3, w.shape).astype("float32") if w.ndim > 1 else
                   (np.abs(rng.normal(1, 0.1, w.shape)) if "variance" in name or "gamma" in name
                    else rng.normal(0, 0.1, w.shape)).astype("float32")
                   for w, name in zip(model.get_weights(), _weight_names(model))]
    model.set_weights(weights_now)
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model


def _weight_names(model):
    return [name for layer in model.layers for name in layer.weight_names]


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    base = transfer.Base("tiny", SIZE, tiny_base, "top_conv", "a test base")
    monkeypatch.setitem(transfer.BASES, "tiny", base)
    return base


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cats_and_dogs_tiny")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("validation", 4)):
        for label, name in enumerate(("cats", "dogs")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                tone = np.array([60, 120, 180]) if label else np.array([180, 120, 60])
                image = np.clip(tone + rng.normal(0, 25, (30, 36, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{name[:-1]}.{i}.png")
    return root


def _train(data, out, *options):
    return cli.main(["train", "cats-dogs", "--data", str(data), "--out", str(out), "--batch-size", "4", "--base",
                     "tiny", *map(str, options)])


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_features_are_extracted_once_and_a_head_trains_on_them(data, tmp_path, capsys):
    assert _train(data, tmp_path, "--transfer", "features", "--epochs", 2) == 0
    printed = capsys.readouterr().out
    assert "Extracting training features: 16 images" in printed
    report = _report(tmp_path)
    assert report["epochs"] == 2 and report["settings"]["transfer"] == "features"
    assert set(report["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    cached = np.load(tmp_path / "features.npz")
    base = tiny_base()
    _, validation = load_splits(data, 4, report["settings"]["seed"], image_size=SIZE, verbose=False)
    validation.shuffle = False  # the recipe's order: the file list shuffled once by the seed
    images, labels = map(np.concatenate, zip(*validation))
    np.testing.assert_allclose(cached["x_val"], base.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(cached["y_val"], labels)
    assert sorted(labels.ravel()) == [0] * 4 + [1] * 4
    head = miniconv.load_model(tmp_path / "cats_dogs.miniconv")
    assert [type(layer).__name__ for layer in head.layers] == ["Dense", "Dropout", "Dense"]
    assert head.input_shape == (None, 12) and head.layers[0].units == 256

    assert _train(data, tmp_path, "--transfer", "features", "--epochs", 3, "--resume") == 0
    printed = capsys.readouterr().out
    assert "Extracting" not in printed and "Features read from" in printed
    assert _report(tmp_path)["history"]["loss"][:2] == report["history"]["loss"]


def test_frozen_base_with_augmentation_leaves_the_base_untouched(data, tmp_path):
    assert _train(data, tmp_path, "--transfer", "frozen", "--augment", "--epochs", 2) == 0
    report = _report(tmp_path)
    assert set(report["history"]) == {"loss", "binary_accuracy", "val_loss", "val_binary_accuracy"}
    assert 0 <= report["validation_accuracy"] <= 1
    model = miniconv.load_model(tmp_path / "cats_dogs.miniconv")
    base = transfer.find_base(model)
    assert not base.trainable and model.layers[-2].units == 6  # Kaggle's head: Dense(6, relu)
    for trained, original in zip(base.get_weights(), tiny_base().get_weights()):
        np.testing.assert_array_equal(trained, original)  # BN's moving statistics included
    assert (tmp_path / "history.png").stat().st_size > 1000
    figure = miniconv.viz.show_learning_curves(tmp_path / "report.json")
    assert [axes.get_title() for axes in figure.axes] == ["Training and validation loss",
                                                          "Training and validation binary_accuracy"]


def test_fine_tuning_trains_the_head_then_the_last_block(data, tmp_path, capsys):
    assert _train(data, tmp_path, "--transfer", "fine-tune", "--epochs", 7) == 0
    assert "Fine-tuning from epoch 6" in capsys.readouterr().out
    model = miniconv.load_model(tmp_path / "cats_dogs.miniconv")
    base = transfer.find_base(model)
    trained = dict(zip(_weight_names(base), base.get_weights()))
    original = dict(zip(_weight_names(base), tiny_base().get_weights()))
    changed = {name for name in trained if not np.array_equal(trained[name], original[name])}
    assert changed == {"top_conv/kernel"}  # the last block's conv; its batch normalization stays frozen
    assert [layer.name for layer in base.layers if layer.trainable and layer.params] == ["top_conv"]
    assert model.optimizer.learning_rate == pytest.approx(1e-5)


def test_fine_tuning_resumed_inside_each_phase_continues_exactly(data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(data, straight, "--transfer", "fine-tune", "--epochs", 7, "--seed", 2) == 0
    assert _train(data, resumed, "--transfer", "fine-tune", "--epochs", 6, "--seed", 2) == 0
    assert _train(data, resumed, "--transfer", "fine-tune", "--epochs", 7, "--seed", 2, "--resume") == 0
    expected = _report(straight)["history"]
    for key, values in _report(resumed)["history"].items():
        assert values == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("options, message", [
    (["--transfer", "nonsense"], "--transfer must be one of features, frozen, fine-tune"),
    (["--transfer", "features", "--augment"], "--augment does not apply to --transfer features"),
    (["--transfer", "fine-tune", "--epochs", "3"], "give --epochs above 5"),
])
def test_bad_options_are_named(data, tmp_path, capsys, options, message):
    assert _train(data, tmp_path, *options) == 2
    assert message in capsys.readouterr().err


def test_unknown_base_and_transfer_without_base(data, tmp_path, capsys):
    assert cli.main(["train", "cats-dogs", "--data", str(data), "--out", str(tmp_path), "--base", "resnet"]) == 2
    assert "--base: unknown base 'resnet'" in capsys.readouterr().err
    assert cli.main(["train", "cats-dogs", "--data", str(data), "--out", str(tmp_path), "--transfer", "frozen"]) == 2
    assert "--transfer needs --base" in capsys.readouterr().err


def test_a_weight_file_that_does_not_fit_is_a_clear_error(data, tmp_path, capsys):
    bad = tmp_path / "bad.weights.miniconv"
    miniconv.Sequential([miniconv.Input((4,)), miniconv.layers.Dense(2)]).save_weights(bad)
    assert _train(data, tmp_path / "run", "--transfer", "frozen", "--weights", bad, "--epochs", 1) == 2
    err = capsys.readouterr().err
    assert "--base tiny: cannot load its weights" in err


def test_vgg16_base_from_a_file_in_keras_cache(data, tmp_path, monkeypatch, capsys):
    """``--base vgg16`` where Keras's no-top file is in Keras's cache (here a file of random weights in
    the published layout, with the published hash replaced by its own): the features are VGG16's."""
    pytest.importorskip("h5py")
    from test_vgg16 import publish, write_published_layout

    from miniconv.applications import VGG16, vgg16

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home" / "models").mkdir(parents=True)
    miniconv.utils.set_random_seed(1)
    source = VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "keras_home" / "models" / vgg16.PUBLISHED[False].fname
    write_published_layout(source, path)
    publish(monkeypatch, path)

    out = tmp_path / "run"
    assert cli.main(["train", "cats-dogs", "--data", str(data), "--out", str(out), "--batch-size", "4", "--base",
                     "vgg16", "--limit", "4", "--epochs", "1"]) == 0
    assert "Extracting training features: 4 images through vgg16" in capsys.readouterr().out
    cached = np.load(out / "features.npz")
    assert cached["x"].shape == (4, 4, 4, 512)  # 150x150 in, block5_pool out, as Chollet 5.3.1
    _, validation = load_splits(data, 4, 0, limit=4, image_size=(150, 150), verbose=False)
    validation.shuffle = False
    images = np.concatenate([x for x, _ in validation])
    reference = VGG16(include_top=False, weights=str(path), input_shape=(150, 150, 3), file_hash=None)
    np.testing.assert_allclose(cached["x_val"], reference.predict(vgg16.preprocess_input(images), verbose=0),
                               rtol=1e-4, atol=1e-3)
