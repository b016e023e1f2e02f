"""``model.to_keras()``: a miniconv model as a Keras model with the same layers, names, weights and flags.

A Sequential becomes a ``keras.Sequential``; a functional model a ``keras.Model`` over the same
graph (each layer called on the same inputs, shared layers shared); nested models convert to
nested Keras models. Keras is imported only when this runs (extra ``tf``).
"""

from __future__ import annotations


def _keras_layer(keras, layer):
    if layer.is_model:
        return to_keras(layer)
    if hasattr(layer, "to_keras"):  # a layer Keras has no class for says what it is in Keras
        return layer.to_keras(keras)
    config = dict(layer.get_config())
    for key in ["input_shape", *(k for k in config if k.endswith("_initializer"))]:
        config.pop(key, None)
    for key in [k for k in config if k.endswith("_regularizer")]:
        if config.get(key) is not None:
            config[key] = getattr(keras.regularizers, config[key]["class_name"])(**config[key]["config"])
    return getattr(keras.layers, type(layer).__name__)(**config)


def _copy_weights(ours, theirs) -> None:
    if not ours.is_model:
        theirs.set_weights(ours.get_weights())
        theirs.trainable = ours.trainable


def to_keras(model):
    """A Keras model equal to ``model``: same layers, names, weights and trainable flags."""
    import keras

    if not model.built:
        raise ValueError(f"to_keras: {model.name} is not built yet")
    if model.is_sequential:
        converted = [_keras_layer(keras, layer) for layer in model.layers]
        result = keras.Sequential([keras.Input(model.input_shape[1:]), *converted], name=model.name)
        for ours, theirs in zip(model.layers, converted):
            _copy_weights(ours, theirs)
        return result
    graph = model.subgraph()
    tensors, made = {}, {}
    for tensor in graph.inputs:
        tensors[id(tensor)] = keras.Input(tensor.shape[1:], name=tensor.history.layer.name)
    for node in graph.nodes:
        if node.is_input:
            continue
        layer = node.layer
        if id(layer) not in made:
            made[id(layer)] = (layer, _keras_layer(keras, layer))
        inputs = [tensors[id(t)] for t in node.inputs]
        outputs = made[id(layer)][1](inputs if node.call_structure == "list" else inputs[0])
        for tensor, theirs in zip(node.outputs, outputs if isinstance(outputs, list) else [outputs]):
            tensors[id(tensor)] = theirs
    result = keras.Model([tensors[id(t)] for t in graph.inputs] if not model._single_input else tensors[id(graph.inputs[0])],
                         [tensors[id(t)] for t in graph.outputs] if not model._single_output else tensors[id(graph.outputs[0])],
                         name=model.name)
    for ours, theirs in made.values():
        _copy_weights(ours, theirs)
    return result
