"""What every picture shares: a pyplot-free Figure, image helpers, saving a PNG.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas attached, so nothing here
touches pyplot's global state or the interactive backend: a figure can be saved, shown by a
notebook, or dropped, and library code never calls ``plt.show()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def new_figure(figsize=(6.0, 4.0), constrained=True, **kwargs):
    """A fresh ``Figure`` on an Agg canvas (no pyplot, no window), laid out by matplotlib's
    constrained layout (with a little more room between rows of titles than its default)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if constrained:
        kwargs.setdefault("layout", ConstrainedLayoutEngine(h_pad=0.07, w_pad=0.05))
    figure = Figure(figsize=figsize, **kwargs)
    FigureCanvasAgg(figure)
    return figure


def as_image(image) -> np.ndarray:
    """An image as float32 (H, W) or (H, W, C): a leading batch axis of 1 and a trailing channel of 1 dropped."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W), (H, W, C) or (1, H, W, C), got shape {np.shape(image)}")
    return array


def to_grayscale(image) -> np.ndarray:
    """(H, W) float32: an RGB(A) image as ITU-R 601 luma (as ``tf.image.rgb_to_grayscale``), gray as is."""
    array = as_image(image)
    if array.ndim == 3:
        if array.shape[-1] < 3:
            raise ValueError(f"expected a grayscale or RGB image, got {array.shape[-1]} channels")
        array = array[..., :3] @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    return array.astype(np.float32)


def show_array(axes, image, title=None, cmap="viridis", **kwargs):
    """imshow without ticks, a (H, W, 3) image as RGB (clipped to [0, 1]) and anything else with ``cmap``."""
    array = as_image(image)
    if array.ndim == 3:
        axes.imshow(np.clip(array[..., :3], 0, 1), **kwargs)
    else:
        axes.imshow(array, cmap=cmap, **kwargs)
    axes.set_xticks([])
    axes.set_yticks([])
    if title is not None:
        axes.set_title(title)
    return axes


def shape_text(shape) -> str:
    """(62, 62) -> '62x62'."""
    return "x".join(str(d) for d in shape)


def save_figure(figure, path, dpi=80) -> Path:
    """Write ``figure`` as a PNG (parent directories created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    return path
