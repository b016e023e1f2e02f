"""Preprocessing and augmentation layers, as in ``keras.layers`` (Keras 3.15's arguments and draws).

    layers.Rescaling(1 / 255)                        x * scale + offset, always
    layers.ImageNetPreprocessing("caffe")            a pretrained base's input normalisation, always
    layers.RandomFlip("horizontal")                  } random, per image of a batch, only when
    layers.RandomRotation(0.1)                       }   training=True (fit); the identity in
    layers.RandomTranslation(0.2, 0.2)               }   evaluate / predict
    layers.RandomZoom(0.2)                           }
    layers.RandomShear(0.2)                          }
    layers.RandomContrast(0.2)                       }
    layers.RandomWidth(0.15)                         }

Inputs are (N, H, W, C) images, channels last. Randomness: ``seed=`` an int gives the layer its
own generator (saved with the model); otherwise miniconv's global generator is used
(``miniconv.utils.set_random_seed``). NumPy's generator cannot reproduce TensorFlow's random
stream, so the *distributions* are Keras's, not the individual draws.

Rotation, translation, zoom and shear warp each image with ``miniconv.data.augment.affine_transform``
(TF's ImageProjectiveTransformV3 formula, bilinear or nearest, fill modes reflect / wrap /
constant / nearest): given the same transform they give TF's pixels. Keras 3.15's behaviours kept
on purpose, though they surprise:

- ``RandomFlip("horizontal_and_vertical")`` draws *one* coin per image and flips both axes
  together (a 180-degree turn or nothing), as Keras 3 does; Keras 2 flipped each axis independently.
- ``RandomShear(0.2)`` shears about the image's top-left corner (not its centre, as
  ``ImageDataGenerator(shear_range=...)`` did), by a factor from [-0.2, 0.2] per image (Keras 3's
  docstring says [0, 0.2]; its code draws from (-f, f), times a random sign).
- ``RandomWidth`` draws *one* width per batch and changes the output's width (its output shape's
  width is None), as Keras 3 (``keras.src.legacy.layers.RandomWidth``, the only one there is) does.
- ``RandomContrast(0.2)`` draws contrast factors in [1, 1.2] (a single float only raises
  contrast: Keras 3 bounds the factor to [0, 1], so its lower end is max(-0.2, 0) = 0); pass
  ``(0.2, 0.2)`` for [0.8, 1.2]. Outputs are clipped to ``value_range`` (default (0, 255)).

Gradients: these layers sit in front of the first trained layer, so training never asks them for
one; ``backward`` is still exact (the warp's transpose, the flip, the contrast map's Jacobian).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..data import augment
from ..ops.arrays import to_backend, to_host
from ..shapes import format_shape
from ..utils import as_generator, global_rng
from .base import Layer


def _identity(dy):
    return dy


class _HostLayer(Layer):
    """A layer computed with NumPy on the host: ``compute(x, training) -> (y, backward)`` on host
    arrays; ``call`` moves the arrays there and back (nothing moves on the numpy and cpu backends)."""

    def compute(self, x, training):
        raise NotImplementedError

    def call(self, x, weights, training=False):
        y, backward = self.compute(to_host(x), training)
        if backward is _identity:
            return x if y is None else to_backend(y), lambda dy, input_gradient=True: (dy, [])
        return to_backend(y), lambda dy, input_gradient=True: (to_backend(backward(to_host(dy))), [])


def _check_number(value, name: str, owner: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


def _factor_range(factor, name: str, owner: str, low: float = -1.0, high: float = 1.0, low_open: bool = False):
    """Keras's factor rule: a number f -> (-|f|, |f|); a pair -> sorted; each end in [low, high]."""
    def check(v):
        v = _check_number(v, name, owner)
        if v > high or v < low or (low_open and v == low):
            bound = "(" if low_open else "["
            raise ValueError(f"{owner}: {name} must be a number or a pair of numbers in {bound}{low:g}, {high:g}], "
                             f"got {factor!r}")
        return v

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{owner}: {name} must be a number or a pair (lower, upper), got {factor!r}")
        lower, upper = sorted(check(v) for v in factor)
        return lower, upper
    value = abs(check(factor))
    return -value, value


