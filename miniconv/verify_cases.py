"""Random cases for ``miniconv verify``: arrays, keyword arguments and the TensorFlow reference.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel (window) size,
P Q output size, I O dense inputs / outputs, M dense rows.

Each generator takes a seeded ``np.random.Generator`` and returns one ``Case``. Shapes are drawn
to reach the corners that break kernels: batch 1, one channel, non-square inputs and kernels,
even kernel sizes, SAME and VALID, strides larger than the window, dilation (with stride 1, as
TensorFlow requires). Max-pooling inputs are a shuffled, scaled ``arange`` so no window has a
tie (the gradient of a tie is a convention, not arithmetic).

The reference is a function ``(tf, *tensors) -> tensor`` so TensorFlow is imported only by the
caller, once. ``reduction`` is L, the longest sum any output or gradient of the case computes,
which sets the case's tolerance (float32 rounding error grows like sqrt(L)). ``floor`` is the
size of one term of those sums (every array here, and the upstream gradient, is drawn at scale
1): a result that cancels far below its own terms (a one-element dense output, a softmax
gradient) has only absolute accuracy, so relative errors are taken against at least ``floor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .shapes import output_size


@dataclass
class Case:
    """One random call: ``miniconv.nn.<op>(*arrays, **kwargs)`` against ``reference(tf, *arrays)``."""

    op: str
    names: tuple[str, ...]  # one per array, for messages: ("x", "w")
    arrays: tuple[np.ndarray, ...]  # float32, positional, all differentiated
    kwargs: dict = field(default_factory=dict)
    reference: Callable | None = None
    reduction: int = 1  # L: the longest reduction in the forward pass or any gradient
    floor: float = 1e-30  # the smallest denominator of a relative error: the size of one term
    outputs: tuple[str, ...] = ("y",)  # the op's outputs (moments has two), for messages

    def describe(self) -> str:
        shapes = " ".join(f"{n}{tuple(a.shape)}" for n, a in zip(self.names, self.arrays))
        args = " ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{shapes} {args}".strip()


def _normal(rng, shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _positive(rng, shape) -> np.ndarray:
    """Uniform in [0.5, 1.5): a mean of these cannot cancel to ~0, so the relative error of an
    average stays a measure of rounding, not of an unlucky small result."""
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)


def _tie_free(rng, shape) -> np.ndarray:
    """A shuffled arange scaled to [-2, 2): every value distinct, exactly representable in float32."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * (4.0 / max(size, 1))).astype(np.float32).reshape(shape)


def _batch_channels(rng) -> tuple[int, int]:
    return int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 3, 5]))


def _axis(rng, window_max=4, *, strides_over_window=True, dilation=False):
    """One spatial axis: (size, window, stride, dilation), the size large enough for VALID."""
    window = int(rng.integers(1, window_max + 1))
    if dilation:
        stride, dil = 1, int(rng.integers(1, 4))
    else:
        top = window_max + 1 if strides_over_window else window
        stride, dil = int(rng.integers(1, top + 1)), 1
    size = (window - 1) * dil + 1 + int(rng.integers(0, 8))
    return size, window, stride, dil


def _padding(rng) -> str:
    return str(rng.choice(["VALID", "SAME"]))


# --- convolution ---------------------------------------------------------------------------------


def _tf_conv(tf, conv, x, w, strides, padding, dilations):
    """``tf.nn.conv2d`` / ``conv1d``; with dilation ``tf.nn.convolution`` (same maths), because
    TensorFlow's CPU gradient kernels refuse dilation rates above 1."""
    if np.max(dilations) > 1:
        return tf.nn.convolution(x, w, strides=strides, padding=padding, dilations=dilations)
    return conv(x, w, strides, padding)


