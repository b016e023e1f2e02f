"""Nothing silently wrong, nothing lost: damaged model files, NaN in training, and runs killed anywhere.

- A model file whose numbers would change meaning on load (complex weights, an optimizer state of
  another shape) or whose description is hostile (JSON nested 200,000 deep, an .npy header that
  claims terabytes, no random state to resume from) is refused with ``ModelFileError``.
- A NaN in the input that a max pool hides still reaches the weights through the filter gradient:
  fit stops before that update and says so; ``TerminateOnNaN`` ends training instead; a loss that
  grows without bound gets a warning.
- ``miniconv train``: a crash at every point of a checkpoint write, a kill -9 after an epoch, a full
  disk, a tampered checkpoint and an unwritable --out each leave a run that resumes (to the bits of
  a run never interrupted) or a one-line error, never a traceback or a lost epoch.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import miniconv
from miniconv import cli, layers, saving
from miniconv.runner import checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--limit", "128", "--test-limit", "64", "--batch-size", "32"]


def small_model(seed=0):
    miniconv.utils.set_random_seed(seed)
    model = miniconv.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    return model


def trained_file(tmp_path) -> Path:
    model = small_model()
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    model.fit(x, np.arange(8) % 3, batch_size=4, verbose=0)
    path = tmp_path / "model.miniconv"
    model.save(path)
    return path


def rewrite(path: Path, name: str, data: bytes) -> None:
    """The same zip with entry ``name`` replaced by ``data``."""
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    entries[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)


def npy_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# --- model files ---------------------------------------------------------------------------------
def test_complex_weights_are_refused(tmp_path):
    path = trained_file(tmp_path)
    kernel = miniconv.load_model(path).get_weights()[0]
    rewrite(path, "weights/0000.npy", npy_bytes(kernel.astype(np.complex64) + 1j))
    with pytest.raises(miniconv.ModelFileError, match=r"weights/0000\.npy holds complex64 values"):
        miniconv.load_model(path)
    with pytest.raises(TypeError, match="must hold real numbers"):
        small_model().set_weights([kernel.astype(np.complex64), *small_model().get_weights()[1:]])


def test_an_optimizer_state_of_another_shape_is_refused(tmp_path):
    path = trained_file(tmp_path)
    meta = json.loads(zipfile.ZipFile(path).read("model.json"))
    names = meta["compile"]["optimizer_state"]
    rewrite(path, "optimizer/0000.npy", npy_bytes(np.zeros((2, 2), np.float32)))
    with pytest.raises(miniconv.ModelFileError, match=rf"optimizer state '{names[0]}' has shape \(2, 2\)"):
        miniconv.load_model(path)


def test_hostile_descriptions_are_model_file_errors(tmp_path):
    path = trained_file(tmp_path)
    original = zipfile.ZipFile(path).read("model.json")
    rewrite(path, "model.json", b'{"a": ' * 200_000 + b"1" + b"}" * 200_000)
    with pytest.raises(miniconv.ModelFileError, match="model.json is corrupt"):
        miniconv.load_model(path)

    meta = json.loads(original)
    del meta["rng_state"]
    rewrite(path, "model.json", json.dumps(meta).encode())
    miniconv.load_model(path)  # fine without resuming
    with pytest.raises(miniconv.ModelFileError, match="no random-generator state"):
        miniconv.load_model(path, restore_random_state=True)

    rewrite(path, "model.json", original)
    import io

    huge = io.BytesIO()  # a header claiming 2e16 float32 values, then 72 bytes
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f4", "fortran_order": False, "shape": (999999, 999999, 9999, 2)})
    rewrite(path, "weights/0000.npy", huge.getvalue() + b"\0" * 72)
    with pytest.raises(miniconv.ModelFileError, match=r"claims .* bytes of data but holds"):
        miniconv.load_model(path)


def test_paths_that_are_not_files(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory; give the model file inside it"):
        miniconv.load_model(tmp_path)
    model = small_model()
    with pytest.raises(ValueError, match="filepath must name a file, got ''"):
        model.save("")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        model.save(tmp_path)


# --- NaN and divergence in training ---------------------------------------------------------------
def test_a_nan_pixel_hidden_by_the_pool_stops_fit_before_it_reaches_the_weights():
    model = small_model()
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    y = np.arange(8) % 3
    x[5, 0, 0, 0] = np.nan  # the pool of that corner never wins with NaN: the loss stays finite
    model.fit(x[:4], y[:4], batch_size=4, shuffle=False, verbose=0)
    before = model.get_weights()
    with pytest.raises(miniconv.NonFiniteLossError, match=r"gradient of 'conv2d(_\d+)?/kernel'.*loss.*finite.*epoch 1/1, "
                       r"step 1/1; the input batch holds 1 NaN.*x\[1, 0, 0, 0\] = nan.*weights are those after the previous"):
        model.fit(x[4:], y[4:], batch_size=4, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_terminate_on_nan_ends_training_without_touching_the_weights(capsys):
    model = small_model()
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    x[:, 2, 2, 0] = np.inf
    before = model.get_weights()
    history = model.fit(x, np.arange(8) % 3, batch_size=4, epochs=3, verbose=0,
                        callbacks=[miniconv.callbacks.TerminateOnNaN()])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert len(history.epoch) == 1 and model.stop_training
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_loss_that_grows_without_bound_is_named():
    model = small_model()
    model.compile(miniconv.optimizers.SGD(1e6), "sparse_categorical_crossentropy")
    x = np.random.default_rng(1).random((16, 6, 6, 1), dtype=np.float32) * 10
    with pytest.warns(RuntimeWarning, match=r"training loss grew from .* training is diverging.*learning rate"):
        try:
            model.fit(x, np.arange(16) % 3, batch_size=4, epochs=4, verbose=0)
        except miniconv.NonFiniteLossError:
            pass


# --- runs killed anywhere ------------------------------------------------------------------------------
def _train(out, *options) -> int:
    return cli.main(["train", "mnist", "--out", str(out), *TINY, *map(str, options)])


def _history(out) -> dict:
    return json.loads((out / "report.json").read_text())["history"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    assert _train(out, "--epochs", 3) == 0
    return out


class Crash(BaseException):
    """What a kill looks like from inside: nothing after it runs (not an Exception: no handler takes it)."""


@pytest.mark.parametrize("where", ["while writing the file", "after the write, before the rename",
                                   "after the rename"])
def test_a_crash_anywhere_in_a_checkpoint_write_leaves_a_run_that_resumes_exactly(tmp_path, monkeypatch, straight,
                                                                                   where):
    """Epoch 2's checkpoint write is interrupted at each point between its writes; --resume then removes
    any leftover and finishes with the history of the run never interrupted."""
    calls = {"n": 0}
    original_replace, original_write = os.replace, saving.atomic_write

    def atomic_write(path, write):
        calls["n"] += 1
        if calls["n"] == 2 and where == "while writing the file":
            return original_write(path, lambda handle: (handle.write(b"PK\x03\x04 half a zip"), _raise()))
        return original_write(path, write)

    def replace(source, target):
        if calls["n"] == 2 and where == "after the write, before the rename":
            raise Crash
        original_replace(source, target)
        if calls["n"] == 2 and where == "after the rename":
            raise Crash

    def _raise():
        raise Crash

    monkeypatch.setattr(saving, "atomic_write", atomic_write)
    monkeypatch.setattr(saving.os, "replace", replace)
    with pytest.raises(Crash):
        _train(tmp_path, "--epochs", 3)
    monkeypatch.undo()
    (tmp_path / ".mnist.miniconv.k9x1.tmp").write_bytes(b"PK\x03\x04 half a zip")  # what a kill -9 leaves
    done = saving.read_extra(tmp_path / "mnist.miniconv")["run"]["epochs_completed"]
    assert done == (2 if where == "after the rename" else 1)
    assert _train(tmp_path, "--epochs", 3, "--resume") == 0
    assert not list(tmp_path.glob(".mnist.miniconv.*.tmp"))
    assert _history(tmp_path) == _history(straight)


def test_kill_9_after_an_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A real kill -9 in a subprocess (12 short epochs: it lands in the middle of the run)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _train(straight, "--epochs", 12) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "miniconv", "train", "mnist", "--epochs", "12", "--out", str(killed), *TINY]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if saving.read_extra(killed / "mnist.miniconv")["run"]["epochs_completed"] >= 1:
                break
        except (OSError, ValueError, TypeError):
            pass
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the kill arrived")
    assert _train(killed, "--epochs", 12, "--resume") == 0
    assert _history(killed) == _history(straight)


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys, straight):
    calls = {"n": 0}
    original = saving.atomic_write

    def atomic_write(path, write):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, write)

    monkeypatch.setattr(saving, "atomic_write", atomic_write)
    assert _train(tmp_path, "--epochs", 3) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "holds epoch 1" in err[0], err
    monkeypatch.undo()
    assert _train(tmp_path, "--epochs", 3, "--resume") == 0
    assert _history(tmp_path) == _history(straight)


def test_a_tampered_checkpoint_is_one_line(tmp_path, capsys):
    assert _train(tmp_path, "--epochs", 1) == 0
    path = tmp_path / "mnist.miniconv"
    meta = json.loads(zipfile.ZipFile(path).read("model.json"))
    del meta["extra"]["run"]["history"]
    rewrite(path, "model.json", json.dumps(meta).encode())
    capsys.readouterr()
    assert _train(tmp_path, "--epochs", 2, "--resume") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing history" in err[0] and "holds epoch 1" in err[0], err


def test_out_is_checked_before_any_training(tmp_path, monkeypatch, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    from miniconv.recipes.mnist import Mnist

    started = []
    monkeypatch.setattr(Mnist, "load_data", lambda self, args: started.append(1))
    assert _train(not_a_dir / "sub", "--epochs", 1) == 2
    assert "--out" in capsys.readouterr().err and not started

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(checkpoint.tempfile, "NamedTemporaryFile", refuse)
    assert _train(tmp_path / "locked", "--epochs", 1) == 2
    err = capsys.readouterr().err
    assert "cannot be written to (Permission denied)" in err and not started
