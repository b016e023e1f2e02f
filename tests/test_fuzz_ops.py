"""Fuzz every op of ``miniconv.nn.OPS``: any call gives TensorFlow's result or a clear error.

Each example draws a valid call of one op (shapes that fit, arguments in one of the forms TF
accepts, from ``strategies``: the property tests' cases) and then, in most examples, one or two
mutations:

    an array   of another rank or size, empty, of an integer / bool / complex / float16 / float64
               dtype, a nested list (ragged or not), None, a Python float, with inf / NaN / +-1e38
               (for batch_normalization's parameters: shapes that do not broadcast; for the depthwise
               filters: another channel multiplier)
    a keyword  replaced by a wrong or unusual value: 0, negative, 2**31 - 1 .. 2**64, 1.5, a bool,
               a string, None, a list of the wrong length, TF's long form, an unknown padding,
               pooling type or data format, an axis out of range, a dropout rate outside [0, 1),
               explicit paddings of the wrong shape, negative, past 2**31 - 1 or with nonzero batch /
               channel pairs, unequal depthwise strides, a variance_epsilon <= 0, inf, NaN, 10**400
               or not a number, moments axes out of range or repeated, a keepdims that is no bool, ...

The call must then either
  - raise a ValueError or TypeError whose message names one of the op's arguments, or
  - return what TensorFlow returns for the same call: the output(s) and the VJP of a random dy (one
    per output: moments' pullback(d_mean, d_variance)), to the property tests' tolerances
    (``tf_reference``; batch_normalization and moments: the sizes of their terms formed in float64,
    as tests/test_normalization.py), NaN where TF has NaN, the same infinities.
Never another exception type, never a number TF does not give, and no result where TF refuses the
call, except for miniconv's documented extensions: padding and pooling_type in any letter case
(as Keras accepts them; TF runs them upper-cased), an int as ``pool``'s strides (as ``max_pool2d``
takes one; TF gets the sequence), the depthwise ops' strides and dilations in conv2d's forms (an
int, one value, a pair, TF's long form; TF gets [1, s, s, 1] and [dh, dw]) and an explicit padding
as an array (TF gets nested lists).

TF runs the arrays as float32 (miniconv computes in float32). Where TF has no single op the
reference is the composition the op documents (dense: tensordot + bias; global pooling: pooling
with the whole input as window; the fused ops: their tf.nn compositions). Gradients are compared
with the numpy reference instead of TF where TF cannot give them or its differ from the formula
(documented elsewhere): dilations above 64 (TF's only dilated gradient, space-to-batch, allocates
dilation**2 copies; the forward is tf.nn.conv2d's, for a depthwise convolution one per channel), a
dilated convolution with inf / NaN inputs (space-to-batch multiplies unread cells by 0) and max
pooling of inputs with NaN (TF sends a NaN-first window's gradient to the NaN). Where TF itself is
inconsistent:
  - a depthwise filter with inf / NaN: TF's depthwise input gradient correlates a zero-padded dy
    with the filter (0 * inf = NaN where conv2d's has none): dx from the numpy reference in float64;
  - batch_normalization with inf / NaN and parameters of different shapes: which parameter
    gradients come out inf and which NaN follows the order of TF's reductions, which changes with
    the shapes (the same inf mean given as (1,) or as (3,) gives dvariance inf or NaN): the
    parameters' gradients from the numpy reference (in float32: its inf and NaN are the point);
  - results whose |terms| sum past float32's largest value (finite inputs with +-1e38): whether a
    float32 sum overflows depends on the order of its terms (TF's -inf, the reference's -2.95e38);
    there a finite result must be the numpy reference's float64 one, an inf or NaN is taken.
Dropout cannot match TF's random stream: each output must be x / (1 - rate) or exactly 0, its
gradient on the same mask.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import tf_reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import (
    array_cases,
    batch_norm_cases,
    conv_cases,
    dense_cases,
    depthwise_cases,
    global_pool_cases,
    moments_cases,
    pool_cases,
    seeds,
)
from test_normalization import batch_norm_magnitudes
from tf_reference import EPS32, assert_close

import miniconv
from miniconv import nn
from miniconv.ops._checks import computed_in
from miniconv.shapes import normalize_tuple
from miniconv.verify_cases import windows_near_tie

tf = tf_reference.tf
BACKENDS = [b for b in ("numpy", "cpu") if b in miniconv.available_backends()]
TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)

# --- valid calls -------------------------------------------------------------------------------------


@dataclass
class Call:
    """``nn.<op>(*args, **kwargs)``; ``seed`` makes the upstream gradient and any new values."""

    op: str
    args: list
    kwargs: dict = field(default_factory=dict)
    seed: int = 0

    def __repr__(self):
        def show(a):
            if isinstance(a, np.ndarray):
                return f"array{a.shape}:{a.dtype}" + ("[non-finite]" if a.dtype.kind == "f" and not np.isfinite(a).all()
                                                      else "")
            text = repr(a)
            return text if len(text) < 60 else text[:57] + "..."

        args = ", ".join(show(a) for a in self.args)
        kwargs = ", ".join(f"{k}={show(v)}" for k, v in self.kwargs.items())
        return f"nn.{self.op}({args}{', ' if kwargs else ''}{kwargs})  # seed {self.seed}"


def _uniform(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


@st.composite
def _conv_call(draw, op):
    case = draw(conv_cases(dims=1 if op == "conv1d" else 2))
    x, w, _ = case.arrays()
    rng = np.random.default_rng(case.seed)
    args, kwargs = [x, w], dict(case.kwargs)
    if op in ("conv2d_bias_relu", "conv2d_bias_relu_max_pool2d"):
        args.append(_uniform(rng, (case.K,), -0.5, 0.5))
    if op == "conv2d_bias":
        args[0] = x * np.float32(3)  # outputs on both sides of ReLU6's 0 and 6
        args.append(_uniform(rng, (case.K,), -2.0, 2.0))
        kwargs.update(_activation(draw))
    if op == "conv2d_bias_relu_max_pool2d":
        kwargs["pool_size"] = draw(st.sampled_from([1, 2, 3, (1, 2), (2, 1), [2, 3]]))
    if op in ("conv1d", "conv2d") and draw(st.booleans()):
        kwargs["data_format"] = "NWC" if op == "conv1d" else "NHWC"
    return args, kwargs


@st.composite
def _pool_call(draw, op):
    if op.startswith("global"):
        case = draw(global_pool_cases("MAX" if "max" in op else "AVG", 1 if op.endswith("1d") else 2))
        return [case.arrays()[0]], {}
    if op == "pool":
        case = draw(pool_cases(api="pool"))
        return [case.arrays()[0]], dict(case.kwargs)
    case = draw(pool_cases("MAX" if op.startswith("max") else "AVG", 1 if op.endswith("1d") else 2))
    kwargs = dict(case.kwargs)
    if draw(st.booleans()):
        kwargs["data_format"] = "NWC" if op.endswith("1d") else "NHWC"
    return [case.arrays()[0]], kwargs


@st.composite
def _other_call(draw, op):
    if op == "relu6":  # around 0, 6 and beyond, exact zeros (tests/test_relu6.py)
        return [draw(array_cases(scales=(1.0, 8.0, 100.0), zeros=True)).arrays()[0]], {}
    if op in ("relu", "sigmoid", "dropout"):
        x = draw(array_cases(scales=(1.0, 10.0))).arrays()[0]
        return ([x, draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))], {"seed": draw(seeds)}) if op == "dropout" else ([x], {})
    if op == "softmax":
        case = draw(array_cases(scales=(1.0, 10.0), with_axis=True))
        return [case.arrays()[0]], {"axis": case.axis}
    if op == "dense":
        arrays, _ = draw(dense_cases()).arrays()
        return list(arrays), {}
    # bias_add, bias_add_relu: value (N, ..., C) of rank 2 to 4, bias (C,)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=2, max_size=4)))
    rng = np.random.default_rng(draw(seeds))
    kwargs = {"data_format": draw(st.sampled_from([None, "N...C"]))} if op == "bias_add" else {}
    return [_uniform(rng, shape), _uniform(rng, shape[-1:])], kwargs


def _activation(draw) -> dict:
    """conv2d_bias / depthwise_conv2d_bias: activation None, "relu6" or not given."""
    return draw(st.sampled_from([{}, {"activation": None}, {"activation": "relu6"}, {"activation": "relu6"}]))


@st.composite
def _depthwise_call(draw, op):
    """depthwise_conv2d / separable_conv2d / depthwise_conv2d_bias with the property tests' cases; strides
    and dilations in any form miniconv takes (TF's [1, s, s, 1] and [d, d], an int, one value, a pair),
    padding VALID, SAME or explicit (as a list, a tuple or an array), strides and padding positional or not."""
    case = draw(depthwise_cases(separable=op == "separable_conv2d"))
    arrays, _ = case.arrays()
    extra = {}
    if op == "depthwise_conv2d_bias":  # x at scale 3: outputs on both sides of ReLU6's 0 and 6
        rng = np.random.default_rng(case.seed + 1)
        arrays = (arrays[0] * np.float32(3), arrays[1], _uniform(rng, (case.C * case.M,), -2.0, 2.0))
        extra = _activation(draw)
    s, d = case.stride, case.dilation
    strides = draw(st.sampled_from([[1, s, s, 1], [1, s, s, 1], s, [s], [s, s], (s, s)]))
    padding = case.padding
    if not isinstance(padding, str):
        padding = draw(st.sampled_from([padding, tuple(map(tuple, padding)), np.array(padding)]))
    kwargs = {"dilations": draw(st.sampled_from([[d, d], [d, d], d, [1, d, d, 1]] + ([None] if d == 1 else []))),
              **extra}
    if op != "depthwise_conv2d_bias" and draw(st.booleans()):  # (no data_format: as conv2d_bias_relu)
        kwargs["data_format"] = "NHWC"
    if draw(st.booleans()):
        return [*arrays, strides, padding], kwargs
    return list(arrays), {"strides": strides, "padding": padding, **kwargs}


@st.composite
def _normalization_call(draw, op):
    """batch_normalization (parameters of every broadcastable layout, offset / scale None,
    variance_epsilon positional or not) and moments (any axes, keepdims) as their property tests."""
    if op == "batch_normalization":
        case = draw(batch_norm_cases())
        arrays, _ = case.arrays()
        if draw(st.booleans()):
            return [*arrays, case.epsilon], {}
        return list(arrays), {"variance_epsilon": case.epsilon}
    case = draw(moments_cases())
    axes = draw(st.sampled_from([list(case.axes), tuple(case.axes)] + ([case.axes[0]] if len(case.axes) == 1 else [])))
    kwargs = {"keepdims": case.keepdims} if case.keepdims or draw(st.booleans()) else {}
    return [case.arrays()[0], axes], kwargs


def valid_call(op):
    if op in DEPTHWISE:
        return _depthwise_call(op)
    if op in ("batch_normalization", "moments"):
        return _normalization_call(op)
    if "conv" in op:
        return _conv_call(op)
    if "pool" in op:
        return _pool_call(op)
    return _other_call(op)


# --- mutations -------------------------------------------------------------------------------------

INTS = [0, -1, -(2**31), 1000, 2**31 - 1, 2**31, 2**63, 2**64, 10**30, 1.5, True, "2", None, [], [1], [2, 3],
        [1, 2, 3], [2, 1, 1, 1], [1, 2, 2, 1], [1, 2, 1], (3, 3), np.int64(3), np.uint64(2**63), [[1], [2]],
        [1.0, 2.0]]  # fmt: skip
KEYWORD_VALUES = {
    "strides": INTS, "stride": INTS, "ksize": INTS, "dilations": INTS, "window_shape": INTS, "pool_size": INTS,
    "padding": ["VALID", "SAME", "valid", "Same", "FULL", "CAUSAL", "EXPLICIT", "", None, 1, [[0, 0], [1, 1]],
                b"SAME"],
    "pooling_type": ["MAX", "AVG", "max", "Avg", "MIN", "", None, 1],
    "axis": [-5, -3, -1, 0, 1, 2, 3, 4, 10, 2**63, 1.5, None, "1", np.int64(1)],
    "rate": [0.0, 0.5, 0.99, 1.0, -0.1, 1.5, float("nan"), float("inf"), "0.5", None, True, np.float32(0.25)],
    "seed": [None, 0, 7, 2**40, 2**70, -1, "abc", 1.5],
    "data_format": [None, "NHWC", "NWC", "NCHW", "NCW", "N...C", "NC...", "channels_last", 1],
    "variance_epsilon": [1e-3, 1e-5, 1, 0.0, -1e-3, 1e-45, 1e-50, 1e39, 10**39, 2**64, 10**400, float("nan"), float("inf"),
                         -float("inf"), True, None, "0.001", [1e-3], np.float32(1e-5), np.float64(0.1), np.float16(0.01),
                         np.array(1e-3)],
    "axes": [0, 1, -1, -4, 3, 4, -5, 10, 2**63, [], [0], [0, 1], [1, 0], (2,), [0, 1, 2], [0, 1, 2, 3], [0, 0], [1, -3],
             [0, 4], [-5], 1.5, [1.5], None, "1", True, [True], np.int64(1), [np.int64(0), 1]],
    "keepdims": [True, False, None, 0, 1, "yes", np.bool_(True), np.array([True, False])],
    "shift": [None, 0.0, 1e38, "abc", [1.0, 2.0]],
    "activation": [None, "relu6", "relu6", "relu", "RELU6", "linear", "", 6, True, ["relu6"], np.array(["relu6"]),
                   np.array(["relu6", "relu6"])],
}  # fmt: skip
EXPLICIT_PADDINGS = [  # good and bad explicit paddings, for the ops that take them
    [[0, 0], [1, 2], [0, 1], [0, 0]], ([0, 0], (3, 0), [0, 0], [0, 0]), np.array([[0, 0], [1, 1], [1, 1], [0, 0]]),
    [[0, 0], [0, 0], [0, 40], [0, 0]], [[0, 0], [1, 1], [1, 1]], [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]],
    [0, 0, 1, 1, 1, 1, 0, 0], [[0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]], [[0, 0], [-1, 1], [0, 0], [0, 0]],
    [[1, 0], [1, 1], [1, 1], [0, 0]], [[0, 0], [1, 1], [1, 1], [0, 2]], [[0, 0], [1.0, 1], [1, 1], [0, 0]],
    [[0, 0], [True, 0], [0, 0], [0, 0]], [[0, 0], [2**31, 0], [0, 0], [0, 0]], [[0, 0], [0, 0], [0, 2**63], [0, 0]],
    [[0, 0], [2**64, 0], [0, 0], [0, 0]], [[0, 0], [None, 1], [1, 1], [0, 0]], [[0, 0], "11", [1, 1], [0, 0]], [None] * 4,
]  # fmt: skip
DEPTHWISE_STRIDES = [[1, 1, 2, 1], [1, 2, 1, 1], [2, 1], [1, 3, 3, 1], [1, 2, 2, 1]]  # unequal ones: TF refuses
OP_KEYWORD_VALUES = {  # more values of a keyword for some ops
    **{op: {"padding": KEYWORD_VALUES["padding"] + EXPLICIT_PADDINGS} for op in (
        "conv2d", "conv2d_bias_relu", "conv2d_bias_relu_max_pool2d", "conv2d_bias")},
    **{op: {"padding": KEYWORD_VALUES["padding"] + EXPLICIT_PADDINGS, "strides": INTS + DEPTHWISE_STRIDES} for op in (
        "depthwise_conv2d", "separable_conv2d", "depthwise_conv2d_bias")},
}  # fmt: skip
SPECIALS = [np.inf, -np.inf, np.nan, 1e38, -1e38]
ARRAY_MUTATIONS = ["rank_up", "rank_down", "resize", "empty", "dtype", "list", "ragged", "none", "scalar", "special",
                   "special"]  # fmt: skip


def _mutate_array(kind, a, rng, draw):
    """``a`` (a float32 array) changed by mutation ``kind``."""
    if kind == "rank_up":
        return np.expand_dims(a, draw(st.integers(0, a.ndim)))
    if kind == "rank_down":
        return a[0] if a.ndim and a.shape[0] else np.float32(0.5)
    if kind in ("resize", "empty") and a.ndim:
        shape = list(a.shape)
        shape[draw(st.integers(0, a.ndim - 1))] = 0 if kind == "empty" else draw(st.integers(1, 7))
        return _uniform(rng, shape)
    if kind == "dtype":
        return a.astype(draw(st.sampled_from([np.int32, np.int64, np.bool_, np.complex64, np.float16, np.float64])))
    if kind == "list":
        return a.tolist()
    if kind == "ragged" and a.ndim >= 1 and a.size >= 2:
        rows = a.tolist() if a.ndim >= 2 else [[v] for v in a.tolist()]
        rows[-1] = rows[-1][:-1] if len(rows[-1]) > 1 else [*rows[-1], rows[-1][0]]
        return rows
    if kind == "none":
        return None
    if kind == "scalar":
        return float(a.flat[0]) if a.size else 1.0
    if kind == "special" and a.size:
        a = a.copy()
        for index in rng.integers(a.size, size=draw(st.integers(1, 3))):
            a.flat[index] = SPECIALS[draw(st.integers(0, len(SPECIALS) - 1))]
        return a
    return a


@st.composite
def calls(draw, op):
    """A valid call of ``op`` with 0, 1 or 2 mutations."""
    args, kwargs = draw(valid_call(op))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype == np.float32]  # (not a padding)
    values = {**KEYWORD_VALUES, **OP_KEYWORD_VALUES.get(op, {})}
    keywords = [name for name in inspect.signature(getattr(nn, op)).parameters if name in values]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        if keywords and draw(st.booleans()):
            name = draw(st.sampled_from(keywords))
            value = draw(st.sampled_from(values[name]))
            position = list(inspect.signature(getattr(nn, op)).parameters).index(name)
            if position < len(args):  # given positionally (dropout's rate)
                args[position] = value
            else:
                kwargs[name] = value
        else:
            i = draw(st.sampled_from(arrays))
            if isinstance(args[i], np.ndarray) and args[i].dtype == np.float32:  # (not one mutated already)
                args[i] = _mutate_array(draw(st.sampled_from(ARRAY_MUTATIONS)), args[i], rng, draw)
    return Call(op, args, kwargs, seed)


# --- TensorFlow's results ------------------------------------------------------------------------------


def _tf_kwargs(op, kwargs):
    """The keyword arguments TF gets, miniconv's extensions spelt out: padding and pooling_type
    upper-cased, an explicit padding as nested lists, and pool's strides as a sequence where an int was
    given (tf.nn.pool takes only sequences; miniconv, as max_pool2d, an int for every axis too)."""
    out = dict(kwargs)
    for name in ("padding", "pooling_type"):
        if isinstance(out.get(name), str):
            out[name] = out[name].upper()
    if isinstance(out.get("padding"), (list, tuple, np.ndarray)):  # explicit, as nested lists
        out["padding"] = _tf_padding(out["padding"])
    if op == "pool" and isinstance(out.get("strides"), (int, np.integer)):
        out["strides"] = [int(out["strides"])] * len(out["window_shape"])
    if "dilations" in out and out["dilations"] is None:  # TF's default, which tf_reference's wrappers spell 1
        out["dilations"] = 1
    return out


def _conv(dims, differentiable=True):
    """TF's conv1d / conv2d with miniconv's argument names; ``differentiable``: dilated ones through
    ``tf.nn.convolution`` (tf_reference), the only way TF's CPU has their gradient, else ``tf.nn.conv2d``
    itself (its forward takes dilations; space-to-batch cannot allocate dilations of ~10**5 and more)."""
    def conv(x, w, strides=1, padding="VALID", dilations=1, data_format=None):
        if differentiable:
            fn = tf_reference.tf_conv1d if dims == 1 else tf_reference.tf_conv2d
            return fn(x, w, strides, padding, dilations)
        fn = tf.nn.conv1d if dims == 1 else tf.nn.conv2d
        return fn(x, w, strides, padding, dilations=dilations)

    return conv


def _conv_bias_relu(x, w, b, strides=1, padding="VALID", dilations=1, differentiable=True):
    return tf.nn.relu(tf.nn.bias_add(_conv(2, differentiable)(x, w, strides, padding, dilations), b))


def _conv_bias(x, w, b, strides=1, padding="VALID", dilations=1, activation=None, differentiable=True):
    """conv2d_bias's composition: relu6(bias_add(conv2d)), without the relu6 for activation None."""
    z = tf.nn.bias_add(_conv(2, differentiable)(x, w, strides, padding, dilations), b)
    return tf.nn.relu6(z) if activation == "relu6" else z


def _global(kind, dims):
    """Max: pooling with the whole input as window (miniconv's documented rule, not reduce_max's);
    average: the mean, which is the same thing."""
    def reference(x):
        if kind == "AVG":
            return tf.reduce_mean(x, axis=list(range(1, dims + 1)))
        pooled = tf.nn.max_pool2d(x if dims == 2 else x[:, None], x.shape[1:-1] if dims == 2 else (1, x.shape[1]),
                                  1, "VALID")
        return tf.reshape(pooled, (x.shape[0], x.shape[-1]))

    return reference


def _spatial_pair(value):
    """(vh, vw) of miniconv's forms of depthwise strides / dilations: an int, [v], [vh, vw], [1, vh, vw, 1]."""
    if isinstance(value, (int, np.integer)):
        return [int(value)] * 2
    value = [int(v) for v in value]
    return value * 2 if len(value) == 1 else value[1:3] if len(value) == 4 else value


def _tf_padding(padding):
    """TF's spelling of a padding miniconv takes: upper case, an explicit one as nested lists
    (tf.nn.depthwise_conv2d cannot read an array's truth value)."""
    if isinstance(padding, str):
        return padding.upper()
    return [[int(v) for v in pair] for pair in padding]


def _depthwise(x, w, strides, padding, dilations=None, data_format=None, differentiable=True):
    """``tf.nn.depthwise_conv2d`` with its argument forms: strides [1, s, s, 1], dilations [dh, dw].
    Not ``differentiable``: C ``tf.nn.conv2d`` calls, one per channel (depthwise_conv2d's space-to-batch
    cannot take dilations of ~2**15 and more, its native kernel none, conv2d's forward any)."""
    sh, sw = _spatial_pair(strides)
    dilations = _spatial_pair(1 if dilations is None else dilations)
    if differentiable:
        return tf.nn.depthwise_conv2d(x, w, [1, sh, sw, 1], _tf_padding(padding), dilations=dilations)
    return tf.concat([tf.nn.conv2d(x[..., c : c + 1], w[:, :, c : c + 1], [1, sh, sw, 1], _tf_padding(padding),
                                   dilations=dilations) for c in range(x.shape[-1])], axis=-1)  # fmt: skip


def _depthwise_bias(x, w, b, strides, padding, dilations=None, activation=None, differentiable=True):
    """depthwise_conv2d_bias's composition: relu6(bias_add(depthwise_conv2d)), the relu6 for "relu6" only."""
    z = tf.nn.bias_add(_depthwise(x, w, strides, padding, dilations, differentiable=differentiable), b)
    return tf.nn.relu6(z) if activation == "relu6" else z


def _separable(x, w, pw, strides, padding, dilations=None, data_format=None, differentiable=True):
    """``tf.nn.separable_conv2d`` (strides, dilations as ``_depthwise``); not ``differentiable``: its
    composition, the depthwise part as ``_depthwise``'s."""
    if differentiable:
        sh, sw = _spatial_pair(strides)
        dilations = _spatial_pair(1 if dilations is None else dilations)
        return tf.nn.separable_conv2d(x, w, pw, [1, sh, sw, 1], _tf_padding(padding), dilations=dilations)
    return tf.nn.conv2d(_depthwise(x, w, strides, padding, dilations, differentiable=False), pw, 1, "VALID")


def _moments(x, axes, shift=None, keepdims=False):
    """``tf.nn.moments``; axes as a list where an array was given (TF's squeeze takes none)."""
    return tf.nn.moments(x, axes.tolist() if isinstance(axes, np.ndarray) else axes, shift, keepdims)


TF_OPS = {
    "conv1d": lambda x, w, stride=1, padding="VALID", dilations=1, data_format=None: _conv(1)(
        x, w, stride, padding, dilations),
    "conv2d": _conv(2),
    "relu": tf.nn.relu,
    "sigmoid": tf.nn.sigmoid,
    "softmax": lambda x, axis=-1: tf.nn.softmax(x, axis=axis),
    "max_pool1d": tf.nn.max_pool1d,
    "avg_pool1d": tf.nn.avg_pool1d,
    "max_pool2d": tf.nn.max_pool2d,
    "avg_pool2d": tf.nn.avg_pool2d,
    "pool": lambda x, window_shape, pooling_type, strides=None, padding="VALID", data_format=None:
        tf_reference.tf_pool(x, window_shape, pooling_type, strides, padding),
    "global_avg_pool1d": _global("AVG", 1),
    "global_max_pool1d": _global("MAX", 1),
    "global_avg_pool2d": _global("AVG", 2),
    "global_max_pool2d": _global("MAX", 2),
    "dense": tf_reference.tf_dense,
    "bias_add": lambda v, b, data_format=None: tf.nn.bias_add(v, b, data_format=data_format),
    "bias_add_relu": lambda v, b: tf.nn.relu(tf.nn.bias_add(v, b)),
    "conv2d_bias_relu": _conv_bias_relu,
    "conv2d_bias_relu_max_pool2d": lambda x, w, b, pool_size, strides=1, padding="VALID", dilations=1, **kw:
        tf.nn.max_pool2d(_conv_bias_relu(x, w, b, strides, padding, dilations, **kw), pool_size, pool_size, "VALID"),
    "depthwise_conv2d": _depthwise,
    "separable_conv2d": _separable,
    "batch_normalization": tf.nn.batch_normalization,
    "moments": _moments,
    "relu6": tf.nn.relu6,
    "conv2d_bias": _conv_bias,
    "depthwise_conv2d_bias": _depthwise_bias,
}  # fmt: skip
FORWARD_ONLY = {  # with dilations too large for TF's space-to-batch gradient: the forward, by tf.nn.conv2d
    "conv1d": lambda x, w, stride=1, padding="VALID", dilations=1, data_format=None: _conv(1, False)(
        x, w, stride, padding, dilations),
    "conv2d": _conv(2, False),
    "conv2d_bias_relu": lambda *args, **kw: _conv_bias_relu(*args, **kw, differentiable=False),
    "conv2d_bias_relu_max_pool2d": lambda *args, **kw: TF_OPS["conv2d_bias_relu_max_pool2d"](*args, **kw,
                                                                                          differentiable=False),
    "depthwise_conv2d": lambda *args, **kw: _depthwise(*args, **kw, differentiable=False),
    "separable_conv2d": lambda *args, **kw: _separable(*args, **kw, differentiable=False),
    "conv2d_bias": lambda *args, **kw: _conv_bias(*args, **kw, differentiable=False),
    "depthwise_conv2d_bias": lambda *args, **kw: _depthwise_bias(*args, **kw, differentiable=False),
}  # fmt: skip
LARGE_DILATION = 64
LINEAR = {"conv1d", "conv2d", "conv2d_bias_relu", "dense", "bias_add", "bias_add_relu", "avg_pool1d", "avg_pool2d",
          "global_avg_pool1d", "global_avg_pool2d", "depthwise_conv2d",
          "separable_conv2d", "conv2d_bias", "depthwise_conv2d_bias"}  # on |arrays| their results sum |terms|
# (ReLU passes all; ReLU6 would clip them: its ops' |terms| are summed with activation=None, see _linear_kwargs)
MAX_OPS = {"max_pool1d", "max_pool2d", "global_max_pool1d", "global_max_pool2d", "conv2d_bias_relu_max_pool2d"}


def _names_an_argument(op, message) -> bool:
    names = set(inspect.signature(getattr(nn, op)).parameters) - {"name"}
    return any(re.search(rf"\b{re.escape(n)}\b", message) for n in names)


def _dropout_is_consistent(call, x, y, dx, dy):
    """y = x * scale or exactly 0 per element, dx = dy * scale on the same mask (where it is known)."""
    rate = call.args[1] if len(call.args) > 1 else call.kwargs["rate"]
    scale = np.float32(1.0 / (1.0 - float(rate)))
    kept_value = x * scale
    kept = (y == kept_value) | (np.isnan(y) & np.isnan(kept_value))
    assert np.all(kept | (y == 0)), f"{call}: an output is neither x / (1 - rate) nor 0"
    known = kept_value != 0  # where x * scale == 0 the mask cannot be read from y
    expected = np.where(kept & (y != 0), dy * scale, np.float32(0))
    np.testing.assert_array_equal(dx[known], expected[known], err_msg=f"{call}: dropout's gradient")


def check(call: Call, backend: str) -> None:
    fn = getattr(nn, call.op)
    with np.errstate(all="ignore"):
        try:
            out, pullback = miniconv.vjp(fn, *call.args, backend=backend, **call.kwargs)
        except (ValueError, TypeError) as error:
            assert _names_an_argument(call.op, str(error)), f"{call}: the error names no argument: {error!r}"
            return
        except Exception as error:  # noqa: BLE001 - any other type is the bug this test looks for
            pytest.fail(f"{call} on {backend}: {type(error).__name__}: {error}")
        outputs = out if call.op in SEVERAL_OUTPUTS else (out,)
        rng = np.random.default_rng(call.seed + 1)
        dys = [_uniform(rng, np.shape(y)) for y in outputs]
        grads = pullback(*dys)
        count = ARRAYS.get(call.op, 1)
        taken = call.args[:count]
        if call.op in OPTIONAL_ARRAYS:  # None keeps its place: TF's batch_normalization takes it
            arrays = [None if a is None else np.asarray(a, np.float32) for a in taken]
        else:
            arrays = [np.asarray(a, np.float32) for a in taken if a is not None]  # as taken
        if call.op == "dropout":
            return _dropout_is_consistent(call, arrays[0], out, grads[0], dys[0])
        compare_with_tf(call, backend, arrays, call.args[count:], outputs, grads, dys)


# how many leading positional arguments are arrays (1 for the others)
ARRAYS = {"conv1d": 2, "conv2d": 2, "conv2d_bias_relu": 3, "conv2d_bias_relu_max_pool2d": 3, "dense": 3, "bias_add": 2,
          "bias_add_relu": 2, "depthwise_conv2d": 2, "separable_conv2d": 3, "batch_normalization": 5,
          "conv2d_bias": 3, "depthwise_conv2d_bias": 3}
OPTIONAL_ARRAYS = {"batch_normalization"}  # offset and scale may be None
SEVERAL_OUTPUTS = {"moments"}  # (mean, variance), and a pullback(d_mean, d_variance)
DEPTHWISE = {"depthwise_conv2d", "separable_conv2d", "depthwise_conv2d_bias"}


def _linear_kwargs(op, kwargs):
    """kwargs for summing |terms| on |arrays|: conv2d_bias / depthwise_conv2d_bias without their ReLU6
    (which would clip the sums at 6; its mask only drops terms, so the linear sums bound its results)."""
    return dict(kwargs, activation=None) if op in ("conv2d_bias", "depthwise_conv2d_bias") else kwargs


def _tf_vjp(tf_fn, arrays, rest, dys, kwargs):
    """TF's outputs and the gradients of sum_i <dys[i], outputs[i]> w.r.t. every array (None for None)."""
    tensors = [None if a is None else tf.constant(a) for a in arrays]
    watched = [t for t in tensors if t is not None]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        outputs = tf_fn(*tensors, *rest, **kwargs)
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    grads = iter(tape.gradient(outputs, watched, output_gradients=[tf.constant(d, y.dtype) for d, y in zip(dys, outputs)],
                               unconnected_gradients=tf.UnconnectedGradients.ZERO))  # fmt: skip
    return [y.numpy() for y in outputs], [None if t is None else next(grads).numpy() for t in tensors]


def compare_with_tf(call, backend, arrays, rest, outputs, grads, dys):
    """outputs and grads against TF's for the same call (``rest``: the positional arguments after the arrays)."""
    kwargs = _tf_kwargs(call.op, call.kwargs)
    dilations = rest[2] if call.op in DEPTHWISE and len(rest) > 2 else call.kwargs.get("dilations")
    dilation = max(normalize_tuple(1 if dilations is None else dilations, 1 + (call.op != "conv1d"), "dilations",
                                   allow_nc=True))  # fmt: skip
    large = dilation > LARGE_DILATION
    tf_fn = FORWARD_ONLY[call.op] if large else TF_OPS[call.op]
    where = f"{call} on {backend}"
    try:
        outputs_tf, grads_tf = _tf_vjp(tf_fn, arrays, rest, dys, kwargs) if not large else (
            [tf_fn(*arrays, *rest, **kwargs)], None)
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"{where}: miniconv returned {[y.shape for y in outputs]}, TF refuses: {type(error).__name__}: {error}")
    finite_inputs = all(np.isfinite(a).all() for a in arrays if a is not None)
    if call.op == "conv2d_bias_relu_max_pool2d":
        assume(finite_inputs)  # (tests/test_nonfinite.py: special values there) near ties: rounding picks the winner
        z = nn.conv2d_bias_relu(*arrays, **{k: v for k, v in call.kwargs.items() if k != "pool_size"}, backend="numpy")
        assume(not windows_near_tie(z, _pair(call.kwargs["pool_size"])))
    max_pooling = call.op in MAX_OPS or (call.op == "pool" and kwargs.get("pooling_type") == "MAX")
    numpy_gradients = large or (not finite_inputs and (max_pooling or dilation > 1))
    fn = getattr(nn, call.op)
    if numpy_gradients:
        grads_tf = miniconv.vjp(fn, *arrays, *rest, backend="numpy", **call.kwargs)[1](*dys)
    numpy_dx = not numpy_gradients and call.op in DEPTHWISE and not np.isfinite(arrays[1]).all()
    if numpy_dx:  # TF's depthwise dx: 0 * inf of its zero-padded, zero-dilated dy
        grads_tf[0] = _float64_run(fn, arrays, rest, call.kwargs, dys)[1][0].astype(np.float32)
    if call.op == "batch_normalization" and not finite_inputs and not _one_layout(arrays):
        grads_tf[1:] = miniconv.vjp(fn, *arrays, *rest, backend="numpy", **call.kwargs)[1](*dys)[1:]
    results, expected = [*outputs, *grads], [np.asarray(y) for y in outputs_tf] + list(grads_tf)
    magnitudes = _magnitudes(call, arrays, rest, dys, tf_fn, kwargs, numpy_gradients, numpy_dx)
    floors = _floors(call, arrays, dys[0])
    L = max([a.size for a in arrays if a is not None] + [y.size for y in outputs] + [1])
    rtol = tf_reference.C_TOL * EPS32 * math.sqrt(L)
    if _may_pass_float32(call, arrays, rest, dys, L):
        expected = _overflows_in_another_order(call, arrays, rest, dys, results, expected, magnitudes, rtol)
    assert len(grads) == len(arrays), f"{where}: {len(grads)} gradients for {len(arrays)} arrays"
    names = [f"output {i}" for i in range(len(outputs))] if len(outputs) > 1 else ["output"]
    names += [f"gradient {i}" for i in range(len(arrays))]
    for name, ours, theirs, magnitude, floor in zip(names, results, expected, magnitudes, floors):
        if theirs is None:  # an offset or scale given as None
            assert ours is None, f"{where} {name}: {ours!r} for an array given as None"
            continue
        assert_close(ours, theirs, rtol=rtol, magnitude=magnitude, floor=floor, what=f"{where} {name}")


