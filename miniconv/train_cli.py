"""``miniconv train mnist``: train the convnet of Chollet's *Deep Learning with Python*, ch. 5.1, on MNIST.

    miniconv train mnist                          # 5 epochs, batch 64, RMSprop, cpu backend, seed 0
    miniconv train mnist --epochs 1 --limit 3000 --out /tmp/smoke      # a smoke test
    miniconv train mnist --resume                 # continue an interrupted run in ./runs/mnist

The model (``mnist_convnet``): Conv2D 32 3x3 relu on 28x28x1 -> MaxPooling2D 2 -> Conv2D 64 3x3
relu -> MaxPooling2D 2 -> Conv2D 64 3x3 relu -> Flatten -> Dense 64 relu -> Dense 10 softmax;
images scaled to [0, 1] float32, integer labels with sparse categorical crossentropy. The test set
(all 10,000 images) is the validation set of every epoch; its accuracy after the last epoch is the
result. ``--limit N`` trains on the first N training images only, ``--test-limit N`` tests on the first
N test images only (both for smoke tests).

Written to ``--out`` (default ``runs/mnist``):

    mnist.miniconv     the model (``miniconv.load_model``), saved after every epoch: the checkpoint
                       while training, the trained model at the end
    checkpoint.json    the run's settings, history and epoch times so far (for ``--resume``)
    history.png        loss and accuracy per epoch, training (dots) vs validation (line), as the book plots them
    report.json        history, test_accuracy, test_loss, seconds_per_epoch, epoch_seconds, backend,
                       versions, seed, settings, date

Seconds per epoch count training only: from the start of an epoch (its shuffle) to the end of its
last step; not validation, checkpointing, or kernel compilation (one untimed warm-up step runs first
on a throwaway copy of the model). Both checkpoint files are replaced atomically after each epoch,
with Ctrl-C held back while they are written, so an interrupted run keeps its last completed epoch;
``--resume`` reloads it with the random generators' states and the optimizer's, and finishes with
the same weights and history as a run never interrupted (same options required).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.metadata
import json
import platform
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

DATASETS = ("mnist", "cats-dogs")
DEFAULT_OUT = Path("runs") / "mnist"
MODEL_FILE = "mnist.miniconv"
STATE_FILE = "checkpoint.json"
REPORT_FILE = "report.json"
PLOT_FILE = "history.png"
# Options a resumed run must share with the run it continues (else it would not give the same result).
RESUME_KEYS = ("dataset", "batch_size", "optimizer", "seed", "limit", "test_limit")
TIMING_NOTE = ("training only: from the start of each epoch (shuffle) to the end of its last step; excludes "
               "validation, checkpointing and kernel compilation (an untimed warm-up step runs first)")


class UsageError(Exception):
    """A bad option or an unusable output directory; printed without a traceback, exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``miniconv train DATASET``: one sub-parser per dataset, mnist (here) and cats-dogs (``miniconv.train_cats_dogs``)."""
    from . import train_cats_dogs

    targets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    add_mnist_arguments(targets.add_parser("mnist", help="Chollet's ch. 5.1 convnet on MNIST",
                                           description=__doc__.split("\n\n")[0].replace("``", "")))
    train_cats_dogs.add_arguments(targets.add_parser(
        "cats-dogs", help=train_cats_dogs.HELP, description=train_cats_dogs.__doc__.split("\n\n")[0].replace("``", "")))


def add_mnist_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``miniconv train mnist`` options."""
    parser.add_argument("--epochs", type=int, default=5, help="total epochs, counting resumed ones (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    parser.add_argument("--optimizer", default="rmsprop", help="sgd, rmsprop or adam, Keras's defaults (default rmsprop)")
    parser.add_argument("--backend", default="cpu", help="miniconv backend to compute on (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weight initialisation and shuffling (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on the first N training images only (smoke tests)")
    parser.add_argument("--test-limit", type=int, default=None, metavar="N",
                        help="validate and test on the first N test images only (default: all 10,000)")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="MNIST .npz file or a directory holding mnist.npz (default: $MINICONV_DATA, "
                             "else the copy shipped with miniconv)")


