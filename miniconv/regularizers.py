"""Weight regularizers with Keras's names and formulas: a penalty added to the training loss.

    L1(l1=0.01)             l1 * sum(|w|)                  gradient l1 * sign(w)
    L2(l2=0.01)             l2 * sum(w^2)                  gradient 2 * l2 * w
    L1L2(l1=0.0, l2=0.0)    both                            both

As ``keras.regularizers``: ``Dense(..., kernel_regularizer=regularizers.L2(1e-4))`` or the names
"l1", "l2", "l1l2" (Keras's defaults). ``fit`` adds every penalty of the trainable weights to the
batch's loss (the loss it reports includes them, as Keras's does) and each penalty's gradient to
its weight's gradient, before the optimizer step; ``evaluate`` adds them to the loss too.
Everything is float32, on the host.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

_F32 = np.float32


def _factor(value, name: str, owner: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """``penalty(w) -> float`` and ``gradient(w) -> array`` of a weight array (float32)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        owner = type(self).__name__
        self.l1, self.l2 = _factor(l1, "l1", owner), _factor(l2, "l2", owner)

    def __call__(self, w) -> float:
        return self.penalty(w)

    def penalty(self, w) -> float:
        w = np.asarray(w, _F32)
        total = _F32(0)
        if self.l1:
            total += _F32(self.l1) * np.sum(np.abs(w), dtype=_F32)
        if self.l2:
            total += _F32(self.l2) * np.sum(np.square(w), dtype=_F32)
        return float(total)

    def gradient(self, w) -> np.ndarray:
        w = np.asarray(w, _F32)
        grad = np.zeros_like(w)
        if self.l1:
            grad += _F32(self.l1) * np.sign(w)
        if self.l2:
            grad += _F32(2 * self.l2) * w
        return grad

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.get_config().items())})"


class L1(Regularizer):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        super().__init__(l1=l1, l2=l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2}
_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def get(identifier, owner: str = "regularizer"):
    """None, a Regularizer, a name ("l1", "l2", "l1l2"; any case) or a serialized dict -> Regularizer or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"{owner}: unknown regularizer {identifier!r}; expected None, one of {sorted(_BY_NAME)} or a "
                     f"miniconv.regularizers.Regularizer")


def serialize(regularizer) -> dict | None:
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "serialize"]
