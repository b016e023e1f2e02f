"""Where arrays live: the host (NumPy) or the current backend's device.

    to_backend(x)     a host array as the current backend's array (the array itself on numpy / cpu)
    to_host(x)        any backend's array as a host NumPy array (the array itself when it is one)
    all_finite(xs)    no NaN or infinity in any of xs, checked where they live (one verdict)

The numpy and cpu backends compute on host arrays, so both are no-ops there. The cuda backend's
arrays live on the GPU: ``to_backend`` copies a batch in, ``to_host`` copies a result out. The
engine uses them at a run's edges (a batch in, the loss and predictions out); layers computed
with NumPy (augmentation, rescaling) use them around their NumPy code.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend


def to_backend(x, *, backend=None):
    """``x`` (a host array, or already the backend's) as an array of ``backend`` (default: the current one)."""
    return get_backend(backend).from_host(x)


def to_host(x, *, backend=None) -> np.ndarray:
    """``x`` (any backend's array) as a host NumPy array; a NumPy array comes back as itself."""
    if isinstance(x, np.ndarray):
        return x
    return get_backend(backend).to_host(x)


def all_finite(arrays, *, backend=None) -> bool:
    """True when no element of any of ``arrays`` (backend arrays) is NaN or infinite, checked where they live."""
    return bool(get_backend(backend).all_finite(list(arrays)))


__all__ = ["all_finite", "to_backend", "to_host"]
