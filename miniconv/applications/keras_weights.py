"""Keras's published weight files: where Keras keeps them, their hashes, the download, the HDF5 reader.

    path = get_file(PublishedFile(fname, origin, file_hash))    # Keras's cache, else a download
    load_h5_weights(model, path)                                # into the layers of the same names

Where the files are (Keras's ``keras.utils.get_file`` rule, ``cache_subdir="models"``): the
directory ``$KERAS_HOME`` if that variable is set, else ``~/.keras`` (``/tmp/.keras`` when the home
directory is not writable); if that directory is not writable, ``/tmp/.keras``; then ``models/``
inside it. Keras reads ``KERAS_HOME`` once, when it is imported; this module reads it at each call.

A hash of 64 hex digits is a SHA-256, any other an MD5, as Keras's ``get_file(file_hash=...)``
decides. A file in the cache whose hash does not match is downloaded again, as Keras does. A
download goes to a temporary file beside its target and is renamed into place only once its hash
matches, so the cache never holds half a file or a wrong one.

The HDF5 layouts read (h5py, which ``pip install -e ".[pretrained]"`` brings):

- the legacy Keras 1 / 2 / 3 ``.h5`` weight file (Keras's published files): the file's attribute
  ``layer_names`` lists the layers; each has a group of that name whose attribute ``weight_names``
  lists its datasets in the layer's weight order (``block1_conv1_W_1:0``, ``block1_conv1_b_1:0``
  in the published VGG16 files; ``block1_conv1/kernel:0`` in Keras 2's). A whole-model ``.h5``
  keeps the same under a ``model_weights`` group. Long attributes split into ``layer_names0``,
  ``layer_names1``, ... are joined, as Keras's loader does;
- Keras 3's ``.weights.h5`` (``model.save_weights``): ``layers/<key>/vars/0, 1, ...`` with the
  layer's name in the attribute ``name`` of ``vars``.

Weights go into the model's layers by name. Every layer of the model that has weights must be in
the file, and every layer of the file that has weights must be in the model, with the same number
of arrays of the same shapes; otherwise ``WeightsFileError`` names the layer and both shapes.
Every array is read and checked before the first one is copied: a file that fails loads nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..saving import ModelFileError, atomic_write
from ..shapes import format_shape

CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60


class WeightsFileError(ModelFileError):
    """A weight file that cannot be loaded: wrong hash, damaged, not Keras's layout, or other layers or shapes."""


class WeightsDownloadError(OSError):
    """A published weight file is not in Keras's cache and could not be downloaded; the message says where to put it."""


@dataclass(frozen=True)
class PublishedFile:
    """One file Keras publishes: its name in the cache, its address and its hash (MD5 or SHA-256, hex)."""

    fname: str
    origin: str
    file_hash: str


def hash_algorithm(file_hash: str) -> str:
    """"sha256" for 64 hex digits, else "md5": Keras's ``hash_algorithm="auto"``."""
    return "sha256" if len(file_hash) == 64 else "md5"


def hash_file(path, algorithm: str = "sha256") -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_hash(path, file_hash: str, what: str) -> None:
    """Raise ``WeightsFileError`` unless the file at ``path`` has ``file_hash``."""
    algorithm = hash_algorithm(file_hash)
    got = hash_file(path, algorithm)
    if got != file_hash.lower():
        raise WeightsFileError(
            f"{path}: its {algorithm} is {got}, but {what} has {algorithm} {file_hash}: the file is truncated, altered "
            f"or a different file. For a weight file of your own, pass file_hash=None (its layers and shapes are still "
            f"checked) or its own hash")