# --- the model and the data ----------------------------------------------------------------------
def mnist_convnet():
    """Chollet's ch. 5.1 convnet (uncompiled), initialised from miniconv's global generator."""
    import miniconv
    from miniconv import layers

    return miniconv.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_convnet")


def prepare_mnist(path=None, limit=None, test_limit=None):
    """((x_train, y_train), (x_test, y_test)) as the book prepares them: images (N, 28, 28, 1) float32
    in [0, 1], labels uint8 (integers, for sparse categorical crossentropy); the first ``limit`` /
    ``test_limit`` images of each set (None: all)."""
    import numpy as np

    from miniconv.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path)
    x_train, y_train = x_train[:limit], y_train[:limit]
    x_test, y_test = x_test[:test_limit], y_test[:test_limit]

    def scale(x):
        return x.reshape(-1, 28, 28, 1).astype(np.float32) / np.float32(255)

    return (scale(x_train), y_train), (scale(x_test), y_test)


# --- callbacks -----------------------------------------------------------------------------------
def _callback_base():
    from miniconv.callbacks import Callback

    return Callback


def _make_callbacks(state: dict, out: Path, model_file: str = MODEL_FILE):
    """(timer, checkpoint): the epoch clock and the per-epoch checkpoint writer (the model to out / model_file)."""
    Callback = _callback_base()

    class EpochTimer(Callback):
        """Training seconds of each epoch: epoch start to the end of its last step."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.stop = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.stop = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            state["epoch_seconds"].append(self.stop - self.start)

    class Checkpoint(Callback):
        """After each epoch: the model, then checkpoint.json, both atomic, with Ctrl-C held back meanwhile."""

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                state["history"].setdefault(key, []).append(float(value))
            state["epochs_completed"] = epoch + 1
            with _sigint_deferred():
                self.model.save(out / model_file)
                _write_json(out / STATE_FILE, state)

    return EpochTimer(), Checkpoint()


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C back until the block ends (then raise it), so the two checkpoint files stay in step."""
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


def _write_json(path: Path, data: dict) -> None:
    from miniconv.saving import atomic_write

    text = (json.dumps(data, indent=1) + "\n").encode()
    atomic_write(path, lambda handle: handle.write(text))


