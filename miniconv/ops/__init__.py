"""The ops: semantics, shape rules and gradients, one module per family. Only ops call backends."""

from ._vjp import vjp
from .activation import relu, relu6, relu6_vjp, relu_vjp, sigmoid, sigmoid_vjp, softmax, softmax_vjp
from .conv import (
    conv1d,
    conv1d_vjp,
    conv2d,
    conv2d_bias_relu,
    conv2d_bias_relu_max_pool2d,
    conv2d_bias_relu_max_pool2d_vjp,
    conv2d_bias_relu_vjp,
    conv2d_vjp,
)
from .dense import bias_add, bias_add_relu, bias_add_relu_vjp, bias_add_vjp, dense, dense_vjp
from .depthwise import depthwise_conv2d, depthwise_conv2d_vjp, separable_conv2d, separable_conv2d_vjp
from .dropout import dropout, dropout_vjp
from .normalization import batch_normalization, batch_normalization_vjp, moments, moments_vjp
from .pool import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
    pool,
)

__all__ = [
    "avg_pool1d",
    "avg_pool2d",
    "batch_normalization",
    "batch_normalization_vjp",
    "bias_add",
    "bias_add_relu",
    "bias_add_relu_vjp",
    "bias_add_vjp",
    "conv1d",
    "conv1d_vjp",
    "conv2d",
    "conv2d_bias_relu",
    "conv2d_bias_relu_max_pool2d",
    "conv2d_bias_relu_max_pool2d_vjp",
    "conv2d_bias_relu_vjp",
    "conv2d_vjp",
    "dense",
    "dense_vjp",
    "depthwise_conv2d",
    "depthwise_conv2d_vjp",
    "dropout",
    "dropout_vjp",
    "global_avg_pool1d",
    "global_avg_pool2d",
    "global_max_pool1d",
    "global_max_pool2d",
    "max_pool1d",
    "max_pool2d",
    "moments",
    "moments_vjp",
    "pool",
    "relu",
    "relu6",
    "relu6_vjp",
    "relu_vjp",
    "separable_conv2d",
    "separable_conv2d_vjp",
    "sigmoid",
    "sigmoid_vjp",
    "softmax",
    "softmax_vjp",
    "vjp",
]
