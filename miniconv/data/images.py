"""Reading one image file as Keras's ``image_dataset_from_directory`` does: decode, convert, resize.

    image = load_image(path, (150, 150), channels=3)       # (150, 150, 3) float32 in [0, 255]

Decoding is Pillow's (JPEG, PNG, BMP, GIF; an animated GIF gives its first frame). Channels:
1 -> Pillow mode "L", 3 -> "RGB", 4 -> "RGBA" (alpha is dropped, not composited, as TF's
``decode_image`` does). A 16-bit grayscale PNG (Pillow's "I;16") becomes 8 bits as value >> 8,
as TF's ``decode_image`` does for uint8 (Pillow's own conversion clips at 255; its 16-bit colour
PNGs already keep the high byte). PNG, BMP and GIF decode to the same pixels as TF. JPEG does not quite:
TF's ``decode_jpeg`` uses libjpeg's fast integer IDCT by default, Pillow the accurate one (it
offers no choice), so pixels differ by up to about 4 grey levels (mean about 1 on the cats-and-dogs
photos); Pillow's are the closer to the encoder's. A grayscale conversion of a colour file uses
Pillow's ITU-R 601 weights, which can differ from TF's by a grey level or two.

Resizing ignores the aspect ratio, as Keras does by default (``crop_to_aspect_ratio=False``):

- ``"bilinear"`` (the default) and ``"nearest"`` are TensorFlow's own formulas
  (``tf.image.resize`` with ``antialias=False``: half-pixel centres, no low-pass filter when
  shrinking), written out below in NumPy; they agree with TF to float32 rounding. Pillow's
  ``BILINEAR`` is *not* used: it widens its filter when shrinking (an antialiased result that
  differs from Keras's by up to tens of grey levels on a 3x reduction).
- ``"bicubic"``, ``"area"`` and ``"lanczos3"`` use Pillow's BICUBIC, BOX and LANCZOS filters on
  float32 channels. These are close to, not equal to, TF's (Pillow antialiases when shrinking).

Shape legend: H W the file's size, P Q the output size (image_size), C channels.
"""

from __future__ import annotations

import numpy as np

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TF_EXACT = ("bilinear", "nearest")
PILLOW_FILTERS = {"bicubic": "BICUBIC", "area": "BOX", "lanczos3": "LANCZOS"}
INTERPOLATIONS = TF_EXACT + tuple(PILLOW_FILTERS)
MODES = {1: "L", 3: "RGB", 4: "RGBA"}
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grayscale ("I": older Pillow's PNG mode)


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is installed wherever image folders are used
        raise ImportError("miniconv.data needs Pillow to decode images: pip install pillow") from None
    return Image


def decode_errors() -> tuple:
    """The exceptions that mean "this file is not a readable image" (corrupt, truncated, not an image)."""
    import struct
    import zlib

    Image = _pil()
    return (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def check_header(path: str) -> None:
    """Raise one of ``decode_errors()`` unless Pillow recognises the file as an image (reads the header only)."""
    Image = _pil()
    with Image.open(path) as image:
        if image.width < 1 or image.height < 1:
            raise ValueError(f"{path}: image of size {image.size}")


def decode(path: str, channels: int) -> np.ndarray:
    """The file's pixels as uint8 (H, W, C); raises one of ``decode_errors()`` for an unreadable file."""
    Image = _pil()
    with Image.open(path) as image:
        image.seek(0)  # an animated GIF: its first frame, as Keras (expand_animations=False)
        if image.mode in WIDE_GRAY_MODES:
            image = _high_byte(image)
        if image.mode != MODES[channels]:
            image = image.convert(MODES[channels])
        array = np.asarray(image)  # loads (and fully decodes) the file
    if array.ndim == 2:
        array = array[:, :, None]
    return array


def _high_byte(image):
    """A 16-bit grayscale image as 8-bit grayscale ("L"): value >> 8 (0..65535 -> 0..255), TF's rule."""
    values = np.asarray(image).astype(np.int64)  # uint16 (either byte order) or int32 ("I")
    return _pil().fromarray(np.clip(values >> 8, 0, 255).astype(np.uint8))  # 2-D uint8: mode "L"


def _bilinear_taps(in_size: int, out_size: int):
    """TF's half-pixel bilinear taps: for each output index, (lower, upper, weight of upper).

    in = (o + 0.5) * in_size / out_size - 0.5, lower = max(floor(in), 0), upper = min(ceil(in), in_size - 1),
    weight = in - floor(in); computed in float32 as TF does (resize_bilinear_op.cc).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    position = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(position), in_size - 1).astype(np.intp)
    return lower, upper, (position - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, size) -> np.ndarray:
    """(H, W, C) -> (P, Q, C) float32, as ``tf.image.resize(image, size, "bilinear")`` (antialias off).

    top = a + (b - a) * wx, bottom = c + (d - c) * wx, out = top + (bottom - top) * wy, with a b / c d
    the upper / lower row's left and right taps, evaluated in TF's order so rounding matches.
    """
    P, Q = size
    H, W = image.shape[:2]
    y0, y1, wy = _bilinear_taps(H, P)
    x0, x1, wx = _bilinear_taps(W, Q)
    top_rows, bottom_rows = image[y0], image[y1]                      # (P, W, C), still uint8 when decoded
    wx = wx[None, :, None]
    a, b = top_rows[:, x0].astype(np.float32), top_rows[:, x1].astype(np.float32)      # (P, Q, C)
    c, d = bottom_rows[:, x0].astype(np.float32), bottom_rows[:, x1].astype(np.float32)
    top = a + (b - a) * wx
    bottom = c + (d - c) * wx
    return top + (bottom - top) * wy[:, None, None]


def resize_nearest(image: np.ndarray, size) -> np.ndarray:
    """(H, W, C) -> (P, Q, C) float32, as ``tf.image.resize(image, size, "nearest")``: index
    clamp(floor((o + 0.5) * in / out), 0, in - 1) on each axis (half-pixel centres)."""
    P, Q = size
    H, W = image.shape[:2]

    def taps(in_size, out_size):
        scale = np.float32(in_size) / np.float32(out_size)
        index = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
        return np.clip(index, 0, in_size - 1).astype(np.intp)

    return image[taps(H, P)][:, taps(W, Q)].astype(np.float32)


def resize_pillow(image: np.ndarray, size, interpolation: str) -> np.ndarray:
    """(H, W, C) -> (P, Q, C) float32 with a Pillow filter, each channel resized in float32 ("F" mode)."""
    Image = _pil()
    resample = getattr(Image.Resampling, PILLOW_FILTERS[interpolation])
    P, Q = size
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32), mode="F")
                           .resize((Q, P), resample)) for c in range(image.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)


def resize(image: np.ndarray, size, interpolation: str = "bilinear") -> np.ndarray:
    """(H, W, C) -> (P, Q, C) float32 with ``interpolation`` (see the module docstring)."""
    if interpolation == "bilinear":
        return resize_bilinear(image, size)
    if interpolation == "nearest":
        return resize_nearest(image, size)
    return resize_pillow(image, size, interpolation)


def load_image(path: str, size, channels: int = 3, interpolation: str = "bilinear") -> np.ndarray:
    """Decode ``path`` and resize it to ``size`` = (P, Q): (P, Q, channels) float32 in [0, 255]."""
    return resize(decode(path, channels), size, interpolation)


__all__ = ["ALLOWLIST_FORMATS", "INTERPOLATIONS", "check_header", "decode", "decode_errors", "load_image", "resize",
           "resize_bilinear", "resize_nearest"]
