"""``miniconv train mnist`` and the MNIST loader: a smoke run through the command, the loader's
checksum and path errors, Ctrl-C and ``--resume`` giving the same result as an uninterrupted run,
and ``python -m benchmarks train`` end to end on a tiny subset.

Sizes are chosen for CI on 2 shared cores: the smoke run trains 2 epochs on 10,000 images (about
300 steps; it reaches about 0.97 on the full test set, the test asks 0.95); the resume runs train a
few hundred images. Resuming must give bit-for-bit the run never interrupted: on the numpy
backend (the Ctrl-C test, in a subprocess) and on the cpu backend, whose work-shared reductions
sum fixed groups in a fixed order, so its results do not depend on thread scheduling.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import miniconv
from miniconv import cli, saving
from miniconv.datasets import DatasetError, mnist

ROOT = Path(__file__).resolve().parent.parent
REPORT_KEYS = {"history", "test_accuracy", "seconds_per_epoch", "backend", "versions", "seed"}


def _train(out, *options) -> int:
    return cli.main(["train", "mnist", "--out", str(out), *map(str, options)])


def _same_model(a, b) -> bool:
    """Same weights and optimizer state (compared in weight order: layer names differ between
    models built in one process, conv2d_3 for the fourth Conv2D, and they key the state)."""
    weights = all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))
    state_a, state_b = list(a.optimizer.state().values()), list(b.optimizer.state().values())
    optimizer = len(state_a) == len(state_b) == len(a.weights) and all(map(np.array_equal, state_a, state_b))
    return weights and optimizer and a.optimizer.iterations == b.optimizer.iterations


# --- the command -------------------------------------------------------------------------------
def test_train_mnist_smoke(tmp_path, capsys):
    """2 epochs on 10,000 real images through ``miniconv train``: well above chance, every output written."""
    assert _train(tmp_path, "--epochs", 2, "--limit", 10000) == 0
    printed = capsys.readouterr().out
    assert "Test accuracy:" in printed and "Seconds per epoch:" in printed and "training only" in printed

    report = json.loads((tmp_path / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["test_accuracy"] >= 0.95, report["history"]
    assert report["backend"] == "cpu" and report["seed"] == 0
    assert {"miniconv", "numpy", "numba", "python"} <= set(report["versions"])
    assert report["seconds_per_epoch"] > 0 and len(report["epoch_seconds"]) == 2
    assert report["settings"]["train_samples"] == 10000 and report["settings"]["test_samples"] == 10000
    history = report["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in history.values())
    assert history["loss"][1] < history["loss"][0]
    assert history["val_accuracy"][-1] == report["test_accuracy"]

    model = miniconv.load_model(tmp_path / "mnist.miniconv")
    assert model.epochs_completed == 2 and model.count_params() == 93322

    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "history.png")
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    assert picture[..., :3].std() > 0.05  # not blank: axes, points and lines
    assert np.sum(picture[..., 2] - picture[..., 0] > 0.5) > 200  # blue points / lines drawn


def test_train_reports_bad_options(tmp_path, capsys):
    assert _train(tmp_path / "a", "--data", tmp_path / "nowhere.npz") == 2
    assert "nowhere.npz" in capsys.readouterr().err
    assert _train(tmp_path / "b", "--epochs", 0) == 2
    assert "--epochs" in capsys.readouterr().err
    assert _train(tmp_path / "c", "--optimizer", "adagrad") == 2
    assert "adagrad" in capsys.readouterr().err
    assert _train(tmp_path / "d", "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert _train(tmp_path / "e", "--seed", -1) == 2
    assert "--seed must be a non-negative int, got -1" in capsys.readouterr().err
    assert _train(tmp_path / "f", "--batch-size", 0) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert _train(tmp_path / "g", "--backend", "nosuch") == 2
    err = capsys.readouterr().err
    assert "'nosuch'" in err and "available: " in err and "cpu" in err
    assert not any((tmp_path / name).exists() for name in ("b", "c", "e", "f", "g"))  # refused before any output


def test_resume_with_every_epoch_done_trains_nothing_and_a_fresh_start_says_it_overwrites(tmp_path, capsys):
    tiny = ["--epochs", 1, "--limit", 64, "--test-limit", 64]
    assert _train(tmp_path, *tiny) == 0
    saved = (tmp_path / "mnist.miniconv").read_bytes()
    capsys.readouterr()
    assert _train(tmp_path, *tiny, "--resume") == 0
    assert "Nothing to train: the checkpoint has all the epochs asked for." in capsys.readouterr().out
    assert (tmp_path / "mnist.miniconv").read_bytes() == saved
    assert _train(tmp_path, *tiny) == 0
    assert "note: starting afresh; the model in" in capsys.readouterr().out


# --- Ctrl-C and --resume ---------------------------------------------------------------------
TINY = ["--limit", "192", "--test-limit", "128", "--backend", "numpy"]


def _epochs_saved(out) -> int:
    """The epochs the run's checkpoint (the model file, with the run's state inside) holds."""
    return saving.read_extra(out / "mnist.miniconv")["run"]["epochs_completed"]


def test_ctrl_c_keeps_the_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    """SIGINT after epoch 1: exit 130, a loadable checkpoint, a printed resume command; running it
    gives the weights, optimizer state and history of a run never interrupted (bit for bit: numpy backend)."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert _train(straight, "--epochs", 3, *TINY) == 0

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "miniconv", "train", "mnist", "--epochs", "3", "--out", str(interrupted), *TINY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _epochs_saved(interrupted) >= 1:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")  # a very fast machine; nothing to test
    assert process.returncode == 130, err
    checkpoint = miniconv.load_model(interrupted / "mnist.miniconv")
    done = _epochs_saved(interrupted)
    assert checkpoint.epochs_completed == done in (1, 2)
    assert f"holds epoch {done} of 3" in err

    resume = shlex.split(err.strip().splitlines()[-1])
    assert resume[:3] == ["miniconv", "train", "mnist"] and "--resume" in resume
    assert cli.main(resume[1:]) == 0

    a = miniconv.load_model(straight / "mnist.miniconv")
    b = miniconv.load_model(interrupted / "mnist.miniconv")
    assert b.epochs_completed == 3 and _same_model(a, b)
    report_a = json.loads((straight / "report.json").read_text())
    report_b = json.loads((interrupted / "report.json").read_text())
    assert report_a["history"] == report_b["history"]
    assert len(report_b["epoch_seconds"]) == 3


