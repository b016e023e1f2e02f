"""Architectures as JSON-ready dicts, and models made again from them (``get_config`` / ``from_config``).

    Sequential   {"name", "trainable", "input_shape"?, "layers": [{"class_name", "config"}, ...]}
    Model        {"name", "trainable", "layers": [{"class_name", "config"}, ...],          Keras's order
                  "calls": [{"layer": name, "inputs": [[layer, call, tensor], ...], "list": bool}, ...],
                  "inputs": [[layer, call, tensor], ...], "outputs": [[layer, call, tensor], ...]}

A functional model's ``calls`` are its graph's nodes in execution order; a tensor is named by the
layer that made it, which of that layer's calls in this model (0 for most), and which of the
call's outputs. Classes are looked up by name among miniconv's registered layers and models
(``layers.registered_class``), never imported from a string, so a file names only miniconv code.
Weights are initialised from the ``rng`` given (default a private generator): making a model
from its config leaves miniconv's global generator untouched.
"""

from __future__ import annotations

import numpy as np

from ..layers.base import registered_class, registered_names
from ..layers.core import InputLayer


def layer_config(layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(entry: dict, rng):
    """A layer (or a nested model) from ``{"class_name", "config"}``."""
    if not isinstance(entry, dict):
        raise TypeError(f"a layer entry must be a dict with class_name and config, got {entry!r}")
    name = entry.get("class_name")
    cls = registered_class(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; expected one of {registered_names()}")
    config = dict(entry.get("config") or {})
    if cls.is_model:  # a model builds its own layers, from the generator given
        return cls.from_config(config, rng)
    return cls.from_config(config)


# --- Sequential ----------------------------------------------------------------------------------
def sequential_config(model) -> dict:
    config = {"name": model.name, "trainable": model.trainable, "layers": [layer_config(layer) for layer in model.layers]}
    if model.declared_input_shape is not None:
        config["input_shape"] = list(model.declared_input_shape)
    return config


def sequential_from_config(cls, config: dict, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    model = cls(name=config.get("name"))
    model._init_rng = rng
    if config.get("input_shape") is not None:
        model.add(InputLayer(shape=tuple(config["input_shape"])))
    for entry in config.get("layers", []):
        model.add(layer_from_config(entry, rng))
    if not config.get("trainable", True):
        model.trainable = False
    model._init_rng = None
    return model


# --- functional Model ----------------------------------------------------------------------------
def _tensor_name(tensor, call_index: dict) -> list:
    history = tensor.history
    node = history.node
    return [history.layer.name, call_index[id(node)], history.tensor_index]


def functional_config(model) -> dict:
    graph = model.subgraph()
    call_index, counts = {}, {}
    for node in graph.nodes:
        call_index[id(node)] = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = call_index[id(node)] + 1
    calls = [{"layer": node.layer.name, "inputs": [_tensor_name(t, call_index) for t in node.inputs],
              "list": node.call_structure == "list"} for node in graph.nodes if not node.is_input]
    return {
        "name": model.name,
        "trainable": model.trainable,
        "layers": [layer_config(layer) for layer in model.layers],
        "calls": calls,
        "inputs": [_tensor_name(t, call_index) for t in graph.inputs],
        "outputs": [_tensor_name(t, call_index) for t in graph.outputs],
        "single_input": model._single_input,
        "single_output": model._single_output,
    }


def functional_from_config(cls, config: dict, rng=None):
    """Make the layers, replay the calls in order, and wrap the graph in a model of class ``cls``."""
    rng = np.random.default_rng(0) if rng is None else rng
    by_name = {}
    for entry in config["layers"]:
        layer = layer_from_config(entry, rng)
        by_name[layer.name] = layer
    made: dict[tuple, object] = {}  # (layer name, call index) -> output tensors
    calls_seen: dict[str, int] = {}
    for name, layer in by_name.items():
        if isinstance(layer, InputLayer):
            made[(name, 0)] = [layer.output]
            calls_seen[name] = 1

    def tensor(reference):
        layer_name, call, index = reference
        if (layer_name, call) not in made:
            raise ValueError(f"call {call} of layer {layer_name!r} is read before it is made")
        return made[(layer_name, call)][index]

    for call in config["calls"]:
        layer = by_name.get(call["layer"])
        if layer is None:
            raise ValueError(f"a call names layer {call['layer']!r}, which the config does not define")
        inputs = [tensor(r) for r in call["inputs"]]
        if not layer.built and not layer.is_model:
            shape = [t.shape for t in inputs] if call["list"] else inputs[0].shape
            layer.build(shape, rng)
        outputs = layer(inputs if call["list"] else inputs[0])
        index = calls_seen.get(layer.name, 0)
        calls_seen[layer.name] = index + 1
        made[(layer.name, index)] = outputs if isinstance(outputs, list) else [outputs]
    inputs = [tensor(r) for r in config["inputs"]]
    outputs = [tensor(r) for r in config["outputs"]]
    model = cls(inputs[0] if config.get("single_input", True) else inputs,
                outputs[0] if config.get("single_output", True) else outputs, name=config.get("name"))
    if not config.get("trainable", True):
        model.trainable = False
    return model
