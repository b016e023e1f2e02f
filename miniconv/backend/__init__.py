"""Backend registry: which device runs the ops, chosen per call or scoped with ``use_backend``.

    miniconv.available_backends()          # ['cpu', 'numpy'] here; 'cuda' where it can run
    with miniconv.use_backend("numpy"):    # the default inside the block
        ...
    miniconv.nn.conv2d(x, w, backend="numpy")

Backends load lazily: the cpu backend imports Numba on first use, the cuda backend is
imported only when asked for.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib

from .interface import Backend

# name -> "module:attribute" of the Backend instance; loaded on first use.
_REGISTRY = {
    "numpy": "miniconv.backend.numpy_ref:BACKEND",
    "cpu": "miniconv.backend.cpu:BACKEND",
    "cuda": "kernels_cuda:BACKEND",
}
_LOADED: dict[str, Backend] = {}
_DEFAULT = contextvars.ContextVar("miniconv_backend", default="cpu")


class BackendUnavailableError(RuntimeError):
    """The backend exists but cannot run on this machine (the message says why)."""


def get_backend(name: str | Backend | None = None) -> Backend:
    """The Backend instance for ``name`` (None: the current default)."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = _DEFAULT.get()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"backend: expected one of {sorted(_REGISTRY)}, got {name!r}")
    if name not in _LOADED:
        module_name, attribute = _REGISTRY[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise BackendUnavailableError(f"backend {name!r} cannot be loaded here: {error}") from error
        _LOADED[name] = getattr(module, attribute)
    return _LOADED[name]


def known_backends() -> list[str]:
    """Every registered backend name, whether or not it can run here."""
    return list(_REGISTRY)


def available_backends() -> list[str]:
    """Names of the backends that can run here, in registry order."""
    names = []
    for name in _REGISTRY:
        try:
            backend = get_backend(name)
        except BackendUnavailableError:
            continue
        check = getattr(backend, "is_available", None)
        if check is None or check():
            names.append(name)
    return names


def current_backend() -> str:
    """Name of the backend ops use when no ``backend=`` is given."""
    return _DEFAULT.get()


@contextlib.contextmanager
def use_backend(name: str):
    """Make ``name`` the default backend inside a ``with`` block."""
    get_backend(name)  # fail now, not at the first op
    token = _DEFAULT.set(name)
    try:
        yield get_backend(name)
    finally:
        _DEFAULT.reset(token)


def set_backend(name: str) -> None:
    """Make ``name`` the default backend from now on (outside any ``use_backend`` block)."""
    get_backend(name)
    _DEFAULT.set(name)


__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available_backends",
    "current_backend",
    "get_backend",
    "known_backends",
    "set_backend",
    "use_backend",
]
