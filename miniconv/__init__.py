"""miniconv: a from-scratch convolutional-network engine you can read, verify and benchmark.

    import miniconv
    y = miniconv.nn.conv2d(x, w, strides=1, padding="SAME")        # like tf.nn.conv2d
    y, pullback = miniconv.vjp(miniconv.nn.conv2d, x, w, padding="SAME")
    dx, dw = pullback(dy)
    with miniconv.use_backend("numpy"):                              # the readable reference
        ...

    from miniconv import layers                                      # Keras's model API
    model = miniconv.Sequential([layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), ...])
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=64)
"""

# ruff: noqa: I001  (the import order matters: _threads must run before anything loads NumPy)
from . import _threads  # noqa: F401
from . import nn
from .backend import available_backends, current_backend, get_backend, set_backend, use_backend
from .ops import vjp
from . import callbacks, datasets, initializers, layers, losses, metrics, optimizers, regularizers, utils
from .layers import Input
from .models import Model, Sequential, load_model
from .interop import from_keras
from .saving import ModelFileError
from .training import NonFiniteLossError
from .viz.receptive_field import receptive_field
from . import applications

__version__ = "0.1.0"

__all__ = [
    "Input", "Model", "ModelFileError", "NonFiniteLossError", "Sequential", "__version__", "applications",
    "available_backends", "callbacks", "current_backend", "datasets", "from_keras", "get_backend",
    "initializers", "layers", "load_model", "losses", "metrics", "nn", "optimizers",
    "receptive_field", "regularizers", "set_backend", "use_backend", "utils", "vjp"
]
