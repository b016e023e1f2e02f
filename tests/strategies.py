"""Hypothesis strategies: one frozen case per drawn example, arrays generated from its seed.

Hypothesis draws the shapes and arguments (and shrinks them); the values come from a NumPy
generator seeded by the case, so a failing case prints as a short, reproducible record.
Sizes stay small (N <= 3, H, W <= 12, C, K <= 5, windows <= 5) to keep the suite fast.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel / window size,
P Q output size. Output sizes are computed here independently of ``miniconv.shapes`` (TF's rule):
    VALID: P = ceil((H - (R - 1) * d) / s)       SAME: P = ceil(H / s)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_reference as ref
from hypothesis import strategies as st
from tf_reference import Tolerance

import miniconv

MAX_N, MAX_HW, MAX_C, MAX_WINDOW, MAX_STRIDE = 3, 12, 5, 5, 6
PADDINGS = st.sampled_from(["VALID", "SAME"])
seeds = st.integers(0, 2**32 - 1)


def out_size(size: int, window: int, stride: int, dilation: int, padding: str) -> int:
    """TensorFlow's output size for one spatial axis."""
    effective = (window - 1) * dilation + 1
    if padding == "VALID":
        return math.ceil((size - effective + 1) / stride)
    return math.ceil(size / stride)


