"""``miniconv train cats-dogs`` end to end on a tiny folder the test writes (a few steps, not accuracy).

The folder mimics ``cats_and_dogs_small``: train/ and validation/, each with cats/ and dogs/, JPEG
and PNG photos of different sizes (resized to 150x150 by the loader) and one corrupt file. The
runs are short (``--limit``, batch 4) so the file stays within seconds: the plain model for one
epoch, the augmented one for two, then ``--resume`` for a third. Timings are not checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import miniconv
from miniconv import cli
from miniconv.recipes.cats_dogs import convnet

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cats_and_dogs_tiny")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("validation", 4)):
        for label, name in enumerate(("cats", "dogs")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = rng.integers(40, 90, size=2)
                tone = np.array([60, 120, 180]) if label else np.array([180, 120, 60])  # learnable: colour
                image = np.clip(tone + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{name[:-1]}.{i}.{'png' if i % 2 else 'jpg'}")
    (root / "train" / "dogs" / "dog.99.jpg").write_bytes(b"\xff\xd8 truncated nonsense")
    return root


def _train(data, out, *options):
    return cli.main(["train", "cats-dogs", "--data", str(data), "--out", str(out), "--batch-size", "4",
                     *map(str, options)])


def test_plain_model_one_epoch(data, tmp_path, capsys):
    with pytest.warns(UserWarning, match="dog.99.jpg"):
        assert _train(data, tmp_path, "--epochs", 1, "--limit", 8) == 0
    printed = capsys.readouterr().out
    assert "Validation accuracy" in printed and "Seconds per epoch" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["epochs"] == 1 and 0 <= report["validation_accuracy"] <= 1 and report["seconds_per_epoch"] > 0
    assert report["settings"]["class_names"] == ["cats", "dogs"] and report["settings"]["train_samples"] == 8
    assert report["settings"]["validation_samples"] == 8 and report["settings"]["augment"] is False
    assert set(report["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    model = miniconv.load_model(tmp_path / "cats_dogs.miniconv")
    assert model.input_shape == (None, 150, 150, 3) and model.count_params() == 3_453_121  # the book's count
    assert (tmp_path / "history.png").stat().st_size > 1000


def test_augmented_model_trains_and_resumes(data, tmp_path, capsys):
    with pytest.warns(UserWarning, match="dog.99.jpg"):
        assert _train(data, tmp_path, "--augment", "--epochs", 2, "--limit", 4, "--seed", 3) == 0
    first = json.loads((tmp_path / "report.json").read_text())
    assert first["epochs"] == 2 and first["settings"]["augment"] is True
    assert len(first["epoch_seconds"]) == len(first["epoch_seconds_with_validation"]) == 2
    with pytest.warns(UserWarning, match="dog.99.jpg"):
        assert _train(data, tmp_path, "--augment", "--epochs", 3, "--limit", 4, "--seed", 3, "--resume") == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["epochs"] == 3 and report["history"]["loss"][:2] == first["history"]["loss"]
    straight = tmp_path / "straight"  # the same 3 epochs uninterrupted: the resumed run continued exactly
    with pytest.warns(UserWarning, match="dog.99.jpg"):
        assert _train(data, straight, "--augment", "--epochs", 3, "--limit", 4, "--seed", 3) == 0
    uninterrupted = json.loads((straight / "report.json").read_text())["history"]
    for key, values in report["history"].items():
        assert values == pytest.approx(uninterrupted[key], rel=1e-4, abs=1e-6), key
    names = [type(layer).__name__ for layer in miniconv.load_model(tmp_path / "cats_dogs.miniconv").layers]
    assert names[:7] == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom", "Rescaling",
                         "Conv2D"]
    assert "Dropout" in names
    capsys.readouterr()
    with pytest.warns(UserWarning, match="dog.99.jpg"):
        assert _train(data, tmp_path, "--epochs", 3, "--limit", 4, "--seed", 3, "--resume") == 2  # not augmented
    assert "augment" in capsys.readouterr().err


def test_bad_options_are_usage_errors(data, tmp_path, capsys):
    assert _train(tmp_path / "nowhere", tmp_path / "out") == 2
    assert "train/ and validation/" in capsys.readouterr().err
    assert _train(data, tmp_path / "out", "--epochs", 0) == 2
    assert "--epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "cats-dogs"])  # --data is required
    assert "--data" in capsys.readouterr().err


def test_model_recipe():
    plain, augmented = convnet(augment=False), convnet(augment=True)
    assert plain.count_params() == augmented.count_params() == 3_453_121
    rotation, translation, shear, zoom = (augmented.get_layer(index=k) for k in (1, 2, 3, 4))
    assert rotation.factor == pytest.approx((-40 / 360, 40 / 360))
    # the seed's ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
    # shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode='nearest')
    assert translation.height_factor == translation.width_factor == pytest.approx((-0.2, 0.2))
    assert shear.x_factor == pytest.approx((-0.2, 0.2)) and shear.y_factor == (0.0, 0.0)
    assert zoom.height_factor == zoom.width_factor == pytest.approx((-0.2, 0.2))  # zx, zy drawn independently
    assert augmented.get_layer(index=0).mode == "horizontal"
    assert all(layer.fill_mode == "nearest" for layer in (rotation, translation, shear, zoom))
    assert [type(layer).__name__ for layer in plain.layers][-3:] == ["Flatten", "Dense", "Dense"]
    assert [type(layer).__name__ for layer in augmented.layers][-4:] == ["Flatten", "Dropout", "Dense", "Dense"]


def test_train_help_lists_both_datasets():
    run = subprocess.run([sys.executable, "-m", "miniconv", "train", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0 and "mnist" in run.stdout and "cats-dogs" in run.stdout


def test_benchmark_smoke(data, tmp_path):
    """miniconv alone (a Keras worker would double the time), one short epoch."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "train", "cats-dogs", "--data", str(data), "--limit", "8", "--epochs", "1",
         "--rounds", "1", "--warmup-steps", "1", "--references", "", "--out", str(tmp_path)],
        cwd=ROOT, check=False, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "train_cats_dogs.json").read_text())["results"]["miniconv-cpu"]
    assert result["seconds_per_epoch"] > 0 and result["peak_rss_mb"] > 50 and result["train_samples"] == 8
    assert "smoke test" in (tmp_path / "train_cats_dogs.md").read_text()


def test_resume_is_exact_when_a_jpeg_is_truncated(data, tmp_path):
    """A JPEG whose header reads but whose data is cut short is found (and dropped) only when epoch 1
    decodes it; the checkpoint records it, so a resumed epoch 2 shuffles the same files as a run never
    interrupted."""
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    (folder / "train" / "dogs" / "dog.99.jpg").unlink()
    good = (folder / "train" / "cats" / "cat.0.jpg").read_bytes()
    (folder / "train" / "cats" / "cat.7.jpg").write_bytes(good[: len(good) // 2])  # header fine, data truncated
    options = ["--epochs", 2, "--limit", 13, "--seed", 1]
    with pytest.warns(UserWarning, match=r"cat\.7\.jpg.*|skipped"):
        assert _train(folder, tmp_path / "straight", *options) == 0
    with pytest.warns(UserWarning, match=r"cat\.7\.jpg"):
        assert _train(folder, tmp_path / "resumed", "--epochs", 1, "--limit", 13, "--seed", 1) == 0
    assert _train(folder, tmp_path / "resumed", *options, "--resume") == 0
    straight = json.loads((tmp_path / "straight" / "report.json").read_text())["history"]
    resumed = json.loads((tmp_path / "resumed" / "report.json").read_text())["history"]
    assert resumed == straight