# --- the run -------------------------------------------------------------------------------------
def _check_args(args) -> None:
    import miniconv
    from miniconv import optimizers

    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative int, got {args.seed}")
    for name in ("limit", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.optimizer.lower() not in optimizers.NAMES:
        raise UsageError(f"unknown optimizer {args.optimizer!r}; choose from {', '.join(optimizers.NAMES)}")
    args.optimizer = args.optimizer.lower()
    available = miniconv.available_backends()
    if args.backend not in available:
        raise UsageError(f"backend {args.backend!r} is not available here; available: {', '.join(available)}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")


def _settings(args, n_train: int, n_test: int) -> dict:
    return {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
            "optimizer": args.optimizer, "seed": args.seed, "limit": args.limit, "test_limit": args.test_limit,
            "backend": args.backend,
            "train_samples": n_train, "test_samples": n_test}


def _resume_command(args) -> str:
    parts = ["miniconv", "train", args.dataset, "--resume", "--out", str(args.out), "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--optimizer", args.optimizer, "--seed", str(args.seed),
             "--backend", args.backend]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    if args.test_limit is not None:
        parts += ["--test-limit", str(args.test_limit)]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    return shlex.join(parts)


def _load_checkpoint(args, settings: dict):
    """(model, state) from --out, with the random state restored; UsageError if it cannot continue this run."""
    import miniconv

    model_path, state_path = args.out / MODEL_FILE, args.out / STATE_FILE
    if not model_path.is_file() or not state_path.is_file():
        raise UsageError(f"--resume: no checkpoint in {args.out} ({MODEL_FILE} and {STATE_FILE}); "
                         f"start without --resume")
    try:
        state = json.loads(state_path.read_text())
        saved = state["settings"]
        completed = int(state["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"--resume: {state_path} is unreadable ({type(error).__name__}: {error})") from None
    different = [f"--{k.replace('_', '-')} {saved.get(k)} (now {settings[k]})"
                 for k in RESUME_KEYS if saved.get(k) != settings[k]]
    if different:
        raise UsageError(f"--resume: the checkpoint in {args.out} was trained with " + ", ".join(different)
                         + "; resume with the same options, or start afresh in another --out")
    try:
        model = miniconv.load_model(model_path, restore_random_state=True)
    except (miniconv.ModelFileError, OSError) as error:
        raise UsageError(f"--resume: cannot read the checkpoint: {error}") from None
    if model.epochs_completed != completed:
        raise UsageError(f"--resume: {model_path} holds epoch {model.epochs_completed} but {state_path} epoch "
                         f"{completed}; the checkpoint is inconsistent, start afresh")
    if saved.get("backend") != settings["backend"]:
        print(f"note: the checkpoint was trained on backend {saved.get('backend')!r}, continuing on "
              f"{settings['backend']!r}: results may differ in the last bits from an uninterrupted run")
    state["settings"] = {**saved, "epochs": settings["epochs"], "backend": settings["backend"]}
    return model, state


def _warm_up(model, x, y, batch_size: int) -> None:
    """One step on a throwaway copy, so kernel compilation / cache loading is not timed. Draws no
    random numbers from the global generator (the copy is initialised from its own; no shuffle)."""
    from miniconv import Sequential, losses, optimizers

    clone = Sequential.from_config(model.get_config())
    clone.compile(optimizers.deserialize(optimizers.serialize(model.optimizer)),
                  losses.deserialize(losses.serialize(model.loss)))
    n = min(len(x), batch_size)
    clone.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    clone.evaluate(x[:n], y[:n], batch_size=batch_size, verbose=0)


def _versions() -> dict:
    import miniconv

    found = {"miniconv": miniconv.__version__, "python": platform.python_version()}
    for name in ("numpy", "numba"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    found["platform"] = platform.platform()
    return found


def plot_history(history: dict, path: Path) -> bool:
    """Loss and accuracy per epoch, training 'bo' vs validation 'b' as in the book; False without matplotlib."""
    try:
        from miniconv.viz.curves import show_learning_curves
    except ImportError:
        return False
    from miniconv.saving import atomic_write

    figure = show_learning_curves({k: v for k, v in history.items() if k.split("val_")[-1] in ("loss", "accuracy")})
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
    return True


def fresh_or_resumed(args, model_file: str, load_checkpoint, build, state: dict):
    """(model, state): from the checkpoint in --out with --resume, else ``build()`` and ``state``.

    ``load_checkpoint()`` returns (model, state); ``build()`` seeds, builds and compiles a new model.
    """
    out = args.out
    if args.resume:
        model, state = load_checkpoint()
        print(f"Resuming from {out / model_file}: epoch {state['epochs_completed']} of {args.epochs} done")
        return model, state
    if (out / model_file).exists():
        print(f"note: starting afresh; the model in {out} will be overwritten (--resume continues it)")
    return build(), state


def report_interrupted(args, state: dict, model_file: str, resume_command: str) -> int:
    """After Ctrl-C: what the checkpoint holds and how to go on; returns the exit status 130."""
    done = state["epochs_completed"]
    print(file=sys.stderr)
    if done == 0:
        print("Interrupted before the first epoch finished; nothing was saved.", file=sys.stderr)
    else:
        print(f"Interrupted. The checkpoint {args.out / model_file} holds epoch {done} of {args.epochs}. "
              f"To continue (or, if all epochs are done, to write the report):\n  {resume_command}", file=sys.stderr)
    return 130


def report_written(out: Path, model_file: str, plotted: bool) -> None:
    written = [model_file, REPORT_FILE] + ([PLOT_FILE] if plotted else [])
    print(f"Wrote {', '.join(written)} to {out}" + ("" if plotted else " (no history.png: matplotlib is not installed)"))


def run(args) -> int:
    """Train, write the outputs; 0 on success, 2 for a usage error, 130 when interrupted (Ctrl-C)."""
    if args.dataset == "cats-dogs":
        from . import train_cats_dogs

        return train_cats_dogs.run(args)
    try:
        return _run(args)
    except UsageError as error:
        print(f"miniconv train: error: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import miniconv
    from miniconv import optimizers, utils
    from miniconv.datasets import DatasetError

    _check_args(args)
    try:
        (x_train, y_train), (x_test, y_test) = prepare_mnist(args.data, args.limit, args.test_limit)
    except (FileNotFoundError, DatasetError) as error:
        raise UsageError(str(error)) from None
    settings = _settings(args, len(x_train), len(x_test))
    with miniconv.use_backend(args.backend):

        def build():
            utils.set_random_seed(args.seed)  # initialisation, then shuffling, draw from this generator
            model = mnist_convnet()
            model.compile(optimizers.get(args.optimizer), "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        fresh_state = {"settings": settings, "epochs_completed": 0, "history": {}, "epoch_seconds": []}
        model, state = fresh_or_resumed(args, MODEL_FILE, lambda: _load_checkpoint(args, settings), build, fresh_state)
        model.summary()
        print(f"MNIST: {len(x_train)} training images, {len(x_test)} test images (the validation set); "
              f"batch {args.batch_size}, {args.optimizer}, backend {args.backend}, seed {args.seed}")
        try:
            _train(args, model, state, (x_train, y_train), (x_test, y_test))
            plotted = _write_outputs(args, state)
        except KeyboardInterrupt:
            return report_interrupted(args, state, MODEL_FILE, _resume_command(args))
    history, seconds = state["history"], state["epoch_seconds"]
    print(f"\nTest accuracy: {history['val_accuracy'][-1]:.4f} ({len(x_test)} test images, after epoch {len(seconds)})")
    print(f"Seconds per epoch: {sum(seconds) / len(seconds):.2f} (mean of {len(seconds)}; {TIMING_NOTE})")
    report_written(args.out, MODEL_FILE, plotted)
    return 0


def _train(args, model, state: dict, train, test) -> None:
    """fit from the checkpoint's epoch to --epochs; the callbacks keep ``state`` and the files current."""
    start_epoch = state["epochs_completed"]
    if start_epoch >= args.epochs:
        print("Nothing to train: the checkpoint has all the epochs asked for"
              + (f" (it has {start_epoch}, more than --epochs {args.epochs})." if start_epoch > args.epochs else "."))
        return
    _warm_up(model, *train, args.batch_size)
    timer, checkpoint = _make_callbacks(state, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    model.fit(*train, epochs=args.epochs, batch_size=args.batch_size, initial_epoch=start_epoch,
              validation_data=test, callbacks=[timer, checkpoint])


def _write_outputs(args, state: dict) -> bool:
    """report.json and history.png from the checkpoint state; False if matplotlib is missing."""
    history, seconds = state["history"], state["epoch_seconds"]
    report = {
        "history": history,
        "test_accuracy": history["val_accuracy"][-1],
        "test_loss": history["val_loss"][-1],
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "epoch_seconds": seconds,
        "timing": TIMING_NOTE,
        "backend": args.backend,
        "versions": _versions(),
        "seed": args.seed,
        "settings": state["settings"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
    }
    _write_json(args.out / REPORT_FILE, report)
    return plot_history(history, args.out / PLOT_FILE)
