"""``miniconv.nn``: the functional ops, named and called as in ``tf.nn``; NumPy arrays in and out.

Every op takes ``backend=`` ("numpy", "cpu", later "cuda"); ``miniconv.vjp(op, *arrays, **kw)``
returns the output and its pullback.
"""

from .ops import (  # noqa: F401  (re-exported: the names listed in OPS)
    avg_pool1d,
    avg_pool2d,
    bias_add,
    bias_add_relu,
    conv1d,
    conv2d,
    conv2d_bias_relu,
    conv2d_bias_relu_max_pool2d,
    dense,
    dropout,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
    pool,
    relu,
    sigmoid,
    softmax,
)

OPS = (
    "conv1d", "conv2d", "relu", "sigmoid", "softmax", "max_pool1d", "avg_pool1d", "max_pool2d",
    "avg_pool2d", "pool", "global_avg_pool1d", "global_max_pool1d", "global_avg_pool2d",
    "global_max_pool2d", "dense", "bias_add", "bias_add_relu", "conv2d_bias_relu",
    "conv2d_bias_relu_max_pool2d", "dropout",
)

__all__ = list(OPS)
