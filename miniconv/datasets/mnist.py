"""MNIST, embedded: ``load_data()`` returns the arrays exactly as ``keras.datasets.mnist.load_data()``.

    from miniconv.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    # x_train (60000, 28, 28) uint8, y_train (60000,) uint8, x_test (10000, 28, 28), y_test (10000,)

Where the file comes from, first match wins:

    load_data(path=...)              a .npz file, or a directory holding ``mnist.npz``
    MINICONV_DATA=...                the same, from the environment
    (default)                        the copy shipped inside the package, ``datasets/data/mnist.npz``
                                     (11.5 MB, CC BY-SA 3.0: see ``datasets/data/README.md``)

Unlike Keras, ``path`` never downloads: miniconv works offline, and a path that does not exist is an
error. Every load checks the four arrays against ``CHECKSUMS`` (sha256 of each array's raw C-order
bytes, so re-saving or re-compressing the file does not change them) and their shapes and dtypes; a
file that is not MNIST, truncated or altered raises ``DatasetError`` naming the file and the array.
The file is read with ``allow_pickle=False``: it cannot run code.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

ENV_VARIABLE = "MINICONV_DATA"
FILENAME = "mnist.npz"
EMBEDDED = Path(__file__).resolve().parent / "data" / FILENAME

# name -> (shape, sha256 of the raw C-order bytes); from ../shared/data/README.md
CHECKSUMS: dict[str, tuple[tuple[int, ...], str]] = {
    "x_train": ((60000, 28, 28), "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"),
    "y_train": ((60000,), "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
    "x_test": ((10000, 28, 28), "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"),
    "y_test": ((10000,), "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
}


class DatasetError(ValueError):
    """The data file is not the expected dataset (corrupt, truncated, altered); the message says which array."""


def resolve_path(path=None) -> Path:
    """The file ``load_data`` reads: ``path``, else ``$MINICONV_DATA``, else the embedded copy.

    A directory stands for the ``mnist.npz`` inside it. Raises ``FileNotFoundError`` (naming where
    the path came from) when the file does not exist.
    """
    if path is not None:
        source = "load_data(path=...)"
    elif os.environ.get(ENV_VARIABLE):
        path, source = os.environ[ENV_VARIABLE], f"${ENV_VARIABLE}"
    else:
        path, source = EMBEDDED, "the copy embedded in miniconv"
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        if source.startswith("the copy"):
            hint = f"the package was installed without its data: reinstall miniconv, or set ${ENV_VARIABLE}"
        else:
            hint = f"expected a .npz file or a directory containing {FILENAME}"
        raise FileNotFoundError(f"MNIST: no such file: {path}, from {source} ({hint})")
    return path


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"MNIST: {path} is a single .npy array, not an .npz file holding x_train, y_train, "
                               f"x_test and y_test")
        with loaded as data:
            missing = [name for name in CHECKSUMS if name not in data.files]
            if missing:
                raise DatasetError(f"MNIST: {path} is not an MNIST file: array(s) {', '.join(missing)} missing "
                                   f"(it holds {', '.join(data.files) or 'nothing'})")
            arrays = {}
            for name in CHECKSUMS:
                try:
                    arrays[name] = data[name]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                    raise DatasetError(f"MNIST: {path}: array {name!r} cannot be read, the file is corrupt "
                                       f"({_reason(error, 'the array holds Python objects; refused')})") from None
            return arrays
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(f"MNIST: {path} is not a readable .npz file, it may be truncated or not MNIST "
                           f"({_reason(error, 'neither a zip archive nor an .npy file')})") from None


def _reason(error: Exception, pickle_means: str) -> str:
    # NumPy words an unknown file, or an object array, as pickled data and suggests loading it
    # unsafely: not advice to pass on for a data file.
    return pickle_means if "pickle" in str(error) else f"{type(error).__name__}: {error}"


def _check(path: Path, name: str, array: np.ndarray) -> None:
    shape, expected = CHECKSUMS[name]
    if array.dtype != np.uint8 or array.shape != shape:
        raise DatasetError(f"MNIST: {path}: array {name!r} should be uint8 of shape {shape}, "
                           f"got {array.dtype} of shape {array.shape}")
    digest = hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()
    if digest != expected:
        raise DatasetError(f"MNIST: {path}: array {name!r} fails its checksum (sha256 of its bytes is {digest}, "
                           f"expected {expected}): the file is corrupt or altered")


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)``, uint8, checked; see the module docstring for ``path``."""
    path = resolve_path(path)
    arrays = _read(path)
    for name, array in arrays.items():
        _check(path, name, array)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


__all__ = ["CHECKSUMS", "EMBEDDED", "ENV_VARIABLE", "DatasetError", "load_data", "resolve_path"]