class _ImageLayer(_HostLayer):
    """Shared by the image layers: rank-4 input, the identity shape, the random generator."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.describe()}: only data_format='channels_last' is supported, got {data_format!r}")
        if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
            raise TypeError(f"{self.describe()}: seed must be None or an int, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else as_generator(self.seed, f"{self.describe()} seed")

    @property
    def rng(self) -> np.random.Generator:
        return self._rng if self._rng is not None else global_rng()

    def compute_output_shape(self, input_shape):
        self._expect_rank(input_shape, 4, "(batch, height, width, channels)")
        return tuple(input_shape)

    def _check_batch(self, x):
        if x.ndim != 4:
            raise ValueError(f"{self.describe()} expects images (N, H, W, C), got an array of shape {x.shape}")

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


class Rescaling(_HostLayer):
    """y = x * scale + offset (scale / offset: a number or one per channel), as ``keras.layers.Rescaling``.
    Not random: applied in training and at inference alike."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self._scale = self._coefficient(scale, "scale")
        self.offset, self._offset = self._coefficient(offset, "offset")

    def _coefficient(self, value, name):
        if isinstance(value, (tuple, list, np.ndarray)):
            array = np.asarray(value, dtype=np.float32)
            if array.ndim != 1 or not np.all(np.isfinite(array)):
                raise ValueError(f"{self.describe()}: {name} must be a number or a list of numbers (one per channel), "
                                 f"got {value!r}")
            return [float(v) for v in array], array
        number = _check_number(value, name, self.describe())
        return number, np.float32(number)

    def compute_output_shape(self, input_shape):
        for name, value in (("scale", self._scale), ("offset", self._offset)):
            size = np.size(value)
            if np.ndim(value) and input_shape[-1] is not None and size not in (1, input_shape[-1]):
                raise ValueError(f"{self.describe()}: {name} has {size} values for input {format_shape(input_shape)} "
                                 f"with {input_shape[-1]} channels")
        return tuple(input_shape)

    def compute(self, x, training):
        y = (x * self._scale + self._offset).astype(np.float32, copy=False)
        scale = self._scale

        def backward(dy):
            return (dy * scale).astype(np.float32, copy=False)

        return y, backward

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config


PER_CHANNEL_BLOCK = 1 << 16  # elements per block of ``_per_channel``: 256 KiB of float32, in L2 across its steps


