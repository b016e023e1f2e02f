"""Looking inside a Sequential: every layer's output, and Keras's ``Model(inputs, outputs)`` idiom.

    activation_model = miniconv.Model(inputs=model.input, outputs=[l.output for l in model.layers[:8]])
    activations = activation_model.predict(images)       # a list, one array per chosen layer

``model.input`` and ``layer.output`` are ``SymbolicOutput`` handles naming a point of one
Sequential model; ``Model`` runs that model up to the last point asked for (training=False).
"""

from __future__ import annotations

import weakref

import numpy as np

from . import training as _train
from .layers.base import format_shape, unique_name


class SymbolicOutput:
    """``model.input`` / ``layer.output``: names a point of a Sequential, for ``Model(inputs, outputs)``."""

    def __init__(self, model, index: int):
        self._model, self.index = weakref.ref(model), index  # index -1: the model's input

    @property
    def model(self):
        return self._model()

    @property
    def shape(self):
        model = self.model
        return model.input_shape if self.index < 0 else model.layers[self.index].output_shape

    def __repr__(self):
        return f"<SymbolicOutput of {self.model.name!r} at layer {self.index}, shape {format_shape(self.shape)}>"


def collect_outputs(model, x, indices, batch_size):
    batch_size = _train.check_batch_size(batch_size)
    stop = max(indices) + 1
    outputs = [None] * len(indices)
    for index in _train.batch_indices(len(x), batch_size):
        h = _train.take(x, index)
        results = {}
        for i, layer in enumerate(model.layers[:stop]):
            h, _ = layer.forward(h, False)
            results[i] = h
        for k, i in enumerate(indices):
            y = results[i]
            if outputs[k] is None:
                outputs[k] = np.empty((len(x), *y.shape[1:]), np.float32)
            outputs[k][index] = y
    return outputs


class Model:
    """Keras's ``Model(inputs, outputs)`` for the points of one Sequential model.

        activation_model = miniconv.Model(inputs=model.input, outputs=[l.output for l in model.layers[:8]])
        activations = activation_model.predict(images)     # a list, one array per output
    """

    def __init__(self, inputs, outputs, name=None):
        single = isinstance(outputs, SymbolicOutput)
        outputs = [outputs] if single else list(outputs)
        inputs = inputs[0] if isinstance(inputs, (list, tuple)) and len(inputs) == 1 else inputs
        if not isinstance(inputs, SymbolicOutput) or inputs.index != -1:
            raise ValueError("Model: inputs must be a Sequential model's `input`")
        for output in outputs:
            if not isinstance(output, SymbolicOutput) or output.model is not inputs.model:
                raise ValueError("Model: every output must be `layer.output` of a layer of the same Sequential model as inputs")
        self.source = inputs.model
        self.name = name or unique_name("functional")
        self.indices = [o.index for o in outputs]
        self.single = single
        self.layers = self.source.layers[: max(self.indices) + 1]

    def predict(self, x, batch_size=None, verbose="auto"):
        x = _train.check_model_input(self.source, x, f"{self.name}: x")
        outputs = collect_outputs(self.source, x, self.indices, batch_size)
        return outputs[0] if self.single else outputs

    def __call__(self, x, training=False):
        return self.predict(x, batch_size=len(x))
