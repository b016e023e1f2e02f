"""Output sizes, SAME/VALID resolution and the frozen geometry records the kernels receive.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel (window) size,
P Q output size. Layouts are TensorFlow's: activations NHWC, filters HWIO.

Padding follows TensorFlow exactly:
    VALID: P = ceil((H - (R - 1) * d) / s), no padding.
    SAME:  P = ceil(H / s), pad = max(0, (P - 1) * s + (R - 1) * d + 1 - H),
           top = pad // 2, bottom = pad - top  (the odd extra goes bottom / right).
    explicit (convolutions only, as ``tf.nn.conv2d``): [[0, 0], [top, bottom], [left, right], [0, 0]],
           P = (H + top + bottom - (R - 1) * d - 1) // s + 1: VALID on the zero-padded input.

Every check raises before any kernel runs, naming the argument, what was expected and what came.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDINGS = ("VALID", "SAME")
MAX_SIZE = 2**31 - 1  # strides, windows, dilations: TensorFlow's int32 attributes refuse more
EXPLICIT_FORM = "[[0, 0], [pad_top, pad_bottom], [pad_left, pad_right], [0, 0]]"


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a 2-D convolution kernel needs, as plain ints."""

    N: int
    H: int
    W: int
    C: int
    K: int
    R: int
    S: int
    sh: int
    sw: int
    dh: int
    dw: int
    top: int
    bottom: int
    left: int
    right: int
    P: int
    Q: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        return (self.R, self.S, self.C, self.K)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.P, self.Q, self.K)


@dataclass(frozen=True)
class DepthwiseGeometry(ConvGeometry):
    """A depthwise convolution's geometry: ConvGeometry with K = C * M output channels.

    M is the channel multiplier: filters are (R, S, C, M) and output channel c * M + m is input
    channel c convolved with filter (c, m), TensorFlow's order.
    """

    @property
    def M(self) -> int:
        return self.K // self.C

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        return (self.R, self.S, self.C, self.M)


@dataclass(frozen=True)
class PoolGeometry:
    """Everything a 2-D pooling kernel needs, as plain ints (channels pool independently)."""

    N: int
    H: int
    W: int
    C: int
    R: int
    S: int
    sh: int
    sw: int
    top: int
    bottom: int
    left: int
    right: int
    P: int
    Q: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.P, self.Q, self.C)


def normalize_padding(padding) -> str:
    """'valid' / 'SAME' -> 'VALID' / 'SAME'; anything else is a ValueError."""
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise ValueError(f"padding: expected 'VALID' or 'SAME', got {padding!r}")
    return padding.upper()


def normalize_conv_padding(padding, op: str = "conv2d"):
    """A convolution's padding: 'VALID' / 'SAME' (any case), or TensorFlow's explicit NHWC list
    [[0, 0], [top, bottom], [left, right], [0, 0]] -> ((top, bottom), (left, right)).

    As ``tf.nn.conv2d``: four pairs of non-negative ints, the batch and channel pairs zero; each at most
    2**31 - 1, as strides and dilations (TF takes int64s, and runs out of memory for the output).
    """
    if not isinstance(padding, (list, tuple, np.ndarray)):
        return normalize_padding(padding)
    pairs = list(padding)
    if len(pairs) != 4 or any(not isinstance(pair, (list, tuple, np.ndarray)) or len(pair) != 2 for pair in pairs):
        raise ValueError(f"{op}: padding as a list must have 4 pairs, {EXPLICIT_FORM} (NHWC), got {_show(padding)}")
    values = [v for pair in pairs for v in pair]
    if any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: explicit padding must hold ints, {EXPLICIT_FORM}, got {_show(padding)}")
    values = [int(v) for v in values]
    if min(values) < 0:
        raise ValueError(f"{op}: explicit padding must be non-negative, got {_show(padding)}")
    if max(values) > MAX_SIZE:  # as strides and dilations; past 2**63 no int64 of the kernels holds them
        raise ValueError(f"{op}: explicit padding must be at most 2**31 - 1 = {MAX_SIZE} a side, got {_show(padding)}")
    if values[0] or values[1] or values[6] or values[7]:
        raise ValueError(
            f"{op}: explicit padding of the batch and channel axes must be [0, 0] (as TensorFlow), got {_show(padding)}"
        )
    return (values[2], values[3]), (values[4], values[5])