def uniform(rng: np.random.Generator, shape, low=-1.0, high=1.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


def tie_free(rng: np.random.Generator, shape) -> np.ndarray:
    """Distinct values in [-1, 1): a shuffled arange, scaled; max pooling has no ties on it."""
    size = math.prod(shape)
    return ((2.0 * rng.permutation(size) - size) / max(size, 1)).reshape(shape).astype(np.float32)


def _form(draw, values: tuple[int, ...], long_form: bool = True):
    """One of the equivalent ways TF accepts a per-axis argument: int, list, or [1, ..., 1]."""
    forms = ["list"] + (["int"] if len(set(values)) == 1 else []) + (["long"] if long_form else [])
    form = draw(st.sampled_from(forms))
    if form == "int":
        return values[0]
    if form == "long":
        return [1, *values, 1]
    return list(values)


def _window(draw, size: int, padding: str, dilation: int = 1, max_window: int = MAX_WINDOW) -> int:
    """A window size; under VALID its dilated extent fits the input, under SAME anything goes."""
    if padding == "VALID":
        max_window = min(max_window, (size - 1) // dilation + 1)
    return draw(st.integers(1, max_window))


# --- convolution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvCase:
    """A conv1d (H = R = 1) or conv2d call: shapes, arguments, and the seed of its values."""

    dims: int
    N: int
    H: int
    W: int
    C: int
    K: int
    R: int
    S: int
    strides: tuple[int, int]
    dilations: tuple[int, int]
    padding: str
    strides_arg: object = field(repr=False)
    dilations_arg: object = field(repr=False)
    seed: int = 0

    @property
    def P(self) -> int:
        return out_size(self.H, self.R, self.strides[0], self.dilations[0], self.padding)

    @property
    def Q(self) -> int:
        return out_size(self.W, self.S, self.strides[1], self.dilations[1], self.padding)

    @property
    def mc_fn(self):
        return miniconv.nn.conv2d if self.dims == 2 else miniconv.nn.conv1d

    @property
    def tf_fn(self):
        return ref.tf_conv2d if self.dims == 2 else ref.tf_conv1d

    @property
    def kwargs(self) -> dict:
        stride_name = "strides" if self.dims == 2 else "stride"
        return {stride_name: self.strides_arg, "padding": self.padding, "dilations": self.dilations_arg}

    def arrays(self):
        """x, w, dy: uniform in [-1, 1), float32."""
        rng = np.random.default_rng(self.seed)
        if self.dims == 2:
            shapes = (
                (self.N, self.H, self.W, self.C),
                (self.R, self.S, self.C, self.K),
                (self.N, self.P, self.Q, self.K),
            )
        else:
            shapes = (self.N, self.W, self.C), (self.S, self.C, self.K), (self.N, self.Q, self.K)
        return tuple(uniform(rng, shape) for shape in shapes)

    def tolerance(self) -> Tolerance:
        """Reduction lengths: y sums R*S*C products, dx at most R*S*K, dw N*P*Q."""
        RS = self.R * self.S
        return Tolerance((RS * self.C, RS * self.K, self.N * self.P * self.Q), abs_terms=True)


@st.composite
def conv_cases(draw, dims: int = 2) -> ConvCase:
    """conv2d (dims=2) or conv1d (dims=1) cases: even kernels, strides past the kernel, SAME
    windows larger than the input, dilations (which, as in TF's layers, require stride 1)."""
    padding = draw(PADDINGS)
    N = draw(st.integers(1, MAX_N))
    H = draw(st.integers(1, MAX_HW)) if dims == 2 else 1
    W = draw(st.integers(1, MAX_HW))
    C = draw(st.integers(1, MAX_C))
    K = draw(st.integers(1, MAX_C))
    axes = 2 if dims == 2 else 1
    if draw(st.booleans()):  # strided, no dilation
        spatial_strides = tuple(draw(st.integers(1, 4)) for _ in range(axes))
        spatial_dilations = (1,) * axes
    else:  # dilated, stride 1
        spatial_strides = (1,) * axes
        spatial_dilations = tuple(draw(st.integers(1, 3)) for _ in range(axes))
    strides = (1, *spatial_strides) if dims == 1 else spatial_strides
    dilations = (1, *spatial_dilations) if dims == 1 else spatial_dilations
    R = _window(draw, H, padding, dilations[0]) if dims == 2 else 1
    S = _window(draw, W, padding, dilations[1])
    return ConvCase(
        dims, N, H, W, C, K, R, S, strides, dilations, padding,
        strides_arg=_form(draw, spatial_strides), dilations_arg=_form(draw, spatial_dilations),
        seed=draw(seeds),
    )  # fmt: skip


# --- pooling -------------------------------------------------------------------------------------

_POOL_OPS = {
    ("MAX", 2): (miniconv.nn.max_pool2d, "max_pool2d"),
    ("AVG", 2): (miniconv.nn.avg_pool2d, "avg_pool2d"),
    ("MAX", 1): (miniconv.nn.max_pool1d, "max_pool1d"),
    ("AVG", 1): (miniconv.nn.avg_pool1d, "avg_pool1d"),
}


@dataclass(frozen=True)
class PoolCase:
    """A pooling call: ``max_pool2d`` / ``avg_pool1d`` / ... or ``pool`` (api="pool")."""

    pooling_type: str  # "MAX" or "AVG"
    dims: int
    api: str  # "named" (max_pool2d, ...) or "pool" (tf.nn.pool)
    N: int
    H: int
    W: int
    C: int
    R: int
    S: int
    strides: tuple[int, int]
    padding: str
    ksize_arg: object = field(repr=False)
    strides_arg: object = field(repr=False)
    seed: int = 0

    @property
    def P(self) -> int:
        return out_size(self.H, self.R, self.strides[0], 1, self.padding)

    @property
    def Q(self) -> int:
        return out_size(self.W, self.S, self.strides[1], 1, self.padding)

    @property
    def mc_fn(self):
        return miniconv.nn.pool if self.api == "pool" else _POOL_OPS[self.pooling_type, self.dims][0]

    @property
    def tf_fn(self):
        return ref.tf_pool if self.api == "pool" else getattr(tf.nn, _POOL_OPS[self.pooling_type, self.dims][1])

    @property
    def kwargs(self) -> dict:
        if self.api == "pool":
            return {
                "window_shape": self.ksize_arg, "pooling_type": self.pooling_type,
                "strides": self.strides_arg, "padding": self.padding,
            }  # fmt: skip
        return {"ksize": self.ksize_arg, "strides": self.strides_arg, "padding": self.padding}

    @property
    def input_shape(self):
        return (self.N, self.H, self.W, self.C) if self.dims == 2 else (self.N, self.W, self.C)

    @property
    def output_shape(self):
        return (self.N, self.P, self.Q, self.C) if self.dims == 2 else (self.N, self.Q, self.C)

    def arrays(self):
        """x (tie-free for max pooling), dy uniform in [-1, 1)."""
        rng = np.random.default_rng(self.seed)
        x = tie_free(rng, self.input_shape) if self.pooling_type == "MAX" else uniform(rng, self.input_shape)
        return x, uniform(rng, self.output_shape)

    def tolerance(self) -> Tolerance:
        """Average: R*S terms per output and per input cell; max: exact forward, a cell's
        gradient sums at most R*S upstream values (the windows it wins)."""
        return Tolerance((self.R * self.S, self.R * self.S), abs_terms=self.pooling_type == "AVG")


@st.composite
def pool_cases(draw, pooling_type=None, dims=None, api="named") -> PoolCase:
    """Pooling cases: even windows, strides larger than the window, SAME and VALID (window fits).

    api="pool" draws ``tf.nn.pool`` calls (window_shape a list, strides a list or None).
    """
    pooling_type = pooling_type or draw(st.sampled_from(["MAX", "AVG"]))
    dims = dims or draw(st.sampled_from([1, 2]))
    padding = draw(PADDINGS)
    N = draw(st.integers(1, MAX_N))
    H = draw(st.integers(1, MAX_HW)) if dims == 2 else 1
    W = draw(st.integers(1, MAX_HW))
    C = draw(st.integers(1, MAX_C))
    R = _window(draw, H, padding, max_window=4) if dims == 2 else 1
    S = _window(draw, W, padding, max_window=4)
    spatial_window = (R, S) if dims == 2 else (S,)
    if api == "pool":
        spatial_strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, MAX_STRIDE)] * dims)))
        strides_arg = None if spatial_strides is None else list(spatial_strides)
        spatial_strides = spatial_strides or (1,) * dims
        ksize_arg = list(spatial_window)
    else:
        spatial_strides = tuple(draw(st.integers(1, MAX_STRIDE)) for _ in range(dims))
        strides_arg = _form(draw, spatial_strides)
        ksize_arg = _form(draw, spatial_window)
    strides = spatial_strides if dims == 2 else (1, *spatial_strides)
    return PoolCase(
        pooling_type, dims, api, N, H, W, C, R, S, strides, padding,
        ksize_arg=ksize_arg, strides_arg=strides_arg, seed=draw(seeds),
    )  # fmt: skip


