"""The model file: one zip file, JSON for the architecture, .npy arrays for the numbers.

    model.save("mnist.miniconv")              # atomic: written to a temporary file, then renamed
    model = miniconv.load_model("mnist.miniconv")   # miniconv/models/loading.py, with this module's readers

File layout (a zip archive, also readable with ``np.load``):

    model.json                  format name and version, the model's config, the compile config
                                (optimizer, loss, metrics), the optimizer's iteration count,
                                the epochs completed, the random-generator states, and any
                                ``extra`` data (``miniconv train`` keeps its run's state there)
    weights/0000.npy ...        the weights in Keras order (``model.get_weights()``)
    optimizer/0000.npy ...      the optimizer's state arrays, named in model.json

Arrays are read with ``allow_pickle=False`` and the JSON names only classes of miniconv, so a
file from a stranger cannot run code. A truncated, corrupt or foreign file raises
``ModelFileError`` saying what is wrong. Resuming exactly: ``load_model(path,
restore_random_state=True)`` also restores the global generator (shuffling, dropout) and the
dropout layers' own generators as they were when the file was written; then
``model.fit(..., initial_epoch=model.epochs_completed)`` continues as if never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import utils

FORMAT = "miniconv-model"
VERSION = 1


class ModelFileError(ValueError):
    """The file is not a (readable) miniconv model file; the message says why."""


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(name, "w", force_zip64=True) as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _metric_config(metric):
    return metric if isinstance(metric, str) else {"class_name": type(metric).__name__, "config": metric.get_config()}


def _layer_rngs(model) -> dict:
    return {leaf.name: leaf._rng.bit_generator.state for leaf in model.leaf_layers() if getattr(leaf, "_rng", None) is not None}


def check_file_path(path, what: str = "save") -> Path:
    """A path naming a file to write: not empty, not an existing directory."""
    if isinstance(path, (str, os.PathLike)) and str(path) in ("", "."):
        raise ValueError(f"{what}: filepath must name a file, got {str(path)!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: filepath must be a str or a path, got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what}: {path} is a directory; give a file name inside it")
    return path


def save_model(model, path, include_optimizer: bool = True, extra: dict | None = None) -> None:
    """Write ``model`` (architecture, weights, compile config, optimizer state) to ``path``, atomically.

    ``extra``: JSON-ready data stored in model.json beside the model (a training run's state, so
    that one file, renamed into place once, is the whole checkpoint); ``read_extra`` reads it.
    """
    from . import __version__

    path = check_file_path(path)
    if not model.built:
        raise ValueError(f"save: {model.name} is not built yet; nothing to save")
    weights = model.get_weights()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "miniconv_version": __version__,
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
        "input_shape": list(model.input_shape[1:]) if model.is_sequential else None,
        "weights": [{"name": n, "shape": list(w.shape)} for n, w in zip(model.weight_names, weights)],
        "epochs_completed": int(getattr(model, "epochs_completed", 0)),
        "rng_state": utils.get_rng_state(),
        "layer_rng_states": _layer_rngs(model),
        "compile": None,
        "extra": extra,
    }
    state = {}
    if model.compiled:
        meta["compile"] = {
            "optimizer": optimizers_module.serialize(model.optimizer),
            "loss": losses_module.serialize(model.loss),
            "metrics": [_metric_config(m) for m in model.compiled_metrics],
            "optimizer_iterations": model.optimizer.iterations if include_optimizer else 0,
            "optimizer_state": [],
        }
        if include_optimizer:
            state = model.optimizer.state()
            meta["compile"]["optimizer_state"] = list(state)

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("model.json", json.dumps(meta, indent=1))
            for i, array in enumerate(weights):
                _write_array(archive, f"weights/{i:04d}.npy", array)
            for i, array in enumerate(state.values()):
                _write_array(archive, f"optimizer/{i:04d}.npy", array)

    atomic_write(path, write)


def _read_array(archive, name, path):
    """One .npy entry, its header checked before any data is read: real numbers only (float or int), and
    no more bytes than the entry holds (a header claiming terabytes is refused, not allocated)."""
    fmt = np.lib.format
    try:
        info = archive.getinfo(name)
        with archive.open(name) as handle:
            version = fmt.read_magic(handle)
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(handle)
            if dtype.kind not in "fiu":
                raise ModelFileError(f"{path}: {name} holds {dtype} values; a model file holds real numbers only")
            count = math.prod(shape)
            needed = count * dtype.itemsize
            if needed > info.file_size:
                raise ModelFileError(f"{path}: {name} claims {needed:,} bytes of data but holds {info.file_size:,}; "
                                     f"the file is corrupt")
            data = handle.read(needed)
            if len(data) != needed:
                raise ModelFileError(f"{path}: {name} is truncated ({len(data):,} of {needed:,} bytes)")
            return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C").copy()
    except KeyError:
        raise ModelFileError(f"{path}: the file is incomplete: {name} is missing") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path}: {name} is corrupt ({error})") from None


def read_model_file(path) -> tuple[dict, zipfile.ZipFile]:
    """(model.json's contents, the open archive) of a file ``save_model`` wrote; ModelFileError if it is not one."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"load_model: {path} is a directory; give the model file inside it (e.g. "
                                f"{path / 'model.miniconv'})")
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no such file: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"{path}: not a miniconv model file (not a zip archive: {error}); it may be truncated") from None
    try:
        meta = json.loads(archive.read("model.json"))
    except KeyError:
        archive.close()
        raise ModelFileError(f"{path}: not a miniconv model file (no model.json inside)") from None
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, RecursionError) as error:
        archive.close()
        raise ModelFileError(f"{path}: model.json is corrupt ({type(error).__name__}: {str(error)[:200]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        archive.close()
        raise ModelFileError(f"{path}: not a miniconv model file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        archive.close()
        raise ModelFileError(f"{path}: file format version {meta.get('version')!r}; this miniconv reads version {VERSION}")
    return meta, archive


def read_extra(path) -> dict | None:
    """The ``extra`` data a file was saved with (None if none); ModelFileError if it is not a model file."""
    meta, archive = read_model_file(path)
    archive.close()
    extra = meta.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise ModelFileError(f"{path}: its extra data is not a JSON object")
    return extra


def read_arrays(archive, folder: str, count: int, path) -> list[np.ndarray]:
    """``folder/0000.npy`` ... of the archive, read without pickle."""
    return [_read_array(archive, f"{folder}/{i:04d}.npy", path) for i in range(count)]


def restore_compile_state(model, meta: dict, archive, path) -> None:
    """Compile ``model`` as it was saved, with its optimizer's state arrays and iteration count.

    Each state array must belong to a trainable weight of the model ("<slot>/<weight name>") and have
    its shape: an array that does not would be reset to zeros by the first step, and a resumed run
    would silently differ from the one saved."""
    config = meta.get("compile")
    if config is None:
        return
    metrics = [m if isinstance(m, str) else metric_from_config(m) for m in config["metrics"]]
    model.compile(optimizer=optimizers_module.deserialize(config["optimizer"]),
                  loss=losses_module.deserialize(config["loss"]), metrics=metrics)
    names = config.get("optimizer_state", [])
    arrays = dict(zip(names, read_arrays(archive, "optimizer", len(names), path)))
    shapes = {name: p.shape for name, p in zip(model.weight_names, model.params)}
    for name, array in arrays.items():
        slot, _, weight = name.partition("/")
        if weight not in shapes:
            raise ModelFileError(f"{path}: optimizer state {name!r} belongs to no weight of the model")
        if array.shape != shapes[weight]:
            raise ModelFileError(f"{path}: optimizer state {name!r} has shape {array.shape}, but weight {weight!r} "
                                 f"has shape {shapes[weight]}")
    iterations = config.get("optimizer_iterations", 0)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ModelFileError(f"{path}: optimizer_iterations must be a non-negative int, got {iterations!r}")
    model.optimizer.set_state(arrays, iterations)


def restore_random_state(model, meta: dict, path=None) -> None:
    """The global generator and the layers' own generators as they were when the file was written."""
    if not isinstance(meta.get("rng_state"), dict):
        raise ModelFileError(f"{path}: the file has no random-generator state (rng_state); it cannot resume a run "
                             f"exactly (load it without restore_random_state)")
    try:
        utils.set_rng_state(meta["rng_state"])
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    for leaf in model.leaf_layers():
        state = meta.get("layer_rng_states", {}).get(leaf.name)
        if state is not None and getattr(leaf, "_rng", None) is not None:
            leaf._rng.bit_generator.state = state


def metric_from_config(config):
    classes = {cls.__name__: cls for cls in (metrics_module.BinaryAccuracy, metrics_module.CategoricalAccuracy,
                                             metrics_module.SparseCategoricalAccuracy, metrics_module.MeanSquaredError,
                                             metrics_module.MeanAbsoluteError)}
    if config.get("class_name") not in classes:
        raise ValueError(f"unknown metric class {config.get('class_name')!r}")
    return classes[config["class_name"]](**config.get("config", {}))


def save_weights(model, path) -> None:
    """Only the weights, as an .npz of Keras-ordered arrays ``weight_0000`` ..., atomically."""
    path = check_file_path(path, "save_weights")
    arrays = {f"weight_{i:04d}": w for i, w in enumerate(model.get_weights())}
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_weights(model, path) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = [data[f"weight_{i:04d}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(f"{path}: not a miniconv weights file ({error})") from None
    for i, array in enumerate(weights):
        if array.dtype.kind not in "fiu":
            raise ModelFileError(f"{path}: weight_{i:04d} holds {array.dtype} values; weights are real numbers")
    model.set_weights(weights)