def _show(padding) -> str:
    return repr(padding.tolist() if isinstance(padding, np.ndarray) else padding)


def normalize_tuple(value, n: int, name: str, *, allow_nc: bool = False, allow_one: bool = True) -> tuple[int, ...]:
    """An int or a sequence of n positive ints, each at most MAX_SIZE -> tuple of n ints.

    With ``allow_nc`` the TensorFlow long form ``[1, *spatial, 1]`` (length n + 2, ones on the
    batch and channel axes) is accepted too, as ``tf.nn.max_pool2d`` accepts it; with ``allow_one``
    (the default) a sequence of one value stands for all n, as TF's conv and pool ops take it. Values above
    MAX_SIZE (2**31 - 1, where TensorFlow stops too) are a ValueError: past 2**63 they would not
    even fit the kernels' int64 arguments.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(f"{name}: expected an int or a sequence of {n} ints, got {value!r}") from None
        if allow_nc and len(values) == n + 2:
            if values[0] != 1 or values[-1] != 1:
                raise ValueError(
                    f"{name}: the batch and channel entries of a length-{n + 2} {name} must be 1, "
                    f"got {list(values)!r}"
                )
            values = values[1:-1]
        if len(values) == 1 and allow_one:
            values = values * n
        if len(values) != n:
            raise ValueError(f"{name}: expected an int or {n} ints, got {len(values)} values {list(values)!r}")
        for v in values:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{name}: expected ints, got {list(values)!r}")
        values = tuple(int(v) for v in values)
    for v in values:
        if v <= 0:
            raise ValueError(f"{name}: expected positive values, got {list(values)!r}")
        if v > MAX_SIZE:
            raise ValueError(f"{name}: expected values of at most 2**31 - 1 = {MAX_SIZE} (TensorFlow's limit), "
                             f"got {list(values)!r}")
    return values


def output_size(size: int, window: int, stride: int, dilation: int, padding: str) -> tuple[int, int, int]:
    """One spatial axis: (output size, pad before, pad after), TensorFlow's rule."""
    effective = (window - 1) * dilation + 1
    if padding == "VALID":
        return (size - effective) // stride + 1, 0, 0
    out = -(-size // stride)
    pad = max(0, (out - 1) * stride + effective - size)
    return out, pad // 2, pad - pad // 2


def explicit_output_size(size: int, window: int, stride: int, dilation: int, before: int, after: int) -> int:
    """One spatial axis under explicit padding: VALID's output size on the padded input."""
    return (size + before + after - (window - 1) * dilation - 1) // stride + 1


def conv_geometry(input_shape, filter_shape, strides, padding, dilations, op="conv2d", stride_name="strides",
                  spatial=2, filter_name="filters") -> ConvGeometry:
    """Check a 2-D convolution's arguments and resolve its geometry.

    input (N, H, W, C), filters (R, S, C, K); strides, dilations: pairs of positive ints;
    padding "VALID", "SAME" or ((top, bottom), (left, right)) (``normalize_conv_padding``).
    ``stride_name``, ``spatial`` and ``filter_name`` are for messages: conv1d's argument is
    ``stride``, and only the last of its (1, s) pair is the caller's; depthwise's filter is ``filter``.
    """
    N, H, W, C = input_shape
    R, S, C_f, K = filter_shape
    if C_f != C:
        raise ValueError(
            f"{op}: filters expect {C_f} input channels but the input has {C} "
            f"(input shape {tuple(input_shape)}, filters shape {tuple(filter_shape)})"
        )
    sh, sw = strides
    dh, dw = dilations
    if max(sh, sw) > 1 and max(dh, dw) > 1:
        raise ValueError(
            f"{op}: `strides > 1` not supported in conjunction with `dilation_rate > 1` (as in TensorFlow's "
            f"convolution layers). Received: {stride_name}={list(strides)[-spatial:]} and "
            f"dilations={list(dilations)[-spatial:]}"
        )
    if isinstance(padding, str):
        P, top, bottom = output_size(H, R, sh, dh, padding)
        Q, left, right = output_size(W, S, sw, dw, padding)
        _check_window_fits(op, filter_name, (H, W), (R, S), (dh, dw), padding, P, Q)
    else:
        (top, bottom), (left, right) = padding
        P = explicit_output_size(H, R, sh, dh, top, bottom)
        Q = explicit_output_size(W, S, sw, dw, left, right)
        _check_window_fits(op, filter_name, (H + top + bottom, W + left + right), (R, S), (dh, dw), "explicitly", P, Q)
    return ConvGeometry(N, H, W, C, K, R, S, sh, sw, dh, dw, top, bottom, left, right, P, Q)


def depthwise_geometry(input_shape, filter_shape, strides, padding, dilations, op="depthwise_conv2d",
                       filter_name="filter") -> DepthwiseGeometry:
    """Check a depthwise convolution's arguments and resolve its geometry.

    input (N, H, W, C), filter (R, S, C, M) -> output (N, P, Q, C * M); strides equal along rows
    and columns (TensorFlow's depthwise kernels support no other), the rest as ``conv_geometry``.
    """
    C = input_shape[3]
    R, S, C_f, M = filter_shape
    if C_f != C:
        raise ValueError(
            f"{op}: {filter_name} has {C_f} input channels (axis 2 of (R, S, C, M)) but the input has {C} "
            f"(input shape {tuple(input_shape)}, {filter_name} shape {tuple(filter_shape)})"
        )
    if strides[0] != strides[1]:
        raise ValueError(
            f"{op}: strides must be equal along rows and columns, as TensorFlow's depthwise_conv2d requires, "
            f"got {list(strides)}"
        )
    g = conv_geometry(input_shape, (R, S, C, C * M), strides, padding, dilations, op, filter_name=filter_name)
    return DepthwiseGeometry(**{f: getattr(g, f) for f in ConvGeometry.__dataclass_fields__})


def pool_geometry(input_shape, ksize, strides, padding, op="pool2d", window_name="ksize",
                  input_name="input") -> PoolGeometry:
    """Check a 2-D pooling's arguments and resolve its geometry. input (N, H, W, C).

    ``window_name`` and ``input_name`` name the window and what it pools in an error message (the
    fused conv + pool op pools its convolution's output with its ``pool_size``).
    """
    N, H, W, C = input_shape
    R, S = ksize
    sh, sw = strides
    P, top, bottom = output_size(H, R, sh, 1, padding)
    Q, left, right = output_size(W, S, sw, 1, padding)
    _check_window_fits(op, window_name, (H, W), (R, S), (1, 1), padding, P, Q, input_name)
    R, top, bottom = _reachable_window(H, R, sh, P, top)
    S, left, right = _reachable_window(W, S, sw, Q, left)
    return PoolGeometry(N, H, W, C, R, S, sh, sw, top, bottom, left, right, P, Q)


def _reachable_window(size, window, stride, out, before):
    """(window, pad before, pad after) of one axis with the padding no window needs cut off.

    Pooling never counts padded cells, so only each window's valid cells matter: input cells
    [max(p*s - before, 0), min(p*s - before + window, size)) for p < out. A SAME window larger than
    the input (TF allows up to 2**31 - 1) keeps exactly those cells with ``before`` cut to at most
    (out - 1) * s, where every window still starts at or before cell 0, and its end to the input's:
    the same results, for a window no larger than twice the input.
    """
    cut = max(0, before - (out - 1) * stride)  # every window starts in the padding: start them later
    before, window = before - cut, window - cut
    window = min(window, size + before)  # window 0 already reaches past the input's end: so do all
    return window, before, max(0, (out - 1) * stride + window - before - size)


def _check_window_fits(op, name, size, window, dilation, padding, P, Q, input_name="input"):
    if P <= 0 or Q <= 0 or min(size) <= 0:
        effective = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
        padded = "explicitly padded" if padding == "explicitly" else f"{padding}-padded"
        raise ValueError(
            f"{op}: the {name} window {effective} (after dilation) is larger than the "
            f"{padded} {input_name} {tuple(size)}; the output would be empty"
        )


def format_shape(shape) -> str:
    """(None, 26, 26, 32) as Keras prints it; a 1-tuple keeps its comma: (None,)."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
