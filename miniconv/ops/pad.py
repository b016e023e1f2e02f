"""Zero padding of images: the op behind the ``ZeroPadding2D`` layer.

Shape legend: N batch, H W input size, C channels; (top, bottom), (left, right) the rows and
columns of zeros added.

    pad2d(x, ((top, bottom), (left, right)))   (N, H, W, C) -> (N, top + H + bottom, left + W + right, C)
    pullback: dy cropped back to (N, H, W, C)

As ``tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])``. (A ZeroPadding2D followed by a
convolution with VALID padding compiles to one convolution with explicit padding: the fusion table.)
"""

from __future__ import annotations

import numbers

from ..backend import get_backend
from ._checks import as_float_array, check_upstream
from ._vjp import has_vjp


def check_paddings(paddings, op: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of non-negative ints."""
    try:
        (top, bottom), (left, right) = paddings
    except (TypeError, ValueError):
        raise ValueError(f"{op}: paddings must be ((top, bottom), (left, right)), got {paddings!r}") from None
    values = (top, bottom, left, right)
    if any(not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0 for v in values):
        raise ValueError(f"{op}: paddings must be non-negative ints ((top, bottom), (left, right)), got {paddings!r}")
    return (int(top), int(bottom)), (int(left), int(right))


def pad2d_vjp(x, paddings, *, backend=None):
    """``pad2d`` and its pullback ``dy -> (dx,)``: dy cropped to x's rows and columns."""
    op = "pad2d"
    x = as_float_array(x, "x", op, rank=4, layout="(N, H, W, C)")
    (top, bottom), (left, right) = check_paddings(paddings, op)
    be = get_backend(backend)
    y = be.pad2d_forward(x, top, bottom, left, right)
    return y, lambda dy: (be.pad2d_backward(check_upstream(dy, tuple(y.shape), op), top, bottom, left, right),)


@has_vjp(pad2d_vjp)
def pad2d(x, paddings, *, backend=None):
    """x (N, H, W, C) with rows and columns of zeros added: ``paddings`` ((top, bottom), (left, right))."""
    return pad2d_vjp(x, paddings, backend=backend)[0]


__all__ = ["check_paddings", "pad2d", "pad2d_vjp"]
