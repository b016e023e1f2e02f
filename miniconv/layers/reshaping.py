"""ZeroPadding2D, as ``keras.layers.ZeroPadding2D``: rows and columns of zeros around each image.

    padding 1           one row / column on every side
    padding (h, w)      h rows above and below, w columns left and right
    padding ((top, bottom), (left, right))

(N, H, W, C) -> (N, top + H + bottom, left + W + right, C), computed with ``ops.pad.pad2d``. When
a convolution with VALID padding reads its output, the compiled model runs the two as one
convolution with explicit padding (the fusion table), as PyTorch-trained bases pad.
"""

from __future__ import annotations

import numbers

from ..ops import vjp
from ..ops.pad import check_paddings, pad2d
from ..shapes import format_shape
from .arguments import check_data_format
from .base import Layer


def _paddings(padding, owner):
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = ((padding, padding), (padding, padding))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding):
        padding = ((padding[0], padding[0]), (padding[1], padding[1]))
    try:
        return check_paddings(padding, owner)
    except ValueError:
        raise ValueError(f"{owner}: padding must be an int, (rows, columns) or ((top, bottom), (left, right)) of "
                         f"non-negative ints, got {padding!r}") from None


class ZeroPadding2D(Layer):
    """Zeros around each image; see the module docstring."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, self.describe())
        self.padding = _paddings(padding, self.describe())

    def compute_output_shape(self, input_shape):
        self._expect_rank(input_shape, 4, "(batch, height, width, channels)")
        (top, bottom), (left, right) = self.padding
        H, W = input_shape[1], input_shape[2]
        if 0 in (H, W):
            raise ValueError(f"{self.describe()}: empty input {format_shape(input_shape)}")
        return (input_shape[0], None if H is None else H + top + bottom, None if W is None else W + left + right,
                input_shape[3])

    def call(self, x, weights, training=False):
        y, pullback = vjp(pad2d, x, self.padding)
        return y, lambda dy, input_gradient=True: (pullback(dy)[0], [])

    def get_config(self):
        config = super().get_config()
        config["padding"] = [list(p) for p in self.padding]
        return config
