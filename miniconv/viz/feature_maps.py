"""Feature maps: every convolution and pooling layer's activations for one image (Chollet ch. 5.4).

    figure = show_feature_maps(model, image)        # one tiled grid per layer, titled with its name

The activations come from ``model.activations(image[None])``; each channel is drawn as Chollet
does (centred, scaled to std 64 around 128, clipped to [0, 255]; an all-zero channel stays dark),
``images_per_row`` channels per row, a thin white margin between tiles.
"""

from __future__ import annotations

import math

import numpy as np

from ._figures import new_figure, shape_text

#: Layer classes whose outputs are spatial feature maps worth drawing.
MAP_LAYERS = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "Conv1D", "MaxPooling1D", "AveragePooling1D")


def model_input(model, image) -> np.ndarray:
    """``image`` as a batch of one for ``model``: (H, W) gains a channel axis, (H, W, C) a batch axis."""
    x = np.asarray(image, dtype=np.float32)
    expected = len(model.input_shape) if model.input_shape is not None else x.ndim + 1
    while x.ndim < expected - 1:
        x = x[..., None]
    if x.ndim == expected - 1:
        x = x[None]
    return x


def map_layers(model) -> list:
    """The model's convolution and pooling layers (those in ``MAP_LAYERS``), in order."""
    return [layer for layer in model.layers if type(layer).__name__ in MAP_LAYERS]


def channel_image(channel: np.ndarray) -> np.ndarray:
    """Chollet's display of one channel: (x - mean) / std * 64 + 128, clipped to [0, 255]; zeros stay 0."""
    channel = np.asarray(channel, dtype=np.float64)
    if channel.any():
        std = channel.std()
        channel = (channel - channel.mean()) / (std if std > 0 else 1.0) * 64 + 128
    return np.clip(channel, 0, 255)


def feature_map_grid(activation, images_per_row=16, margin=1, min_tile=24) -> np.ndarray:
    """One sample's activation (h, w, C) (or (1, h, w, C); 1-D (w, C) as height 1) tiled into one
    2-D array: ``images_per_row`` channels per row in channel order, ``margin`` NaN pixels between tiles
    (drawn as background), unused tiles NaN. Maps smaller than ``min_tile`` pixels are enlarged by a
    whole factor (each value repeated), so a 3x3 map is not dwarfed by its margins."""
    a = np.asarray(activation, dtype=np.float32)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    factor = max(1, min_tile // max(a.shape[:2]))
    images = [channel_image(a[..., c]) for c in range(a.shape[-1])]
    images = [np.kron(image, np.ones((factor, factor))) for image in images]
    h, w, channels = (*images[0].shape, len(images))
    cols = min(images_per_row, channels)
    rows = math.ceil(channels / cols)
    grid = np.full((rows * (h + margin) - margin, cols * (w + margin) - margin), np.nan, np.float32)
    for c in range(channels):
        r, k = divmod(c, cols)
        grid[r * (h + margin): r * (h + margin) + h, k * (w + margin): k * (w + margin) + w] = images[c]
    return grid


def feature_map_grids(model, image, layers=None, images_per_row=16) -> dict:
    """{layer name: (activation (1, h, w, C), tiled grid)} for ``layers`` (default ``map_layers(model)``)."""
    chosen = map_layers(model) if layers is None else [model.get_layer(n) if isinstance(n, str) else n for n in layers]
    if not chosen:
        raise ValueError(f"feature maps: {model.name} has no convolution or pooling layer")
    activations = model.activations(model_input(model, image), layers=chosen)
    return {layer.name: (a, feature_map_grid(a, images_per_row)) for layer, a in zip(chosen, activations)}


def show_feature_maps(model, image, layers=None, images_per_row=16, cmap="viridis", width=12.0):
    """Every convolution and pooling layer's feature maps for ``image`` (one sample, no batch axis
    needed), one tiled grid per layer titled with the layer's name and output shape.

    The arrays are ``figure.grids`` ({name: (activation, grid)}).
    """
    from matplotlib import colormaps

    grids = feature_map_grids(model, image, layers, images_per_row)
    heights = [grid.shape[0] / grid.shape[1] for _, grid in grids.values()]
    figure = new_figure((width, width * sum(heights) + 0.45 * len(grids)))
    spec = figure.add_gridspec(len(grids), 1, height_ratios=heights)
    colours = colormaps[cmap].with_extremes(bad="white")
    for k, (name, (activation, grid)) in enumerate(grids.items()):
        axes = figure.add_subplot(spec[k])
        axes.imshow(grid, cmap=colours, vmin=0, vmax=255, aspect="auto", interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"{name}  {shape_text(activation.shape[1:])}", loc="left")
    figure.grids = grids
    return figure
