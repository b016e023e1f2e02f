"""The "cpu" backend (the default): Numba ``@njit(nogil=True, cache=True)`` kernels
whose chunks one small thread pool shares (``work_sharing``).

Convolutions are im2col / col2im kernels around NumPy's BLAS product; pooling, activations,
softmax, bias and dropout are loop nests of ours. Kernels are dtype-generic (float32 from the
ops, float64 in the gradient checks). Where each kernel lives:

    conv_kernels.py         conv2d forward, backward-input, backward-filter; conv2d + bias + ReLU (or ReLU6) fused
    pointwise_kernels.py    conv2d's entry points: 1x1 convolutions as plain products (+ bias + ReLU6
                            per block in cache), the rest on to Winograd or im2col
    small_products.py       their thin products in pieces OpenBLAS multiplies without packing
    winograd_conv2d.py      conv2d's three passes by Winograd's F(2x2, 3x3) for 3x3, stride-1 convolutions
                            of many channels (when no intermediate can overflow), else im2col; both
                            gradients in one pass over dy's transform
    conv_pool_kernels.py    conv2d + bias + ReLU + a non-overlapping max pooling, fused per chunk
    winograd_kernels.py     its forward for 3x3 convolutions of many channels under a 2x2 pooling
                            (when no intermediate can overflow: magnitude.py checks x and w in one pass)
    direct_kernels.py       its forward and (no dx) backward for 3x3 first layers of few channels;
                            plain conv2d's forward and filter gradient for them
    depthwise_kernels.py    depthwise conv2d: 3x3 forward (+ bias + ReLU6 as each value is stored), and both gradients
                            in one pass over dy
    depthwise_rows.py       their row loops, four cells at a time on flat row views
    stack_arrays.py         small working arrays on a kernel's stack, which no load can overlap
    streaming_stores.py     copies by non-temporal stores, for outputs larger than the cache
    prefetch.py             the next row's lines asked for while a row is computed
    depthwise_loops.py      its oracles, and the loops for every other filter size and multiplier
    pool_kernels.py         max / average pooling forward and backward (argmax for max)
    elementwise_kernels.py  relu, relu6, sigmoid, softmax, dense bias, dropout
    merge_kernels.py        add, multiply, columns joined and split (the Add / Multiply / Concatenate layers)
    normalization_kernels.py  batch normalization and moments over channels-last rows
    optimizer_kernels.py    SGD, RMSprop and Adam updates in one pass (the optimizers' NumPy bits)
    kernel_cache.py         Numba's cache of these kernels, dropped when any of their sources changes
"""

from __future__ import annotations

from ..._threads import warn_if_blas_spins
from .. import numpy_ref
from ..interface import Backend
from . import (
    conv_kernels,
    conv_pool_kernels,
    depthwise_kernels,
    direct_kernels,
    elementwise_kernels,
    merge_kernels,
    normalization_kernels,
    optimizer_kernels,
    pointwise_kernels,
    pool_kernels,
)
from .allocation import keep_freed_memory
from .kernel_cache import drop_stale_kernels

drop_stale_kernels()  # before any kernel is loaded: Numba misses edits to the kernels a kernel calls
warn_if_blas_spins()
keep_freed_memory()


