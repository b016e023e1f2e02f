"""Feature extraction as the course's sliding-window exercise shows it: filter, detect, condense.

    image = circle([64, 64], val=1.0, r_shrink=3)
    stages = extraction_stages(image, "edge")       # {"Input", "Filter", "Detect", "Condense"} arrays
    figure = show_extraction(image, "edge")         # the four side by side

Filter is ``nn.conv2d`` (one filter, no bias), Detect ``nn.relu``, Condense ``nn.max_pool2d``:
the course's ``visiontools.show_extraction`` with miniconv's ops in place of a Keras model.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._figures import new_figure, shape_text, show_array, to_grayscale
from .kernels import get_kernel

STAGES = ("Input", "Filter", "Detect", "Condense")
_SUBTITLES = {"Input": "", "Filter": "convolution", "Detect": "ReLU", "Condense": "max pooling"}


def _circle_perimeter(r0: int, c0: int, radius: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Bresenham's circle (scikit-image's ``draw.circle_perimeter``, method "bresenham"), clipped to shape."""
    rows, cols = [], []
    r, c, d = radius, 0, 3 - 2 * radius
    while r >= c:
        rows += [r, -r, r, -r, c, -c, c, -c]
        cols += [c, c, -c, -c, r, r, -r, -r]
        if d < 0:
            d += 4 * c + 6
        else:
            d += 4 * (c - r) + 10
            r -= 1
        c += 1
    rr, cc = np.array(rows) + r0, np.array(cols) + c0
    inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    return rr[inside], cc[inside]


def _resize_nearest(image: np.ndarray, size) -> np.ndarray:
    """Nearest-neighbour resize with pixel-area alignment (scikit-image's ``transform.resize``, order=0)."""
    h, w = image.shape
    rows = np.minimum(np.floor((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(np.floor((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return image[np.ix_(rows, cols)]


def circle(size, val=None, r_shrink=0, rng=None) -> np.ndarray:
    """The course's test image: a one-pixel circle outline in a (h, w) float32 image of zeros.

    As ``visiontools.circle(size, val=None, r_shrink=0)``: Bresenham's circle of radius
    ``size[0] // 2 - r_shrink`` centred at ``(h // 2, w // 2)`` on an (h + 1, w + 1) grid, resized to
    (h, w) by nearest neighbour. The outline's pixels are ``val``, or uniform random values in [0, 1)
    drawn from ``rng`` (an int seed or a ``np.random.Generator``; default seed 0) when ``val`` is None.
    """
    h, w = (int(s) for s in size)
    radius = h // 2 - int(r_shrink)
    if h < 1 or w < 1 or radius < 0:
        raise ValueError(f"circle: size must be positive and r_shrink at most size[0] // 2, got size={size}, "
                         f"r_shrink={r_shrink}")
    grid = np.zeros((h + 1, w + 1), np.float32)
    rr, cc = _circle_perimeter(h // 2, w // 2, radius, grid.shape)
    if val is None:
        values = np.random.default_rng(0 if rng is None else rng).uniform(size=grid.shape).astype(np.float32)
        grid[rr, cc] = values[rr, cc]
    else:
        grid[rr, cc] = val
    return _resize_nearest(grid, (h, w))


def _as_input(image) -> np.ndarray:
    """(1, H, W, 1) float32; integer images scaled to [0, 1] as ``tf.image.convert_image_dtype`` does."""
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.integer):
        array = array / np.iinfo(array.dtype).max
    gray = to_grayscale(array)
    return gray[None, :, :, None]


def extraction_stages(image, kernel, conv_stride=1, conv_padding="valid", pool_size=2, pool_stride=2,
                      pool_padding="same", backend=None) -> dict[str, np.ndarray]:
    """The four stages as (h, w) float32 arrays, keyed ``"Input"``, ``"Filter"``, ``"Detect"``, ``"Condense"``.

    image: (H, W), (H, W, 1) or RGB (converted to gray); kernel: a name from ``KERNELS`` or an (R, S) array.
    Filter = ``nn.conv2d(x, kernel[:, :, None, None], conv_stride, conv_padding)``, Detect =
    ``nn.relu(Filter)``, Condense = ``nn.max_pool2d(Detect, pool_size, pool_stride, pool_padding)``.
    """
    x = _as_input(image)
    w = get_kernel(kernel)[:, :, None, None]
    filtered = nn.conv2d(x, w, strides=conv_stride, padding=conv_padding.upper(), backend=backend)
    detected = nn.relu(filtered, backend=backend)
    condensed = nn.max_pool2d(detected, pool_size, pool_stride, pool_padding.upper(), backend=backend)
    return {name: array[0, :, :, 0] for name, array in zip(STAGES, (x, filtered, detected, condensed))}


def _grid(subplot_shape, panels: int) -> tuple[int, int]:
    """(rows, cols) for ``panels`` panels: ``subplot_shape`` checked, or one row by default."""
    if subplot_shape is None:
        return 1, panels
    try:
        rows, cols = (int(n) for n in subplot_shape)
    except (TypeError, ValueError):
        raise ValueError(f"show_extraction: subplot_shape must be (rows, cols), got {subplot_shape!r}") from None
    if rows < 1 or cols < 1 or rows * cols < panels:
        raise ValueError(f"show_extraction: subplot_shape {subplot_shape!r} has room for {max(rows, 0) * max(cols, 0)} "
                         f"panels, {panels} to draw")
    return rows, cols


def show_extraction(image, kernel, conv_stride=1, conv_padding="valid", pool_size=2, pool_stride=2,
                    pool_padding="same", gamma=1.0, cmap="viridis", figsize=None, title=None, subplot_shape=None,
                    ops=STAGES):
    """Input -> Filter (convolution) -> Detect (ReLU) -> Condense (max pooling), side by side.

    Arguments as ``extraction_stages``; ``gamma`` brightens (< 1) the Detect and Condense panels as the
    course's ``adjust_gamma`` does. ``subplot_shape`` = (rows, cols) lays the panels out on a grid, as
    the course's ``visiontools.show_extraction`` takes it (``(1, 4)`` in its lessons; default one row);
    ``ops`` picks the panels (default all four, in that order), as the course's helper does. Each panel's
    title names the stage, its op and its shape. The arrays behind the panels are ``figure.stages`` (all
    four stages) and the panels drawn ``figure.panels``.
    """
    unknown = [op for op in ops if op not in STAGES]
    if unknown or not ops:
        raise ValueError(f"show_extraction: ops must be names from {list(STAGES)}, got {list(ops)!r}")
    rows, cols = _grid(subplot_shape, len(ops))
    stages = extraction_stages(image, kernel, conv_stride, conv_padding, pool_size, pool_stride, pool_padding)
    figure = new_figure(figsize or (3.25 * cols, 3.8 * rows))
    for k, name in enumerate(ops):
        array = stages[name]
        shown = array ** gamma if name in ("Detect", "Condense") and gamma != 1.0 else array
        subtitle = f" ({_SUBTITLES[name]})" if _SUBTITLES[name] else ""
        show_array(figure.add_subplot(rows, cols, k + 1), shown, f"{name}{subtitle}\n{shape_text(array.shape)}",
                   cmap=cmap)
    if title is None and isinstance(kernel, str):
        title = f"Kernel: {kernel}, conv stride {conv_stride} {conv_padding}, pool {pool_size}/{pool_stride} {pool_padding}"
    if title:
        figure.suptitle(title)
    figure.stages, figure.panels = stages, list(ops)
    return figure