def _float64_run(fn, arrays, rest, kwargs, dys):
    """The numpy reference's outputs and gradients, computed in float64."""
    with computed_in(np.float64):
        out, pullback = miniconv.vjp(fn, *arrays, *rest, backend="numpy", **kwargs)
        return list(out) if isinstance(out, tuple) else [out], list(pullback(*dys))


def _largest(a) -> float:
    """max(1, the largest finite |value| of a)."""
    finite = np.abs(a[np.isfinite(a)]) if a is not None else ()
    return max(1.0, float(finite.max())) if len(finite) else 1.0


def _may_pass_float32(call, arrays, rest, dys, L) -> bool:
    """Whether a float32 sum of the example can pass float32's largest value: L terms, each at most
    the product of the arrays' and dy's largest finite values (batch_normalization: times rstd^3)."""
    bound = L * math.prod(_largest(a) for a in [*arrays, *dys])
    if call.op == "batch_normalization":
        epsilon = np.float32(rest[0] if rest else call.kwargs["variance_epsilon"])
        v = arrays[2].astype(np.float64) + np.float64(epsilon)
        positive = v[np.isfinite(v) & (v > 0)]
        bound *= max(1.0, float(positive.min()) ** -1.5) if positive.size else 1.0
    return bound > FLOAT32_MAX