class CpuBackend(Backend):
    """Numba CPU kernels; each method is the module function of the same name."""

    name = "cpu"
    optimizer_kernels = optimizer_kernels

    # 1x1 convolutions as plain products; 3x3 stride-1 ones of many channels by Winograd; every other
    # geometry on to im2col (and, for the forward and filter gradient of 3x3 first layers, direct_kernels' loops)
    conv2d_forward = staticmethod(pointwise_kernels.conv2d_forward)
    conv2d_backward_input = staticmethod(pointwise_kernels.conv2d_backward_input)
    conv2d_backward_filter = staticmethod(pointwise_kernels.conv2d_backward_filter)
    conv2d_backward = staticmethod(pointwise_kernels.conv2d_backward)
    conv2d_bias_forward = staticmethod(pointwise_kernels.conv2d_bias_forward)
    conv2d_bias_backward = staticmethod(pointwise_kernels.conv2d_bias_backward)
    conv2d_bias_relu_forward = staticmethod(conv_kernels.conv2d_bias_relu_forward)
    conv2d_bias_relu_backward = staticmethod(conv_kernels.conv2d_bias_relu_backward)
    conv2d_bias_relu_max_pool_forward = staticmethod(conv_pool_kernels.conv2d_bias_relu_max_pool_forward)
    conv2d_bias_relu_max_pool_backward = staticmethod(conv_pool_kernels.conv2d_bias_relu_max_pool_backward)

    depthwise_conv2d_forward = staticmethod(depthwise_kernels.depthwise_conv2d_forward)
    depthwise_conv2d_bias_forward = staticmethod(depthwise_kernels.depthwise_conv2d_bias_forward)
    depthwise_conv2d_bias_backward = staticmethod(depthwise_kernels.depthwise_conv2d_bias_backward)
    depthwise_conv2d_backward_input = staticmethod(depthwise_kernels.depthwise_conv2d_backward_input)
    depthwise_conv2d_backward_filter = staticmethod(depthwise_kernels.depthwise_conv2d_backward_filter)
    depthwise_conv2d_backward = staticmethod(depthwise_kernels.depthwise_conv2d_backward)

    max_pool2d_forward = staticmethod(pool_kernels.max_pool2d_forward)
    max_pool2d_backward = staticmethod(pool_kernels.max_pool2d_backward)
    avg_pool2d_forward = staticmethod(pool_kernels.avg_pool2d_forward)
    avg_pool2d_backward = staticmethod(pool_kernels.avg_pool2d_backward)

    relu_forward = staticmethod(elementwise_kernels.relu_forward)
    relu_backward = staticmethod(elementwise_kernels.relu_backward)
    relu6_forward = staticmethod(elementwise_kernels.relu6_forward)
    relu6_backward = staticmethod(elementwise_kernels.relu6_backward)
    sigmoid_forward = staticmethod(elementwise_kernels.sigmoid_forward)
    sigmoid_backward = staticmethod(elementwise_kernels.sigmoid_backward)
    softmax_forward = staticmethod(elementwise_kernels.softmax_forward)
    softmax_backward = staticmethod(elementwise_kernels.softmax_backward)

    batch_norm_forward = staticmethod(normalization_kernels.batch_norm_forward)
    batch_norm_backward = staticmethod(normalization_kernels.batch_norm_backward)
    moments_forward = staticmethod(normalization_kernels.moments_forward)
    moments_backward = staticmethod(normalization_kernels.moments_backward)

    dense_forward = staticmethod(elementwise_kernels.dense_forward)
    dense_backward = staticmethod(elementwise_kernels.dense_backward)
    bias_add_forward = staticmethod(elementwise_kernels.bias_add_forward)
    bias_add_backward = staticmethod(elementwise_kernels.bias_add_backward)
    bias_relu_forward = staticmethod(elementwise_kernels.bias_relu_forward)
    bias_relu_backward = staticmethod(elementwise_kernels.bias_relu_backward)
    bias_relu6_backward = staticmethod(elementwise_kernels.bias_relu6_backward)
    dropout_forward = staticmethod(elementwise_kernels.dropout_forward)
    dropout_backward = staticmethod(elementwise_kernels.dropout_backward)

    pad2d_forward = staticmethod(numpy_ref.pad2d_forward)  # copies: NumPy's own loops are as fast as ours
    pad2d_backward = staticmethod(numpy_ref.pad2d_backward)

    add_forward = staticmethod(merge_kernels.add_forward)
    multiply_forward = staticmethod(merge_kernels.multiply_forward)
    concat_columns = staticmethod(merge_kernels.concat_columns)
    split_columns = staticmethod(merge_kernels.split_columns)


BACKEND = CpuBackend()
