"""Keras interop (extra ``tf``): ``miniconv.from_keras(keras_model)`` and ``model.to_keras()``.

Every layer of ``miniconv.layers`` converts both ways with its weights and ``trainable`` flag.
A Keras Sequential converts, and so does a Functional model that is a plain chain (one input,
each layer fed by the one before), such as ``keras.applications.VGG16(include_top=False)``;
nested models convert to nested Sequentials. Anything else raises an error naming the layer.
Keras is imported only when these functions run.
"""

from __future__ import annotations

from . import layers as L

# Keras class -> (miniconv class, the config keys it takes). Other keys must hold Keras's defaults.
_CONVERTIBLE = {
    "Conv1D": (L.Conv1D, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias")),
    "Conv2D": (L.Conv2D, ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias")),
    "Dense": (L.Dense, ("units", "activation", "use_bias")),
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
}
# Keras config entries that must hold these values (anything else changes the math).
_REQUIRED = {"data_format": (None, "channels_last"), "groups": (1,), "noise_shape": (None,), "kernel_regularizer": (None,),
             "bias_regularizer": (None,), "activity_regularizer": (None,), "kernel_constraint": (None,),
             "bias_constraint": (None,), "quantization_config": (None,)}


def _chain(keras_model) -> list:
    """The layers of a Sequential or of a Functional model that is a plain chain, input layer excluded."""
    import keras

    if isinstance(keras_model, keras.Sequential):
        return list(keras_model.layers)
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise ValueError(f"from_keras: {keras_model.name!r} has several inputs or outputs; only chains of layers convert")
    chain, previous = [], None
    for layer in keras_model.layers:
        if type(layer).__name__ == "InputLayer":
            previous = layer
            continue
        nodes = getattr(layer, "_inbound_nodes", [])
        sources = [t._keras_history.operation for node in nodes for t in node.input_tensors]
        if len(sources) != 1 or sources[0] is not previous:
            raise ValueError(f"from_keras: layer {layer.name!r} of {keras_model.name!r} is not fed by the layer before it; "
                             f"only chains of layers convert")
        chain.append(layer)
        previous = layer
    return chain


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
    return cls(name=layer.name, trainable=layer.trainable, **kwargs)


def from_keras(keras_model):
    """A miniconv Sequential with the Keras model's layers, weights and trainable flags."""
    from .models import Sequential

    input_shape = tuple(keras_model.inputs[0].shape[1:]) if getattr(keras_model, "inputs", None) else None
    model = Sequential(name=keras_model.name)
    if input_shape is not None:
        model.add(L.Input(shape=input_shape))
    for layer in _chain(keras_model):
        model.add(_convert_layer(layer))
    if not model.built:
        raise ValueError(f"from_keras: {keras_model.name!r} has no known input shape; build it first")
    for ours, theirs in zip(model.layers, _chain(keras_model)):
        if not hasattr(theirs, "layers"):  # a nested model got its weights and flags from from_keras
            ours.set_weights(theirs.get_weights())
    if not keras_model.trainable:
        model.trainable = False
    return model


def to_keras(model):
    """A keras.Sequential equal to ``model``: same layers, names, weights and trainable flags."""
    import keras

    from .models import Sequential

    def convert(layer):
        if isinstance(layer, Sequential):
            return to_keras(layer)
        config = dict(layer.get_config())
        config.pop("input_shape", None)
        for key in ("kernel_initializer", "bias_initializer"):
            config.pop(key, None)
        return getattr(keras.layers, type(layer).__name__)(**config)

    if not model.built:
        raise ValueError(f"to_keras: {model.name} is not built yet")
    result = keras.Sequential([keras.Input(model.input_shape[1:]), *(convert(layer) for layer in model.layers)], name=model.name)
    for ours, theirs in zip(model.layers, result.layers):
        theirs.set_weights(ours.get_weights())
        if not isinstance(ours, Sequential):
            theirs.trainable = ours.trainable
    return result