def conv2d(rng) -> Case:
    """x (N, H, W, C), w (R, S, C, K), R S in 1..4; strides up to 5 (beyond the window) or, in
    30% of cases, dilations up to 3 with stride 1. L = max(R*S*C, R*S*K, N*P*Q) for y, dx, dw."""
    N, C = _batch_channels(rng)
    K = int(rng.integers(1, 6))
    dilated = rng.random() < 0.3
    H, R, sh, dh = _axis(rng, dilation=dilated)
    W, S, sw, dw = _axis(rng, dilation=dilated)
    padding = _padding(rng)
    P, Q = output_size(H, R, sh, dh, padding)[0], output_size(W, S, sw, dw, padding)[0]
    kw = {"strides": (sh, sw), "padding": padding, "dilations": (dh, dw)}
    return Case(
        "conv2d",
        ("x", "w"),
        (_normal(rng, (N, H, W, C)), _normal(rng, (R, S, C, K))),
        kw,
        lambda tf, x, w: _tf_conv(tf, tf.nn.conv2d, x, w, kw["strides"], padding, kw["dilations"]),
        max(R * S * C, R * S * K, N * P * Q),
        floor=1.0,
    )


def conv1d(rng) -> Case:
    """x (N, W, C), w (S, C, K), S in 1..5; stride or dilation as for conv2d. L = max(S*C, S*K, N*Q)."""
    N, C = _batch_channels(rng)
    K = int(rng.integers(1, 6))
    W, S, s, d = _axis(rng, window_max=5, dilation=rng.random() < 0.3)
    padding = _padding(rng)
    Q = output_size(W, S, s, d, padding)[0]
    kw = {"stride": s, "padding": padding, "dilations": d}
    return Case(
        "conv1d",
        ("x", "w"),
        (_normal(rng, (N, W, C)), _normal(rng, (S, C, K))),
        kw,
        lambda tf, x, w: _tf_conv(tf, tf.nn.conv1d, x, w, s, padding, d),
        max(S * C, S * K, N * Q),
        floor=1.0,
    )


# --- elementwise ---------------------------------------------------------------------------------


def _any_shape(rng, min_rank=1) -> tuple[int, ...]:
    rank = int(rng.integers(min_rank, 5))
    return tuple(int(rng.choice([1, 2, 3, 5, 7])) for _ in range(rank))


def relu(rng) -> Case:
    return Case("relu", ("x",), (_normal(rng, _any_shape(rng)),), {}, lambda tf, x: tf.nn.relu(x), 1)


def sigmoid(rng) -> Case:
    """dx = dy * y * (1 - y) has the absolute accuracy of 1 - y, eps * |dy|: floor 1/4 = max y(1-y)."""
    x = _normal(rng, _any_shape(rng), 3.0)
    return Case("sigmoid", ("x",), (x,), {}, lambda tf, x: tf.nn.sigmoid(x), 1, floor=0.25)


def softmax(rng) -> Case:
    """The softmax axis has length >= 2: along a length-1 axis y = 1 and the exact gradient is 0,
    so a relative error compares two rounding noises."""
    shape = _any_shape(rng)
    axis = int(rng.integers(-len(shape), len(shape)))
    shape = tuple(max(n, 2) if i == axis % len(shape) else n for i, n in enumerate(shape))
    return Case(
        "softmax",
        ("logits",),
        (_normal(rng, shape, 2.0),),
        {"axis": axis},
        lambda tf, x: tf.nn.softmax(x, axis=axis),
        shape[axis],
        floor=0.25,
    )


# --- pooling -------------------------------------------------------------------------------------


def _pool_case(rng, op, kind, dims, *, tf_name, strides_over_window=True) -> Case:
    """x (N, W, C) or (N, H, W, C); window R S in 1..4, strides up to 5. L = R * S."""
    N, C = _batch_channels(rng)
    axes = [_axis(rng, strides_over_window=strides_over_window) for _ in range(dims)]
    sizes, window, strides = [a[0] for a in axes], [a[1] for a in axes], [a[2] for a in axes]
    shape = (N, *sizes, C)
    x = _tie_free(rng, shape) if kind == "MAX" else _positive(rng, shape)
    padding = _padding(rng)
    if op == "pool":
        kw = {"window_shape": tuple(window), "pooling_type": kind, "strides": tuple(strides), "padding": padding}
        ref = lambda tf, x: tf.nn.pool(x, window, kind, strides=strides, padding=padding)
    else:
        kw = {"ksize": tuple(window), "strides": tuple(strides), "padding": padding}
        ref = lambda tf, x: getattr(tf.nn, tf_name)(x, window, strides, padding)
    return Case(op, ("x",), (x,), kw, ref, int(np.prod(window)))


def max_pool2d(rng) -> Case:
    return _pool_case(rng, "max_pool2d", "MAX", 2, tf_name="max_pool2d")


