"""SGD (momentum, Nesterov), RMSprop and Adam updates on the device, with Keras 3's rules.

Shape legend: n the number of elements of one weight; every kernel sees the flat (n,) views of
the weight, its gradient and its state arrays.

One thread per weight; the weights and the optimizer's state arrays are updated in place. The
arithmetic is ``miniconv.optimizers`` step for step (the same operations in the same order,
float32 throughout, the same float32 constants computed on the host):

    SGD      w -= g * lr;  momentum: m = m * momentum - g * lr, w += m (nesterov: w += m * momentum - g * lr)
    RMSprop  v = v * rho + g^2 * (1 - rho);  centered: a = a * rho + g * (1 - rho), den = v - a^2 + eps
             else den = v + eps;  inc = g * lr / sqrt(den);  momentum: m = m * momentum + inc, w -= m
             else w -= inc
    Adam     m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2);  amsgrad: v_hat = max(v_hat, v)
             w -= m * alpha / (sqrt(v) + eps),  alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) (host, float32)

On a GPU, NVVM contracts a * b + c into one fused multiply-add (its default), which rounds once
instead of twice, so device and host weights can differ in the last bit; the simulator matches
the host exactly. ``DeviceOptimizer`` keeps the state on the device, keyed as the host optimizer
keys it, and copies it back for saving.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._common import F1, THREADS_1D, blocks, cuda, empty, float32, to_device, void

# ================================ kernels ===================================================


@cuda.jit
def sgd_kernel(w, g, lr):
    i = cuda.grid(1)
    if i < w.size:
        w[i] -= g[i] * lr


@cuda.jit
def sgd_momentum_kernel(w, g, m, lr, momentum, nesterov):
    i = cuda.grid(1)
    if i < w.size:
        step = g[i] * lr
        mi = m[i] * momentum - step
        m[i] = mi
        if nesterov:
            w[i] += mi * momentum - step
        else:
            w[i] += mi


@cuda.jit
def rmsprop_kernel(w, g, v, a, m, lr, rho, one_minus_rho, momentum, epsilon, centered, use_momentum):
    """a (centered) and m (momentum) are placeholders when unused."""
    i = cuda.grid(1)
    if i < w.size:
        gi = g[i]
        vi = v[i] * rho + gi * gi * one_minus_rho
        v[i] = vi
        if centered:
            ai = a[i] * rho + gi * one_minus_rho
            a[i] = ai
            denominator = vi - ai * ai + epsilon
        else:
            denominator = vi + epsilon
        increment = gi * lr / math.sqrt(denominator)
        if use_momentum:
            mi = m[i] * momentum + increment
            m[i] = mi
            w[i] -= mi
        else:
            w[i] -= increment


@cuda.jit
def adam_kernel(w, g, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, amsgrad):
    """v_hat is a placeholder unless amsgrad."""
    i = cuda.grid(1)
    if i < w.size:
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_beta_1
        m[i] = mi
        vi = v[i] + (gi * gi - v[i]) * one_minus_beta_2
        v[i] = vi
        if amsgrad:
            vi = max(v_hat[i], vi)
            v_hat[i] = vi
        w[i] -= mi * alpha / (math.sqrt(vi) + epsilon)


_B = numba.boolean
@cuda.jit
def moving_average_kernel(variable, value, momentum, one_minus_momentum):
    """variable = variable * momentum + value * (1 - momentum): batch normalization's moving statistics."""
    i = cuda.grid(1)
    if i < variable.size:
        variable[i] = variable[i] * momentum + value[i] * one_minus_momentum


SIGNATURES = {
    moving_average_kernel: void(F1, F1, float32, float32),
    sgd_kernel: void(F1, F1, float32),
    sgd_momentum_kernel: void(F1, F1, F1, float32, float32, _B),
    rmsprop_kernel: void(F1, F1, F1, F1, F1, *[float32] * 5, _B, _B),
    adam_kernel: void(F1, F1, F1, F1, F1, *[float32] * 4, _B),
}

# ================================ launchers =================================================

_F32 = np.float32


def _flat(a):
    return a.reshape(a.size)


