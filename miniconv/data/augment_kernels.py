"""Numba kernel of the projective image warp behind RandomRotation / RandomTranslation / RandomZoom /
RandomShear.

The same arithmetic as ``miniconv.data.augment.affine_transform_reference`` (the readable NumPy
oracle, tested against it) and as TensorFlow's ``ImageProjectiveTransformV3``
(tensorflow/core/kernels/image/image_ops.h), one output pixel per inner iteration.

Shape legend: N batch, H W image size, C channels. transforms (N, 8) float32: output pixel (x, y)
reads the input at ((t0 x + t1 y + t2) / k, (t3 x + t4 y + t5) / k), k = t6 x + t7 y + 1.
Fill modes: 0 reflect, 1 wrap, 2 constant, 3 nearest. Interpolation: 0 nearest, 1 bilinear.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

FILL_MODES = {"reflect": 0, "wrap": 1, "constant": 2, "nearest": 3}
INTERPOLATIONS = {"nearest": 0, "bilinear": 1}


@njit(cache=True, inline="always")
def _map_coordinate(coord, length, mode):
    """An input coordinate outside [0, length - 1] brought inside by the fill mode (constant: unchanged)."""
    if mode == 2:
        return coord
    if mode == 0:  # reflect: dcba|abcd|dcba
        if coord < 0:
            if length <= 1:
                coord = np.float32(0.0)
            else:
                sz2 = 2 * length
                if coord < sz2:
                    coord = np.float32(sz2 * int(-coord / sz2) + coord)
                coord = np.float32(coord + sz2) if coord < -length else np.float32(-coord - 1)
        elif coord > length - 1:
            if length <= 1:
                coord = np.float32(0.0)
            else:
                sz2 = 2 * length
                coord = np.float32(coord - sz2 * int(coord / sz2))
                if coord >= length:
                    coord = np.float32(sz2 - coord - 1)
    elif mode == 1:  # wrap: abcd|abcd|abcd
        if coord < 0:
            if length <= 1:
                coord = np.float32(0.0)
            else:
                sz = length - 1
                coord = np.float32(coord + length * (int(-coord / sz) + 1))
        elif coord > length - 1:
            if length <= 1:
                coord = np.float32(0.0)
            else:
                sz = length - 1
                coord = np.float32(coord - length * int(coord / sz))
    # reflect, wrap and nearest end clamped to [0, length - 1]
    return np.float32(min(max(coord, np.float32(0.0)), np.float32(length - 1)))


@njit(cache=True, inline="always")
def _read(images, n, y, x, c, fill):
    H, W = images.shape[1], images.shape[2]
    if 0 <= y < H and 0 <= x < W:
        return images[n, y, x, c]
    return fill


@njit(nogil=True, cache=True)
def affine_transform_forward(images, transforms, interpolation, fill_mode, fill_value, out, start, stop):
    """out[n, y, x, c] = images sampled at transforms[n] applied to (x, y), TF's ImageProjectiveTransformV3.

    Images n in [start, stop) only: the caller shares the batch between threads."""
    _, H, W, C = images.shape
    fill = np.float32(fill_value)
    for n in range(start, stop):
        t = transforms[n]
        for y in range(H):
            for x in range(W):
                xf, yf = np.float32(x), np.float32(y)
                projection = t[6] * xf + t[7] * yf + np.float32(1.0)
                if projection == 0:
                    for c in range(C):
                        out[n, y, x, c] = fill
                    continue
                in_x = _map_coordinate(np.float32((t[0] * xf + t[1] * yf + t[2]) / projection), W, fill_mode)
                in_y = _map_coordinate(np.float32((t[3] * xf + t[4] * yf + t[5]) / projection), H, fill_mode)
                if interpolation == 0:
                    # std::round: halves away from zero
                    ry = math.floor(in_y + 0.5) if in_y >= 0 else -math.floor(-in_y + 0.5)
                    rx = math.floor(in_x + 0.5) if in_x >= 0 else -math.floor(-in_x + 0.5)
                    for c in range(C):
                        out[n, y, x, c] = _read(images, n, ry, rx, c, fill)
                    continue
                y0f, x0f = np.float32(math.floor(in_y)), np.float32(math.floor(in_x))
                y1f, x1f = y0f + np.float32(1.0), x0f + np.float32(1.0)
                y0, x0 = int(y0f), int(x0f)
                y1, x1 = y0 + 1, x0 + 1
                wx0, wx1 = x1f - in_x, in_x - x0f
                wy0, wy1 = y1f - in_y, in_y - y0f
                if 0 <= y0 and y1 < H and 0 <= x0 and x1 < W:  # all four taps inside: the common case
                    for c in range(C):
                        top = wx0 * images[n, y0, x0, c] + wx1 * images[n, y0, x1, c]
                        bottom = wx0 * images[n, y1, x0, c] + wx1 * images[n, y1, x1, c]
                        out[n, y, x, c] = wy0 * top + wy1 * bottom
                else:
                    for c in range(C):
                        top = wx0 * _read(images, n, y0, x0, c, fill) + wx1 * _read(images, n, y0, x1, c, fill)
                        bottom = wx0 * _read(images, n, y1, x0, c, fill) + wx1 * _read(images, n, y1, x1, c, fill)
                        out[n, y, x, c] = wy0 * top + wy1 * bottom
