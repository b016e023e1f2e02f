"""Image warps for the augmentation layers, as Keras 3 / TensorFlow compute them.

    transforms = rotation_transforms(angles_degrees, H, W)          # (N, 8) float32
    out = affine_transform(images, transforms, "bilinear", "reflect")
    wider = resize_width(images, 12)                                  # RandomWidth: (N, H, 12, C)

A transform row (t0 .. t7) maps each *output* pixel (x, y) to the input point it samples:
x_in = (t0 x + t1 y + t2) / k, y_in = (t3 x + t4 y + t5) / k, k = t6 x + t7 y + 1 (k = 1 here).
Points outside the image are brought back by the fill mode, as TF's ImageProjectiveTransformV3:

    reflect   (d c b a | a b c d | d c b a)   about the edge of the last pixel
    wrap      (a b c d | a b c d | a b c d)
    constant  (k k k k | a b c d | k k k k)   k = fill_value
    nearest   (a a a a | a b c d | d d d d)

then sampled bilinearly (the four neighbours, a neighbour outside the image reading fill_value;
in reflect / wrap / nearest modes only the zero-weight neighbour at the far edge can be outside) or
at the nearest pixel (halves rounded away from zero).

``affine_transform_reference`` is the readable NumPy statement (the oracle of the tests);
``affine_transform`` runs the Numba kernel of ``augment_kernels``. ``affine_transform_adjoint``
is the transpose of the warp (scatter-add), for a gradient through a layer while training.

Shape legend: N batch, H W image size, C channels.
"""

from __future__ import annotations

import numpy as np

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


# --- the transforms (Keras's matrices) ----------------------------------------------------------
def rotation_transforms(angles_degrees, height: int, width: int) -> np.ndarray:
    """Rotations by ``angles`` (degrees; positive counter-clockwise on screen) about the image centre
    ((W - 1) / 2, (H - 1) / 2), as ``keras.layers.RandomRotation``: rows (cos, -sin, a2, sin, cos, b2, 0, 0)."""
    theta = np.asarray(angles_degrees, np.float32) * np.float32(np.pi / 180.0)
    cx, cy = np.float32(0.5 * (width - 1)), np.float32(0.5 * (height - 1))
    cos, sin = np.cos(theta), np.sin(theta)
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    zeros = np.zeros_like(theta)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)


def translation_transforms(dx, dy) -> np.ndarray:
    """Shifts by (dx, dy) pixels (right, down), as ``keras.layers.RandomTranslation``: rows (1, 0, -dx, 0, 1, -dy, 0, 0)."""
    dx, dy = np.asarray(dx, np.float32), np.asarray(dy, np.float32)
    ones, zeros = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1).astype(np.float32)


def zoom_transforms(zx, zy, height: int, width: int) -> np.ndarray:
    """Sampling steps (zx, zy) about the image centre (> 1 zooms out), as ``keras.layers.RandomZoom``:
    rows (zx, 0, (W - 1) / 2 (1 - zx), 0, zy, (H - 1) / 2 (1 - zy), 0, 0)."""
    zx, zy = np.asarray(zx, np.float32), np.asarray(zy, np.float32)
    zeros = np.zeros_like(zx)
    x_offset = (np.float32(width) - 1) / 2 * (1 - zx)
    y_offset = (np.float32(height) - 1) / 2 * (1 - zy)
    return np.stack([zx, zeros, x_offset, zeros, zy, y_offset, zeros, zeros], axis=1).astype(np.float32)


def shear_transforms(shear_x, shear_y) -> np.ndarray:
    """Shears by factors (sx, sy) about the image's top-left corner, as ``keras.layers.RandomShear``:
    output pixel (x, y) reads the input at (x + sx y, sy x + y); rows (1, sx, 0, sy, 1, 0, 0, 0)."""
    sx, sy = np.asarray(shear_x, np.float32), np.asarray(shear_y, np.float32)
    ones, zeros = np.ones_like(sx), np.zeros_like(sx)
    return np.stack([ones, sx, zeros, sy, ones, zeros, zeros, zeros], axis=1).astype(np.float32)


# --- resizing the width (RandomWidth) -----------------------------------------------------------
def width_taps(in_width: int, out_width: int, interpolation: str = "bilinear"):
    """For each output column, (lower, upper, weight of upper), as ``tf.image.resize`` (antialias off,
    half-pixel centres) computes them in float32: bilinear reads in = (o + 0.5) W / Q - 0.5 between
    max(floor(in), 0) and min(ceil(in), W - 1); nearest reads clamp(floor((o + 0.5) W / Q), 0, W - 1)."""
    scale = np.float32(in_width) / np.float32(out_width)
    centres = np.arange(out_width, dtype=np.float32) + np.float32(0.5)
    if interpolation == "nearest":
        index = np.clip(np.floor(centres * scale), 0, in_width - 1).astype(np.intp)
        return index, index, np.zeros(out_width, np.float32)
    position = centres * scale - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(position), in_width - 1).astype(np.intp)
    return lower, upper, (position - floor).astype(np.float32)


