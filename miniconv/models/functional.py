"""``Model``: Keras's functional API, a graph of layer calls from input tensors to output tensors.

    inputs = miniconv.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    y = layers.Conv2D(16, 3, padding="same")(x)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(layers.Add()([x, y])))
    model = miniconv.Model(inputs, outputs)             # compile / fit / evaluate / predict / summary / save

A model is a layer too: called on a tensor it becomes one node of another graph (a pretrained base
under a new head); ``model.trainable = False`` freezes all its layers. ``Sequential`` is the same
kind of model whose graph is a chain. Keras's ``Model(model.input, [l.output for l in
model.layers])`` idiom (activations of a trained model) works as in Keras.

Where the rest lives: the graph walk and the compiled run in ``miniconv/engine``, the loops in
``miniconv/training``, summaries in ``summary.py``, looking inside in ``inspection.py``,
architectures in ``config.py``, files in ``miniconv/saving.py`` and ``loading.py``.
"""

from __future__ import annotations

import os

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .. import saving
from ..engine.graph import Graph, map_graph
from ..engine.tensors import SymbolicTensor, flatten_tensors
from ..layers.base import Layer, unique_name
from ..layers.core import InputLayer
from ..shapes import format_shape
from ..training import inference, loops
from . import config as config_module
from . import inspection
from .summary import summary_text


