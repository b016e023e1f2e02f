"""``miniconv.nn``: the functional ops, named and called as in ``tf.nn``; NumPy arrays in and out.

Every op takes ``backend=`` ("numpy", "cpu", later "cuda"); ``miniconv.vjp(op, *arrays, **kw)``
returns the output and its pullback.
"""

from .ops import (  # noqa: F401  (re-exported: the names listed in OPS)
    avg_pool1d,
    avg_pool2d,
    batch_normalization,
    bias_add,
    bias_add_relu,
    conv1d,
    conv2d,
    conv2d_bias,
    conv2d_bias_relu,
    conv2d_bias_relu_max_pool2d,
    dense,
    depthwise_conv2d,
    depthwise_conv2d_bias,
    dropout,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
    moments,
    pool,
    relu,
    relu6,
    separable_conv2d,
    sigmoid,
    softmax,
)

OPS = (
    "conv1d", "conv2d", "relu", "sigmoid", "softmax", "max_pool1d", "avg_pool1d", "max_pool2d",
    "avg_pool2d", "pool", "global_avg_pool1d", "global_max_pool1d", "global_avg_pool2d",
    "global_max_pool2d", "dense", "bias_add", "bias_add_relu", "conv2d_bias_relu",
    "conv2d_bias_relu_max_pool2d", "dropout", "depthwise_conv2d", "separable_conv2d", "batch_normalization",
    "moments", "relu6", "conv2d_bias", "depthwise_conv2d_bias",
)

__all__ = list(OPS)