def _overflows_in_another_order(call, arrays, rest, dys, results, expected, magnitudes, rtol):
    """``expected``, TF's, where ours and TF's differ in being finite (an example whose sums can pass
    float32's largest value: +-1e38 meeting another large value): there a float32 sum overflows (to
    inf, or NaN from inf - inf) or not depending on the order of its terms -- TF's separable_conv2d
    gave -inf where the numpy reference gave -2.95e38 -- so our inf or NaN is taken as it comes, and a
    finite result of ours must be the float64 one (numpy reference) to rtol * sum|terms|."""
    def differs(ours, theirs):
        same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
        return ~same & ~(np.isfinite(ours) & np.isfinite(theirs))

    if not any(t is not None and differs(o, t).any() for o, t in zip(results, expected)):
        return expected
    fn = getattr(nn, call.op)
    exact = [v for part in _float64_run(fn, arrays, rest, call.kwargs, dys) for v in part]
    if call.op in LINEAR:  # sum |terms| in float64 (no float32 run holds it)
        magnitudes = [v for part in _float64_run(fn, [np.abs(a) for a in arrays], rest,
                                                 _linear_kwargs(call.op, call.kwargs), [np.abs(d) for d in dys])
                      for v in part]  # fmt: skip
    out = list(expected)
    for i, (ours, theirs, value, m) in enumerate(zip(results, expected, exact, magnitudes)):
        if theirs is None:
            continue
        m = np.abs(value) if m is None else np.asarray(m, np.float64)
        right = np.isfinite(ours) & np.isfinite(value) & np.isfinite(m) & (np.abs(ours - value) <= rtol * m)
        out[i] = np.where(differs(ours, theirs) & (~np.isfinite(ours) | right), ours, theirs)
    return out


