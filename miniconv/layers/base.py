"""The Layer base class: weights in Keras shapes and order, forward with its backward, config.

A layer's contract, shared by every layer in ``miniconv.layers``:

    out_shape = layer.build(in_shape, rng)   # shapes carry Keras's None batch: (None, 28, 28, 1)
    y, backward = layer.forward(x, training)
    dx = backward(dy)                        # also fills layer.grads, aligned with layer.params

``params`` are the layer's float32 weight arrays (kernel then bias, as Keras orders them). They are
updated in place by the optimizers and by ``set_weights``, so references to them stay valid.
Layers compute with ``miniconv.nn`` ops and ``miniconv.vjp`` only, on the current backend.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from .. import initializers as _initializers

_NAME_COUNTS: dict[str, int] = defaultdict(int)


def to_snake_case(name: str) -> str:
    """Keras's automatic layer-name stem: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(stem: str) -> str:
    """stem, stem_1, stem_2, ... as Keras names layers and models within one process."""
    count = _NAME_COUNTS[stem]
    _NAME_COUNTS[stem] += 1
    return stem if count == 0 else f"{stem}_{count}"


def format_shape(shape) -> str:
    """(None, 26, 26, 32) as Keras prints it."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape_tuple(shape, what: str, owner: str) -> tuple:
    """A shape given by the user: a sequence of positive ints (or None for an unknown size)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{owner}: {what} must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        if d is not None and (not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d <= 0):
            raise ValueError(f"{owner}: {what} must be a tuple of positive ints, got {shape!r}")
    return tuple(None if d is None else int(d) for d in shape)


class Layer:
    """Base class of every layer. Subclasses set ``rank`` checks in ``_check_input`` and define
    ``_build`` (weights), ``compute_output_shape`` and ``forward``."""

    #: backward(dy, input_gradient=False) skips dx: training asks it of the first trained layer
    skips_input_gradient = False

    def __init__(self, *, name=None, trainable=True, input_shape=None, batch_input_shape=None, input_dim=None,
                 batch_size=None, dtype=None, **kwargs):
        cls = type(self).__name__
        if kwargs:
            raise TypeError(f"{cls}: unexpected keyword argument(s) {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32) and np.dtype(dtype) != np.float32:
            raise ValueError(f"{cls}: only dtype float32 is supported, got {dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{cls}: name must be a string, got {name!r}")
        self.name = name or unique_name(to_snake_case(cls))
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape = None  # with the batch axis, set by build
        self.output_shape = None
        self._weight_names: list[str] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray | None] = []
        # The shape the first layer of a Sequential declares (without the batch axis), as Keras reads it.
        self.declared_input_shape = None
        if batch_input_shape is not None:
            self.declared_input_shape = check_shape_tuple(batch_input_shape, "batch_input_shape", cls)[1:]
        elif input_shape is not None:
            self.declared_input_shape = check_shape_tuple(input_shape, "input_shape", cls)
        elif input_dim is not None:
            self.declared_input_shape = check_shape_tuple((input_dim,), "input_dim", cls)
        del batch_size  # accepted for Keras compatibility; the batch size comes from the data

    # --- building ----------------------------------------------------------------------------
    def build(self, input_shape, rng: np.random.Generator | None = None):
        """Check the input shape (with its batch axis), create the weights, return the output shape."""
        input_shape = tuple(input_shape)
        if self.built and self.params and input_shape[-1] != self.input_shape[-1]:
            raise ValueError(f"{self.describe()} was built for input {format_shape(self.input_shape)} (its weights fit "
                             f"{self.input_shape[-1]} input channels) and cannot take {format_shape(input_shape)}")
        output_shape = self.compute_output_shape(input_shape)  # also checks the input shape
        if not self.built:
            self._build(input_shape, rng)
        self.input_shape, self.output_shape, self.built = input_shape, tuple(output_shape), True
        return self.output_shape

    def _build(self, input_shape, rng):
        """Create the weights (none by default)."""

    def add_weight(self, name: str, shape, initializer, rng) -> np.ndarray:
        value = _initializers.get(initializer)(shape, rng)
        self._weight_names.append(name)
        self.params.append(np.ascontiguousarray(value, dtype=np.float32))
        self.grads.append(None)
        return self.params[-1]

    def compute_output_shape(self, input_shape):
        """Output shape (with the batch axis) for ``input_shape``; raises when the input does not fit."""
        return tuple(input_shape)

    def _expect_rank(self, input_shape, rank: int, layout: str):
        if len(input_shape) != rank:
            raise ValueError(
                f"{self.describe()} expects input of rank {rank} {layout}, got shape {format_shape(input_shape)}"
            )

    def describe(self) -> str:
        return f"{type(self).__name__} layer {self.name!r}"

    @property
    def output(self):
        """This layer's output in the Sequential model it was last added to (for ``miniconv.Model``)."""
        ref = getattr(self, "_output_ref", None)
        if ref is None or ref.model is None:
            raise AttributeError(f"{self.describe()} has no output: add it to a Sequential model first")
        return ref

    # --- running -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False):
        """``(y, backward)``: the output and ``backward(dy) -> dx``, which also fills ``self.grads``."""
        raise NotImplementedError

    def forward_with_next(self, next_layer, x: np.ndarray, training: bool = False):
        """``(next_layer's output, backward)`` with this layer and the next one run as one fused op,
        or None when they do not fuse (the default). ``backward(dy)`` takes the next layer's
        upstream gradient and fills both layers' ``grads``."""
        del next_layer, x, training  # no pair by default: the layers run one by one

    def __call__(self, x, training: bool = False):
        """Run the layer on an array (building it for the array's shape first if needed)."""
        x = np.asarray(x, dtype=np.float32)
        if not self.built:
            self.build((None, *x.shape[1:]))
        return self.forward(x, training)[0]

    # --- weights -----------------------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        return list(self.params)

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return list(self.params) if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        return [] if self.trainable else list(self.params)

    @property
    def weight_names(self) -> list[str]:
        """"<layer name>/kernel", "<layer name>/bias", ... in ``params`` order."""
        return [f"{self.name}/{n}" for n in self._weight_names]

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]

    def set_weights(self, weights) -> None:
        """Copy ``weights`` (Keras order and shapes) into the layer's arrays, in place."""
        weights = list(weights)
        if len(weights) != len(self.params):
            raise ValueError(f"{self.describe()} has {len(self.params)} weight arrays, got {len(weights)}")
        for name, target, value in zip(self._weight_names, self.params, weights):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"{self.describe()}: weight {name!r} has shape {target.shape}, got {value.shape}")
            np.copyto(target, value.astype(np.float32, copy=False))

    # --- config ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        shape = "" if self.output_shape is None else f", output {format_shape(self.output_shape)}"
        return f"<{type(self).__name__} {self.name!r}{shape}>"
