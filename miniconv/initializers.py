"""Weight initialisers with Keras's names and formulas, drawing from an explicit generator.

    glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
    zeros, ones

Fans as Keras computes them: a (in, out) kernel has fan_in = in, fan_out = out; a convolution
kernel (*window, in, out) multiplies both by the window size. Everything is float32.
"""

from __future__ import annotations

import math

import numpy as np

from .utils import as_generator


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as ``keras.initializers`` computes them."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Callable ``init(shape, rng=None) -> float32 array``; rng None means the seed given (or the global one)."""

    name = "initializer"

    def __init__(self, seed=None):
        self.seed = seed
        self._rng = None if seed is None else as_generator(seed, f"{self.name} seed")

    def __call__(self, shape, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def _generator(self, rng):
        if self._rng is not None:
            return self._rng
        return as_generator(rng, f"{self.name} rng")

    def get_config(self) -> dict:
        return {"seed": self.seed} if isinstance(self.seed, int) or self.seed is None else {}


class GlorotUniform(Initializer):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)). As ``keras.initializers.GlorotUniform``."""

    name = "glorot_uniform"

    def __call__(self, shape, rng=None):
        fan_in, fan_out = compute_fans(shape)
        limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
        return self._generator(rng).uniform(-limit, limit, size=tuple(shape)).astype(np.float32)


class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape, rng=None):
        return np.zeros(tuple(shape), np.float32)


class Ones(Initializer):
    name = "ones"

    def __call__(self, shape, rng=None):
        return np.ones(tuple(shape), np.float32)


def glorot_uniform(rng: np.random.Generator | None, shape) -> np.ndarray:
    """A glorot-uniform float32 array of ``shape`` drawn from ``rng`` (None: the global generator)."""
    return GlorotUniform()(shape, rng)


def zeros(shape) -> np.ndarray:
    return np.zeros(tuple(shape), np.float32)


_BY_NAME = {"glorot_uniform": GlorotUniform, "zeros": Zeros, "ones": Ones}
_ALIASES = {"glorotuniform": "glorot_uniform", "zeros": "zeros", "zero": "zeros", "ones": "ones", "one": "ones"}


def get(identifier) -> Initializer:
    """An Initializer from a name ("glorot_uniform", "zeros", "ones") or an Initializer instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        key = _ALIASES.get(key.replace("_", ""), key)
        if key in _BY_NAME:
            return _BY_NAME[key]()
    raise ValueError(f"initializer: expected one of {sorted(_BY_NAME)} or an Initializer, got {identifier!r}")


def serialize(initializer: Initializer) -> str | dict:
    if type(initializer) in _BY_NAME.values() and initializer.seed is None:
        return initializer.name
    return {"class_name": initializer.name, "config": initializer.get_config()}


def deserialize(config) -> Initializer:
    if isinstance(config, dict):
        return _BY_NAME[config["class_name"]](**config.get("config", {}))
    return get(config)


__all__ = ["GlorotUniform", "Initializer", "Ones", "Zeros", "compute_fans", "deserialize", "get", "glorot_uniform", "serialize", "zeros"]
