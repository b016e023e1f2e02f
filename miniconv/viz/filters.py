"""Filter patterns: the input each filter responds to most, found by gradient ascent (Chollet ch. 5.4.2).

    figure = show_filter_patterns(model, "conv2d_1", count=16)

For filter f of a layer, start from a grey image with a little seeded noise and repeat ``steps``
times: g = d mean(layer output[..., f]) / d image (``model.input_gradient``), normalised by its
root mean square (g / (sqrt(mean(g^2)) + 1e-5)), image += step_size * g. The result is drawn as
Chollet's ``deprocess_image`` does (standardise, std 0.1 around 0.5, clip to [0, 1]).

The start and the step follow the pixel values the model takes (``value_range.input_range``): a
model that rescales [0, 255] input itself (a leading ``Rescaling(1 / 255)``, as Chollet's cats-vs-dogs
convnet) starts from Chollet's 128 + 20 U(0, 1) and steps by 1, as his ch. 5.4.2 does; a model
taking [0, 1] starts from the same grey scaled down, 0.5 + U(-0.05, 0.05), and steps by 0.01.

All the filters are ascended together in one batch: sample i's upstream gradient is non-zero
only in channel f_i, so one ``input_gradient`` call gives every filter's gradient at once.
"""

from __future__ import annotations

import math

import numpy as np

from ._figures import new_figure, show_array
from .value_range import EIGHT_BIT
from .value_range import input_range as model_input_range


def deprocess_image(x) -> np.ndarray:
    """Chollet's display mapping: (x - mean) / (std + 1e-5) * 0.1 + 0.5, clipped to [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    x = (x - x.mean()) / (x.std() + 1e-5) * 0.1 + 0.5
    return np.clip(x, 0, 1).astype(np.float32)


def _layer(model, layer):
    if isinstance(layer, (int, np.integer)):
        return model.layers[int(layer)]
    return model.get_layer(layer) if isinstance(layer, str) else layer


def default_layer(model):
    """The model's last Conv2D layer (the deepest patterns; the first layer's are its kernels, tiled)."""
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    if not convs:
        raise ValueError(f"filter patterns: {model.name} has no Conv2D layer")
    return convs[-1]


def start_noise(shape, value_range, rng) -> np.ndarray:
    """Chollet's grey-with-noise start: 128 + 20 U(0, 1) for [0, 255] input, 0.5 + U(-0.05, 0.05) for [0, 1]."""
    if tuple(value_range) == EIGHT_BIT:
        return (128 + 20 * rng.random(size=shape)).astype(np.float32)
    return (0.5 + rng.uniform(-0.05, 0.05, size=shape)).astype(np.float32)


def filter_patterns(model, layer=None, filters=16, steps=40, step_size=None, seed=0, start=None,
                    return_objectives=False, value_range=None):
    """Gradient ascent on the input for the first ``filters`` filters of ``layer`` (name, layer or index;
    default the last Conv2D); ``filters`` may also be a list of filter indices.

    ``value_range``: the pixel values the model takes, (0, 1) or (0, 255) (default: found from the
    model, see the module docstring). Starts from ``start_noise`` (``seed``): 128 + 20 U(0, 1) for
    (0, 255), 0.5 + U(-0.05, 0.05) for (0, 1); or from ``start`` (an image shaped like the model's
    input, or one per filter). ``step_size`` defaults to 1 for (0, 255) (Chollet's) and 0.01 for (0, 1).
    Returns raw patterns (F, H, W, C) float32; with ``return_objectives=True`` also the (F, steps + 1)
    mean activations before each step and after the last one, which rise as the ascent works.
    """
    value_range = tuple(model_input_range(model) if value_range is None else value_range)
    if step_size is None:
        step_size = 1.0 if value_range == EIGHT_BIT else 0.01
    layer = _layer(model, layer if layer is not None else default_layer(model))
    channels = layer.output_shape[-1]
    indices = list(range(min(filters, channels))) if isinstance(filters, (int, np.integer)) else [int(f) for f in filters]
    if not indices or any(not 0 <= f < channels for f in indices):
        raise ValueError(f"filter patterns: filters must be in [0, {channels - 1}] for layer {layer.name!r}, got {filters!r}")
    shape = model.input_shape[1:]
    rng = np.random.default_rng(seed)
    if start is None:
        x = start_noise((len(indices), *shape), value_range, rng)
    else:
        x = np.array(np.broadcast_to(np.asarray(start, np.float32), (len(indices), *shape)))
    out_shape = (len(indices), *layer.output_shape[1:])
    upstream = np.zeros(out_shape, np.float32)
    cells = int(np.prod(out_shape[1:-1]))
    for i, f in enumerate(indices):
        upstream[i, ..., f] = 1.0 / cells  # sample i: d mean(output[..., f_i])
    objectives = np.zeros((len(indices), steps + 1), np.float32)
    axes = tuple(range(1, x.ndim))

    def mean_activations():
        out = model.activations(x, layers=[layer])[0]
        return [out[i, ..., f].mean() for i, f in enumerate(indices)]

    for step in range(steps):
        if return_objectives:
            objectives[:, step] = mean_activations()
        grads = model.input_gradient(x, layer, upstream=upstream)
        rms = np.sqrt(np.mean(np.square(grads, dtype=np.float64), axis=axes, keepdims=True))
        x += (step_size * grads / (rms + 1e-5)).astype(np.float32)
    if return_objectives:
        objectives[:, steps] = mean_activations()
    return (x, objectives) if return_objectives else x


def show_filter_patterns(model, layer=None, filters=16, steps=40, step_size=None, seed=0, cols=8, cmap="viridis",
                         figsize=None, value_range=None):
    """The patterns of ``filter_patterns`` in a grid, each titled with its filter index (arguments as there).

    A filter still at zero mean activation after the ascent is titled "(silent)". The raw patterns are
    ``figure.patterns`` (F, H, W, C), the mean activations per step ``figure.objectives`` and the
    layer's name ``figure.layer_name``.
    """
    layer = _layer(model, layer if layer is not None else default_layer(model))
    indices = list(range(min(filters, layer.output_shape[-1]))) if isinstance(filters, (int, np.integer)) else list(filters)
    patterns, objectives = filter_patterns(model, layer, indices, steps, step_size, seed, return_objectives=True,
                                           value_range=value_range)
    cols = min(cols, len(indices))
    rows = math.ceil(len(indices) / cols)
    figure = new_figure(figsize or (1.5 * cols, 1.6 * rows + 0.5))
    for k, (f, pattern) in enumerate(zip(indices, patterns)):
        # a filter whose ReLU output is 0 everywhere has no gradient: its start noise stays
        title = f"filter {f}" if objectives[k, -1] > 0 else f"filter {f} (silent)"
        show_array(figure.add_subplot(rows, cols, k + 1), deprocess_image(pattern), title, cmap=cmap, vmin=0, vmax=1)
    figure.suptitle(f"Filter patterns of {layer.name!r} ({steps} steps of gradient ascent on the input)")
    figure.patterns, figure.objectives, figure.layer_name = patterns, objectives, layer.name
    return figure