def resize_width(images, width: int, interpolation: str = "bilinear") -> np.ndarray:
    """(N, H, W, C) -> (N, H, width, C) float32, as ``tf.image.resize(images, (H, width), interpolation)``
    (the rows keep their height, so only the columns are interpolated: a + (b - a) * weight, TF's order)."""
    images = np.asarray(images, np.float32)
    lower, upper, weight = width_taps(images.shape[2], int(width), interpolation)
    a, b = images[:, :, lower], images[:, :, upper]
    return (a + (b - a) * weight[None, None, :, None]).astype(np.float32, copy=False)


def resize_width_adjoint(dy, in_width: int, interpolation: str = "bilinear") -> np.ndarray:
    """The transpose of ``resize_width`` applied to dy (N, H, width, C): (N, H, in_width, C)."""
    dy = np.asarray(dy, np.float32)
    lower, upper, weight = width_taps(in_width, dy.shape[2], interpolation)
    matrix = np.zeros((dy.shape[2], in_width), np.float32)              # (width, in_width): y = matrix @ x
    columns = np.arange(dy.shape[2])
    np.add.at(matrix, (columns, lower), 1 - weight)
    np.add.at(matrix, (columns, upper), weight)
    return np.einsum("nhvc,vw->nhwc", dy, matrix).astype(np.float32, copy=False)


# --- the warp: NumPy reference ------------------------------------------------------------------
def map_coordinates(coord: np.ndarray, length: int, fill_mode: str) -> np.ndarray:
    """TF's MapCoordinate: input coordinates (float32) brought into [0, length - 1] by the fill mode
    (constant: returned unchanged; out-of-image points then read fill_value)."""
    coord = np.asarray(coord, np.float32)
    if fill_mode == "constant":
        return coord
    if fill_mode != "nearest" and length <= 1:
        return np.zeros_like(coord)
    if fill_mode == "reflect":
        sz2 = 2 * length
        low = coord < 0
        c = np.where(low & (coord < sz2), sz2 * np.trunc(-coord / sz2) + coord, coord)   # into [-2L, 0)
        c = np.where(low, np.where(c < -length, c + sz2, -c - 1), c)
        high = coord > length - 1
        h = coord - sz2 * np.trunc(coord / sz2)                                             # into [0, 2L)
        h = np.where(h >= length, sz2 - h - 1, h)
        coord = np.where(high, h, c).astype(np.float32)
    elif fill_mode == "wrap":
        sz = length - 1
        low = coord + length * (np.trunc(-coord / sz) + 1)
        high = coord - length * np.trunc(coord / sz)
        coord = np.where(coord < 0, low, np.where(coord > length - 1, high, coord)).astype(np.float32)
    return np.clip(coord, 0, length - 1).astype(np.float32)


def _source_points(transforms, H: int, W: int, fill_mode: str):
    """(x_in, y_in, valid): the mapped input point of every output pixel, (N, H, W) float32 each;
    valid is False where the projection is 0 (the whole pixel is fill_value)."""
    t = np.asarray(transforms, np.float32)[:, :, None, None]               # (N, 8, 1, 1)
    y, x = np.meshgrid(np.arange(H, dtype=np.float32), np.arange(W, dtype=np.float32), indexing="ij")
    k = t[:, 6] * x + t[:, 7] * y + np.float32(1)
    valid = k != 0
    k = np.where(valid, k, np.float32(1))
    x_in = (t[:, 0] * x + t[:, 1] * y + t[:, 2]) / k
    y_in = (t[:, 3] * x + t[:, 4] * y + t[:, 5]) / k
    return map_coordinates(x_in, W, fill_mode), map_coordinates(y_in, H, fill_mode), valid


