"""Write PyTorch checkpoint files without PyTorch: the tests craft good, damaged and hostile ones from the real one.

    write_legacy(path, {"w": array, ...})                  # torch.save(..., _use_new_zipfile_serialization=False)
    write_legacy(path, {"w": array}, extra={"x": Evil()})  # any other picklable values beside the tensors

The layout is PyTorch's legacy stream (``miniconv/applications/torch_checkpoint.py`` describes
it). Tensors are pickled as ``torch._utils._rebuild_tensor_v2`` calls on ``torch.<Type>Storage``
records: the pickler writes them under a stand-in module name, and the bytes are then renamed
(protocol 2 writes a global as the text "module\\nname\\n", so the rename is exact).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types

import numpy as np

_FAKE = "_miniconv_tests_fake_torch"
_module = types.ModuleType(_FAKE)
sys.modules.setdefault(_FAKE, _module)
_module = sys.modules[_FAKE]

STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage", np.dtype("int64"): "LongStorage",
            np.dtype("int32"): "IntStorage", np.dtype("uint8"): "ByteStorage"}


def _rebuild_tensor_v2(*args):  # never called: only its name is written
    raise AssertionError("not to be called")


_rebuild_tensor_v2.__module__ = _FAKE
_module._rebuild_tensor_v2 = _rebuild_tensor_v2
for _name in STORAGES.values():
    _cls = type(_name, (), {"__module__": _FAKE})
    setattr(_module, _name, _cls)


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class Tensor:
    """A tensor to pickle: ``array`` stored flat (C order) in its own storage, or a strided view of it."""

    def __init__(self, key, array, shape=None, strides=None, offset=0, numel=None):
        array = np.array(array, order="C")  # a copy; np.ascontiguousarray would make a 0-d array 1-d
        self.storage = _Storage(key, array.reshape(-1))
        self.numel = array.size if numel is None else numel
        self.shape = tuple(array.shape) if shape is None else tuple(shape)
        self.strides = tuple(s // array.itemsize for s in array.strides) if strides is None else tuple(strides)
        self.offset = offset

    def __reduce__(self):
        return _rebuild_tensor_v2, (self.storage, self.offset, self.shape, self.strides, False,
                                    collections.OrderedDict())


class _Pickler(pickle.Pickler):
    def __init__(self, file, numels):
        super().__init__(file, protocol=2)
        self.numels = numels

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            storage = getattr(_module, STORAGES[obj.array.dtype])
            return ("storage", storage, obj.key, "cpu", self.numels.get(obj.key, obj.array.size), None)
        return None


def _rename(data: bytes) -> bytes:
    data = data.replace(f"{_FAKE}\n_rebuild_tensor_v2\n".encode(), b"torch._utils\n_rebuild_tensor_v2\n")
    for name in STORAGES.values():
        data = data.replace(f"{_FAKE}\n{name}\n".encode(), f"torch\n{name}\n".encode())
    assert _FAKE.encode() not in data
    return data


def legacy_bytes(tensors: dict, extra: dict | None = None, numels: dict | None = None) -> bytes:
    """The file's bytes: ``tensors`` ({name: array or Tensor}) and ``extra`` entries in one state dict."""
    state = collections.OrderedDict()
    wrapped = {}
    for i, (name, value) in enumerate(tensors.items()):
        tensor = value if isinstance(value, Tensor) else Tensor(str(1000 + i), np.asarray(value))
        state[name] = wrapped[name] = tensor
    state.update(extra or {})
    numels = {t.storage.key: t.numel for t in wrapped.values()} | (numels or {})
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    main = io.BytesIO()
    _Pickler(main, numels).dump(state)
    out.write(_rename(main.getvalue()))
    storages = {t.storage.key: t.storage.array for t in wrapped.values()}
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        out.write(struct.pack("<q", storages[key].size))
        out.write(storages[key].astype(storages[key].dtype.newbyteorder("<"), copy=False).tobytes())
    return out.getvalue()


def write_legacy(path, tensors: dict, extra: dict | None = None, numels: dict | None = None):
    path.write_bytes(legacy_bytes(tensors, extra, numels))
    return path
