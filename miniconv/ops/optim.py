"""Optimizer updates that run as one pass over a variable: RMSprop's (the course's optimizer).

    v = rho * v + (1 - rho) * g^2;   w -= lr * g / sqrt(v + epsilon)        (Keras 3's RMSprop)

in float32, in place, in exactly the operation order of ``miniconv.optimizers.RMSprop``'s NumPy
form, so both give the same bits. ``miniconv.optimizers`` calls this for plain RMSprop (no
momentum, not centered); the cpu backend fuses the five NumPy passes into one loop.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_backend


def rmsprop_update(variable, gradient, velocity, learning_rate, rho, epsilon, *, backend=None) -> None:
    """Update ``variable`` and ``velocity`` (float32 arrays of one shape, C-contiguous) in place."""
    op = "rmsprop_update"
    for name, array in (("variable", variable), ("gradient", gradient), ("velocity", velocity)):
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or not array.flags.c_contiguous:
            raise TypeError(f"{op}: {name} must be a C-contiguous float32 array, got "
                            f"{getattr(array, 'dtype', type(array).__name__)}")
        if array.shape != variable.shape:
            raise ValueError(f"{op}: {name} must have the variable's shape {variable.shape}, got {array.shape}")
    for name, array in (("variable", variable), ("velocity", velocity)):
        if not array.flags.writeable:
            raise ValueError(f"{op}: {name} is updated in place and must be writeable")
    # 1 - rho in float64, then float32, as the NumPy form (float32(1) - float32(rho) differs in the last bit)
    get_backend(backend).rmsprop_update(variable, gradient, velocity, np.float32(learning_rate), np.float32(rho),
                                        np.float32(1 - float(rho)), np.float32(epsilon))