def _one_layout(arrays):
    """batch_normalization's parameters (not None) all of one shape, aligned to x's rank."""
    x, *parameters = arrays
    return len({(1,) * (x.ndim - p.ndim) + p.shape for p in parameters if p is not None}) == 1


def _magnitudes(call, arrays, rest, dys, tf_fn, kwargs, numpy_gradients, numpy_dx=False):
    """Per element, the sum of |terms| behind each output and gradient (None: the largest finite |TF|).
    Ops linear in each array: the op and its VJP on |arrays| and |dy| (the numpy reference's where its
    gradients, or dx, are the reference); batch_normalization and moments: formed in float64
    (tests/test_normalization.py)."""
    if call.op in LINEAR:
        abs_arrays, abs_dys = [np.abs(a) for a in arrays], [np.abs(d) for d in dys]
        kwargs, linear = _linear_kwargs(call.op, kwargs), _linear_kwargs(call.op, call.kwargs)
        if numpy_gradients or numpy_dx:  # their magnitudes from the numpy reference too, exact on |arrays|
            abs_y, abs_pullback = miniconv.vjp(getattr(nn, call.op), *abs_arrays, *rest, backend="numpy", **linear)
            reference = [abs_y, *abs_pullback(*abs_dys)]
        if numpy_gradients:
            return reference
        abs_outputs, abs_grads = _tf_vjp(tf_fn, abs_arrays, rest, abs_dys, kwargs)
        magnitudes = [*abs_outputs, *abs_grads]
        if numpy_dx:
            magnitudes[1] = reference[1]
        return magnitudes
    if call.op == "batch_normalization":
        epsilon = rest[0] if rest else call.kwargs["variance_epsilon"]
        return batch_norm_magnitudes(arrays, epsilon, dys[0])
    if call.op == "moments":
        axes = rest[0] if rest else call.kwargs["axes"]
        return _moments_magnitudes(arrays[0], axes, *dys)
    return [None] * (len(dys) + len(arrays))


