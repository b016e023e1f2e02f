"""Read a PyTorch checkpoint (a state dict of tensors) into NumPy arrays, running no code from the file.

    arrays = read_state_dict("efficientnet-lite0-57934424.pth")   # {"_conv_stem.weight": ndarray, ...}

A ``torch.save`` file is a pickle whose tensors point at raw storages. Unpickling with Python's
own ``pickle.load`` would let the file name any importable function and call it. This reader
unpickles with ``_RestrictedUnpickler``: ``find_class`` answers only the few names a state dict
of tensors uses, each mapped to a function of this module that builds plain data, and refuses
every other name with a ``CheckpointError``:

    collections.OrderedDict          the state dict (and its ``_metadata`` of module versions)
    torch._utils._rebuild_tensor_v2  a tensor: storage, offset, shape, strides (a _TensorRef here)
    torch._utils._rebuild_parameter  an nn.Parameter around such a tensor (its data is taken)
    torch.<Type>Storage              the element type of a storage (Float, Double, Half, Long, ...)

``persistent_load`` accepts only ``("storage", <Type>Storage, key, location, numel)`` records.
Two layouts of the file are read:

- the legacy stream (``torch.save(..., _use_new_zipfile_serialization=False)``; PyTorch < 1.6,
  the format of the EfficientNet-Lite0 wheel): a magic-number pickle, a protocol-version pickle
  (1001), a system-info pickle (byte order), the state-dict pickle, a pickle listing the storage
  keys, then each storage as a little-endian int64 element count and its raw bytes, to the end
  of the file;
- the zip archive of PyTorch >= 1.6: ``<name>/data.pkl`` and one ``<name>/data/<key>`` entry of raw
  bytes per storage.

Structure is checked before anything is returned: the magic number and protocol, every storage
present with the byte count its record claims, no bytes left over, every tensor's strides inside
its storage, only tensors (and ``num_batches_tracked``-style integers) as values. A truncated,
altered or foreign file raises ``CheckpointError`` saying what is wrong, and no array is returned.
``read_state_dict(path, use_torch=True)`` uses ``torch.load(weights_only=True)`` instead, where
PyTorch is installed (the tests compare the two readers).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch.<Type>Storage -> the NumPy dtype of its elements (little-endian, as torch.save writes them)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


class CheckpointError(ValueError):
    """The file is not a readable checkpoint of tensors; the message says why. Nothing was loaded."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    """A storage record of the pickle: its key, element type and element count."""

    key: str
    storage_type: _StorageType
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor of the pickle: a strided view of a storage, built into an array once the storages are read."""

    storage: _StorageRef
    offset: int
    shape: tuple
    strides: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"a tensor's storage is {type(storage).__name__}, not a storage record")
    if backward_hooks:
        raise CheckpointError("a tensor carries backward hooks (code); a weight file holds plain tensors only")
    for what, value in (("size", size), ("stride", stride)):
        if not isinstance(value, tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
            raise CheckpointError(f"a tensor's {what} is {value!r}, not a tuple of non-negative ints")
    if len(size) != len(stride) or not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointError(f"a tensor's geometry is inconsistent: size {size}, stride {stride}, "
                              f"offset {storage_offset!r}")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(data, _TensorRef) or backward_hooks:
        raise CheckpointError("a parameter holds something other than a plain tensor")
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the data of a state dict; any other global is refused (never imported)."""

    def __init__(self, file, allow_globals: bool, persistent=None):
        super().__init__(file)
        self._allow_globals = allow_globals
        self._persistent = persistent

    def find_class(self, module, name):
        if self._allow_globals and (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise CheckpointError(f"the checkpoint asks for {module}.{name}; only tensors are read from a weight file, "
                              f"so it is refused (this reader never imports or calls what a file names)")

    def persistent_load(self, pid):
        if self._persistent is None:
            raise CheckpointError(f"unexpected persistent record {pid!r} outside the state dict")
        return self._persistent(pid)


def _unpickle(handle, allow_globals=False, persistent=None, what="pickle"):
    try:
        return _RestrictedUnpickler(handle, allow_globals, persistent).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, RecursionError, MemoryError, UnicodeDecodeError) as error:
        raise CheckpointError(f"its {what} is corrupt or truncated ({type(error).__name__}: {str(error)[:200]})") \
            from None


class _StorageRecords:
    """``persistent_load`` of the state-dict pickle: collects the storage records it names."""

    def __init__(self):
        self.records: dict[str, _StorageRef] = {}

    def __call__(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"the checkpoint holds a persistent object {str(pid)[:80]}; only tensor storages "
                                  f"are read")
        storage_type, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or \
                not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"malformed storage record {str(pid)[:120]}")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError(f"storage {key}: views of storages are not supported")
        ref = _StorageRef(key, storage_type, numel)
        known = self.records.setdefault(key, ref)
        if known != ref:
            raise CheckpointError(f"storage {key} is described twice, differently")
        return ref


def _check_values(state) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint holds a {type(state).__name__}, not a state dict of tensors")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise CheckpointError(f"entry {name!r} of the state dict is a {type(value).__name__}, not a tensor")


def _array(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """The tensor's elements as a C-contiguous array (its strides may run in any order, e.g. HWIO storage)."""
    if 0 in ref.shape:
        return np.zeros(ref.shape, storage.dtype)
    if math.prod(ref.shape) > storage.size:  # a state dict's tensors never overlap themselves; refuse a memory bomb
        raise CheckpointError(f"a tensor of shape {ref.shape} has more elements than its storage {ref.storage.key} "
                              f"({storage.size}); overlapping views are not read")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides))
    if last >= storage.size:
        raise CheckpointError(f"a tensor of shape {ref.shape}, strides {ref.strides}, offset {ref.offset} reaches "
                              f"element {last} of storage {ref.storage.key}, which holds {storage.size}")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], ref.shape, [s * item for s in ref.strides],
                                           writeable=False)
    return np.array(view, order="C")  # a copy (ascontiguousarray would make a 0-d tensor 1-d)