def test_resume_on_the_default_backend_matches_an_uninterrupted_run(tmp_path, capsys):
    """2 epochs straight vs 1 epoch, then --resume to 2, in process on the default (cpu) backend."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    options = ["--limit", "256", "--test-limit", "256"]
    assert _train(straight, "--epochs", 2, *options) == 0
    assert _train(resumed, "--epochs", 1, *options) == 0
    assert _train(resumed, "--epochs", 2, *options, "--resume") == 0
    a = miniconv.load_model(straight / "mnist.miniconv")
    b = miniconv.load_model(resumed / "mnist.miniconv")
    assert a.optimizer.iterations == b.optimizer.iterations == 8
    assert _same_model(a, b)
    history_a = json.loads((straight / "report.json").read_text())["history"]
    history_b = json.loads((resumed / "report.json").read_text())["history"]
    assert history_a == history_b

    capsys.readouterr()
    assert _train(resumed, "--epochs", 3, "--limit", 200, "--resume") == 2  # other options: refused
    err = capsys.readouterr().err
    assert "--limit 256 (now 200)" in err and "--test-limit 256 (now None)" in err


# --- the loader --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arrays():
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_load_data_as_keras(arrays):
    assert {k: (a.shape, a.dtype) for k, a in arrays.items()} == {
        "x_train": ((60000, 28, 28), np.uint8), "y_train": ((60000,), np.uint8),
        "x_test": ((10000, 28, 28), np.uint8), "y_test": ((10000,), np.uint8),
    }
    assert arrays["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(arrays["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert arrays["x_train"].max() == 255 and abs(arrays["x_train"].mean() - 33.3184) < 1e-3


def test_path_and_environment_variable(tmp_path, monkeypatch, arrays):
    (tmp_path / "mnist.npz").symlink_to(mnist.EMBEDDED)
    monkeypatch.setenv("MINICONV_DATA", str(tmp_path))  # a directory holding mnist.npz
    assert mnist.resolve_path() == tmp_path / "mnist.npz"
    monkeypatch.setenv("MINICONV_DATA", str(tmp_path / "mnist.npz"))  # or the file
    (x_train, _), (_, y_test) = mnist.load_data()
    assert np.array_equal(x_train, arrays["x_train"]) and np.array_equal(y_test, arrays["y_test"])
    assert mnist.resolve_path(tmp_path) == tmp_path / "mnist.npz"  # path= wins over the variable

    monkeypatch.setenv("MINICONV_DATA", str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*MINICONV_DATA"):
        mnist.load_data()
    with pytest.raises(FileNotFoundError, match=r"elsewhere, from load_data\(path=\.\.\.\)"):
        mnist.load_data(tmp_path / "elsewhere")  # neither a file nor a directory
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/mnist\.npz"):
        mnist.load_data(tmp_path / "empty")  # a directory without mnist.npz


def _write(path, arrays, **changes):
    data = {**arrays, **changes}
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def test_altered_files_are_refused(tmp_path, arrays):
    x_train = arrays["x_train"].copy()
    x_train[123, 14, 14] ^= 1  # one pixel, one bit
    path = _write(tmp_path / "tampered.npz", arrays, x_train=x_train)
    with pytest.raises(DatasetError, match=r"tampered\.npz: array 'x_train' fails its checksum"):
        mnist.load_data(path)

    path = _write(tmp_path / "int64.npz", arrays, y_test=arrays["y_test"].astype(np.int64))
    with pytest.raises(DatasetError, match=r"int64\.npz: array 'y_test' should be uint8 of shape \(10000,\)"):
        mnist.load_data(path)

    path = _write(tmp_path / "short.npz", arrays, x_test=None)
    with pytest.raises(DatasetError, match=r"short\.npz is not an MNIST file: array\(s\) x_test missing"):
        mnist.load_data(path)


def test_corrupt_or_foreign_files_are_refused(tmp_path):
    raw = mnist.EMBEDDED.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"truncated\.npz is not a readable \.npz file"):
        mnist.load_data(truncated)

    flipped = tmp_path / "flipped.npz"
    damaged = bytearray(raw)
    damaged[len(raw) // 3] ^= 0xFF  # inside x_train's compressed bytes
    flipped.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match=r"flipped\.npz: array 'x_train'"):
        mnist.load_data(flipped)

    text = tmp_path / "notes.txt"
    text.write_text("not mnist\n")
    with pytest.raises(DatasetError, match=r"notes\.txt is not a readable \.npz file"):
        mnist.load_data(text)

    objects = tmp_path / "objects.npz"  # would run code if unpickled: never loaded
    np.savez(objects, x_train=np.array([print], dtype=object), y_train=np.zeros(1), x_test=np.zeros(1),
             y_test=np.zeros(1))
    with pytest.raises(DatasetError, match=r"objects\.npz: array 'x_train'.*Python objects"):
        mnist.load_data(objects)


# --- the benchmark -----------------------------------------------------------------------------
def test_benchmark_train_runs_and_writes_its_table(tmp_path):
    """miniconv alone (no TF / PyTorch workers: they would take most of this file's time), 256 images."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "train", "mnist", "--limit", "256", "--rounds", "1", "--warmup-steps", "1",
         "--references", "", "--out", str(tmp_path)],
        cwd=ROOT, check=False, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / "train_mnist.json").read_text())
    result = data["results"]["miniconv-cpu"]
    assert result["seconds_per_epoch"] > 0 and result["peak_rss_mb"] > 50 and result["train_samples"] == 256
    assert 0 <= result["test_accuracy"] <= 1
    assert data["settings"]["worker_env"] == {"OPENBLAS_THREAD_TIMEOUT": "4"}
    markdown = (tmp_path / "train_mnist.md").read_text()
    assert "| miniconv cpu |" in markdown and "OPENBLAS_CORETYPE" in markdown and "smoke test" in markdown