def _per_channel(x, steps):
    """float32 y (N, H, W, C) = x, then y = op(y, v) for each (op, v) of ``steps`` in turn, v a scalar or
    one value per channel (C,): the bits of ``op_k(...op_1(x, v_1)..., v_k)`` computed in
    ``result_type(x, float32)`` and cast to float32 once at the end. Worked in blocks of whole image rows
    (~``PER_CHANNEL_BLOCK`` elements), so each block stays in cache across the steps, with v tiled to a
    row's W * C values: NumPy's inner loop then runs a row long instead of C = 3 long (a batch of 20
    224x224 images: 2.6 ms instead of 11.2 ms, measured)."""
    x = np.asarray(x)
    y = np.empty(x.shape, np.result_type(x.dtype, np.float32))
    if y.size == 0:
        return y.astype(np.float32, copy=False)
    row = x.shape[-2] * x.shape[-1] if x.ndim >= 2 else x.size
    x_rows, y_rows = x.reshape(-1, row), y.reshape(-1, row)  # x reshapes by a copy only if it is a strided view
    tiled = [(op, np.tile(v, row // v.size) if np.ndim(v) else v) for op, v in steps]
    block = max(1, PER_CHANNEL_BLOCK // row)
    for start in range(0, y_rows.shape[0], block):
        source, target = x_rows[start:start + block], y_rows[start:start + block]
        for op, v in tiled:
            op(source, v, out=target)
            source = target
    return y.astype(np.float32, copy=False)


class ImageNetPreprocessing(_HostLayer):
    """A pretrained network's input normalisation as a layer: what ``keras.applications.*.preprocess_input``
    does to a symbolic tensor inside a functional model (Keras 3 builds it from ops; here it is one
    layer, saved with the model by its mode). Images in [0, 255], RGB, channels last:

        mode="caffe"   y = x[..., ::-1] - (103.939, 116.779, 123.68)    RGB -> BGR, ImageNet's mean pixel
                       subtracted (VGG16, ResNet50)
        mode="torch"   y = (x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)   per RGB channel
                       (EfficientNet-Lite0's reference, torchvision's ToTensor + Normalize)

    Not random, applied in training and at inference alike; the gradient is the transpose (the
    channel flip back, or dy / (255 std)).
    """

    CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
    TORCH_MEAN = (0.485, 0.456, 0.406)
    TORCH_STD = (0.229, 0.224, 0.225)
    MODES = ("caffe", "torch")

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"{self.describe()}: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def compute_output_shape(self, input_shape):
        if input_shape[-1] not in (3, None):
            raise ValueError(f"{self.describe()}: expected RGB images (3 channels, last axis), got input "
                             f"{format_shape(input_shape)}")
        return tuple(input_shape)

    def compute(self, x, training):
        if self.mode == "caffe":
            y = _per_channel(x[..., ::-1], [(np.subtract, np.asarray(self.CAFFE_MEAN_BGR, np.float32))])
            return y, lambda dy: np.ascontiguousarray(dy[..., ::-1])
        std = np.asarray(self.TORCH_STD, np.float32)
        y = _per_channel(x, [(np.divide, np.float32(255)), (np.subtract, np.asarray(self.TORCH_MEAN, np.float32)),
                             (np.divide, std)])
        return y, lambda dy: _per_channel(dy, [(np.divide, np.float32(255) * std)])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config

    def to_keras(self, keras):
        """The same computation in Keras (``model.to_keras()``): a ``Rescaling`` for "torch" (x times
        1 / (255 std) plus -mean / std, equal to float32 rounding), Keras's own caffe formula for "caffe"."""
        if self.mode == "torch":
            std, mean = np.asarray(self.TORCH_STD), np.asarray(self.TORCH_MEAN)
            return keras.layers.Rescaling(scale=list(1 / (255 * std)), offset=list(-mean / std), name=self.name)
        mean = keras.ops.convert_to_tensor(np.asarray(self.CAFFE_MEAN_BGR, np.float32))
        return keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=-1) - mean, name=self.name)


class RandomFlip(_ImageLayer):
    """Flip each image with probability 1/2 (left-right for "horizontal", up-down for "vertical",
    both at once for "horizontal_and_vertical"), as ``keras.layers.RandomFlip``."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"{self.describe()}: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def flip(self, x, flips):
        """x with the images where ``flips`` (N,) is True flipped."""
        chosen = flips[:, None, None, None]
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = np.where(chosen, x[:, :, ::-1], x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = np.where(chosen, x[:, ::-1], x)
        return x.astype(np.float32, copy=False)

    def compute(self, x, training):
        if not training:
            return None, _identity
        self._check_batch(x)
        flips = self.rng.uniform(size=len(x)) <= 0.5  # Keras: uniform <= 0.5
        return self.flip(x, flips), lambda dy: self.flip(dy, flips)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


class _AffineLayer(_ImageLayer):
    """A random warp per image (``transforms(n, H, W)`` -> (n, 8)), sampled with fill mode and interpolation."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        augment.check_warp_arguments(interpolation, fill_mode, self.describe())
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = _check_number(fill_value, "fill_value", self.describe())

    def transforms(self, n: int, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def compute(self, x, training):
        if not training:
            return None, _identity
        self._check_batch(x)
        transforms = self.transforms(len(x), x.shape[1], x.shape[2])
        y = augment.affine_transform(x, transforms, self.interpolation, self.fill_mode, self.fill_value)

        def backward(dy):
            return augment.affine_transform_adjoint(dy, transforms, self.interpolation, self.fill_mode)

        return y, backward

    def get_config(self):
        config = super().get_config()
        config.update(fill_mode=self.fill_mode, interpolation=self.interpolation, fill_value=self.fill_value)
        return config


class RandomRotation(_AffineLayer):
    """Rotate each image by an angle drawn from [lower, upper] x 360 degrees (``factor`` as a fraction
    of a full turn: 0.1 -> up to 36 degrees either way; positive is counter-clockwise), about its
    centre, as ``keras.layers.RandomRotation``."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value, **kwargs)
        self.factor = _factor_range(factor, "factor", self.describe())

    def transforms(self, n, height, width):
        angles = self.rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=n)
        return augment.rotation_transforms(angles, height, width)

    def get_config(self):
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config


class RandomTranslation(_AffineLayer):
    """Shift each image by fractions of its height and width drawn from ``height_factor`` /
    ``width_factor`` (a number f: [-f, f]; a pair: [lower, upper]; positive is down / right),
    as ``keras.layers.RandomTranslation``."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value, **kwargs)
        self.height_factor = _factor_range(height_factor, "height_factor", self.describe())
        self.width_factor = _factor_range(width_factor, "width_factor", self.describe())

    def transforms(self, n, height, width):
        rng = self.rng
        dy = rng.uniform(*self.height_factor, size=n) * height  # Keras draws the height shift first
        dx = rng.uniform(*self.width_factor, size=n) * width
        return augment.translation_transforms(dx, dy)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=list(self.height_factor), width_factor=list(self.width_factor))
        return config


class RandomZoom(_AffineLayer):
    """Zoom each image about its centre by 1 + a factor drawn from ``height_factor`` (a number f:
    [-f, f]; a pair: [lower, upper]; positive zooms *out*); ``width_factor=None`` keeps the aspect
    ratio (the height's draw), as ``keras.layers.RandomZoom``."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value, **kwargs)
        self.height_factor = _factor_range(height_factor, "height_factor", self.describe(), low_open=True)
        self.width_factor = (None if width_factor is None
                             else _factor_range(width_factor, "width_factor", self.describe(), low_open=True))

    def transforms(self, n, height, width):
        rng = self.rng
        zy = 1.0 + rng.uniform(*self.height_factor, size=n)
        zx = zy if self.width_factor is None else 1.0 + rng.uniform(*self.width_factor, size=n)
        return augment.zoom_transforms(zx, zy, height, width)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=list(self.height_factor),
                      width_factor=None if self.width_factor is None else list(self.width_factor))
        return config


class RandomShear(_AffineLayer):
    """Shear each image about its top-left corner: output pixel (x, y) reads the input at
    (x + sx y, sy x + y), as ``keras.layers.RandomShear``. ``x_factor`` / ``y_factor``: a number f in
    [0, 1] draws from [-f, f], a pair (lower, upper) in [0, 1] from [lower, upper]; one random sign per
    image then multiplies both draws (Keras's ``invert``), so a pair's range is mirrored too."""

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 data_format=None, seed=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.x_factor = _factor_range(x_factor, "x_factor", self.describe(), low=0.0)
        self.y_factor = _factor_range(y_factor, "y_factor", self.describe(), low=0.0)
        # the config keeps the arguments as given: (-f, f) is not a valid argument ([0, 1] only)
        self._arguments = {name: list(v) if isinstance(v, (tuple, list)) else float(v)
                           for name, v in (("x_factor", x_factor), ("y_factor", y_factor))}

    def transforms(self, n, height, width):
        rng = self.rng
        invert = np.where(rng.uniform(size=n) > 0.5, -1.0, 1.0)  # Keras draws the sign first, then y, then x
        sy = rng.uniform(*self.y_factor, size=n)
        sx = rng.uniform(*self.x_factor, size=n)
        return augment.shear_transforms(sx * invert, sy * invert)

    def get_config(self):
        config = super().get_config()
        config.update(self._arguments)
        return config


class RandomWidth(_ImageLayer):
    """Stretch or squeeze the whole batch horizontally to width int(W * (1 + f)), f drawn once per
    call from [lower, upper] (a number f: [-f, f]; each bound at least -1), resized as
    ``tf.image.resize`` (half-pixel centres, no antialiasing), as Keras 3's ``RandomWidth``
    (``keras.src.legacy.layers``). The output's width varies from call to call, so its shape's width
    is None; the identity at inference. Interpolation "bilinear" or "nearest" (Keras also passes TF's
    other resize methods through; miniconv refuses them)."""

    INTERPOLATIONS = ("bilinear", "nearest")

    def __init__(self, factor, interpolation="bilinear", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        owner = self.describe()
        if isinstance(factor, (tuple, list)):
            if len(factor) != 2:
                raise ValueError(f"{owner}: factor must be a number or a pair (lower, upper), got {factor!r}")
            lower, upper = (_check_number(v, "factor", owner) for v in factor)
            self.factor = [lower, upper]
        else:
            upper = _check_number(factor, "factor", owner)
            lower, self.factor = -upper, upper
        if upper < lower:
            raise ValueError(f"{owner}: factor cannot have an upper bound less than the lower bound, got {factor!r}")
        if lower < -1.0 or upper < -1.0:
            raise ValueError(f"{owner}: factor must have values larger than -1, got {factor!r}")
        if interpolation not in self.INTERPOLATIONS:
            raise ValueError(f"{owner}: interpolation must be one of {self.INTERPOLATIONS}, got {interpolation!r}")
        self.width_lower, self.width_upper = lower, upper
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        self._expect_rank(input_shape, 4, "(batch, height, width, channels)")
        return (input_shape[0], input_shape[1], None, input_shape[3])

    def draw_width(self, width: int) -> int:
        """The batch's new width: int(f * W) in float32 (TF's cast truncates), f from [1 + lower, 1 + upper]."""
        factor = np.float32(self.rng.uniform(1.0 + self.width_lower, 1.0 + self.width_upper))
        new_width = int(factor * np.float32(width))
        if new_width < 1:
            raise ValueError(f"{self.describe()}: drew a width factor of {factor:g}, which leaves no column of the "
                             f"{width} (factor lower bound {self.width_lower:g})")
        return new_width

    def compute(self, x, training):
        if not training:
            return None, _identity
        self._check_batch(x)
        width, interpolation = x.shape[2], self.interpolation
        y = augment.resize_width(x, self.draw_width(width), interpolation)
        return y, lambda dy: augment.resize_width_adjoint(dy, width, interpolation)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, interpolation=self.interpolation)
        return config


class RandomContrast(_ImageLayer):
    """y = clip((x - mean) * f + mean, value_range), mean over each image's height and width per
    channel, f drawn per image from [1 - lower, 1 + upper], as ``keras.layers.RandomContrast``
    (Keras 3: a single ``factor`` f gives (lower, upper) = (0, f); see the module docstring)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = self._contrast_factor(factor)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(f"{self.describe()}: value_range must be a pair (low, high), got {value_range!r}")
        self.value_range = tuple(_check_number(v, "value_range", self.describe()) for v in value_range)

    def _contrast_factor(self, factor):
        owner = self.describe()
        message = f"{owner}: factor must be a number or a pair of numbers in [0, 1], got {factor!r}"
        if isinstance(factor, (tuple, list)):
            if len(factor) != 2:
                raise ValueError(message)
            low, high = (_check_number(v, "factor", owner) for v in factor)
            if low > 1 or high < 0:
                raise ValueError(message)
            return tuple(sorted((low, high)))
        value = _check_number(factor, "factor", owner)
        if not 0 <= value <= 1:
            raise ValueError(message)
        return max(-value, 0.0), value

    def compute(self, x, training):
        if not training:
            return None, _identity
        self._check_batch(x)
        f = self.rng.uniform(1.0 - self.factor[0], 1.0 + self.factor[1], size=(len(x), 1, 1, 1)).astype(np.float32)
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
        z = (x - mean) * f + mean
        low, high = np.float32(self.value_range[0]), np.float32(self.value_range[1])
        y = np.clip(z, low, high).astype(np.float32, copy=False)
        inside = (z >= low) & (z <= high)

        def backward(dy):
            g = dy * inside
            return (g * f + (1 - f) * g.mean(axis=(1, 2), keepdims=True)).astype(np.float32, copy=False)

        return y, backward

    def get_config(self):
        config = super().get_config()
        config.update(factor=list(self.factor), value_range=list(self.value_range))
        return config


__all__ = ["RandomContrast", "RandomFlip", "RandomRotation", "RandomShear", "RandomTranslation", "RandomWidth",
           "RandomZoom", "Rescaling"]