def avg_pool2d(rng) -> Case:
    return _pool_case(rng, "avg_pool2d", "AVG", 2, tf_name="avg_pool2d")


def max_pool1d(rng) -> Case:
    return _pool_case(rng, "max_pool1d", "MAX", 1, tf_name="max_pool1d")


def avg_pool1d(rng) -> Case:
    return _pool_case(rng, "avg_pool1d", "AVG", 1, tf_name="avg_pool1d")


def pool(rng) -> Case:
    """``tf.nn.pool`` refuses strides > window, so this one keeps strides within the window."""
    kind = str(rng.choice(["MAX", "AVG"]))
    dims = int(rng.integers(1, 3))
    return _pool_case(rng, "pool", kind, dims, tf_name="pool", strides_over_window=False)


def _global_case(rng, op, kind, dims) -> Case:
    """x (N, W, C) or (N, H, W, C) -> (N, C); TF: reduce_max / reduce_mean over the spatial axes. L = H * W."""
    N, C = _batch_channels(rng)
    sizes = tuple(int(rng.integers(1, 9)) for _ in range(dims))
    shape = (N, *sizes, C)
    x = _tie_free(rng, shape) if kind == "MAX" else _positive(rng, shape)
    axes = list(range(1, dims + 1))
    reduce = "reduce_max" if kind == "MAX" else "reduce_mean"
    return Case(op, ("x",), (x,), {}, lambda tf, x: getattr(tf, reduce)(x, axis=axes), int(np.prod(sizes)))


def global_max_pool2d(rng) -> Case:
    return _global_case(rng, "global_max_pool2d", "MAX", 2)


def global_avg_pool2d(rng) -> Case:
    return _global_case(rng, "global_avg_pool2d", "AVG", 2)


def global_max_pool1d(rng) -> Case:
    return _global_case(rng, "global_max_pool1d", "MAX", 1)


def global_avg_pool1d(rng) -> Case:
    return _global_case(rng, "global_avg_pool1d", "AVG", 1)


# --- dense ---------------------------------------------------------------------------------------


def dense(rng) -> Case:
    """x (..., I) of rank 1 to 3, kernel (I, O), bias (O,) in most cases. TF: x @ kernel + bias."""
    lead = tuple(int(rng.choice([1, 2, 3, 7])) for _ in range(int(rng.integers(0, 3))))
    I, O = int(rng.choice([1, 3, 16, 33, 64])), int(rng.choice([1, 2, 10, 17]))
    x, kernel = _normal(rng, (*lead, I)), _normal(rng, (I, O))
    M = int(np.prod(lead))
    if rng.random() < 0.75:
        return Case(
            "dense",
            ("x", "kernel", "bias"),
            (x, kernel, _normal(rng, (O,))),
            {},
            lambda tf, x, k, b: tf.tensordot(x, k, axes=1) + b,
            max(I, O, M),
            floor=1.0,
        )
    return Case(
        "dense", ("x", "kernel"), (x, kernel), {}, lambda tf, x, k: tf.tensordot(x, k, axes=1), max(I, O, M), floor=1.0
    )


def bias_add(rng) -> Case:
    """value (N, ..., C) of rank 2 to 4, bias (C,); dbias sums over the M = N * ... rows."""
    shape = _any_shape(rng, min_rank=2)
    value, bias = _normal(rng, shape), _normal(rng, shape[-1:])
    M = int(np.prod(shape[:-1]))
    return Case("bias_add", ("value", "bias"), (value, bias), {}, lambda tf, v, b: tf.nn.bias_add(v, b), M, floor=1.0)


def bias_add_relu(rng) -> Case:
    """As ``bias_add``; TF: relu(bias_add(value, bias))."""
    case = bias_add(rng)
    case.op, case.reference = "bias_add_relu", lambda tf, v, b: tf.nn.relu(tf.nn.bias_add(v, b))
    return case


def conv2d_bias_relu(rng) -> Case:
    """As ``conv2d``, plus a bias (K,); TF: relu(bias_add(conv2d(x, w), bias))."""
    case = conv2d(rng)
    x, w = case.arrays
    bias = _normal(rng, w.shape[3:])
    kw = case.kwargs

    def reference(tf, x, w, b):
        return tf.nn.relu(tf.nn.bias_add(_tf_conv(tf, tf.nn.conv2d, x, w, kw["strides"], kw["padding"], kw["dilations"]), b))

    # conv2d's L already includes N*P*Q, the length of the bias gradient's sum
    return Case("conv2d_bias_relu", ("x", "w", "bias"), (x, w, bias), kw, reference, case.reduction, floor=1.0)