@dataclass(frozen=True)
class GlobalPoolCase:
    pooling_type: str
    dims: int
    shape: tuple[int, ...]
    seed: int = 0

    @property
    def mc_fn(self):
        kind = "max" if self.pooling_type == "MAX" else "avg"
        return getattr(miniconv.nn, f"global_{kind}_pool{self.dims}d")

    @property
    def tf_fn(self):
        kind = "max" if self.pooling_type == "MAX" else "avg"
        return getattr(ref, f"tf_global_{kind}_pool{self.dims}d")

    def arrays(self):
        rng = np.random.default_rng(self.seed)
        x = tie_free(rng, self.shape) if self.pooling_type == "MAX" else uniform(rng, self.shape)
        return x, uniform(rng, (self.shape[0], self.shape[-1]))

    def tolerance(self) -> Tolerance:
        spatial = math.prod(self.shape[1:-1])
        return Tolerance((spatial, spatial), abs_terms=self.pooling_type == "AVG")


@st.composite
def global_pool_cases(draw, pooling_type=None, dims=None) -> GlobalPoolCase:
    pooling_type = pooling_type or draw(st.sampled_from(["MAX", "AVG"]))
    dims = dims or draw(st.sampled_from([1, 2]))
    spatial = tuple(draw(st.integers(1, MAX_HW)) for _ in range(dims))
    shape = (draw(st.integers(1, MAX_N)), *spatial, draw(st.integers(1, MAX_C)))
    return GlobalPoolCase(pooling_type, dims, shape, draw(seeds))