def _moments_magnitudes(x, axes, dmean, dvariance):
    """In float64 (as tests/test_normalization.py, the mean's own error added: its sum may cancel,
    1e38 - 1e38 + 0.3, so that |mean| understates it): mean: m = sum |x| / n; variance: the mean of
    (|x - mean| + eps32 sqrt(n) (|x| + m))^2 (x - mean rounded against |x| and m);
    dx: |dmean| / n + 2 |dvariance| / n (|x - mean| + m)."""
    reduced = tuple(sorted({int(a) % x.ndim for a in np.atleast_1d(axes).tolist()}))
    n = math.prod(x.shape[a] for a in reduced)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=reduced, keepdims=True)
    m_mean = np.abs(x64).sum(axis=reduced, keepdims=True) / n
    deviation = np.abs(x64 - mean) + EPS32 * math.sqrt(n) * (np.abs(x64) + m_mean)
    m_variance = (deviation**2).sum(axis=reduced, keepdims=True) / n
    dm, dv = np.abs(dmean).reshape(mean.shape), np.abs(dvariance).reshape(mean.shape)
    m_dx = dm / n + 2 * dv / n * (np.abs(x64 - mean) + m_mean)
    return [m_mean.reshape(dmean.shape), m_variance.reshape(dvariance.shape), m_dx]


