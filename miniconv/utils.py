"""Seeding: one documented generator behind every random choice miniconv makes on its own.

    miniconv.utils.set_random_seed(0)     # weight initialisation, fit's shuffling, dropout masks

``global_rng()`` is that generator (a ``np.random.Generator``). Nothing else in miniconv keeps
random state: a layer given ``seed=`` uses its own generator, and every op that draws takes an
explicit generator. Two runs that call ``set_random_seed(n)`` first and do the same things give
the same numbers.
"""

from __future__ import annotations

import numbers

import numpy as np

_GLOBAL_RNG = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Reseed miniconv's global generator (as ``keras.utils.set_random_seed``, for miniconv's draws)."""
    global _GLOBAL_RNG
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed: expected a non-negative int, got {seed!r}")
    _GLOBAL_RNG = np.random.default_rng(int(seed))


def clear_session() -> None:
    """Forget the automatic layer names given so far, as ``keras.utils.clear_session`` does.

    Layers named automatically after this call start again at ``conv2d``, ``dense``, ... Models
    already built keep their names.
    """
    from .layers.base import reset_names

    reset_names()


def global_rng() -> np.random.Generator:
    """The generator used for initialisation, shuffling and dropout when no seed is given."""
    return _GLOBAL_RNG


def as_generator(seed, what: str = "seed") -> np.random.Generator:
    """None -> the global generator; an int -> a new generator seeded with it; a Generator as is."""
    if seed is None:
        return _GLOBAL_RNG
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"{what}: expected None, an int or a np.random.Generator, got {seed!r}")


def get_rng_state() -> dict:
    """The global generator's state (a JSON-serialisable dict), for checkpoints that resume exactly."""
    return _GLOBAL_RNG.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state`` (e.g. the one a saved model carries)."""
    try:
        _GLOBAL_RNG.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"set_rng_state: not a PCG64 generator state: {error}") from None


def to_categorical(x, num_classes=None) -> np.ndarray:
    """Integer class labels -> one-hot rows (float64), as ``keras.utils.to_categorical``.

    A trailing axis of size 1 is dropped first; ``num_classes`` defaults to max(x) + 1.
    """
    x = np.array(x, dtype="int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    x = x.reshape(-1)
    if num_classes is None:
        num_classes = int(np.max(x)) + 1 if x.size else 0
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got {num_classes!r}")
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes - 1}], got {x.min()} to {x.max()}")
    categorical = np.zeros((len(x), int(num_classes)))
    categorical[np.arange(len(x)), x] = 1
    return categorical.reshape(*shape, int(num_classes))


__all__ = ["as_generator", "clear_session", "get_rng_state", "global_rng", "set_random_seed", "set_rng_state", "to_categorical"]