# --- activations, dense --------------------------------------------------------------------------

shapes_any_rank = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@dataclass(frozen=True)
class ArrayCase:
    """One array of ``shape`` with values uniform in [-scale, scale) (a fraction exactly 0 when
    ``zeros``), an upstream gradient, and an ``axis`` for softmax."""

    shape: tuple[int, ...]
    scale: float = 1.0
    axis: int = -1
    zeros: bool = False
    seed: int = 0

    def arrays(self):
        rng = np.random.default_rng(self.seed)
        x = uniform(rng, self.shape, -self.scale, self.scale)
        if self.zeros:
            x[rng.random(self.shape) < 0.2] = 0.0
        return x, uniform(rng, self.shape)


@st.composite
def array_cases(draw, scales=(1.0,), zeros=False, with_axis=False) -> ArrayCase:
    shape = draw(shapes_any_rank)
    axis = draw(st.integers(-len(shape), len(shape) - 1)) if with_axis else -1
    return ArrayCase(shape, draw(st.sampled_from(scales)), axis, zeros, draw(seeds))


@dataclass(frozen=True)
class DenseCase:
    batch: tuple[int, ...]  # the leading axes of x, possibly none
    I: int
    O: int
    bias: bool
    seed: int = 0

    mc_fn = staticmethod(miniconv.nn.dense)
    tf_fn = staticmethod(ref.tf_dense)

    def arrays(self):
        """(x, kernel[, bias]), dy."""
        rng = np.random.default_rng(self.seed)
        x = uniform(rng, (*self.batch, self.I))
        kernel = uniform(rng, (self.I, self.O))
        arrays = (x, kernel, uniform(rng, (self.O,))) if self.bias else (x, kernel)
        return arrays, uniform(rng, (*self.batch, self.O))

    def tolerance(self) -> Tolerance:
        """y sums I products (+ bias), dx O, dkernel and dbias M = prod(batch)."""
        M = math.prod(self.batch)
        return Tolerance((self.I + 1, self.O, M, M)[: 3 + self.bias], abs_terms=True)


@st.composite
def dense_cases(draw, bias=None) -> DenseCase:
    batch = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    bias = draw(st.booleans()) if bias is None else bias
    return DenseCase(batch, draw(st.integers(1, 8)), draw(st.integers(1, 8)), bias, draw(seeds))


# --- depthwise and separable convolutions, explicit padding ----------------------------------------

PADDINGS_EXPLICIT = st.sampled_from(["VALID", "SAME", "EXPLICIT"])


def _explicit(draw, max_pad: int = 3) -> list[list[int]]:
    """TensorFlow's explicit NHWC padding: [[0, 0], [top, bottom], [left, right], [0, 0]]."""
    pads = [draw(st.integers(0, max_pad)) for _ in range(4)]
    return [[0, 0], pads[:2], pads[2:], [0, 0]]


def padded_out_size(size: int, window: int, stride: int, dilation: int, padding, axis: int) -> int:
    """TensorFlow's output size for one spatial axis (axis 0: rows, 1: columns), explicit padding too."""
    if isinstance(padding, str):
        return out_size(size, window, stride, dilation, padding)
    before, after = padding[1 + axis]
    return (size + before + after - (window - 1) * dilation - 1) // stride + 1


