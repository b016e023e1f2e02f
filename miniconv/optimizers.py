"""SGD, RMSprop and Adam with Keras 3's defaults and update rules, in float32, in place.

    SGD      m = momentum * m - lr * g;  w += m                (nesterov: w += momentum * m - lr * g)
             without momentum: w -= lr * g                      defaults lr=0.01, momentum=0
    RMSprop  v = rho * v + (1 - rho) * g^2;  w -= lr * g / sqrt(v + eps)
             (eps inside the square root, as Keras 3)         defaults lr=0.001, rho=0.9, eps=1e-7
             momentum > 0: m = momentum * m + lr * g / sqrt(v + eps); w -= m
             centered: the denominator is sqrt(v - a^2 + eps), a = rho * a + (1 - rho) * g
    Adam     t = iterations + 1;  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
             m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
             w -= alpha * m / (sqrt(v) + eps)                  ("epsilon hat", as Keras)
                                                               defaults lr=0.001, 0.9, 0.999, eps=1e-7

``apply(grads, variables, keys)`` updates the variables (float32 arrays) in place: with NumPy as
written here, or, when the current backend has them (the cpu backend), with its one-pass Numba
kernels, which compute the same float32 operations in the same order (the same bits). The state
arrays (``state()``, keyed by variable name, e.g. "conv2d/kernel") and ``iterations`` are what a
saved model stores to resume training exactly.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

_F32 = np.float32
_UNUSED = np.zeros(1, _F32)  # stands in for a state array a kernel does not touch (never aliasing a used one)


def _check_number(value, name, owner, low=None, high=None, low_open=False, high_open=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        raise ValueError(f"{owner}: {name} must be in {lo or '(-inf'}, {hi or 'inf)'}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: per-variable state arrays created on first use, an ``iterations`` counter."""

    name = "optimizer"
    slots: tuple[str, ...] = ()

    def __init__(self, learning_rate, name=None, **kwargs):
        unsupported = {k: v for k, v in kwargs.items() if v not in (None, False)}
        if unsupported:
            raise ValueError(f"{type(self).__name__}: unsupported argument(s) {sorted(unsupported)}")
        self.learning_rate = _check_number(learning_rate, "learning_rate", type(self).__name__, low=0, low_open=True)
        if name is not None:
            self.name = name
        self.iterations = 0
        self._state: dict[str, dict[str, np.ndarray]] = {}  # slot -> key -> array

    def _slot(self, slot: str, key, like: np.ndarray) -> np.ndarray:
        table = self._state.setdefault(slot, {})
        array = table.get(key)
        if array is None or array.shape != like.shape:
            array = table[key] = np.zeros(like.shape, _F32)
        return array

    @property
    def built(self) -> bool:
        return bool(self._state) or self.iterations > 0

    def apply(self, grads, variables, keys=None) -> None:
        """One step: update each variable in place from its gradient. keys name the state of each variable."""
        if keys is None:
            keys = range(len(variables))
        lr = _F32(self.learning_rate)
        kernels = _backend_kernels()
        for key, g, w in zip(keys, grads, variables):
            if g is None:
                continue
            if kernels is not None and _flat_float32(g, w):
                self.kernel_step(kernels, key, g, w, lr)
            else:
                self.update_step(key, g, w, lr)
        self.iterations += 1

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras's spelling: a sequence of (gradient, variable) pairs; state keyed by position."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [w for _, w in pairs])

    def update_step(self, key, g, w, lr):
        """The update of one variable w (in place) from its gradient g, in NumPy: the formula."""
        raise NotImplementedError

    def kernel_step(self, kernels, key, g, w, lr):
        """update_step's result with the backend's ``optimizer_kernels``; g, w C-contiguous float32."""
        raise NotImplementedError

    def _flat_slot(self, slot: str, key, like: np.ndarray) -> np.ndarray:
        """The state array (shaped as the variable ``like``, as saved), viewed flat for a kernel."""
        return self._slot(slot, key, like).reshape(-1)

    # --- state for saving and resuming -------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Every state array as {"<slot>/<key>": array} (the arrays themselves, not copies)."""
        return {f"{slot}/{key}": array for slot, table in self._state.items() for key, array in table.items()}

    def set_state(self, arrays: dict[str, np.ndarray], iterations: int) -> None:
        self._state = {}
        for name, array in arrays.items():
            slot, _, key = name.partition("/")
            self._state.setdefault(slot, {})[key] = np.array(array, dtype=_F32)
        self.iterations = int(iterations)

    @property
    def variables(self) -> list[np.ndarray]:
        """As Keras counts optimizer variables: iterations, learning rate, then the state arrays."""
        return [np.array(self.iterations, np.int64), np.array(self.learning_rate, _F32), *self.state().values()]

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum. As ``keras.optimizers.SGD``."""

    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.momentum = _check_number(momentum, "momentum", "SGD", 0, 1)
        self.nesterov = bool(nesterov)

    def update_step(self, key, g, w, lr):
        if self.momentum == 0:
            w -= g * lr
            return
        momentum = _F32(self.momentum)
        m = self._slot("momentum", key, w)
        m *= momentum
        m -= g * lr
        if self.nesterov:
            w += m * momentum - g * lr
        else:
            w += m

    def kernel_step(self, kernels, key, g, w, lr):
        if self.momentum == 0:
            kernels.run(kernels.sgd_rows, (w.reshape(-1), g.reshape(-1)), lr)
            return
        m = self._flat_slot("momentum", key, w)
        kernels.run(kernels.sgd_momentum_rows, (w.reshape(-1), g.reshape(-1), m), lr, _F32(self.momentum),
                    self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Divide the gradient by a running root mean square. As ``keras.optimizers.RMSprop`` (Keras 3)."""

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _check_number(rho, "rho", "RMSprop", 0, 1)
        self.momentum = _check_number(momentum, "momentum", "RMSprop", 0, 1)
        self.epsilon = _check_number(epsilon, "epsilon", "RMSprop", 0)
        self.centered = bool(centered)

    def update_step(self, key, g, w, lr):
        rho = _F32(self.rho)
        v = self._slot("velocity", key, w)
        v *= rho
        v += np.square(g) * _F32(1 - self.rho)
        if self.centered:
            a = self._slot("average_gradient", key, w)
            a *= rho
            a += g * _F32(1 - self.rho)
            denominator = v - np.square(a) + _F32(self.epsilon)
        else:
            denominator = v + _F32(self.epsilon)
        increment = g * lr
        increment /= np.sqrt(denominator, out=denominator)
        if self.momentum > 0:
            m = self._slot("momentum", key, w)
            m *= _F32(self.momentum)
            m += increment
            w -= m
        else:
            w -= increment

    def kernel_step(self, kernels, key, g, w, lr):
        v = self._flat_slot("velocity", key, w)
        a = self._flat_slot("average_gradient", key, w) if self.centered else _UNUSED
        m = self._flat_slot("momentum", key, w) if self.momentum > 0 else _UNUSED
        kernels.run(kernels.rmsprop_rows, (w.reshape(-1), g.reshape(-1), v, a, m), lr, _F32(self.rho),
                    _F32(1 - self.rho), _F32(self.momentum), _F32(self.epsilon), self.centered, self.momentum > 0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam with Keras's epsilon-hat form. As ``keras.optimizers.Adam`` (Keras 3)."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _check_number(beta_1, "beta_1", "Adam", 0, 1, high_open=True)
        self.beta_2 = _check_number(beta_2, "beta_2", "Adam", 0, 1, high_open=True)
        self.epsilon = _check_number(epsilon, "epsilon", "Adam", 0)
        self.amsgrad = bool(amsgrad)

    def apply(self, grads, variables, keys=None):
        # Keras computes the step size once per step, in the variables' dtype (float32).
        t = _F32(self.iterations + 1)
        beta_1_power = np.power(_F32(self.beta_1), t)
        beta_2_power = np.power(_F32(self.beta_2), t)
        self._alpha = _F32(self.learning_rate) * np.sqrt(_F32(1) - beta_2_power) / (_F32(1) - beta_1_power)
        super().apply(grads, variables, keys)

    def update_step(self, key, g, w, lr):
        m = self._slot("momentum", key, w)
        v = self._slot("velocity", key, w)
        m += (g - m) * _F32(1 - self.beta_1)
        v += (np.square(g) - v) * _F32(1 - self.beta_2)
        if self.amsgrad:
            v_hat = self._slot("velocity_hat", key, w)
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        denominator = np.sqrt(v)
        denominator += _F32(self.epsilon)
        step = m * self._alpha
        step /= denominator
        w -= step

    def kernel_step(self, kernels, key, g, w, lr):
        m = self._flat_slot("momentum", key, w)
        v = self._flat_slot("velocity", key, w)
        v_hat = self._flat_slot("velocity_hat", key, w) if self.amsgrad else _UNUSED
        kernels.run(kernels.adam_rows, (w.reshape(-1), g.reshape(-1), m, v, v_hat), self._alpha,
                    _F32(1 - self.beta_1), _F32(1 - self.beta_2), _F32(self.epsilon), self.amsgrad)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


def _backend_kernels():
    """The current backend's optimizer kernels (a module), or None: then NumPy runs the formulas."""
    from .backend import get_backend

    return getattr(get_backend(), "optimizer_kernels", None)


def _flat_float32(g, w) -> bool:
    return (g.dtype == _F32 and w.dtype == _F32 and g.shape == w.shape and g.flags.c_contiguous
            and w.flags.c_contiguous and w.flags.writeable)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}
NAMES = sorted(_BY_NAME)


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "rmsprop", "adam", any case) with Keras's defaults, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"optimizer: unknown optimizer {identifier!r}; expected one of {NAMES} or a miniconv.optimizers.Optimizer")


def serialize(optimizer: Optimizer) -> dict:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict) -> Optimizer:
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if config.get("class_name") not in classes:
        raise ValueError(f"optimizer: unknown optimizer class {config.get('class_name')!r}; expected one of {sorted(classes)}")
    return classes[config["class_name"]].from_config(config.get("config", {}))


__all__ = ["NAMES", "SGD", "Adam", "Optimizer", "RMSprop", "deserialize", "get", "serialize"]
