"""miniconv: a from-scratch convolutional-network engine you can read, verify and benchmark.

    import miniconv
    y = miniconv.nn.conv2d(x, w, strides=1, padding="SAME")        # like tf.nn.conv2d
    y, pullback = miniconv.vjp(miniconv.nn.conv2d, x, w, padding="SAME")
    dx, dw = pullback(dy)
    with miniconv.use_backend("numpy"):                              # the readable reference
        ...
"""

from . import _threads  # noqa: F401  (must run before NumPy loads)
from . import nn
from .backend import available_backends, current_backend, get_backend, set_backend, use_backend
from .ops import vjp

__version__ = "0.1.0"

__all__ = ["available_backends", "current_backend", "get_backend", "nn", "set_backend", "use_backend", "vjp", "__version__"]