def conv2d_bias(rng) -> Case:
    """As ``conv2d``, plus a bias (K,) at scale 2 and, in half the cases, ReLU6 (x at scale 2, so that
    values fall on both sides of 0 and of 6); TF: relu6(bias_add(conv2d(x, w), bias))."""
    case = conv2d(rng)
    x, w = case.arrays
    x = x * np.float32(2.0)
    bias = _normal(rng, w.shape[3:], 2.0)
    kw = dict(case.kwargs, activation="relu6" if rng.random() < 0.5 else None)

    def reference(tf, x, w, b):
        z = tf.nn.bias_add(_tf_conv(tf, tf.nn.conv2d, x, w, kw["strides"], kw["padding"], kw["dilations"]), b)
        return tf.nn.relu6(z) if kw["activation"] else z

    return Case("conv2d_bias", ("x", "w", "bias"), (x, w, bias), kw, reference, case.reduction, floor=1.0)


def conv2d_bias_relu_max_pool2d(rng) -> Case:
    """As ``conv2d_bias_relu``, then a max pooling whose window (1..3 per axis, fitting the conv output)
    is its strides, VALID; TF: max_pool2d(relu(bias_add(conv2d(x, w), bias)), pool_size, pool_size).
    Redrawn while a window's two largest values are within 1e-5 of each other: float32 rounding could
    then pick another winner than TF and send the gradient elsewhere (a tie's gradient is a convention)."""
    for _ in range(50):
        case = conv2d_bias_relu(rng)
        x, w, bias = case.arrays
        kw = dict(case.kwargs)
        P, Q = _conv_output(x.shape, w.shape, kw)
        pool = (int(rng.integers(1, min(P, 3) + 1)), int(rng.integers(1, min(Q, 3) + 1)))
        if not _has_near_tie(x, w, bias, kw, pool):
            break
    kw["pool_size"] = pool

    def reference(tf, x, w, b):
        z = tf.nn.relu(tf.nn.bias_add(_tf_conv(tf, tf.nn.conv2d, x, w, kw["strides"], kw["padding"], kw["dilations"]), b))
        return tf.nn.max_pool2d(z, pool, pool, "VALID")

    return Case("conv2d_bias_relu_max_pool2d", case.names, case.arrays, kw, reference, case.reduction, floor=1.0)


def _conv_output(x_shape, w_shape, kw):
    (sh, sw), (dh, dw) = kw["strides"], kw["dilations"]
    return (output_size(x_shape[1], w_shape[0], sh, dh, kw["padding"])[0],
            output_size(x_shape[2], w_shape[1], sw, dw, kw["padding"])[0])


def _has_near_tie(x, w, bias, kw, pool) -> bool:
    """Some pooling window of relu(conv + bias), computed in float64, holds a near tie."""
    from .backend import numpy_ref
    from .shapes import conv_geometry

    g = conv_geometry(x.shape, w.shape, kw["strides"], kw["padding"], kw["dilations"])
    z = np.maximum(numpy_ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), g) + bias, 0.0)
    return windows_near_tie(z, pool)


def windows_near_tie(z, pool, gap=1e-5) -> bool:
    """Some non-overlapping VALID window (pool = (Rp, Sp)) of z (N, P, Q, K) has its two largest
    positive values within ``gap`` (relative): float32 rounding could pick another winner than TF."""
    Rp, Sp = pool
    if Rp * Sp == 1:
        return False
    N, P, Q, K = z.shape
    Pp, Qp = P // Rp, Q // Sp
    windows = z[:, : Pp * Rp, : Qp * Sp].reshape(N, Pp, Rp, Qp, Sp, K).transpose(0, 1, 3, 5, 2, 4)
    windows = np.sort(windows.reshape(N, Pp, Qp, K, Rp * Sp), axis=-1)
    top, second = windows[..., -1], windows[..., -2]
    return bool(np.any((second > 0) & (top - second <= gap * np.maximum(top, 1.0))))


# --- depthwise and separable convolutions ----------------------------------------------------------


