"""``Sequential``: Keras's model API (build, compile, fit, evaluate, predict, summary, weights) on
miniconv's layers, plus what feature-map and filter-pattern pictures need:

    model.activations(x)                    # every layer's output for x, a list
    miniconv.Model(model.input, [l.output for l in model.layers[:4]]).predict(x)   # Keras's idiom
    model.input_gradient(x, "conv2d_2", channel=5)   # d mean(layer output[..., 5]) / d x

A Sequential also behaves as a layer (``forward``, ``params``, ``trainable``), so a trained base
can be added to another model, frozen, under a new head. The loops are in ``training.py``.
"""

from __future__ import annotations

import os

import numpy as np

from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import saving
from . import training as _train
from .inspection import SymbolicOutput, collect_outputs
from .layers import LAYER_CLASSES
from .layers.base import Layer, unique_name
from .layers.core import InputLayer
from .summary import summary_text
from .training import leaf_layers
from .utils import global_rng


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``."""

    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or unique_name("sequential")
        self.layers: list = []
        self.input_shape = None  # with the batch axis
        self.declared_input_shape = None
        self.optimizer = self.loss = None
        self.compiled_metrics: list = []
        self.history = None
        self.stop_training = False
        self.epochs_completed = 0  # epochs fit has finished, saved with the model (resume with initial_epoch=)
        self._init_rng = None  # from_config builds with its own generator: loading never draws from the global one
        self._trainable = bool(trainable)
        self._input_ref = SymbolicOutput(self, -1)
        for layer in layers or []:
            self.add(layer)

    # --- building ----------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append a layer (or a Sequential); built at once when the input shape is known, as in Keras."""
        if isinstance(layer, InputLayer):
            if self.layers or self.declared_input_shape is not None:
                raise ValueError(f"{self.name}: an Input can only be the first entry of a Sequential model")
            self.declared_input_shape = layer.declared_input_shape
            self.build((None, *layer.declared_input_shape))
            return
        if not isinstance(layer, (Layer, Sequential)):
            raise TypeError(f"{self.name}: add() expects a miniconv layer, got {layer!r}")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"{self.name}: all layers must have unique names; {layer.name!r} is already in the model")
        declared = self.declared_input_shape
        if not self.layers and declared is None and layer.declared_input_shape is not None:
            self.declared_input_shape = layer.declared_input_shape
        self.layers.append(layer)
        if self.declared_input_shape is not None:
            try:
                self.build((None, *self.declared_input_shape))
            except Exception:  # a layer that does not fit leaves the model as it was
                self.layers.pop()
                self.declared_input_shape = declared
                raise
        layer._output_ref = SymbolicOutput(self, len(self.layers) - 1)
        if not self._trainable:
            layer.trainable = False

    def pop(self):
        layer = self.layers.pop()
        if self.layers and self.input_shape is not None:
            self.build(self.input_shape)
        return layer

    def build(self, input_shape=None, rng=None):
        """Build every layer for ``input_shape`` (with its batch axis, as Keras: ``(None, 28, 28, 1)``)."""
        if input_shape is None:
            if self.declared_input_shape is None:
                raise ValueError(f"{self.name}: build() needs an input shape, e.g. model.build((None, 28, 28, 1))")
            input_shape = (None, *self.declared_input_shape)
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(f"{self.name}: input_shape must include the batch axis, e.g. (None, 28, 28, 1); got {shape}")
        rng = (self._init_rng or global_rng()) if rng is None else rng
        self.input_shape = (None, *shape[1:])
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng)  # a layer built before checks its weights still fit
        return shape

    @property
    def built(self) -> bool:
        return self.input_shape is not None and bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def input(self) -> SymbolicOutput:
        return self._input_ref

    @property
    def inputs(self) -> list:
        return [self._input_ref]

    @property
    def output(self) -> SymbolicOutput:
        if not self.layers:
            raise AttributeError(f"{self.name} has no layers")
        return self.layers[-1].output

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers are {[layer.name for layer in self.layers]}")

    def _layer_index(self, layer) -> int:
        if isinstance(layer, str):
            layer = self.get_layer(layer)
        if isinstance(layer, (Layer, Sequential)):
            for i, candidate in enumerate(self.layers):
                if candidate is layer:
                    return i
            raise ValueError(f"{self.name}: {layer!r} is not a layer of this model")
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and -len(self.layers) <= layer < len(self.layers):
            return int(layer) % len(self.layers)
        raise ValueError(f"{self.name}: layer must be a name, a layer of the model or an index in "
                         f"[-{len(self.layers)}, {len(self.layers) - 1}], got {layer!r}")

    # --- the layer protocol (a Sequential inside another) -------------------------------------
    def forward(self, x, training=False):
        y, backward = _train.forward(self.layers, x, training)

        def backward_all(dy):
            for back in reversed(backward):
                dy = back(dy)
            return dy

        return y, backward_all

    def __call__(self, x, training=False):
        """The model's output for x in one batch (building the model for x's shape if needed)."""
        x = _train.take(_train.check_model_input(self, x, f"{self.name}: x"), slice(None))
        return _train.forward(self.layers, x, training)[0]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """As Keras: setting it sets every layer's flag (a frozen base, a trained head)."""
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = self._trainable

    @property
    def params(self) -> list:
        return [p for leaf in leaf_layers(self) for p in leaf.params]

    @property
    def grads(self) -> list:
        return [g for leaf in leaf_layers(self) for g in leaf.grads]

    @property
    def weight_names(self) -> list:
        return [n for leaf in leaf_layers(self) for n in leaf.weight_names]

    def describe(self) -> str:
        return f"Sequential model {self.name!r}"

    # --- weights -----------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        return self.params

    @property
    def trainable_weights(self) -> list:
        return [p for leaf in leaf_layers(self) if leaf.trainable for p in leaf.params]

    @property
    def non_trainable_weights(self) -> list:
        return [p for leaf in leaf_layers(self) if not leaf.trainable for p in leaf.params]

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.name} is not built yet: give the first layer input_shape=, or call build() or fit()")
        return int(sum(p.size for p in self.params))

    def get_weights(self) -> list:
        """Copies of every weight array, in Keras's order: per layer, kernel then bias."""
        return [p.copy() for p in self.params]

    def set_weights(self, weights) -> None:
        """Copy Keras-ordered arrays (e.g. a Keras model's ``get_weights()``) into the model, in place."""
        weights = list(weights)
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"{self.name}: expected {len(params)} weight arrays (per layer, kernel then bias), got {len(weights)}")
        for name, target, value in zip(self.weight_names, params, weights):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"{self.name}: weight {name!r} has shape {target.shape}, got an array of shape {value.shape}")
        for target, value in zip(params, weights):
            np.copyto(target, np.asarray(value, dtype=np.float32))

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
        return _train.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                            shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
                            validation_batch_size, validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics: ``[loss, *metrics]``) over (x, y), as ``keras.Model.evaluate``."""
        return _train.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's output for every sample of x (training=False), float32."""
        return _train.predict(self, x, batch_size, verbose, steps, callbacks)

    # --- looking inside ----------------------------------------------------------------------
    def activations(self, x, batch_size=None, layers=None) -> list:
        """Every layer's output for x (or those of ``layers``: names, layers or indices), training=False."""
        x = _train.check_model_input(self, x, "activations: x")
        indices = range(len(self.layers)) if layers is None else [self._layer_index(layer) for layer in layers]
        return collect_outputs(self, x, list(indices), batch_size)

    def input_gradient(self, x, layer=-1, upstream=None, channel=None, return_value=False):
        """d objective / d x for the output of ``layer`` (a name, a layer or an index), training=False.

        The objective is ``sum(upstream * output)`` when ``upstream`` (shaped like that output) is
        given, otherwise the mean of the output, or of its channel ``channel`` (the last axis) —
        the gradient-ascent objective of filter-pattern pictures. Returns an array shaped like x
        (float32), or ``(gradient, objective)`` with ``return_value=True``. Overwrites the
        layers' ``grads``.
        """
        x = _train.take(_train.check_model_input(self, x, "input_gradient: x"), slice(None))
        index = self._layer_index(layer)
        out, backward = _train.forward(self.layers[: index + 1], x, False)
        if upstream is not None:
            dy = np.asarray(upstream, dtype=np.float32)
            if dy.shape != out.shape:
                raise ValueError(f"input_gradient: upstream must have the layer output's shape {out.shape}, got {dy.shape}")
        elif channel is not None:
            channels = out.shape[-1]
            if not isinstance(channel, (int, np.integer)) or not -channels <= channel < channels:
                raise ValueError(f"input_gradient: channel must be an int in [0, {channels - 1}], got {channel!r}")
            dy = np.zeros_like(out)
            dy[..., channel] = 1.0 / (out.size // channels)
        else:
            dy = np.full_like(out, 1.0 / out.size)
        value = float(np.sum(dy * out, dtype=np.float64))
        for back in reversed(backward):
            dy = back(dy)
        return (dy, value) if return_value else dy

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print the layer table, output shapes and parameter counts as Keras 3 prints them."""
        text = summary_text(self)
        (print_fn or print)(text)

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
        """This model as a ``keras.Sequential`` with the same weights (needs TensorFlow / Keras)."""
        from .interop import to_keras

        return to_keras(self)

    # --- configuration -----------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self._trainable, "layers": []}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        for layer in self.layers:
            config["layers"].append({"class_name": type(layer).__name__, "config": layer.get_config()})
        return config

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None):
        """A new model from ``get_config()``; its weights are initialised from ``rng`` (default: a
        private generator), so building it leaves miniconv's global generator untouched."""
        rng = np.random.default_rng(0) if rng is None else rng
        model = cls(name=config.get("name"))
        model._init_rng = rng
        if config.get("input_shape") is not None:
            model.add(InputLayer(shape=tuple(config["input_shape"])))
        for entry in config.get("layers", []):
            name = entry.get("class_name")
            if name == "Sequential":
                model.add(Sequential.from_config(entry["config"], rng))
                continue
            if name not in LAYER_CLASSES:
                raise ValueError(f"Sequential.from_config: unknown layer class {name!r}; expected one of {sorted(LAYER_CLASSES)}")
            model.add(LAYER_CLASSES[name].from_config(dict(entry["config"])))
        if not config.get("trainable", True):
            model.trainable = False
        model._init_rng = None
        return model

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"