class DeviceOptimizer:
    """Apply a ``miniconv.optimizers`` optimizer's updates to device arrays, state on the device.

        device_opt = DeviceOptimizer(model.optimizer)
        device_opt.apply(grads_dev, weights_dev, keys)     # in place, one launch per weight
        device_opt.sync_to_host()                           # state and iterations into model.optimizer

    The host optimizer's hyperparameters and ``iterations`` are the source of truth (so the host
    object saves and resumes as usual); its existing state arrays, if any, are copied in first.
    """

    def __init__(self, optimizer):
        from miniconv import optimizers

        if not isinstance(optimizer, (optimizers.SGD, optimizers.RMSprop, optimizers.Adam)):
            raise TypeError(f"DeviceOptimizer: expected a miniconv SGD, RMSprop or Adam, got {optimizer!r}")
        self.host = optimizer
        self.state: dict[str, dict[str, object]] = {}  # slot -> key -> device array
        for name, array in optimizer.state().items():
            slot, _, key = name.partition("/")
            self.state.setdefault(slot, {})[key] = to_device(array)
        self._placeholder = None

    def _slot(self, slot: str, key, like):
        table = self.state.setdefault(slot, {})
        array = table.get(key)
        if array is None or array.shape != like.shape:
            array = table[key] = to_device(np.zeros(like.shape, _F32))
        return array

    def _none(self):
        if self._placeholder is None:
            self._placeholder = empty((1,))
        return self._placeholder

    def apply(self, grads, variables, keys) -> None:
        """One step: update each device variable in place from its device gradient."""
        from miniconv import optimizers

        opt = self.host
        lr = _F32(opt.learning_rate)
        if isinstance(opt, optimizers.Adam):
            t = _F32(opt.iterations + 1)
            beta_1_power = np.power(_F32(opt.beta_1), t)
            beta_2_power = np.power(_F32(opt.beta_2), t)
            alpha = _F32(_F32(opt.learning_rate) * np.sqrt(_F32(1) - beta_2_power) / (_F32(1) - beta_1_power))
        for key, g, w in zip(keys, grads, variables):
            if g is None:
                continue
            n = w.size
            grid = (blocks(n, THREADS_1D), THREADS_1D)
            if isinstance(opt, optimizers.SGD):
                if opt.momentum == 0:
                    sgd_kernel[grid](_flat(w), _flat(g), lr)
                else:
                    m = self._slot("momentum", key, w)
                    sgd_momentum_kernel[grid](_flat(w), _flat(g), _flat(m), lr, _F32(opt.momentum), bool(opt.nesterov))
            elif isinstance(opt, optimizers.RMSprop):
                v = self._slot("velocity", key, w)
                a = self._slot("average_gradient", key, w) if opt.centered else self._none()
                m = self._slot("momentum", key, w) if opt.momentum > 0 else self._none()
                rmsprop_kernel[grid](
                    _flat(w), _flat(g), _flat(v), _flat(a), _flat(m), lr, _F32(opt.rho), _F32(1 - opt.rho),
                    _F32(opt.momentum), _F32(opt.epsilon), bool(opt.centered), bool(opt.momentum > 0),
                )  # fmt: skip
            else:
                m = self._slot("momentum", key, w)
                v = self._slot("velocity", key, w)
                v_hat = self._slot("velocity_hat", key, w) if opt.amsgrad else self._none()
                adam_kernel[grid](
                    _flat(w), _flat(g), _flat(m), _flat(v), _flat(v_hat), alpha, _F32(1 - opt.beta_1),
                    _F32(1 - opt.beta_2), _F32(opt.epsilon), bool(opt.amsgrad),
                )  # fmt: skip
        opt.iterations += 1

    def sync_to_host(self) -> None:
        """Copy the device state into the host optimizer (``set_state``), e.g. before saving."""
        arrays = {
            f"{slot}/{key}": array.copy_to_host() for slot, table in self.state.items() for key, array in table.items()
        }
        self.host.set_state(arrays, self.host.iterations)


def moving_average_update(variable, value, momentum: float) -> None:
    """In place on device arrays of one shape, float32 factors as Keras rounds them."""
    n = variable.size
    if n:
        moving_average_kernel[blocks(n, THREADS_1D), THREADS_1D](variable.reshape(n), value.reshape(n),
                                                                  _F32(momentum), _F32(1.0 - momentum))
