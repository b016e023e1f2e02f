"""The Layer base class: weights in Keras shapes and order, one op with its pullback, config.

A layer's contract, shared by every layer in ``miniconv.layers`` (and by models, which are layers):

    out_shape = layer.build(in_shape, rng)          # shapes carry Keras's None batch: (None, 28, 28, 1)
    y, pullback = layer.call(x, weights, training)  # x and weights are arrays of the current backend
    dx, dweights = pullback(dy)                      # dweights aligned with weights (None: no gradient)

``call`` is the layer's own computation and nothing else: it never looks at other layers, and it
never reads its own ``params`` (the engine passes the weights, so the same call runs on host
arrays or on a GPU's). ``pullback(dy, input_gradient=False)`` may skip dx (it then returns None
for it): a network's first layers need only their weight gradients. Layers with several inputs
(``Add``, ``Concatenate``) take and return lists.

Calling a layer:

    y = layer(x_array)                 # eager: builds for x's shape, runs ``call`` on the layer's params
    t = layer(symbolic_tensor)         # functional API: records a Node, returns a SymbolicTensor
    y, backward = layer.forward(x)     # eager with the pullback; ``backward(dy)`` fills ``layer.grads``

``params`` are the layer's float32 weight arrays on the host (kernel then bias, as Keras orders
them); optimizers and ``set_weights`` update them in place, so references to them stay valid.
Every public subclass registers itself by class name (``registered_class``), which is how a saved
architecture names its layers. Layers compute with ``miniconv.nn`` ops and ``miniconv.vjp`` only.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from .. import initializers as _initializers
from ..engine.tensors import Node, SymbolicTensor, is_symbolic
from ..shapes import format_shape

_NAME_COUNTS: dict[str, int] = defaultdict(int)
_CLASSES: dict[str, type] = {}


def to_snake_case(name: str) -> str:
    """Keras's automatic layer-name stem: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(stem: str) -> str:
    """stem, stem_1, stem_2, ... as Keras names layers and models within one process."""
    count = _NAME_COUNTS[stem]
    _NAME_COUNTS[stem] += 1
    return stem if count == 0 else f"{stem}_{count}"


def reset_names() -> None:
    """Start automatic names afresh: the next Conv2D is ``conv2d`` again (``miniconv.utils.clear_session``)."""
    _NAME_COUNTS.clear()


def registered_class(name: str):
    """The layer or model class a saved architecture names (``"Conv2D"``, ``"Sequential"``), or None."""
    return _CLASSES.get(name)


def registered_names() -> list[str]:
    return sorted(_CLASSES)


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


def _shapes(value) -> list:
    return [value] if isinstance(value, tuple) and (not value or not isinstance(value[0], tuple)) else list(value)


