"""Argument checks shared by the ops: every bad input is named before any kernel runs.

The ops compute in float32. Inside ``with computed_in(np.float64):`` they compute in float64
instead (the backends' kernels are dtype-generic): that is how ``miniconv verify`` runs its
reference, the numpy backend in float64, when TensorFlow and miniconv disagree.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import reprlib

import numpy as np

_COMPUTE_DTYPE = contextvars.ContextVar("miniconv_compute_dtype", default="float32")  # a dtype name


@contextlib.contextmanager
def computed_in(dtype):
    """Inside the block, the ops convert their arrays to ``dtype`` (a float dtype) instead of float32."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"computed_in: expected a floating dtype, got {dtype}")
    token = _COMPUTE_DTYPE.set(dtype.name)
    try:
        yield
    finally:
        _COMPUTE_DTYPE.reset(token)


def is_device_array(value) -> bool:
    """A GPU array (Numba's DeviceNDArray or its simulator's, CuPy, ...): checked by shape and dtype, never
    copied here."""
    if isinstance(value, np.ndarray):
        return False
    return bool(getattr(value, "__cuda_ndarray__", False)) or hasattr(value, "__cuda_array_interface__")


def as_float_array(value, name: str, op: str, *, rank: int | tuple[int, ...] | None = None, layout: str = "") -> np.ndarray:
    """A floating array-like -> C-contiguous float32 array, after checking dtype and rank.

    Integer, boolean, complex and object inputs are a TypeError (TensorFlow refuses them too), and
    so is None; a ragged nested list is a ValueError. float16 / float64 / bfloat-like inputs are
    computed in float32. A GPU array (the cuda backend's, inside a training step) is checked and
    passed through as it is: the backend made it float32.
    """
    if is_device_array(value):
        _check_rank(value, name, op, rank, layout)
        if value.dtype != np.float32:
            raise TypeError(f"{op}: {name} must be float32 on the GPU, got dtype {value.dtype}")
        return value
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a tf.Tensor or similar
        value = value.numpy()
    if value is None:
        raise TypeError(f"{op}: {name} must be a floating-point array, got None")
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy: "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError(
            f"{op}: {name} must be a rectangular array (nested lists of equal lengths), got a ragged sequence "
            f"{reprlib.repr(value)}"
        ) from None
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{op}: {name} must be a floating-point array, got dtype {array.dtype}")
    _check_rank(array, name, op, rank, layout)
    # not np.ascontiguousarray: it turns a 0-d array into shape (1,), and relu(scalar) must stay 0-d
    return np.asarray(array, dtype=_COMPUTE_DTYPE.get(), order="C")


def _check_rank(array, name, op, rank, layout) -> None:
    if rank is not None:
        ranks = (rank,) if isinstance(rank, int) else tuple(rank)
        if len(array.shape) not in ranks:
            expected = " or ".join(str(r) for r in ranks)
            what = f" {layout}" if layout else ""
            raise ValueError(f"{op}: {name} must have rank {expected}{what}, got shape {tuple(array.shape)}")


def as_rows(array, columns: int | None = None):
    """An array (..., C) viewed as (M, C) rows (explicit sizes: a GPU array's reshape takes no -1)."""
    shape = tuple(array.shape)
    columns = shape[-1] if columns is None else columns  # shape is a tuple: a GPU array's takes no -1
    return array.reshape(math.prod(shape) // columns if columns else math.prod(shape[:-1]), columns)


def check_upstream(dy, expected_shape: tuple[int, ...], op: str) -> np.ndarray:
    """The upstream gradient given to a pullback must have the output's shape."""
    dy = as_float_array(dy, "upstream gradient", op)
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(f"{op} pullback: upstream gradient must have the output's shape {tuple(expected_shape)}, got {tuple(dy.shape)}")
    return dy


def check_data_format(data_format, expected: str, op: str) -> None:
    """Only TensorFlow's channels-last layouts are implemented."""
    if data_format is not None and data_format != expected:
        raise ValueError(f"{op}: data_format must be {expected!r} (channels last), got {data_format!r}")


def check_nonempty(array: np.ndarray, name: str, op: str) -> None:
    if array.size == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {array.shape}")
