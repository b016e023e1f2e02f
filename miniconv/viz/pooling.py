"""Pooling pictures from the course's "Maximum Pooling" lesson and its exercise.

Translation invariance: a circle, and the same circle shifted a few pixels at random (seeded),
condensed by repeated 2x2 max pooling (``nn.pool``, SAME): after a few steps the two are nearly the
same map. Two dots: the lesson's picture of what pooling keeps; two dots a few pixels apart (the
course's ``two_dots``) end up in one cell after repeated pooling, two far apart stay in two.
Global average pooling: random feature maps and the number each pools to (``nn.global_avg_pool2d``).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._figures import as_image, new_figure, shape_text, show_array
from .extraction import circle


# --- translation invariance ----------------------------------------------------------------------
def shift_image(image, shift, fill="replicate") -> np.ndarray:
    """``image`` moved by ``shift = (down, right)`` whole pixels; uncovered cells repeat the edge
    ("replicate", as the course's ``random_transform(..., fill_method='replicate')``) or are 0 ("zeros")."""
    array = as_image(image)
    dy, dx = (int(s) for s in shift)
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return array.copy()
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (array.ndim - 2)
    padded = np.pad(array, widths, mode="edge" if fill == "replicate" else "constant")
    h, w = array.shape[:2]
    return np.ascontiguousarray(padded[pad - dy: pad - dy + h, pad - dx: pad - dx + w])


def random_shift(jitter, rng=None) -> tuple[int, int]:
    """(down, right), each a whole number drawn uniformly from [-jitter, jitter] (rng: seed or Generator)."""
    rng = np.random.default_rng(0 if rng is None else rng)
    return tuple(int(v) for v in np.rint(rng.uniform(-jitter, jitter, size=2)))


def _describe_shift(shift) -> str:
    """(1, -2) -> '1 px down, 2 px left'."""
    dy, dx = shift
    parts = [f"{abs(dy)} px {'down' if dy > 0 else 'up'}" if dy else "", f"{abs(dx)} px {'right' if dx > 0 else 'left'}" if dx else ""]
    return ", ".join(p for p in parts if p) or "by 0 px"


def pooling_steps(image, repeats=4, window=(2, 2), strides=(2, 2), padding="SAME", backend=None) -> list[np.ndarray]:
    """[image, pooled once, pooled twice, ...] with ``nn.pool(..., "MAX")``: ``repeats + 1`` (h, w) arrays."""
    x = as_image(image)
    if x.ndim != 2:
        raise ValueError(f"pooling_steps: expected a grayscale image (H, W), got shape {x.shape}")
    steps = [x]
    for _ in range(repeats):
        x = nn.pool(x[None, :, :, None], window, "MAX", strides=strides, padding=padding, backend=backend)[0, :, :, 0]
        steps.append(x)
    return steps


def show_translation_invariance(image=None, size=(64, 64), r_shrink=4, jitter=3, repeats=4, seed=0,
                                cmap="viridis", figsize=None):
    """Row 1: an image (default the course's ``circle(size, val=1, r_shrink)``) max-pooled 2x2 ``repeats``
    times; row 2: the same image shifted by a random (seeded) whole-pixel offset within ``jitter``, pooled
    alike. Each panel's title gives its shape; the title says in how many cells the last maps differ.

    The arrays are ``figure.steps`` ({"original": [...], "shifted": [...]}) and the offset ``figure.shift``.
    """
    base = circle(size, val=1.0, r_shrink=r_shrink) if image is None else as_image(image)
    shift = random_shift(jitter, seed)
    rows = {"original": pooling_steps(base, repeats), "shifted": pooling_steps(shift_image(base, shift), repeats)}
    figure = new_figure(figsize or (2.7 * (repeats + 1), 6.0))
    vmin, vmax = float(base.min()), float(base.max()) or 1.0
    for r, (label, steps) in enumerate(rows.items()):
        for k, step in enumerate(steps):
            name = "Original" if k == 0 else f"MaxPooled {k} time{'s' if k > 1 else ''}"
            if r == 1 and k == 0:
                name = "Shifted " + _describe_shift(shift)
            axes = figure.add_subplot(2, repeats + 1, r * (repeats + 1) + k + 1)
            show_array(axes, step, f"{name}\nShape: {shape_text(step.shape)}", cmap=cmap, vmin=vmin, vmax=vmax)
    last_a, last_b = rows["original"][-1], rows["shifted"][-1]
    differ = int(np.count_nonzero(~np.isclose(last_a, last_b)))
    figure.suptitle(f"Translation invariance: after {repeats} poolings the maps differ in {differ} of {last_a.size} cells "
                    f"(the images in {int(np.count_nonzero(~np.isclose(rows['original'][0], rows['shifted'][0])))} "
                    f"of {base.size} pixels)")
    figure.steps, figure.shift = rows, shift
    return figure


# --- two dots: what pooling keeps ----------------------------------------------------------------
def two_dots(size, x=3, y=5) -> np.ndarray:
    """The course's ``visiontools.two_dots``: an (h, w) float32 image of zeros with ones at (x, y) and (y, x)."""
    image = np.zeros(tuple(int(s) for s in size), np.float32)
    image[x, y] = 1
    image[y, x] = 1
    return image


def dot_cells(image) -> int:
    """How many cells of a map hold a dot (are non-zero): 2 while two dots are told apart, 1 once merged."""
    return int(np.count_nonzero(image))


def show_two_dots(size=(16, 16), close=(3, 5), far=(2, 13), repeats=3, cmap="viridis", figsize=None):
    """Row 1: the course's ``two_dots(size, *close)``, two dots a few pixels apart, max-pooled 2x2
    ``repeats`` times: they end up in the same cell, and the pooled map can no longer tell where they
    were. Row 2: two dots far apart (``two_dots(size, *far)``), pooled alike: still two cells.

    The arrays are ``figure.steps`` ({"close": [...], "far": [...]}, ``repeats + 1`` maps each) and the
    number of cells holding a dot at each step ``figure.cells`` ({"close": [2, ..., 1], "far": [...]}).
    """
    rows = {"close": pooling_steps(two_dots(size, *close), repeats),
            "far": pooling_steps(two_dots(size, *far), repeats)}
    cells = {label: [dot_cells(step) for step in steps] for label, steps in rows.items()}
    figure = new_figure(figsize or (2.5 * (repeats + 1), 5.6))
    for r, (label, steps) in enumerate(rows.items()):
        dots = close if label == "close" else far
        for k, step in enumerate(steps):
            name = f"Two dots {'close' if label == 'close' else 'far apart'}\n{dots} and {dots[::-1]}" if k == 0 else f"MaxPooled {k} time{'s' if k > 1 else ''}"
            where = "1 cell" if cells[label][k] == 1 else f"{cells[label][k]} cells"
            axes = figure.add_subplot(2, repeats + 1, r * (repeats + 1) + k + 1)
            show_array(axes, step, f"{name}\n{shape_text(step.shape)}, dots in {where}", cmap=cmap, vmin=0, vmax=1)
    figure.suptitle("Pooling destroys some positional information: close dots merge, far ones stay apart")
    figure.steps, figure.cells = rows, cells
    return figure


# --- global average pooling ----------------------------------------------------------------------
def random_map(size, scale=0.5, decay_power=1.0, rng=None) -> np.ndarray:
    """A smooth random (h, w) map in (0, 1), as the course's ``visiontools.random_map``: a random
    spectrum (normal, std ``scale``) damped as 1 / frequency ** ``decay_power``, transformed back
    (inverse real FFT, divided by 4 as lucid's ``fft_image``) and squashed by a sigmoid.
    ``rng``: an int seed or a ``np.random.Generator`` (default seed 0)."""
    rng = np.random.default_rng(0 if rng is None else rng)
    h, w = (int(s) for s in size)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    damping = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power * np.sqrt(h * w)
    spectrum = (rng.normal(scale=scale, size=freqs.shape) + 1j * rng.normal(scale=scale, size=freqs.shape)) * damping
    field = np.fft.irfft2(spectrum, s=(h, w)) / 4.0
    return (1.0 / (1.0 + np.exp(-field))).astype(np.float32)


def random_feature_maps(count=8, size=(5, 5), scale=0.1, decay_power=4.0, seed=0) -> np.ndarray:
    """(1, h, w, count) float32: ``count`` random maps as the course's exercise makes them."""
    rng = np.random.default_rng(seed)
    return np.stack([random_map(size, scale, decay_power, rng) for _ in range(count)], axis=-1)[None]


def show_global_average_pooling(feature_maps=None, cmap="viridis", figsize=None):
    """Top: feature maps (default ``random_feature_maps()``, (1, h, w, C) or (h, w, C)); bottom: the C
    numbers ``nn.global_avg_pool2d`` pools them to, in the same colours, each written on its cell.

    The arrays are ``figure.feature_maps`` (1, h, w, C) and ``figure.pooled`` (C,).
    """
    maps = random_feature_maps() if feature_maps is None else np.asarray(feature_maps, np.float32)
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4 or maps.shape[0] != 1:
        raise ValueError(f"show_global_average_pooling: expected feature maps (h, w, C) or (1, h, w, C), got {maps.shape}")
    pooled = nn.global_avg_pool2d(maps)[0]
    channels = maps.shape[-1]
    vmin, vmax = min(0.0, float(maps.min())), max(1.0, float(maps.max()))
    figure = new_figure(figsize or (1.6 * channels, 3.6))
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.6, 1.0])
    for c in range(channels):
        show_array(top.add_subplot(1, channels, c + 1), maps[0, :, :, c], f"map {c}", cmap=cmap, vmin=vmin, vmax=vmax)
    top.suptitle(f"Feature Maps ({shape_text(maps.shape[1:3])}, {channels} channels)")
    axes = bottom.add_subplot()
    show_array(axes, pooled[None, :], None, cmap=cmap, vmin=vmin, vmax=vmax)
    for c, value in enumerate(pooled):
        axes.text(c, 0, f"{value:.2f}", ha="center", va="center", color="white" if value < (vmin + vmax) / 2 else "black")
    bottom.suptitle("Pooled Feature Maps (global average pooling)")
    figure.feature_maps, figure.pooled = maps, pooled
    return figure
