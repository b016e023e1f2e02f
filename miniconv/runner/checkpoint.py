"""A run's checkpoint: one file, committed by one rename after every epoch, so a kill -9 anywhere leaves a run to resume.

    <out>/<model file>        the model (``miniconv.load_model`` reads it) with the run's state inside:
                              settings, epochs completed, history, epoch clocks, the data's random state

The file is written to a temporary name beside it, flushed to disk and renamed over the old one
(``saving.atomic_write``): at any instant the file on disk is the previous epoch's or this one's,
whole. A kill between the write and the rename leaves a ``.<name>.*.tmp`` behind, which the
next run removes (``remove_leftovers``). Ctrl-C is held back while a checkpoint is written.
A checkpoint that cannot be written (disk full, permissions) or read (damaged, tampered) is a
``CheckpointError`` whose message says what happened and which epoch the last good one holds.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from pathlib import Path

from .. import saving
from ..callbacks import Callback
from ..recipes.base import UsageError

STATE_KEYS = ("recipe", "settings", "epochs_completed", "history", "epoch_seconds", "epoch_seconds_with_validation")


class CheckpointError(Exception):
    """A checkpoint could not be written or read; printed as one line, exit code 1."""


def prepare_out(out: Path) -> None:
    """Make sure ``out`` is a directory we can write to, before any training (UsageError otherwise)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True):
            pass
    except OSError as error:
        raise UsageError(f"--out {out} cannot be written to ({error.strerror or error}); choose another --out") from None


def remove_leftovers(out: Path, model_file: str) -> list[Path]:
    """Delete the temporary files an interrupted checkpoint write left in ``out``; returns them."""
    leftovers = sorted(out.glob(f".{model_file}.*.tmp")) if out.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


@contextlib.contextmanager
def sigint_deferred():
    """Hold a Ctrl-C back until the block ends (then raise it), so a checkpoint is never left half-written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if received:
            raise KeyboardInterrupt


def write(model, path: Path, state: dict) -> None:
    """The model and the run's ``state`` as one file, committed by one rename (CheckpointError if it fails)."""
    try:
        with sigint_deferred():
            saving.save_model(model, path, extra={"run": state})
    except OSError as error:
        last = state["epochs_completed"] - 1
        kept = f"the last good checkpoint, {path}, holds epoch {last}" if last > 0 else "no epoch was saved yet"
        raise CheckpointError(f"could not write the checkpoint of epoch {state['epochs_completed']} to {path} "
                              f"({error.strerror or error}); {kept}") from None


def read(path: Path) -> tuple[object, dict]:
    """(model with its random state restored, run state) from a checkpoint; CheckpointError if unusable."""
    from ..models.loading import load_model

    try:
        extra = saving.read_extra(path)
        model = load_model(path, restore_random_state=True)
    except (saving.ModelFileError, OSError) as error:
        raise CheckpointError(f"cannot read the checkpoint {path}: {error}; start afresh in another --out") from None
    state = (extra or {}).get("run")
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"the checkpoint {path} is not a run's checkpoint (missing {', '.join(missing)}); its "
                              f"model holds epoch {model.epochs_completed}; start afresh in another --out")
    if model.epochs_completed != state["epochs_completed"]:
        raise CheckpointError(f"the checkpoint {path} is inconsistent (model at epoch {model.epochs_completed}, run "
                              f"state at epoch {state['epochs_completed']}); start afresh in another --out")
    return model, state


class CheckpointCallback(Callback):
    """After each epoch: the logs into the run's state, then the whole checkpoint, in one commit."""

    def __init__(self, path: Path, state: dict, data_state=None):
        super().__init__()
        self.path, self.state, self.data_state = path, state, data_state

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.state["history"].setdefault(key, []).append(float(value))
        self.state["epochs_completed"] = epoch + 1
        if self.data_state is not None:
            self.state["data_state"] = self.data_state()
        write(self.model, self.path, self.state)