def _pair(value):
    return normalize_tuple(value, 2, "pool_size")


def _floors(call, arrays, dy):
    """Scale of errors that do not shrink with each result: the sigmoid and softmax gradients keep
    the absolute accuracy of dy; the fused pooled op's cells that of one term of its sums (1 here)."""
    count = 1 + (call.op in SEVERAL_OUTPUTS) + len(arrays)
    finite_dy = float(np.abs(dy[np.isfinite(dy)]).max()) if dy.size else 0.0
    if call.op == "sigmoid":
        return [TINY, finite_dy]
    if call.op == "softmax":
        return [0.0, finite_dy]
    if call.op == "conv2d_bias_relu_max_pool2d":  # as tests/test_conv_pool.py: finite arrays at scale 1
        return [1.0] * count
    return [0.0] * count


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", nn.OPS)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
          max_examples=2 * settings().max_examples)  # cheap examples (1-5 ms): twice the profile's count
@given(data=st.data())
def test_any_call_gives_tf_result_or_names_an_argument(op, backend, data):
    check(data.draw(calls(op), label="call"), backend)


# --- cases the fuzzing found ---------------------------------------------------------------------------


def test_batch_normalization_epsilon_past_float_range_is_named(backend):
    """variance_epsilon=10**400 (an int no float holds) was an OverflowError from math.isfinite."""
    x, c = np.ones((2, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"batch_normalization: variance_epsilon must be finite, got 1000"):
        nn.batch_normalization(x, c, c, None, None, 10**400, backend=backend)


@pytest.mark.parametrize("with_scale", [False, True])
def test_batch_normalization_inf_mean_broadcast_along_columns(backend, with_scale):
    """mean (4, 1) on x (1, 4, 4, 6), its last entry inf: the column sums gave dvariance NaN (+inf and -inf
    added over the six channels the mean is broadcast along), TF -inf * sum dy (it sums dy over those
    channels before multiplying by mean). Found by the fuzzing above."""
    rng = np.random.default_rng(5)
    x = _uniform(rng, (1, 4, 4, 6))
    mean = np.array([[-0.31], [-0.59], [-0.75], [np.inf]], np.float32)
    variance = np.array([[1.82], [1.96], [0.64], [1.25]], np.float32)
    scale = np.array([[0.5], [1.5], [-2.0], [0.75]], np.float32) if with_scale else None
    check(Call("batch_normalization", [x, mean, variance, None, scale], {"variance_epsilon": 0.001}), backend)


def test_batch_normalization_inf_inv_broadcast_along_columns(backend):
    """variance = -epsilon (inv = rsqrt(0) = inf) broadcast along the channels: dmean is TF's -inf * sum dy,
    not the column sums' +inf + -inf."""
    rng = np.random.default_rng(6)
    x = _uniform(rng, (2, 3, 5))
    mean = np.array([[0.25], [-0.5], [0.125]], np.float32)
    variance = np.array([[1.5], [-0.001], [0.75]], np.float32)
    check(Call("batch_normalization", [x, mean, variance, None, None], {"variance_epsilon": 0.001}), backend)


@pytest.mark.parametrize("keepdims", [np.array([True, False]), "yes", None, 1])
def test_moments_keepdims_must_be_a_bool(backend, keepdims):
    """keepdims=np.array([True, False]) was NumPy's "truth value of an array is ambiguous", naming nothing;
    a bool is asked for (TF takes any truth value, an array's failing as here)."""
    with pytest.raises(TypeError, match=r"moments: keepdims must be a bool, got "):
        nn.moments(np.ones((2, 3), np.float32), [0], keepdims=keepdims, backend=backend)
    assert nn.moments(np.ones((2, 3), np.float32), [0], keepdims=np.bool_(True), backend=backend)[0].shape == (1, 3)


def _depthwise_centre_tap(x, w, dy):
    """y, dx, dw of a 3 x 3 depthwise convolution whose outer taps all read padding: the centre tap's."""
    C, M = w.shape[2:]
    y = (x[..., None] * w[1, 1]).reshape(*x.shape[:3], C * M)
    dy5 = dy.reshape(*x.shape, M)
    dw = np.zeros_like(w)
    dw[1, 1] = np.einsum("nhwc,nhwcm->cm", x, dy5)
    return y, (dy5 * w[1, 1]).sum(axis=-1), dw


@pytest.mark.parametrize("M", [2, 1])  # (the cpu backend's 3 x 3 kernels take M = 1)
def test_depthwise_dilation_far_past_the_input(backend, M):
    """SAME with dilations 2**31 - 1 pads ~2**31 cells a side, which only the centre tap reads past. The
    numpy reference stored that padding ("array is too big"; gigabytes, filled, for a 1 x S filter); the
    cpu backend's 3 x 3 rings were as wide."""
    rng = np.random.default_rng(0)
    x, w, dy = _uniform(rng, (2, 5, 6, 3)), _uniform(rng, (3, 3, 3, M)), _uniform(rng, (2, 5, 6, 3 * M))
    y, pullback = miniconv.vjp(nn.depthwise_conv2d, x, w, 1, "SAME", 2**31 - 1, backend=backend)
    for ours, expected in zip((y, *pullback(dy)), _depthwise_centre_tap(x, w, dy)):
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding", ["SAME", "VALID", [[0, 0], [1000, 999], [998, 1000], [0, 0]]])
def test_depthwise_3x3_stride_far_past_the_input_matches_tf(backend, padding):
    """strides 2**31 - 1 (and padding far past the input): one output cell a side. The cpu backend's 3 x 3
    kernels kept a ring of 2 dh + 2 + sh rows per thread, 2**31 of them (a MemoryError, or 17 GB of tags set)."""
    rng = np.random.default_rng(1)
    x, w = _uniform(rng, (2, 5, 6, 3)), _uniform(rng, (3, 3, 3, 1))
    kwargs = {"strides": [1, 2**31 - 1, 2**31 - 1, 1], "padding": padding}
    y, pullback = miniconv.vjp(nn.depthwise_conv2d, x, w, **kwargs, backend=backend)
    dy = _uniform(rng, y.shape)
    y_tf, (dx_tf, dw_tf) = tf_reference.tf_vjp(tf.nn.depthwise_conv2d, (x, w), dy, kwargs)
    for ours, theirs in zip((y, *pullback(dy)), (y_tf, dx_tf, dw_tf)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pad", [2**31, 2**63, 2**64])
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d"])
def test_explicit_padding_past_2_31_is_named(backend, op, pad):
    """An explicit padding of 2**63 was NumPy's "`pad_width` must be of integral type" (numpy) or "Maximum
    allowed dimension exceeded" (cpu), naming nothing; every entry past 2**31 - 1 is refused, as strides."""
    x, w = np.ones((1, 4, 4, 2), np.float32), np.ones((2, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match=rf"{op}: explicit padding must be at most 2\*\*31 - 1 = 2147483647 a side"):
        getattr(nn, op)(x, w, [1, 2**31 - 1, 2**31 - 1, 1], [[0, 0], [0, pad], [0, 0], [0, 0]], backend=backend)


def test_batch_normalization_gradients_of_an_inf_mean_are_tfs(backend):
    """An inf mean (per channel): TF's dvariance and dscale are its sum dy x - mean sum dy, -inf * sum dy
    here; miniconv's sum dy (x - mean) added +inf and -inf terms into NaN. It now takes TF's arithmetic
    where the centred sum is not finite (an inf in x or mean, or x - mean past float32)."""
    x_near = np.array([[0.27, 1.5], [-0.46, -2.0], [-0.91, 0.5]], np.float32)
    x_far = x_near.copy()
    x_far[:, 0] = [3e38, 2e38, -1e38]  # x - mean past float32, TF's sums not
    variance = np.array([1.6, 0.5], np.float32)
    dy = np.array([[0.5, 0.25], [-0.25, 1.0], [0.75, -0.5]], np.float32)
    for x, mean in ((x_near, np.array([np.inf, 0.1], np.float32)), (x_far, np.array([-1e38, 0.1], np.float32))):
        _, pullback = miniconv.vjp(nn.batch_normalization, x, mean, variance, None, None, 1e-3, backend=backend)
        _, grads_tf = tf_reference.tf_vjp(lambda x, m, v: tf.nn.batch_normalization(x, m, v, None, None, 1e-3),
                                          (x, mean, variance), dy)  # fmt: skip
        grads = pullback(dy)
        for ours, theirs in zip(grads[:3], grads_tf):
            assert_close(ours, theirs, rtol=1e-6, what=f"mean {mean}")
