"""``Sequential``: a model whose graph is a chain, as ``keras.Sequential``.

    model = miniconv.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])

Once its input shape is known (an ``Input`` first, ``input_shape=`` on the first layer, ``build``,
or the first batch ``fit`` sees), it calls each layer on the previous one's output, which makes
the graph every other part of miniconv reads: it is then a ``Model`` in every way. Adding or
removing a layer makes the graph again. ``model.layers`` lists the layers without the input, as
in Keras.
"""

from __future__ import annotations

import numpy as np

from ..engine.tensors import SymbolicTensor
from ..layers.base import Layer, unique_name
from ..layers.core import InputLayer
from ..utils import global_rng
from . import config as config_module
from .functional import Model


def _declared_shape(layer):
    """The input shape (without the batch axis) a first layer gives a Sequential: ``input_shape=``,
    or a built model's own single input shape (as Keras 3)."""
    if layer.declared_input_shape is not None:
        return layer.declared_input_shape
    if layer.is_model and layer.built and not isinstance(layer.input_shape, list):
        return tuple(layer.input_shape[1:])
    return None


class Sequential(Model):
    """A linear stack of layers, as ``keras.Sequential``."""

    is_sequential = True

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name or unique_name("sequential"), trainable=trainable)
        self._layers: list = []
        self._input_layer: InputLayer | None = None
        self.declared_input_shape = None
        self._init_rng = None  # from_config builds with its own generator: loading never draws from the global one
        for layer in layers or []:
            self.add(layer)

    # --- building ----------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append a layer (or a model); the graph is made at once when the input shape is known, as in Keras."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.history.layer, InputLayer):
            layer = layer.history.layer  # Sequential([miniconv.Input(shape), ...])
        if isinstance(layer, InputLayer):
            if self._layers or self.declared_input_shape is not None:
                raise ValueError(f"{self.name}: an Input can only be the first entry of a Sequential model")
            self.declared_input_shape = layer.declared_input_shape
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() expects a miniconv layer, got {layer!r}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"{self.name}: all layers must have unique names; {layer.name!r} is already in the model")
        declared = self.declared_input_shape
        if not self._layers and declared is None:
            self.declared_input_shape = _declared_shape(layer)
        self._layers.append(layer)
        if not self.trainable:
            layer.trainable = False
        if self.declared_input_shape is not None or self._graph is not None:
            try:
                self._make_graph()
            except Exception:  # a layer that does not fit leaves the model as it was
                self._layers.pop()
                self.declared_input_shape = declared
                self._make_graph_if_possible()
                raise

    def pop(self):
        layer = self._layers.pop()
        self._drop_nodes(layer)
        self._make_graph_if_possible()
        return layer

    def build(self, input_shape=None, rng=None):
        """Make the graph for ``input_shape`` (with its batch axis, as Keras: ``(None, 28, 28, 1)``)."""
        if input_shape is None:
            if self.declared_input_shape is None:
                raise ValueError(f"{self.name}: build() needs an input shape, e.g. model.build((None, 28, 28, 1))")
            input_shape = (None, *self.declared_input_shape)
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(f"{self.name}: input_shape must include the batch axis, e.g. (None, 28, 28, 1); got {shape}")
        if self._graph is not None and tuple(self.input_shape[1:]) == shape[1:]:
            return self.output_shape
        self._make_graph(shape[1:], rng)
        return self.output_shape

    def _make_graph_if_possible(self) -> None:
        if self._layers and (self.declared_input_shape is not None or self._graph is not None):
            self._make_graph()
        elif not self._layers:
            self._graph, self.built, self.input_shape, self.output_shape = None, False, None, None

    def _make_graph(self, shape=None, rng=None) -> None:
        """Call every layer on the previous one's output, from an input of ``shape`` (without the batch axis)."""
        if shape is None:
            shape = self.declared_input_shape if self._graph is None else self.input_shape[1:]
        if self._input_layer is None or tuple(self._input_layer.declared_input_shape) != tuple(shape):
            self._input_layer = InputLayer(shape=shape, name=unique_name(f"{self.name}_input"))
        rng = (self._init_rng or global_rng()) if rng is None else rng
        for layer in self._layers:
            self._drop_nodes(layer)
        x = self._input_layer.output
        for layer in self._layers:
            if not layer.built:
                layer.build(x.shape, rng)
            x = layer(x)
        self._set_graph([self._input_layer.output], [x])

    def _drop_nodes(self, layer) -> None:
        """Forget the nodes this model's earlier graph made on ``layer``."""
        if self._graph is not None:
            mine = set(self._graph.nodes)
            layer._inbound_nodes[:] = [n for n in layer._inbound_nodes if n not in mine]

    # --- the graph ---------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        """The layers, without the input (as Keras lists a Sequential's)."""
        return list(self._layers)

    def leaf_layers(self) -> list:
        return [leaf for layer in self._layers for leaf in layer.leaf_layers()]

    @property
    def trainable(self) -> bool:
        return getattr(self, "_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in getattr(self, "_layers", []):
            layer.trainable = self._trainable

    # --- configuration -----------------------------------------------------------------------
    def get_config(self) -> dict:
        return config_module.sequential_config(self)

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None):
        return config_module.sequential_from_config(cls, config, rng)

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self._layers)} layers>"