def _depthwise_geometry(rng):
    """(N, H, W, C, M, R, S, stride, dilation, padding, P, Q): strides 1 or 2 (equal along rows and
    columns, TensorFlow's rule) or, in 30% of cases, dilations up to 3 with stride 1; VALID, SAME or,
    in 25% of cases, explicit padding [[0, 0], [t, b], [l, r], [0, 0]] of 0 to 2 a side."""
    N, C = _batch_channels(rng)
    M = int(rng.choice([1, 1, 2, 3]))
    dilated = rng.random() < 0.3
    stride, dilation = (1, int(rng.integers(1, 4))) if dilated else (int(rng.integers(1, 3)), 1)
    R, S = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    H = (R - 1) * dilation + 1 + int(rng.integers(0, 8))
    W = (S - 1) * dilation + 1 + int(rng.integers(0, 8))
    if rng.random() < 0.25:
        t, b, left, right = (int(v) for v in rng.integers(0, 3, 4))
        padding = [[0, 0], [t, b], [left, right], [0, 0]]
        P = (H + t + b - (R - 1) * dilation - 1) // stride + 1
        Q = (W + left + right - (S - 1) * dilation - 1) // stride + 1
    else:
        padding = _padding(rng)
        P, Q = output_size(H, R, stride, dilation, padding)[0], output_size(W, S, stride, dilation, padding)[0]
    return N, H, W, C, M, R, S, stride, dilation, padding, P, Q


def depthwise_conv2d(rng) -> Case:
    """x (N, H, W, C), filter (R, S, C, M), M in 1..3, R S in 1..4 (``_depthwise_geometry``).
    L = max(R*S, R*S*M, N*P*Q) for y, dx, dw."""
    N, H, W, C, M, R, S, stride, dilation, padding, P, Q = _depthwise_geometry(rng)
    kw = {"strides": [1, stride, stride, 1], "padding": padding, "dilations": [dilation, dilation]}
    return Case(
        "depthwise_conv2d",
        ("x", "w"),
        (_normal(rng, (N, H, W, C)), _normal(rng, (R, S, C, M))),
        kw,
        lambda tf, x, w: tf.nn.depthwise_conv2d(x, w, kw["strides"], padding, dilations=kw["dilations"]),
        max(R * S * M, N * P * Q),
        floor=1.0,
    )


def depthwise_conv2d_bias(rng) -> Case:
    """As ``depthwise_conv2d``, plus a bias (C*M,) at scale 2 and, in half the cases, ReLU6 (x at scale 2);
    TF: relu6(bias_add(depthwise_conv2d(x, w), bias))."""
    case = depthwise_conv2d(rng)
    x, w = case.arrays
    x = x * np.float32(2.0)
    bias = _normal(rng, (w.shape[2] * w.shape[3],), 2.0)
    kw = dict(case.kwargs, activation="relu6" if rng.random() < 0.5 else None)

    def reference(tf, x, w, b):
        z = tf.nn.bias_add(tf.nn.depthwise_conv2d(x, w, kw["strides"], kw["padding"], dilations=kw["dilations"]), b)
        return tf.nn.relu6(z) if kw["activation"] else z

    return Case("depthwise_conv2d_bias", ("x", "w", "bias"), (x, w, bias), kw, reference, case.reduction, floor=1.0)


def separable_conv2d(rng) -> Case:
    """As ``depthwise_conv2d``, then a pointwise filter (1, 1, C*M, K), K in 1..5.
    L = max(R*S*C*M, R*S*M*K, N*P*Q*K)."""
    N, H, W, C, M, R, S, stride, dilation, padding, P, Q = _depthwise_geometry(rng)
    K = int(rng.integers(1, 6))
    kw = {"strides": [1, stride, stride, 1], "padding": padding, "dilations": [dilation, dilation]}
    return Case(
        "separable_conv2d",
        ("x", "depthwise_filter", "pointwise_filter"),
        (_normal(rng, (N, H, W, C)), _normal(rng, (R, S, C, M)), _normal(rng, (1, 1, C * M, K))),
        kw,
        lambda tf, x, w, pw: tf.nn.separable_conv2d(x, w, pw, kw["strides"], padding, dilations=kw["dilations"]),
        max(R * S * C * M, R * S * M * K, N * P * Q * K),
        floor=1.0,
    )


