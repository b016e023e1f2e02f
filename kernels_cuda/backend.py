"""``CudaBackend``: miniconv's backend interface on the CUDA kernels, NumPy arrays in and out.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

Each method copies its NumPy inputs to the device, runs the launchers of ``conv`` / ``pool`` /
``elementwise`` / ``dense`` and copies the results back, so the ops layer (and everything above
it: layers, ``Sequential.fit``) runs on the GPU unchanged, one op at a time. That costs a round
trip per op; ``kernels_cuda.device`` keeps a whole training step on the device instead.

float32 only: float64 inputs (the finite-difference checks) are computed in float32 and come
back float32, which those checks recognise and skip.
"""

from __future__ import annotations

import numpy as np

from miniconv.backend.interface import Backend

from . import conv, dense, depthwise, elementwise, normalization, pool
from ._common import to_device, to_host


def _dev(a):
    return to_device(a, np.float32)


class CudaBackend(Backend):
    """The "cuda" backend: each method is the device launcher of the same name, wrapped in copies."""

    name = "cuda"

    @staticmethod
    def is_available() -> bool:
        from . import is_available

        return is_available()

    # --- convolution -------------------------------------------------------------------------
    def conv2d_forward(self, x, w, g):
        return to_host(conv.conv2d_forward(_dev(x), _dev(w), g))

    def conv2d_backward_input(self, dy, w, g):
        return to_host(conv.conv2d_backward_input(_dev(dy), _dev(w), g))

    def conv2d_backward_filter(self, x, dy, g):
        return to_host(conv.conv2d_backward_filter(_dev(x), _dev(dy), g))

    # --- depthwise convolution (both gradients: the interface's default, the two kernels) --------
    def depthwise_conv2d_forward(self, x, w, g):
        return to_host(depthwise.depthwise_conv2d_forward(_dev(x), _dev(w), g))

    def depthwise_conv2d_backward_input(self, dy, w, g):
        return to_host(depthwise.depthwise_conv2d_backward_input(_dev(dy), _dev(w), g))

    def depthwise_conv2d_backward_filter(self, x, dy, g):
        return to_host(depthwise.depthwise_conv2d_backward_filter(_dev(x), _dev(dy), g))

    # --- pooling -----------------------------------------------------------------------------
    def max_pool2d_forward(self, x, g):
        y, argmax = pool.max_pool2d_forward(_dev(x), g)
        return to_host(y), to_host(argmax)

    def max_pool2d_backward(self, dy, argmax, g):
        return to_host(pool.max_pool2d_backward(_dev(dy), to_device(argmax, np.int64), g))

    def avg_pool2d_forward(self, x, g):
        return to_host(pool.avg_pool2d_forward(_dev(x), g))

    def avg_pool2d_backward(self, dy, g):
        return to_host(pool.avg_pool2d_backward(_dev(dy), g))

    # --- elementwise (any shape: a 0-d array runs as one element) ---------------------------
    @staticmethod
    def _map(launcher, *arrays):
        shape = np.shape(arrays[0])
        flat = [_dev(np.reshape(a, -1)) for a in arrays]
        if flat[0].size == 0:
            return np.zeros(shape, np.float32)
        return to_host(launcher(*flat)).reshape(shape)

    def relu_forward(self, x):
        return self._map(elementwise.relu_forward, x)

    def relu_backward(self, dy, y):
        return self._map(elementwise.relu_backward, dy, y)

    def relu6_forward(self, x):
        return self._map(elementwise.relu6_forward, x)

    def relu6_backward(self, dy, y):
        return self._map(elementwise.relu6_backward, dy, y)

    def sigmoid_forward(self, x):
        return self._map(elementwise.sigmoid_forward, x)

    def sigmoid_backward(self, dy, y):
        return self._map(elementwise.sigmoid_backward, dy, y)

    def softmax_forward(self, x):
        if x.size == 0:
            return np.zeros(x.shape, np.float32)
        return to_host(elementwise.softmax_forward(_dev(x)))

    def softmax_backward(self, dy, y):
        if dy.size == 0:
            return np.zeros(dy.shape, np.float32)
        return to_host(elementwise.softmax_backward(_dev(dy), _dev(y)))

    # --- normalisation: x (rows, C), one parameter per column ---------------------------------
    def batch_norm_forward(self, x, mean, variance, offset, scale, epsilon):
        return to_host(normalization.batch_norm_forward(_dev(x), _dev(mean), _dev(variance), _dev(offset), _dev(scale),
                                                        epsilon))  # fmt: skip

    def batch_norm_backward(self, dy, x, mean, variance, scale, epsilon):
        out = normalization.batch_norm_backward(_dev(dy), _dev(x), _dev(mean), _dev(variance), _dev(scale), epsilon)
        return tuple(to_host(a) for a in out)

    def moments_forward(self, x):
        mean, variance = normalization.moments_forward(_dev(x))
        return to_host(mean), to_host(variance)

    def moments_backward(self, dmean, dvariance, x, mean):
        return to_host(normalization.moments_backward(_dev(dmean), _dev(dvariance), _dev(x), _dev(mean)))

    # --- dense, bias and dropout -------------------------------------------------------------
    def dense_forward(self, x, kernel, bias):
        return to_host(dense.dense_forward(_dev(x), _dev(kernel), None if bias is None else _dev(bias)))

    def dense_backward(self, dy, x, kernel, with_bias):
        dx, dkernel, dbias = dense.dense_backward(_dev(dy), _dev(x), _dev(kernel), with_bias)
        return to_host(dx), to_host(dkernel), (to_host(dbias) if with_bias else None)

    def bias_add_forward(self, x, bias):
        return to_host(elementwise.bias_add_forward(_dev(x), _dev(bias)))

    def bias_add_backward(self, dy):
        return to_host(elementwise.bias_add_backward(_dev(dy)))

    def bias_relu_forward(self, x, bias):
        return to_host(elementwise.bias_relu_forward(_dev(x), _dev(bias)))

    def bias_relu_backward(self, dy, y):
        dx, dbias = elementwise.bias_relu_backward(_dev(dy), _dev(y))
        return to_host(dx), to_host(dbias)

    def dropout_forward(self, x, keep, scale):
        shape = np.shape(x)
        if np.size(x) == 0:
            return np.zeros(shape, np.float32)
        keep = to_device(np.reshape(keep, -1), np.bool_)
        return to_host(elementwise.dropout_forward(_dev(np.reshape(x, -1)), keep, scale)).reshape(shape)

    def dropout_backward(self, dy, keep, scale):
        return self.dropout_forward(dy, keep, scale)
