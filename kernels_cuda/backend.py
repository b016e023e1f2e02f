"""``CudaBackend``: miniconv's backend interface on the CUDA kernels.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

Arrays on the device stay there: a method given device arrays returns device arrays, so a
training step (``miniconv/training/step.py``) keeps weights, gradients, optimizer state and
activations on the GPU, and only the batch goes in and the loss and predictions come out. A
method given host NumPy arrays (``miniconv.nn.conv2d(x, w, backend="cuda")`` on arrays) copies
them in and its results back out, so the ops work unchanged on host data too.

float32 only: float64 inputs (the finite-difference checks) are computed in float32 and come
back float32, which those checks recognise and skip.
"""

from __future__ import annotations

import math

import numpy as np

from miniconv.backend.interface import Backend

from . import checks, conv, dense, depthwise, elementwise, losses, merge, normalization, optim, pool
from ._common import is_device_array, to_device, to_host
from .optim import DeviceOptimizer


def _dev(a):
    return to_device(a, np.float32)


def _like(result, reference):
    """``result`` (a device array) where ``reference`` was on the device; a host copy otherwise."""
    return result if is_device_array(reference) else to_host(result)


class CudaBackend(Backend):
    """The "cuda" backend: each method is the device launcher of the same name; see the module docstring."""

    name = "cuda"

    def __init__(self):
        self._dropout_streams: dict[int, tuple] = {}  # id(rng) -> (rng, DropoutRandom seeded from it)

    @staticmethod
    def is_available() -> bool:
        from . import is_available

        return is_available()

    # --- arrays ------------------------------------------------------------------------------
    def from_host(self, array):
        return array if is_device_array(array) else _dev(array)

    def to_host(self, array) -> np.ndarray:
        return to_host(array) if is_device_array(array) else np.asarray(array)

    def is_native(self, array) -> bool:
        return is_device_array(array)

    def all_finite(self, arrays) -> bool:
        on_device = [a for a in arrays if is_device_array(a)]
        on_host = [a for a in arrays if not is_device_array(a)]
        return all(np.isfinite(a).all() for a in on_host) and (not on_device or checks.all_finite(on_device))

    def optimizer_for(self, optimizer):
        """The optimizer's updates as device kernels, its state on the device (``sync_to_host`` copies it back)."""
        return DeviceOptimizer(optimizer)

    def loss_value_and_gradient(self, loss, targets, output, from_logits):
        """Softmax crossentropy from device logits runs on the device (one kernel: loss rows, dz, p);
        other losses on the host (``Backend``'s default)."""
        softmax = from_logits and loss.logits_activation == "softmax" and is_device_array(output)
        if not softmax:
            return super().loss_value_and_gradient(loss, targets, output, from_logits)
        shape = tuple(output.shape)
        rows = output.reshape(math.prod(shape[:-1]), shape[-1])
        if np.issubdtype(targets.dtype, np.integer):
            rows_loss, dz, p = losses.softmax_crossentropy(rows, labels=to_device(targets.reshape(-1), np.int64))
        else:
            rows_loss, dz, p = losses.softmax_crossentropy(rows, targets=to_device(targets.reshape(rows.shape)))
        value = float(rows_loss.copy_to_host().mean(dtype=np.float64))
        return value, dz.reshape(shape), p.copy_to_host().reshape(shape)

    # --- convolution -------------------------------------------------------------------------
    def conv2d_forward(self, x, w, g):
        return _like(conv.conv2d_forward(_dev(x), _dev(w), g), x)

    def conv2d_backward_input(self, dy, w, g):
        return _like(conv.conv2d_backward_input(_dev(dy), _dev(w), g), dy)

    def conv2d_backward_filter(self, x, dy, g):
        return _like(conv.conv2d_backward_filter(_dev(x), _dev(dy), g), dy)

    # --- depthwise convolution (both gradients: the interface's default, the two kernels) --------
    def depthwise_conv2d_forward(self, x, w, g):
        return _like(depthwise.depthwise_conv2d_forward(_dev(x), _dev(w), g), x)

    def depthwise_conv2d_backward_input(self, dy, w, g):
        return _like(depthwise.depthwise_conv2d_backward_input(_dev(dy), _dev(w), g), dy)

    def depthwise_conv2d_backward_filter(self, x, dy, g):
        return _like(depthwise.depthwise_conv2d_backward_filter(_dev(x), _dev(dy), g), dy)

    # --- pooling -----------------------------------------------------------------------------
    def max_pool2d_forward(self, x, g):
        y, argmax = pool.max_pool2d_forward(_dev(x), g)
        return _like(y, x), _like(argmax, x)

    def max_pool2d_backward(self, dy, argmax, g):
        return _like(pool.max_pool2d_backward(_dev(dy), to_device(argmax, np.int64), g), dy)

    def avg_pool2d_forward(self, x, g):
        return _like(pool.avg_pool2d_forward(_dev(x), g), x)

    def avg_pool2d_backward(self, dy, g):
        return _like(pool.avg_pool2d_backward(_dev(dy), g), dy)

    # --- elementwise (any shape: a 0-d array runs as one element) ---------------------------
    @staticmethod
    def _map(launcher, *arrays):
        on_device = is_device_array(arrays[0])
        shape = tuple(arrays[0].shape) if on_device else np.shape(arrays[0])
        size = math.prod(shape)
        if size == 0:
            return np.zeros(shape, np.float32)
        flat = [(a if is_device_array(a) else _dev(np.reshape(a, -1))).reshape(size) for a in arrays]
        result = launcher(*flat)
        return result.reshape(shape) if on_device else to_host(result).reshape(shape)

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
        return _like(elementwise.softmax_forward(_dev(x)), x)

    def softmax_backward(self, dy, y):
        if dy.size == 0:
            return np.zeros(dy.shape, np.float32)
        return _like(elementwise.softmax_backward(_dev(dy), _dev(y)), dy)

    # --- normalisation: x (rows, C), one parameter per column ---------------------------------
    def batch_norm_forward(self, x, mean, variance, offset, scale, epsilon):
        return _like(normalization.batch_norm_forward(_dev(x), _dev(mean), _dev(variance), _dev(offset), _dev(scale),
                                                      epsilon), x)  # fmt: skip

    def batch_norm_backward(self, dy, x, mean, variance, scale, epsilon):
        out = normalization.batch_norm_backward(_dev(dy), _dev(x), _dev(mean), _dev(variance), _dev(scale), epsilon)
        return tuple(_like(a, dy) for a in out)

    def moments_forward(self, x):
        mean, variance = normalization.moments_forward(_dev(x))
        return _like(mean, x), _like(variance, x)

    def moments_backward(self, dmean, dvariance, x, mean):
        return _like(normalization.moments_backward(_dev(dmean), _dev(dvariance), _dev(x), _dev(mean)), x)

    # --- dense, bias and dropout -------------------------------------------------------------
    def dense_forward(self, x, kernel, bias):
        return _like(dense.dense_forward(_dev(x), _dev(kernel), None if bias is None else _dev(bias)), x)

    def dense_backward(self, dy, x, kernel, with_bias):
        dx, dkernel, dbias = dense.dense_backward(_dev(dy), _dev(x), _dev(kernel), with_bias)
        return _like(dx, dy), _like(dkernel, dy), (_like(dbias, dy) if with_bias else None)

    def bias_add_forward(self, x, bias):
        return _like(elementwise.bias_add_forward(_dev(x), _dev(bias)), x)

    def bias_add_backward(self, dy):
        return _like(elementwise.bias_add_backward(_dev(dy)), dy)

    def bias_relu_forward(self, x, bias):
        return _like(elementwise.bias_relu_forward(_dev(x), _dev(bias)), x)

    def bias_relu_backward(self, dy, y):
        dx, dbias = elementwise.bias_relu_backward(_dev(dy), _dev(y))
        return _like(dx, dy), _like(dbias, dy)

    def dropout_keep_mask(self, x, rate, rng):
        """A device mask for a device x, from a device generator seeded once from ``rng``; else NumPy's."""
        if not is_device_array(x):
            return super().dropout_keep_mask(x, rate, rng)
        entry = self._dropout_streams.get(id(rng))
        if entry is None or entry[0] is not rng:
            entry = self._dropout_streams[id(rng)] = (rng, elementwise.DropoutRandom(int(rng.integers(2**31))))
        return entry[1].mask(x.shape, rate)

    def dropout_forward(self, x, keep, scale):
        shape = tuple(x.shape)
        n = math.prod(shape)
        if n == 0:
            return np.zeros(shape, np.float32)
        keep = to_device(np.reshape(keep, -1), np.bool_) if not is_device_array(keep) else keep.reshape(n)
        return _like(elementwise.dropout_forward(_dev(x).reshape(n), keep, scale).reshape(shape), x)

    def dropout_backward(self, dy, keep, scale):
        return self.dropout_forward(dy, keep, scale)

    # --- merging -----------------------------------------------------------------------------
    def add_forward(self, a, b):
        return _like(merge.add_forward(_dev(a), _dev(b)), a)

    def multiply_forward(self, a, b):
        return _like(merge.multiply_forward(_dev(a), _dev(b)), a)

    def concat_columns(self, blocks):
        return _like(merge.concat_columns([_dev(b) for b in blocks]), blocks[0])

    def split_columns(self, y, widths):
        return [_like(part, y) for part in merge.split_columns(_dev(y), widths)]

    # --- padding and state -------------------------------------------------------------------
    def pad2d_forward(self, x, top, bottom, left, right):
        return _like(merge.pad2d_forward(_dev(x), top, bottom, left, right), x)

    def pad2d_backward(self, dy, top, bottom, left, right):
        return _like(merge.pad2d_backward(_dev(dy), top, bottom, left, right), dy)

    def moving_average_update(self, variable, value, momentum):
        if not is_device_array(variable):
            return super().moving_average_update(variable, value, momentum)
        return optim.moving_average_update(variable, _dev(value), momentum)