@dataclass(frozen=True)
class DepthwiseCase:
    """A depthwise_conv2d call (or, with K > 0, separable_conv2d with a (1, 1, C*M, K) pointwise filter)."""

    N: int
    H: int
    W: int
    C: int
    M: int
    R: int
    S: int
    stride: int
    dilation: int
    padding: object  # "VALID", "SAME" or an explicit [[0, 0], [t, b], [l, r], [0, 0]]
    K: int = 0
    seed: int = 0

    @property
    def P(self) -> int:
        return padded_out_size(self.H, self.R, self.stride, self.dilation, self.padding, 0)

    @property
    def Q(self) -> int:
        return padded_out_size(self.W, self.S, self.stride, self.dilation, self.padding, 1)

    @property
    def separable(self) -> bool:
        return self.K > 0

    @property
    def mc_fn(self):
        return miniconv.nn.separable_conv2d if self.separable else miniconv.nn.depthwise_conv2d

    @property
    def tf_fn(self):
        return tf.nn.separable_conv2d if self.separable else tf.nn.depthwise_conv2d

    @property
    def kwargs(self) -> dict:
        """TensorFlow's forms: strides [1, s, s, 1], dilations [d, d] or None."""
        dilations = None if self.dilation == 1 and self.seed % 2 else [self.dilation, self.dilation]
        return {"strides": [1, self.stride, self.stride, 1], "padding": self.padding, "dilations": dilations}

    def arrays(self, low=-1.0, high=1.0):
        """(x, filter[, pointwise filter]), dy: uniform in [low, high), float32."""
        rng = np.random.default_rng(self.seed)
        x = uniform(rng, (self.N, self.H, self.W, self.C), low, high)
        w = uniform(rng, (self.R, self.S, self.C, self.M), low, high)
        arrays = (x, w, uniform(rng, (1, 1, self.C * self.M, self.K), low, high)) if self.separable else (x, w)
        out = self.K if self.separable else self.C * self.M
        return arrays, uniform(rng, (self.N, self.P, self.Q, out))

    def tolerance(self) -> Tolerance:
        """y sums R*S terms (and C*M more through the pointwise filter), dx R*S*M (times K), dw N*P*Q."""
        RS, NPQ = self.R * self.S, self.N * self.P * self.Q
        if self.separable:
            CM = self.C * self.M
            return Tolerance((RS * CM, RS * self.M * self.K, NPQ * self.K, NPQ), abs_terms=True)
        return Tolerance((RS, RS * self.M, NPQ), abs_terms=True)


@st.composite
def depthwise_cases(draw, separable: bool = False, filter_size=None) -> DepthwiseCase:
    """Depthwise (or separable) cases: odd and even filters, strides 1 to 3 (equal along rows and
    columns, as TensorFlow requires), dilations with stride 1, VALID, SAME and explicit padding,
    multipliers 1 to 3, batch 1, one channel. ``filter_size``: a fixed (R, S), e.g. (3, 3)."""
    padding = draw(PADDINGS_EXPLICIT)
    if padding == "EXPLICIT":
        padding = _explicit(draw)
    N = draw(st.integers(1, MAX_N))
    H = draw(st.integers(1, MAX_HW))
    W = draw(st.integers(1, MAX_HW))
    C = draw(st.integers(1, MAX_C))
    M = draw(st.sampled_from([1, 1, 2, 3]))
    if draw(st.booleans()):
        stride, dilation = draw(st.integers(1, 3)), 1
    else:
        stride, dilation = 1, draw(st.integers(1, 3))
    if filter_size is None:
        R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    else:
        R, S = filter_size
    # the (dilated) window must fit the padded input
    rows = H if padding in ("VALID", "SAME") else H + sum(padding[1])
    cols = W if padding in ("VALID", "SAME") else W + sum(padding[2])
    if padding != "SAME":
        assume_fits = (R - 1) * dilation + 1 <= rows and (S - 1) * dilation + 1 <= cols
        if not assume_fits:
            R, S, dilation = min(R, rows), min(S, cols), 1
    K = draw(st.integers(1, MAX_C)) if separable else 0
    return DepthwiseCase(N, H, W, C, M, R, S, stride, dilation, padding, K, draw(seeds))


# --- batch normalization and moments ----------------------------------------------------------------

PARAMETER_LAYOUTS = ("channel", "keepdims", "scalar", "inner", "full")