def sampling_taps(transforms, H: int, W: int, interpolation: str, fill_mode: str):
    """The warp as a sparse matrix: for each output pixel up to four (flat input index, weight) taps.

    Returns (index, weight, inside, fill_weight): index (N, H, W, T) into the image's H * W pixels,
    weight (N, H, W, T) float32, inside (N, H, W, T) bool (False: the tap reads fill_value), and
    fill_weight (N, H, W) float32, the total weight of fill_value in each output pixel.
    """
    x, y, valid = _source_points(transforms, H, W, fill_mode)
    if interpolation == "nearest":
        ys = [np.where(y < 0, -np.floor(-y + 0.5), np.floor(y + 0.5))]
        xs = [np.where(x < 0, -np.floor(-x + 0.5), np.floor(x + 0.5))]
        weights = [np.ones_like(x)]
    else:
        y0, x0 = np.floor(y), np.floor(x)
        y1, x1 = y0 + 1, x0 + 1
        ys, xs = [y0, y0, y1, y1], [x0, x1, x0, x1]
        weights = [(y1 - y) * (x1 - x), (y1 - y) * (x - x0), (y - y0) * (x1 - x), (y - y0) * (x - x0)]
    iy = np.stack(ys, -1).astype(np.int64)
    ix = np.stack(xs, -1).astype(np.int64)
    weight = np.stack(weights, -1).astype(np.float32) * valid[..., None]
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W) & valid[..., None]
    index = np.where(inside, iy * W + ix, 0)
    fill_weight = np.where(valid, np.where(inside, 0, weight).sum(-1), np.float32(1)).astype(np.float32)
    return index, np.where(inside, weight, 0).astype(np.float32), inside, fill_weight


def affine_transform_reference(images, transforms, interpolation="bilinear", fill_mode="reflect",
                               fill_value=0.0) -> np.ndarray:
    """(N, H, W, C) float32 warped by ``transforms`` (N, 8): plain NumPy, the statement of the warp.

    Bilinear weights are products (1 - fy)(1 - fx) ... rather than TF's nested lerps, so results
    agree with TF and with the kernel to float32 rounding, not bit for bit.
    """
    images = np.asarray(images, np.float32)
    N, H, W, C = images.shape
    index, weight, _, fill_weight = sampling_taps(transforms, H, W, interpolation, fill_mode)
    flat = images.reshape(N, H * W, C)
    gathered = np.take_along_axis(flat[:, None], index.reshape(N, 1, -1, 1), axis=2)          # (N, 1, H*W*T, C)
    gathered = gathered.reshape(N, H, W, index.shape[-1], C)
    out = (gathered * weight[..., None]).sum(axis=3) + fill_weight[..., None] * np.float32(fill_value)
    return out.astype(np.float32)


def affine_transform_adjoint(dy, transforms, interpolation="bilinear", fill_mode="reflect") -> np.ndarray:
    """The transpose of the warp applied to dy (N, H, W, C): d(sum dy * warp(x)) / dx, a scatter-add."""
    dy = np.asarray(dy, np.float32)
    N, H, W, C = dy.shape
    index, weight, _, _ = sampling_taps(transforms, H, W, interpolation, fill_mode)
    dx = np.zeros((N, H * W, C), np.float32)
    contributions = weight[..., None] * dy[:, :, :, None, :]                                  # (N, H, W, T, C)
    for n in range(N):
        np.add.at(dx[n], index[n].reshape(-1), contributions[n].reshape(-1, C))
    return dx.reshape(N, H, W, C)


# --- the warp: the kernel -------------------------------------------------------------------------
def check_warp_arguments(interpolation: str, fill_mode: str, owner: str = "affine_transform") -> None:
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{owner}: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{owner}: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0) -> np.ndarray:
    """(N, H, W, C) float32 warped by ``transforms`` (N, 8), as ``keras.ops.image.affine_transform``
    (TF's ImageProjectiveTransformV3); the Numba kernel of ``augment_kernels``."""
    from ..backend.cpu.work_sharing import parallel_range
    from . import augment_kernels as kernels

    check_warp_arguments(interpolation, fill_mode)
    images = np.ascontiguousarray(images, dtype=np.float32)
    transforms = np.ascontiguousarray(transforms, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"affine_transform: images must be (N, H, W, C), got shape {images.shape}")
    if transforms.shape != (images.shape[0], 8):
        raise ValueError(f"affine_transform: transforms must be ({images.shape[0]}, 8), got {transforms.shape}")
    out = np.empty_like(images)
    args = (images, transforms, kernels.INTERPOLATIONS[interpolation], kernels.FILL_MODES[fill_mode],
            float(fill_value), out)
    parallel_range(lambda start, stop: kernels.affine_transform_forward(*args, start, stop), len(images), 1)
    return out


__all__ = ["FILL_MODES", "INTERPOLATIONS", "affine_transform", "affine_transform_adjoint",
           "affine_transform_reference", "map_coordinates", "resize_width", "resize_width_adjoint",
           "rotation_transforms", "sampling_taps", "shear_transforms", "translation_transforms", "width_taps",
           "zoom_transforms"]
