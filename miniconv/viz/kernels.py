"""Named kernels: the Kaggle Computer Vision course's, the others its lessons name, and ``show_kernel``.

Source of the course's five: ``learntools/computer_vision/visiontools.py`` in Kaggle's learntools
repository (the helpers of the lessons "Convolution and ReLU" and "The Sliding Window"), which defines
``edge``, ``blur``, ``bottom_sobel``, ``emboss`` (south-east) and ``sharpen``. The course's ``blur`` is
the 3x3 binomial (Gaussian-like) kernel [1, 2, 1]^T [1, 2, 1] / 16, not a box.

The others, named in ``KERNELS`` after those five:

    laplacian       [[0, 1, 0], [1, -4, 1], [0, 1, 0]]     the discrete Laplacian (4 neighbours)
    box_blur        ones((3, 3)) / 9                        the mean of the window
    edge_enhance    [[-1, -1, -1], [-1, 10, -1], [-1, -1, -1]] / 2
                                                            identity + edge / 2; Pillow's ImageFilter.EDGE_ENHANCE
    vertical_sobel  [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]     bottom_sobel turned on its side (x gradient):
                                                            responds to vertical edges
    line_detector   [[1, -1], [1, -1]]                      the course's exercise kernel ("Convolution and
                                                            ReLU", question 4): keeps the vertical line of its
                                                            6x6 example and drops the horizontal one

learntools prints numbers for ``line_detector`` only (its exercise notebook ``ex2.ipynb``); the other
four are the standard kernels of those names. ``show_kernel`` draws a grid with its numbers in the
course's style (``Blues_r``, light text on dark cells).
"""

from __future__ import annotations

import numpy as np

from ._figures import new_figure

EDGE = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)
BOTTOM_SOBEL = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32)
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
BLUR = np.array([[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]], np.float32)
BOX_BLUR = np.full((3, 3), 1 / 9, np.float32)
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
EDGE_ENHANCE = np.array([[-1, -1, -1], [-1, 10, -1], [-1, -1, -1]], np.float32) / 2
VERTICAL_SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
LINE_DETECTOR = np.array([[1, -1], [1, -1]], np.float32)

#: The course's five kernels by their visiontools names, in its order.
COURSE_KERNELS = ("edge", "bottom_sobel", "emboss", "sharpen", "blur")

#: Every named kernel (read-only arrays: edit a copy, not these): the course's five, then the others.
KERNELS: dict[str, np.ndarray] = {
    "edge": EDGE, "bottom_sobel": BOTTOM_SOBEL, "emboss": EMBOSS, "sharpen": SHARPEN, "blur": BLUR,
    "laplacian": LAPLACIAN, "box_blur": BOX_BLUR, "edge_enhance": EDGE_ENHANCE, "vertical_sobel": VERTICAL_SOBEL,
    "line_detector": LINE_DETECTOR,
}
for _kernel in KERNELS.values():
    _kernel.setflags(write=False)


def get_kernel(kernel) -> np.ndarray:
    """A kernel by name (``"edge"``, ...) or as given, as a float32 (R, S) array."""
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; the named kernels are {sorted(KERNELS)}")
        return KERNELS[kernel]
    array = np.asarray(kernel, dtype=np.float32)
    if array.ndim == 4 and array.shape[2:] == (1, 1):  # an HWIO filter with one input and output channel
        array = array[:, :, 0, 0]
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"a kernel must be a 2-D array (R, S), got shape {np.shape(kernel)}")
    return array


def _format(value: float, digits) -> str:
    value = round(float(value), digits) if digits is not None else float(value)
    return str(int(value)) if value == int(value) else f"{value:g}"


def draw_kernel(axes, kernel, title=None, digits=4, text_size=None):
    """Draw ``kernel`` on ``axes``: cells coloured by value, each labelled with its number."""
    from matplotlib import colormaps

    kernel = get_kernel(kernel)
    cmap = colormaps["Blues_r"]
    axes.imshow(kernel, cmap=cmap)
    rows, cols = kernel.shape
    threshold = (kernel.max() + kernel.min()) / 2
    size = text_size or max(7, 22 - 3 * max(rows, cols))
    for i in range(rows):
        for j in range(cols):
            value = kernel[i, j]
            # dark text on light cells, light text on dark ones (the course's rule)
            color = cmap(0) if value > threshold else cmap(255)
            axes.text(j, i, _format(value, digits), color=color, size=size, ha="center", va="center")
    axes.set_xticks([])
    axes.set_yticks([])
    if title is not None:
        axes.set_title(title)
    return axes


def show_kernel(kernel, title=None, digits=4, text_size=None, figsize=(3.0, 3.0)):
    """One kernel as a grid of coloured cells with its numbers; returns the Figure."""
    figure = new_figure(figsize)
    draw_kernel(figure.add_subplot(), kernel, title=title, digits=digits, text_size=text_size)
    return figure


def show_kernels(kernels=None, digits=4, per_row=5, figsize=None, title="Named kernels"):
    """Several kernels (default: every one of ``KERNELS``), ``per_row`` to a row, each titled with its
    name. The kernels drawn are ``figure.kernels`` ({name: array})."""
    kernels = {name: get_kernel(kernel) for name, kernel in (KERNELS if kernels is None else kernels).items()}
    cols = min(per_row, len(kernels))
    rows = -(-len(kernels) // cols)
    figure = new_figure(figsize or (2.6 * cols, 2.9 * rows + 0.3))
    for k, (name, kernel) in enumerate(kernels.items()):
        draw_kernel(figure.add_subplot(rows, cols, k + 1), kernel, title=name, digits=digits)
    if title:
        figure.suptitle(title)
    figure.kernels = kernels
    return figure
