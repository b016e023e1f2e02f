"""Keras interop (extra ``tf``): ``miniconv.from_keras(keras_model)`` (and ``model.to_keras()``,
in ``models/to_keras.py``).

Every layer of ``miniconv.layers`` converts both ways with its weights and ``trainable`` flag.
A Keras Sequential becomes a Sequential; a functional Keras model becomes a functional model
over the same graph (merge layers, shared layers and several inputs or outputs included), such
as ``keras.applications.VGG16(include_top=False)``; nested models convert to nested models.
Anything else raises an error naming the layer. Keras is imported only when these functions run.
"""

from __future__ import annotations

from . import layers as L
from . import regularizers
from .models import Model, Sequential

# Keras class -> (miniconv class, the config keys it takes). Other keys must hold Keras's defaults.
_CONVERTIBLE = {
    "Conv1D": (L.Conv1D, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias",
                          "kernel_regularizer", "bias_regularizer")),
    "Conv2D": (L.Conv2D, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias",
                          "kernel_regularizer", "bias_regularizer")),
    "Dense": (L.Dense, ("units", "activation", "use_bias", "kernel_regularizer", "bias_regularizer")),
    "MaxPooling1D": (L.MaxPooling1D, ("pool_size", "strides", "padding")),
    "MaxPooling2D": (L.MaxPooling2D, ("pool_size", "strides", "padding")),
    "AveragePooling1D": (L.AveragePooling1D, ("pool_size", "strides", "padding")),
    "AveragePooling2D": (L.AveragePooling2D, ("pool_size", "strides", "padding")),
    "GlobalAveragePooling1D": (L.GlobalAveragePooling1D, ("keepdims",)),
    "GlobalAveragePooling2D": (L.GlobalAveragePooling2D, ("keepdims",)),
    "GlobalMaxPooling1D": (L.GlobalMaxPooling1D, ("keepdims",)),
    "GlobalMaxPooling2D": (L.GlobalMaxPooling2D, ("keepdims",)),
    "Flatten": (L.Flatten, ()),
    "Dropout": (L.Dropout, ("rate", "seed")),
    "Activation": (L.Activation, ("activation",)),
    "ReLU": (L.ReLU, ("max_value", "negative_slope", "threshold")),
    "DepthwiseConv2D": (L.DepthwiseConv2D, ("kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate",
                                            "activation", "use_bias", "depthwise_regularizer", "bias_regularizer")),
    "SeparableConv2D": (L.SeparableConv2D, ("filters", "kernel_size", "strides", "padding", "depth_multiplier",
                                            "dilation_rate", "activation", "use_bias", "depthwise_regularizer",
                                            "pointwise_regularizer", "bias_regularizer")),
    "BatchNormalization": (L.BatchNormalization, ("axis", "momentum", "epsilon", "center", "scale", "beta_regularizer",
                                                  "gamma_regularizer")),
    "ZeroPadding2D": (L.ZeroPadding2D, ("padding",)),
    "Add": (L.Add, ()),
    "Multiply": (L.Multiply, ()),
    "Concatenate": (L.Concatenate, ("axis",)),
}
# Keras config entries that must hold these values (anything else changes the math).
_REQUIRED = {"data_format": (None, "channels_last"), "groups": (1,), "noise_shape": (None,),
             "activity_regularizer": (None,), "kernel_constraint": (None,), "depthwise_constraint": (None,),
             "pointwise_constraint": (None,), "bias_constraint": (None,), "beta_constraint": (None,),
             "gamma_constraint": (None,), "quantization_config": (None,), "renorm": (False,), "synchronized": (False,)}


def _convert_layer(layer):
    import keras

    name = type(layer).__name__
    if isinstance(layer, keras.Model):
        return from_keras(layer)
    if name not in _CONVERTIBLE:
        raise ValueError(f"from_keras: layer {layer.name!r} of type {name} is not supported; supported: {sorted(_CONVERTIBLE)}")
    cls, keys = _CONVERTIBLE[name]
    config = layer.get_config()
    for key, allowed in _REQUIRED.items():
        if key in config and config[key] not in allowed:
            raise ValueError(f"from_keras: layer {layer.name!r} ({name}) has {key}={config[key]!r}; only {allowed[0]!r} is supported")
    kwargs = {key: config[key] for key in keys if key in config}
    for key in [k for k in kwargs if k.endswith("_regularizer")]:
        regularizer = getattr(layer, key, None)  # Keras's own object, read by its class name and config
        kwargs[key] = None if regularizer is None else regularizers.get(
            {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}, f"from_keras: {layer.name!r}")
    return cls(name=layer.name, trainable=layer.trainable, **kwargs)


def _copy_weights(ours, theirs) -> None:
    if not ours.is_model:  # a nested model got its weights and flags from from_keras
        ours.set_weights(theirs.get_weights())


def _from_sequential(keras_model):
    model = Sequential(name=keras_model.name)
    inputs = getattr(keras_model, "inputs", None)
    if inputs:
        model.add(L.Input(shape=tuple(inputs[0].shape[1:])))
    theirs = list(keras_model.layers)
    for layer in theirs:
        model.add(_convert_layer(layer))
    if not model.built:
        raise ValueError(f"from_keras: {keras_model.name!r} has no known input shape; build it first")
    for ours, their in zip(model.layers, theirs):
        _copy_weights(ours, their)
    return model


def _from_functional(keras_model):
    tensors, converted = {}, {}
    for tensor in keras_model.inputs:
        history = tensor._keras_history
        tensors[id(tensor)] = L.Input(shape=tuple(tensor.shape[1:]), name=history.operation.name)
    for depth in sorted(keras_model._nodes_by_depth, reverse=True):
        for node in keras_model._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input:
                continue
            if id(layer) not in converted:
                converted[id(layer)] = (_convert_layer(layer), layer)
            ours = converted[id(layer)][0]
            inputs = [tensors[id(t)] for t in node.input_tensors]
            several = ours.input_structure == "list" or (ours.is_model and len(inputs) > 1)
            outputs = ours(inputs if several else inputs[0])
            for tensor, mine in zip(node.output_tensors, outputs if isinstance(outputs, list) else [outputs]):
                tensors[id(tensor)] = mine
    single_in, single_out = len(keras_model.inputs) == 1, len(keras_model.outputs) == 1
    ins = [tensors[id(t)] for t in keras_model.inputs]
    outs = [tensors[id(t)] for t in keras_model.outputs]
    model = Model(ins[0] if single_in else ins, outs[0] if single_out else outs, name=keras_model.name)
    for ours, theirs in converted.values():
        _copy_weights(ours, theirs)
    return model


def from_keras(keras_model):
    """A miniconv model with the Keras model's layers, graph, weights and trainable flags."""
    import keras

    model = _from_sequential(keras_model) if isinstance(keras_model, keras.Sequential) else _from_functional(keras_model)
    if not keras_model.trainable:
        model.trainable = False
    return model