class Layer:
    """Base class of every layer. Subclasses define ``compute_output_shape``, ``call`` and, for
    weights, ``_build``; ``get_config`` returns their constructor arguments."""

    #: "single": call takes one array; "list": a list of arrays (merge layers)
    input_structure = "single"
    #: True for models: a layer made of other layers (``subgraph`` gives their graph)
    is_model = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _CLASSES[cls.__name__] = cls

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
        self.input_shape = None  # with the batch axis (a list of shapes for a merge layer), set by build
        self.output_shape = None
        self._create_weight_lists()
        self._inbound_nodes: list[Node] = []
        # The shape the first layer of a Sequential declares (without the batch axis), as Keras reads it.
        self.declared_input_shape = None
        if batch_input_shape is not None:
            self.declared_input_shape = check_shape_tuple(batch_input_shape, "batch_input_shape", cls)[1:]
        elif input_shape is not None:
            self.declared_input_shape = check_shape_tuple(input_shape, "input_shape", cls)
        elif input_dim is not None:
            self.declared_input_shape = check_shape_tuple((input_dim,), "input_dim", cls)
        del batch_size  # accepted for Keras compatibility; the batch size comes from the data

    def _create_weight_lists(self) -> None:
        """The arrays this layer owns: weights (host float32, Keras order), their names and gradients."""
        self._weight_names: list[str] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray | None] = []
        self.weight_regularizers: list = []  # per weight: a miniconv.regularizers.Regularizer or None

    # --- building ----------------------------------------------------------------------------
    def build(self, input_shape, rng: np.random.Generator | None = None):
        """Check the input shape (with its batch axis), create the weights, return the output shape."""
        input_shape = tuple(input_shape) if self.input_structure == "single" else [tuple(s) for s in input_shape]
        if self.built and self.params and self.input_structure == "single" and input_shape[-1] != self.input_shape[-1]:
            raise ValueError(f"{self.describe()} was built for input {format_shape(self.input_shape)} (its weights fit "
                             f"{self.input_shape[-1]} input channels) and cannot take {format_shape(input_shape)}")
        output_shape = self.compute_output_shape(input_shape)  # also checks the input shape
        if not self.built:
            self._build(input_shape, rng)
        self.input_shape, self.output_shape, self.built = input_shape, tuple(output_shape), True
        return self.output_shape

    def _build(self, input_shape, rng):
        """Create the weights (none by default)."""

    def add_weight(self, name: str, shape, initializer, rng, regularizer=None) -> np.ndarray:
        value = _initializers.get(initializer)(shape, rng)
        self._weight_names.append(name)
        self.params.append(np.ascontiguousarray(value, dtype=np.float32))
        self.grads.append(None)
        self.weight_regularizers.append(regularizer)
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

    # --- computing ---------------------------------------------------------------------------
    def call(self, inputs, weights: list, training: bool = False):
        """``(y, pullback)`` for backend arrays ``inputs`` and ``weights``; see the module docstring."""
        raise NotImplementedError

    def forward(self, x, training: bool = False):
        """``(y, backward)`` on the layer's own weights; ``backward(dy, input_gradient=True)``
        returns dx and stores the weight gradients in ``self.grads``."""
        y, pullback = self.call(x, self.params, training)

        def backward(dy, input_gradient=True):
            dx, dweights = pullback(dy, input_gradient=input_gradient)
            self.grads = list(dweights)
            return dx

        return y, backward

    def __call__(self, inputs, training: bool = False):
        """On symbolic tensors: record the call in a graph (functional API). On arrays: compute
        (building the layer for their shape first if needed)."""
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        if self.input_structure == "list":
            if not isinstance(inputs, (list, tuple)):
                raise TypeError(f"{self.describe()} takes a list of arrays, got {type(inputs).__name__}")
            xs = [np.asarray(x, dtype=np.float32) for x in inputs]
            if not self.built:
                self.build([(None, *x.shape[1:]) for x in xs])
            return self.call(xs, self.params, training)[0]
        x = np.asarray(inputs, dtype=np.float32)
        if not self.built:
            self.build((None, *x.shape[1:]))
        return self.call(x, self.params, training)[0]

    def _call_symbolic(self, inputs):
        if self.input_structure == "list":
            if isinstance(inputs, SymbolicTensor):
                raise TypeError(f"{self.describe()} takes a list of tensors, e.g. layers.Add()([a, b]); got one tensor")
            tensors = list(inputs)
            shape = [t.shape for t in tensors]
        else:
            if not isinstance(inputs, SymbolicTensor):
                if len(inputs) != 1:
                    raise TypeError(f"{self.describe()} takes one tensor, got a list of {len(inputs)}")
                inputs = inputs[0]
            tensors, shape = [inputs], inputs.shape
        output_shape = self.build(shape)
        node = Node(self, tensors, _shapes(output_shape), self.input_structure)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    # --- the graph ---------------------------------------------------------------------------
    def subgraph(self):
        """The graph of layer calls inside this layer: None for a layer, the model's graph for a model."""
        return

    def _node_tensors(self, attribute: str, what: str):
        if not self._inbound_nodes:
            raise AttributeError(f"{self.describe()} has no {what}: it has not been called on a tensor nor added "
                                 f"to a model with a known input shape")
        tensors = getattr(self._inbound_nodes[0], attribute)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def output(self):
        """The tensor this layer made at its first call in a graph (as Keras), for ``miniconv.Model``."""
        return self._node_tensors("outputs", "output")

    @property
    def input(self):
        """The tensor this layer read at its first call in a graph (as Keras)."""
        return self._node_tensors("inputs", "input")

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

    @property
    def trainable_mask(self) -> list[bool]:
        """Per weight of ``params``: does training update it? (Keras's trainable / non-trainable split.)"""
        return [self.trainable] * len(self.params)

    def leaf_layers(self) -> list:
        """The layers that own weights directly: the layer itself (a model returns its layers' leaves)."""
        return [self]

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
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{self.describe()}: weight {name!r} must "
                                f"hold real numbers, got dtype {value.dtype}")
            if value.shape != target.shape:
                raise ValueError(f"{self.describe()}: weight {name!r} has shape {target.shape}, got {value.shape}")
        for target, value in zip(self.params, weights):
            np.copyto(target, np.asarray(value).astype(np.float32, copy=False))

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


def identity_pullback(dy, input_gradient=True):
    """The pullback of a layer that passes its input through unchanged and has no weights."""
    return (dy if input_gradient else None), []