def keras_cache_dir(cache_subdir: str = "models") -> Path:
    """Keras's cache directory for ``cache_subdir`` (``get_file``'s rule, see the module docstring), created."""
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    try:
        os.makedirs(base, exist_ok=True)  # Keras makes its home when it is imported
    except OSError:
        pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    directory = Path(base) / cache_subdir
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def fetch(url: str, handle, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Write the bytes at ``url`` to the binary file ``handle``, printing the progress on stderr."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        done, shown = 0, -1
        for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
            handle.write(chunk)
            done += len(chunk)
            if total and done * 10 // total != shown:
                shown = done * 10 // total
                print(f"\r  {done / 1e6:.1f} / {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)
        if total:
            print(file=sys.stderr)
        if total and done != total:
            raise OSError(f"the download ended after {done} of {total} bytes")


class _HashingWriter:
    """A binary file that hashes what is written to it."""

    def __init__(self, handle, algorithm: str):
        self.handle, self.hasher = handle, hashlib.new(algorithm)

    def write(self, data) -> int:
        self.hasher.update(data)
        return self.handle.write(data)

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


def get_file(published: PublishedFile, file_hash: str | None = None) -> Path:
    """The path of ``published`` in Keras's cache, downloaded there first if it is missing or its hash is wrong.

    ``file_hash`` replaces the published hash (None: the published one). Raises
    ``WeightsDownloadError`` when the download fails, naming the file, its hash and where to put it,
    and ``WeightsFileError`` when the downloaded file's hash is wrong (the cache is left as it was).
    """
    expected = (file_hash or published.file_hash).lower()
    algorithm = hash_algorithm(expected)
    target = keras_cache_dir() / published.fname
    stale = target.exists()
    if stale:
        if hash_file(target, algorithm) == expected:
            return target
        print(f"{target}: its {algorithm} is not {expected}; downloading it again", file=sys.stderr)
    print(f"Downloading data from {published.origin}", file=sys.stderr)

    def download(handle):
        hashing = _HashingWriter(handle, algorithm)
        try:
            fetch(published.origin, hashing)
        except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
            reason = getattr(error, "reason", None) or error
            raise WeightsDownloadError(
                f"cannot download {published.fname} ({reason}): no network, or {published.origin} is not reachable. "
                f"Put the file {published.fname} ({algorithm} {expected}) at {target}"
                + (" (the file there now has another hash)" if stale else "")
                + ", or pass its path as weights=PATH") from None
        if hashing.hexdigest() != expected:
            raise WeightsFileError(
                f"the file downloaded from {published.origin} has {algorithm} {hashing.hexdigest()}, expected "
                f"{expected}: refused; nothing was written to {target}")

    atomic_write(target, download)
    return target


# --- reading HDF5 --------------------------------------------------------------------------------


def require_h5py():
    """The h5py module, or an ImportError saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise ImportError('reading Keras weight files needs h5py: pip install h5py (or pip install -e ".[pretrained]")') \
            from None
    return h5py


def _names(group, attribute: str) -> list[str]:
    """A list-of-names attribute, joined from ``name0``, ``name1``, ... when Keras split it (as its loader does)."""
    if attribute in group.attrs:
        chunks = [group.attrs[attribute]]
    else:
        chunks, i = [], 0
        while f"{attribute}{i}" in group.attrs:
            chunks.append(group.attrs[f"{attribute}{i}"])
            i += 1
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for chunk in chunks for n in np.atleast_1d(chunk)]


def _array(dataset, where: str) -> np.ndarray:
    array = np.asarray(dataset[()])
    if array.dtype.kind != "f":
        raise WeightsFileError(f"{where} holds {array.dtype} values, not floating-point weights")
    return array


def _read_legacy(group, path) -> dict[str, list[tuple[str, np.ndarray]]]:
    found = {}
    for layer in _names(group, "layer_names"):
        if layer not in group:
            raise WeightsFileError(f"{path}: layer {layer!r} is listed in layer_names but has no group: damaged file")
        arrays = []
        for weight in _names(group[layer], "weight_names"):
            if weight not in group[layer]:
                raise WeightsFileError(f"{path}: layer {layer!r} lists weight {weight!r}, which is not in the file: "
                                       f"damaged file")
            arrays.append((weight, _array(group[layer][weight], f"{path}: {layer}/{weight}")))
        if arrays:
            found[layer] = arrays
    return found


def _read_keras3(group, path) -> dict[str, list[tuple[str, np.ndarray]]]:
    found = {}
    for key, layer_group in group.items():
        variables = layer_group.get("vars")
        if variables is None or not len(variables):
            continue
        name = variables.attrs.get("name", key)
        name = name.decode("utf8") if isinstance(name, bytes) else str(name)
        found[name] = [(f"vars/{i}", _array(variables[str(i)], f"{path}: layers/{key}/vars/{i}"))
                       for i in range(len(variables))]
    return found


def read_h5_weights(path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{layer name: [(weight name, array), ...]} for every layer of a Keras weight file that has weights."""
    h5py = require_h5py()
    try:
        with h5py.File(path, "r") as f:
            group = f
            if not _names(f, "layer_names") and "model_weights" in f:
                group = f["model_weights"]
            if _names(group, "layer_names"):
                found = _read_legacy(group, path)
            elif "layers" in f and isinstance(f["layers"], h5py.Group):
                found = _read_keras3(f["layers"], path)
            else:
                raise WeightsFileError(f"{path}: an HDF5 file, but not a Keras weight file (no layer_names attribute, "
                                       f"no model_weights or layers group)")
    except WeightsFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise WeightsFileError(f"{path}: not a readable HDF5 weight file, truncated or damaged ({error})") from None
    if not found:
        raise WeightsFileError(f"{path}: a Keras weight file holding no weights")
    return found


def _shapes(arrays) -> str:
    return ", ".join(format_shape(a.shape) for a in arrays)


def load_h5_weights(model, path) -> None:
    """Copy the weights of a Keras ``.h5`` file into ``model``'s layers of the same names; all or nothing."""
    found = read_h5_weights(path)
    leaves = [leaf for leaf in model.leaf_layers() if leaf.params]
    ours = {leaf.name for leaf in leaves}
    extra = [name for name in found if name not in ours]
    if extra:
        raise WeightsFileError(
            f"{path}: the file has weights for layer {extra[0]!r} (shapes {_shapes(a for _, a in found[extra[0]])}), "
            f"which {model.name!r} does not have; its layers with weights are {[leaf.name for leaf in leaves]}")
    weights = []
    for leaf in leaves:
        wanted = [f"{leaf.name}/{n}" for n in leaf.weight_names]
        if leaf.name not in found:
            raise WeightsFileError(f"{path}: no weights for layer {leaf.name!r} in the file: the model expects "
                                   f"{_shapes(leaf.params)} for {wanted}")
        arrays = [a for _, a in found[leaf.name]]
        if len(arrays) != len(leaf.params):
            raise WeightsFileError(
                f"{path}: layer {leaf.name!r}: the model expects {len(leaf.params)} arrays of shapes "
                f"{_shapes(leaf.params)}, the file has {len(arrays)} of shapes {_shapes(arrays)}")
        for (file_name, array), target, name in zip(found[leaf.name], leaf.params, wanted):
            if array.shape != target.shape:
                raise WeightsFileError(
                    f"{path}: layer {leaf.name!r}, weight {name!r}: the model expects shape {format_shape(target.shape)}, "
                    f"the file's {file_name!r} has shape {format_shape(array.shape)}")
        weights.extend(arrays)
    model.set_weights(weights)


__all__ = [
    "PublishedFile", "WeightsDownloadError", "WeightsFileError", "check_hash", "get_file", "hash_file",
    "keras_cache_dir", "load_h5_weights", "read_h5_weights", "require_h5py",
]