def _arrays(state: dict, storages: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: _array(ref, storages[ref.storage.key]) for name, ref in state.items()}


def _read_legacy(data: bytes) -> dict[str, np.ndarray]:
    handle = io.BytesIO(data)
    magic = _unpickle(handle, what="header")
    if magic != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (wrong magic number)")
    protocol = _unpickle(handle, what="header")
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"PyTorch serialization protocol {protocol!r}; this reader knows {LEGACY_PROTOCOL}")
    info = _unpickle(handle, what="system info")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError("the checkpoint was written on a big-endian machine (or its system info is damaged)")
    records = _StorageRecords()
    state = _unpickle(handle, allow_globals=True, persistent=records, what="state dict")
    _check_values(state)
    keys = _unpickle(handle, what="storage list")
    if not isinstance(keys, list) or sorted(keys) != sorted(records.records) or len(set(keys)) != len(keys):
        raise CheckpointError("its list of storages does not match the storages its tensors use")
    storages = {}
    for key in keys:
        ref = records.records[key]
        header = handle.read(8)
        if len(header) != 8:
            raise CheckpointError(f"the file is truncated: storage {key} is missing")
        (count,) = struct.unpack("<q", header)
        if count != ref.numel:
            raise CheckpointError(f"storage {key} holds {count} elements but its tensors' record says {ref.numel}; "
                                  f"the file is damaged")
        nbytes = count * ref.storage_type.dtype.itemsize
        raw = handle.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError(f"the file is truncated: storage {key} has {len(raw):,} of its {nbytes:,} bytes")
        storages[key] = np.frombuffer(raw, ref.storage_type.dtype)
    rest = len(data) - handle.tell()
    if rest:
        raise CheckpointError(f"{rest:,} unexpected bytes after the last storage; the file is damaged")
    return _arrays(state, storages)


def _read_zip(data: bytes) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError("a zip file without exactly one <name>/data.pkl: not a PyTorch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise CheckpointError("the checkpoint was written on a big-endian machine")
        records = _StorageRecords()
        state = _unpickle(io.BytesIO(archive.read(pickles[0])), allow_globals=True, persistent=records,
                          what="state dict")
        _check_values(state)
        storages = {}
        for key, ref in records.records.items():
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointError(f"the file is incomplete: storage {key} ({name}) is missing")
            raw = archive.read(name)
            nbytes = ref.numel * ref.storage_type.dtype.itemsize
            if len(raw) != nbytes:
                raise CheckpointError(f"storage {key} has {len(raw):,} bytes, its record says {nbytes:,}; "
                                      f"the file is damaged")
            storages[key] = np.frombuffer(raw, ref.storage_type.dtype)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"the zip archive is corrupt or truncated ({error})") from None
    return _arrays(state, storages)


def _read_with_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch raises many types; the message is what matters
        raise CheckpointError(f"torch.load(weights_only=True) refused it: {str(error)[:300]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("the checkpoint is not a state dict of tensors")
    return {name: value.detach().cpu().numpy().copy() for name, value in state.items()}


def read_state_dict(path, use_torch: bool = False) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state-dict file, by name, as NumPy arrays (C-contiguous, PyTorch's shapes).

    ``use_torch=True``: read with ``torch.load(weights_only=True)`` (PyTorch must be installed).
    Raises ``CheckpointError`` for a file that is truncated, damaged, or holds anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if use_torch:
        return _read_with_torch(path)
    data = path.read_bytes()
    try:
        if data[:4] == b"PK\x03\x04":
            return _read_zip(data)
        if data[:1] != b"\x80" or data[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05"):  # a pickle, protocol 2-5
            raise CheckpointError("not a PyTorch checkpoint (neither a zip archive nor a pickle stream)")
        return _read_legacy(data)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