def parameter_shape(x_shape: tuple[int, ...], layout: str, rng: np.random.Generator) -> tuple[int, ...]:
    """A shape that broadcasts to x's: (C,), (1, ..., 1, C), (), a random pick of x's axes (others 1,
    leading ones maybe dropped), or x's own shape."""
    if layout == "channel":
        return x_shape[-1:]
    if layout == "keepdims":
        return (1,) * (len(x_shape) - 1) + x_shape[-1:]
    if layout == "scalar":
        return ()
    if layout == "full":
        return x_shape
    shape = tuple(n if rng.random() < 0.5 else 1 for n in x_shape)
    return shape[int(rng.integers(0, len(shape) + 1)):]


@dataclass(frozen=True)
class BatchNormCase:
    """A batch_normalization call: x, and mean / variance / offset / scale of the given layouts
    (offset and scale may be None), variance_epsilon, and a shift of x (its values' distance from 0)."""

    shape: tuple[int, ...]
    layouts: tuple[str, str, str, str]
    offset_none: bool
    scale_none: bool
    epsilon: float
    shift: float = 0.0
    seed: int = 0

    def arrays(self):
        """(x, mean, variance, offset, scale), dy; variance in [0.05, 2)."""
        rng = np.random.default_rng(self.seed)
        x = uniform(rng, self.shape) + np.float32(self.shift)
        shapes = [parameter_shape(self.shape, layout, rng) for layout in self.layouts]
        mean = uniform(rng, shapes[0]) + np.float32(self.shift)
        variance = uniform(rng, shapes[1], 0.05, 2.0)
        offset = None if self.offset_none else uniform(rng, shapes[2])
        scale = None if self.scale_none else uniform(rng, shapes[3], 0.5, 2.0) * rng.choice([-1, 1], shapes[3]).astype(np.float32)
        return (x, mean, variance, offset, scale), uniform(rng, self.shape)


@st.composite
def batch_norm_cases(draw) -> BatchNormCase:
    """NHWC most of the time (parameters per channel, the case the kernels are built for), any rank
    1 to 4 otherwise, parameters of every broadcastable layout, offset / scale None, x near 0 or
    around +-20 (a large mean: its cancellation in the gradients)."""
    if draw(st.booleans()):
        shape = (draw(st.integers(1, MAX_N)), draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 6)))
    else:
        shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))
    layouts = tuple(draw(st.sampled_from(PARAMETER_LAYOUTS)) for _ in range(4))
    return BatchNormCase(shape, layouts, draw(st.booleans()), draw(st.booleans()),
                         draw(st.sampled_from([1e-3, 1e-5, 0.1])), draw(st.sampled_from([0.0, 0.0, 20.0, -20.0])),
                         draw(seeds))  # fmt: skip


@dataclass(frozen=True)
class MomentsCase:
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    keepdims: bool
    shift: float = 0.0
    seed: int = 0

    def arrays(self):
        """x, and the upstream gradients of mean and variance (of the outputs' shape)."""
        rng = np.random.default_rng(self.seed)
        x = uniform(rng, self.shape) + np.float32(self.shift)
        normalized = {a % len(self.shape) for a in self.axes}
        out = tuple(1 if a in normalized else n for a, n in enumerate(self.shape) if self.keepdims or a not in normalized)
        if not normalized and not self.keepdims:  # TF's squeeze(axis=[]) drops every axis of size 1
            out = tuple(n for n in out if n != 1)
        return x, uniform(rng, out), uniform(rng, out)


@st.composite
def moments_cases(draw) -> MomentsCase:
    """NHWC with axes [0, 1, 2] half the time (batch normalization's statistics), otherwise any rank
    1 to 4 and any set of axes (negative ones too, none at all), keepdims either way."""
    if draw(st.booleans()):
        shape = (draw(st.integers(1, MAX_N)), draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 6)))
        axes = (0, 1, 2)
    else:
        shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))
        chosen = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
        axes = tuple(a - len(shape) if draw(st.booleans()) else a for a in chosen)
    return MomentsCase(shape, axes, draw(st.booleans()), draw(st.sampled_from([0.0, 0.0, 10.0])), draw(seeds))