class Model(Layer):
    """A graph of layers from ``inputs`` to ``outputs`` (symbolic tensors), as ``keras.Model``."""

    is_model = True
    #: True for a Sequential: its graph is a chain by construction
    is_sequential = False

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        super().__init__(name=name or unique_name("functional"), trainable=trainable)
        self.optimizer = self.loss = None
        self.compiled_metrics: list = []
        self.history = None
        self.stop_training = False
        self.epochs_completed = 0  # epochs fit has finished, saved with the model (resume with initial_epoch=)
        self._graph: Graph | None = None
        self._single_input = self._single_output = True
        if inputs is None and outputs is None:
            return  # a Sequential sets its graph itself
        if inputs is None or outputs is None:
            raise ValueError(f"{self.name}: Model needs both inputs= and outputs= (symbolic tensors)")
        self._single_input = isinstance(inputs, SymbolicTensor)
        self._single_output = isinstance(outputs, SymbolicTensor)
        self._set_graph(flatten_tensors(inputs), flatten_tensors(outputs))
        if not trainable:
            self.trainable = False

    def _set_graph(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]) -> None:
        self._graph = map_graph(inputs, outputs)
        self.built = True
        shapes = [t.shape for t in inputs]
        self.input_shape = shapes[0] if self._single_input else shapes
        out = [t.shape for t in outputs]
        self.output_shape = out[0] if self._single_output else out

    # --- the graph ---------------------------------------------------------------------------
    def subgraph(self) -> Graph:
        """The graph of layer calls this model runs (what the engine compiles)."""
        if self._graph is None:
            raise ValueError(f"{self.name} is not built yet: give it an input shape (an Input, or input_shape= on "
                             f"its first layer), or call build() or fit()")
        return self._graph

    @property
    def layers(self) -> list:
        """The model's layers in Keras's order; a functional model's InputLayers come first, as in Keras."""
        return list(self._graph.layers) if self._graph is not None else []

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return list(self.subgraph().inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return list(self.subgraph().outputs)

    @property
    def input(self):
        inputs = self.inputs
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        outputs = self.outputs
        return outputs[0] if len(outputs) == 1 else outputs

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers are {[layer.name for layer in self.layers]}")

    def compute_output_shape(self, input_shape):
        expected = self.input_shape
        given = [tuple(input_shape)] if self._single_input else [tuple(s) for s in input_shape]
        wanted = [expected] if self._single_input else expected
        for e, g in zip(wanted, given):
            if len(e) != len(g) or any(a is not None and b is not None and a != b for a, b in zip(e[1:], g[1:])):
                raise ValueError(f"{self.name} expects input of shape {format_shape(e)}, got {format_shape(g)}")
        return self.output_shape

    def build(self, input_shape=None, rng=None):
        """A functional model is built when made; this checks ``input_shape`` fits and returns the output shape."""
        if input_shape is not None:
            self.compute_output_shape(input_shape)
        return self.output_shape

    # --- the layer protocol (a model inside another, or called on arrays) -----------------------
    def _call_symbolic(self, inputs):
        if self._single_input and isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            inputs = inputs[0]
        if not self._single_input and isinstance(inputs, SymbolicTensor):
            raise TypeError(f"{self.name} takes a list of {len(self.inputs)} tensors, got one")
        self.input_structure = "single" if self._single_input else "list"
        return super()._call_symbolic(inputs)

    def call(self, inputs, weights, training=False):
        """The model's output(s) and pullback for backend arrays, with ``weights`` in ``params`` order."""
        return inspection.call_with_weights(self, inputs, weights, training)

    def forward(self, x, training=False):
        """(y, backward): ``backward(dy)`` returns dx and leaves every layer's weight gradients in its ``grads``."""
        return inspection.forward_filling_grads(self, x, training)

    def __call__(self, inputs, training=False):
        """On symbolic tensors: a node of another graph. On arrays: the output(s) for one batch."""
        from ..engine.tensors import is_symbolic

        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        return inspection.call_on_arrays(self, inputs, training)

    # --- weights -----------------------------------------------------------------------------
    def leaf_layers(self) -> list:
        """The layers that own weights directly, in Keras's weight order; a shared layer once."""
        seen, leaves = set(), []
        for layer in self.layers:
            for leaf in layer.leaf_layers():
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    leaves.append(leaf)
        return leaves

    @property
    def trainable(self) -> bool:
        return getattr(self, "_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """As Keras: setting it sets every layer's flag (a frozen base, a trained head)."""
        self._trainable = bool(value)
        for layer in self.layers if getattr(self, "_graph", None) is not None else []:
            layer.trainable = self._trainable

    def _create_weight_lists(self) -> None:
        """A model owns no arrays: its weights, names and gradients are its layers'."""

    @property
    def params(self) -> list:
        return [p for leaf in self.leaf_layers() for p in leaf.params]

    @property
    def grads(self) -> list:
        return [g for leaf in self.leaf_layers() for g in leaf.grads]

    @property
    def weight_names(self) -> list:
        return [n for leaf in self.leaf_layers() for n in leaf.weight_names]

    @property
    def trainable_mask(self) -> list[bool]:
        return [t for leaf in self.leaf_layers() for t in leaf.trainable_mask]

    @property
    def trainable_weights(self) -> list:
        return [p for p, t in zip(self.params, self.trainable_mask) if t]

    @property
    def non_trainable_weights(self) -> list:
        return [p for p, t in zip(self.params, self.trainable_mask) if not t]

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.name} is not built yet: give the first layer input_shape=, or call build() or fit()")
        return int(sum(p.size for p in self.params))

    def set_weights(self, weights) -> None:
        """Copy Keras-ordered arrays (e.g. a Keras model's ``get_weights()``) into the model, in place."""
        weights = list(weights)
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"{self.name}: expected {len(params)} weight arrays (per layer, kernel then bias), got {len(weights)}")
        for name, target, value in zip(self.weight_names, params, weights):
            value = np.asarray(value)
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{self.describe()}: weight {name!r} must "
                                f"hold real numbers, got dtype {value.dtype}")
            if value.shape != target.shape:
                raise ValueError(f"{self.name}: weight {name!r} has shape {target.shape}, got an array of shape {value.shape}")
        for target, value in zip(params, weights):
            np.copyto(target, np.asarray(value).astype(np.float32, copy=False))

    # --- compile, fit, evaluate, predict -----------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """As ``keras.Model.compile``; loss_weights / weighted_metrics are not supported (one output)."""
        if loss_weights is not None:
            hint = ""
            if isinstance(loss_weights, str) or (isinstance(loss_weights, (list, tuple)) and any(isinstance(m, str) for m in loss_weights)):
                hint = " (the third positional argument of compile is loss_weights, as in Keras: pass metrics=[...] by name)"
            raise ValueError(f"compile: loss_weights is not supported, got {loss_weights!r}{hint}")
        if weighted_metrics is not None:
            raise ValueError(f"compile: weighted_metrics is not supported, got {weighted_metrics!r}")
        if loss is None:
            raise ValueError(f"compile: a loss is required; expected one of {losses_module.NAMES} or a miniconv.losses.Loss")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        for metric in metrics:
            metrics_module.get(metric)  # an unknown name fails here, not in fit
        names = [m if isinstance(m, str) else m.name for m in metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"compile: metric names must be unique and not 'loss', got {names}")
        self.compiled_metrics = list(metrics)

    @property
    def compiled(self) -> bool:
        return self.loss is not None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train as ``keras.Model.fit``; returns a ``History`` (``.history``: loss, metrics, val_...).

        batch_size defaults to 32; shuffle draws from ``miniconv.utils``'s generator;
        validation_split takes the last samples, before shuffling, as Keras does. A NaN or
        infinite loss raises ``NonFiniteLossError`` naming the epoch and step.
        """
        return loops.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                         shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
                         validation_batch_size, validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics: ``[loss, *metrics]``) over (x, y), as ``keras.Model.evaluate``."""
        return inference.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's output for every sample of x (training=False), float32; a list for several outputs."""
        return inference.predict(self, x, batch_size, verbose, steps, callbacks)

    # --- looking inside ----------------------------------------------------------------------
    def activations(self, x, batch_size=None, layers=None) -> list:
        """Every layer's output for x (InputLayers excluded), or those of ``layers`` (names, layers or
        indices into ``model.layers``), training=False."""
        return inspection.activations(self, x, batch_size, layers)

    def input_gradient(self, x, layer=-1, upstream=None, channel=None, return_value=False):
        """d objective / d x for the output of ``layer`` (a name, a layer or an index), training=False.

        The objective is ``sum(upstream * output)`` when ``upstream`` (shaped like that output) is
        given, otherwise the mean of the output, or of its channel ``channel`` (the last axis) —
        the gradient-ascent objective of filter-pattern pictures. Returns an array shaped like x
        (float32), or ``(gradient, objective)`` with ``return_value=True``.
        """
        return inspection.input_gradient(self, x, layer, upstream, channel, return_value)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print the layer table, output shapes and parameter counts as Keras 3 prints them."""
        (print_fn or print)(summary_text(self))

    # --- saving ------------------------------------------------------------------------------
    def save(self, filepath, overwrite=True, include_optimizer=True) -> None:
        """Architecture (JSON), weights and optimizer state in one file, written atomically; no pickle.

        ``miniconv.load_model(filepath)`` reads it back. See ``miniconv.saving``.
        """
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save: {filepath} exists and overwrite=False")
        saving.save_model(self, filepath, include_optimizer)

    def save_weights(self, filepath) -> None:
        """Only the weights (Keras order) as an .npz file, written atomically."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        saving.load_weights(self, filepath)

    def to_keras(self):
        """This model as a Keras model with the same layers, names, weights and trainable flags (needs Keras)."""
        from .to_keras import to_keras

        return to_keras(self)

    # --- configuration -----------------------------------------------------------------------
    def get_config(self) -> dict:
        return config_module.functional_config(self)

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None):
        """A new model from ``get_config()``; weights initialised from ``rng`` (default a private generator)."""
        return config_module.functional_from_config(cls, config, rng)

    def describe(self) -> str:
        return f"{type(self).__name__} model {self.name!r}"

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}: {len(self.layers)} layers>"


__all__ = ["InputLayer", "Model"]
