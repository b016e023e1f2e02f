"""Looking inside a model, and a model run as one layer: every layer's output, input gradients, eager calls.

    model.activations(x)                               # every layer's output for x, a list
    miniconv.Model(model.input, [l.output for l in model.layers[:4]]).predict(x)   # Keras's idiom
    model.input_gradient(x, "conv2d_2", channel=5)     # d mean(layer output[..., 5]) / d x

All of them compile the model (``engine.plan``) for what they read: a layer whose output is
asked for ends any fusion chain, so it is computed as the layer alone computes it.
"""

from __future__ import annotations

import numpy as np

from ..engine.execute import backward, forward, gradients
from ..engine.plan import compile_plan
from ..layers.core import InputLayer
from ..ops.arrays import to_backend
from ..training.data import check_batch_size, model_inputs, take
from ..training.inference import run_inference


def _layer(model, layer):
    """A layer of ``model.layers`` from a name, the layer itself or an index."""
    layers = model.layers
    if isinstance(layer, str):
        return model.get_layer(layer)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"{model.name}: layer index must be in [-{len(layers)}, {len(layers) - 1}], got {layer}")
        return layers[int(layer)]
    if any(candidate is layer for candidate in layers):
        return layer
    raise ValueError(f"{model.name}: layer must be a name, a layer of the model or an index, got {layer!r}")


def _output_of(model, layer):
    """The tensor ``layer`` makes in this model's graph."""
    for node in model.subgraph().nodes:
        if node.layer is layer:
            return node.outputs[0]
    raise ValueError(f"{model.name}: {layer.describe()} is not called in this model")


def activations(model, x, batch_size=None, layers=None) -> list:
    """Every layer's output for x (InputLayers excluded), or those of ``layers``, training=False."""
    xs = model_inputs(model, x, "activations: x")
    chosen = [_layer(model, layer) for layer in layers] if layers is not None else \
        [layer for layer in model.layers if not isinstance(layer, InputLayer)]
    tensors = [_output_of(model, layer) for layer in chosen]
    return run_inference(model, xs if len(xs) > 1 else xs[0], check_batch_size(batch_size), 0, "activations", tensors)


def input_gradient(model, x, layer=-1, upstream=None, channel=None, return_value=False):
    """See ``Model.input_gradient``."""
    xs = [take(a, slice(None)) for a in model_inputs(model, x, "input_gradient: x")]
    target = _output_of(model, _layer(model, layer))
    plan = compile_plan(model, outputs=[target], input_gradient=True)
    (out,), tape = forward(plan, [to_backend(a, backend=plan.backend) for a in xs], False)
    out = np.asarray(out)
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
    gradients = backward(plan, tape, [to_backend(dy, backend=plan.backend)])
    gradient = np.asarray(gradients[0])
    return (gradient, value) if return_value else gradient


# --- a model as one layer ------------------------------------------------------------------------
def call_with_weights(model, inputs, weights, training=False):
    """(output(s), pullback) of the whole model on backend arrays, with ``weights`` in ``params`` order;
    ``pullback(dy) -> (dx, dweights)`` as a layer's."""
    single = not isinstance(inputs, (list, tuple))
    plan = compile_plan(model, input_gradient=True, weights=list(weights), training=training)
    outputs, tape = forward(plan, [inputs] if single else list(inputs), training)
    several = len(outputs) > 1

    def pullback(dy, input_gradient=True):
        dxs = backward(plan, tape, list(dy) if several else [dy])
        return (dxs[0] if single else dxs), gradients(plan, plan.variables)

    return (outputs if several else outputs[0]), pullback


def forward_filling_grads(model, x, training=False):
    """(y, backward) on the model's own weights; ``backward(dy)`` returns dx and sets every layer's ``grads``."""
    y, pullback = call_with_weights(model, x, model.params, training)

    def backward_all(dy, input_gradient=True):
        dx, dweights = pullback(dy, input_gradient)
        grads = iter(dweights)
        for leaf in model.leaf_layers():
            leaf.grads = [next(grads) for _ in leaf.params]
        return dx

    return y, backward_all


def call_on_arrays(model, inputs, training=False):
    """``model(x)`` on arrays: the output(s) for x as one batch (building the model for x if needed)."""
    xs = [take(a, slice(None)) for a in model_inputs(model, inputs, f"{model.name}: x")]
    plan = compile_plan(model, training=training)
    outputs, _ = forward(plan, [to_backend(a, backend=plan.backend) for a in xs], training, keep_tape=False)
    return outputs[0] if len(outputs) == 1 else outputs