# --- normalisation and relu6 -----------------------------------------------------------------------


def batch_normalization(rng) -> Case:
    """x (N, H, W, C) with parameters (C,) (or (1, 1, 1, C) in 30% of cases), variance in [0.1, 2),
    variance_epsilon 1e-3 or 1e-5. L = N*H*W, the parameters' gradients' sums."""
    N, C = _batch_channels(rng)
    H, W = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    shape = (C,) if rng.random() < 0.7 else (1, 1, 1, C)
    x = _normal(rng, (N, H, W, C))
    mean, offset, scale = _normal(rng, shape), _normal(rng, shape), _normal(rng, shape)
    variance = rng.uniform(0.1, 2.0, shape).astype(np.float32)
    epsilon = float(rng.choice([1e-3, 1e-5]))
    return Case(
        "batch_normalization",
        ("x", "mean", "variance", "offset", "scale"),
        (x, mean, variance, offset, scale),
        {"variance_epsilon": epsilon},
        lambda tf, x, m, v, o, s: tf.nn.batch_normalization(x, m, v, o, s, epsilon),
        N * H * W,
        floor=1.0,
    )


def moments(rng) -> Case:
    """x of rank 2 to 4, a non-empty set of axes (NHWC's [0, 1, 2] in half the cases), keepdims
    either way; two outputs, mean and variance. L = the cells each statistic sums; floor 1 / L,
    one term of the mean."""
    if rng.random() < 0.5:
        N, C = _batch_channels(rng)
        shape, axes = (N, int(rng.integers(1, 9)), int(rng.integers(1, 9)), C), [0, 1, 2]
    else:
        shape = _any_shape(rng, min_rank=2)
        count = int(rng.integers(1, len(shape) + 1))
        axes = sorted(int(a) for a in rng.choice(len(shape), count, replace=False))
    keepdims = bool(rng.random() < 0.5)
    n = int(np.prod([shape[a] for a in axes]))
    return Case(
        "moments",
        ("x",),
        (_normal(rng, shape),),
        {"axes": axes, "keepdims": keepdims},
        lambda tf, x: tf.nn.moments(x, axes, keepdims=keepdims),
        n,
        floor=1.0 / n,
        outputs=("mean", "variance"),
    )


def relu6(rng) -> Case:
    """x of any shape at scale 4, so that values fall on both sides of 0 and of 6."""
    return Case("relu6", ("x",), (_normal(rng, _any_shape(rng), 4.0),), {}, lambda tf, x: tf.nn.relu6(x), 1)


# --- dropout (checked by its arithmetic, not against TF's random stream) ---------------------------


def dropout(rng) -> Case:
    """x (no zeros, so a dropped unit is recognisable), a rate, and an int seed in ``kwargs``."""
    shape = (int(rng.integers(1, 5)), int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    x = _normal(rng, shape)
    x[x == 0] = 1.0
    rate = float(rng.choice([0.0, 0.1, 0.25, 0.5, 0.8]))
    return Case("dropout", ("x",), (x,), {"rate": rate, "seed": int(rng.integers(2**31))}, None, 1)


GENERATORS: dict[str, Callable[[np.random.Generator], Case]] = {
    "conv1d": conv1d,
    "conv2d": conv2d,
    "relu": relu,
    "sigmoid": sigmoid,
    "softmax": softmax,
    "max_pool1d": max_pool1d,
    "avg_pool1d": avg_pool1d,
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "pool": pool,
    "global_avg_pool1d": global_avg_pool1d,
    "global_max_pool1d": global_max_pool1d,
    "global_avg_pool2d": global_avg_pool2d,
    "global_max_pool2d": global_max_pool2d,
    "dense": dense,
    "bias_add": bias_add,
    "bias_add_relu": bias_add_relu,
    "conv2d_bias_relu": conv2d_bias_relu,
    "conv2d_bias_relu_max_pool2d": conv2d_bias_relu_max_pool2d,
    "dropout": dropout,
    "depthwise_conv2d": depthwise_conv2d,
    "separable_conv2d": separable_conv2d,
    "batch_normalization": batch_normalization,
    "moments": moments,
    "relu6": relu6,
    "conv2d_bias": conv2d_bias,
    "depthwise_conv2d_bias": depthwise_conv2d_bias,
}
