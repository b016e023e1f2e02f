"""The benchmarked layers: every op of the two course models, at their training batch sizes, and the
ops of modern pretrained bases (MobileNet, EfficientNet-Lite) on their shapes.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size,
M I O dense rows / inputs / outputs. Convolutions are 3x3, stride 1, VALID; pools 2x2, stride 2,
VALID; dense layers have a bias. The "convN+poolN" cases are what training runs for a
Conv2D(relu) followed by a MaxPooling2D: ``nn.conv2d_bias_relu_max_pool2d``, against the same
composition (conv2d, bias, ReLU, max pool) in TensorFlow and PyTorch. Layouts are miniconv's (TensorFlow's): NHWC, HWIO, (in, out).

    MNIST convnet, batch 64                     cats-vs-dogs convnet, batch 20, 150x150x3
    conv1  28x28x1   -> 26x26x32                conv1  150x150x3  -> 148x148x32
    relu1  26x26x32                             pool1  148x148x32 -> 74x74x32
    pool1  26x26x32  -> 13x13x32                conv2  74x74x32   -> 72x72x64
    conv2  13x13x32  -> 11x11x64                pool2  72x72x64   -> 36x36x64
    pool2  11x11x64  -> 5x5x64                  conv3  36x36x64   -> 34x34x128
    conv3  5x5x64    -> 3x3x64                  pool3  34x34x128  -> 17x17x128
    dense1 576 -> 64                            conv4  17x17x128  -> 15x15x128
    dense2 64 -> 10                             pool4  15x15x128  -> 7x7x128
                                                dense1 6272 -> 512
                                                dense2 512 -> 1

    mobile (batch 32): MobileNet's and EfficientNet-Lite's blocks on three of their tensors,
    32x112x112x32, 32x56x56x144 and 32x14x14x480: a 3x3 depthwise convolution (SAME, stride 1 and,
    for the first two, 2), batch normalization with per-channel parameters (given mean and
    variance: the op), moments over [0, 1, 2] (the statistics a training step computes), relu6,
    and the 1x1 pointwise convolution that follows (to 64, 24 and 80 channels). And the fused ops a
    frozen base runs (a batch normalization folded into its convolution, ReLU6 in the same pass):
    ``depthwise_conv2d_bias`` (the 3x3 stride-1 depthwise) and ``conv2d_bias`` (the 1x1), both with
    ``activation="relu6"``, against TF's and PyTorch's composition (convolution, bias add, relu6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import conv2d_flops, dense_flops, fwd_bwd_flops

NO_DX = "fwd+bwd no dx"  # a first layer's backward in training: dw (and dbias) only, never dx
MODES = ("forward", "fwd+bwd", NO_DX)
FIRST_LAYERS = ("conv1", "conv1+pool1")
FUSED = "conv2d_bias_relu_max_pool2d"
CONV_BIAS = "conv2d_bias"  # with activation="relu6" (a 1x1 convolution + folded BN + ReLU6)
DEPTHWISE_BIAS = "depthwise_conv2d_bias"  # with activation="relu6"
CONVOLUTIONS = ("conv2d", CONV_BIAS)  # full convolutions: R, S, C -> K (``out``)
DEPTHWISE = ("depthwise_conv2d", DEPTHWISE_BIAS)  # 3x3 depthwise, SAME, ``stride``


@dataclass(frozen=True)
class OpCase:
    """One layer's op. ``shape``: (N, H, W, C) for conv / pool / relu, (M, I) for dense.
    ``out``: K filters for a convolution, O outputs for dense, unused otherwise."""

    model: str
    layer: str
    op: str  # "conv2d" | "relu" | "max_pool2d" | "dense" | "conv2d_bias_relu_max_pool2d" | MOBILE_OPS
    shape: tuple[int, ...]
    out: int = 0
    kernel: int = 3  # R = S of a convolution (3, or 1 for the pointwise ones)
    stride: int = 1  # of a depthwise convolution (SAME); the others are stride 1, VALID

    @property
    def id(self) -> str:
        return f"{self.model}/{self.layer}"

    @property
    def modes(self) -> tuple[str, ...]:
        """The passes timed: every case forward and fwd+bwd; a first layer's convolution also
        without the input gradient, as training runs it."""
        first = self.op in ("conv2d", FUSED) and self.layer in FIRST_LAYERS
        return MODES if first else MODES[:2]

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.op in CONVOLUTIONS:
            N, H, W, _ = self.shape
            return (N, H - self.kernel + 1, W - self.kernel + 1, self.out)
        if self.op in DEPTHWISE:
            N, H, W, C = self.shape
            return (N, -(-H // self.stride), -(-W // self.stride), C)
        if self.op == "moments":
            return self.shape[-1:]
        if self.op == "max_pool2d":
            N, H, W, C = self.shape
            return (N, H // 2, W // 2, C)
        if self.op == FUSED:
            N, H, W, _ = self.shape
            return (N, (H - 2) // 2, (W - 2) // 2, self.out)
        if self.op == "dense":
            return (self.shape[0], self.out)
        return self.shape

    def describe(self) -> str:
        """'64x28x28x1 -> 32, 3x3' style: the input shape and what the op makes of it."""
        shape = "x".join(map(str, self.shape))
        if self.op == "conv2d":
            return f"{shape} -> {self.out}, {self.kernel}x{self.kernel}"
        if self.op == CONV_BIAS:
            return f"{shape} -> {self.out}, {self.kernel}x{self.kernel}, bias, ReLU6"
        if self.op == "depthwise_conv2d":
            return f"{shape}, 3x3, stride {self.stride}, SAME"
        if self.op == DEPTHWISE_BIAS:
            return f"{shape}, 3x3, stride {self.stride}, SAME, bias, ReLU6"
        if self.op == "batch_normalization":
            return f"{shape}, per channel"
        if self.op == "moments":
            return f"{shape}, axes [0, 1, 2]"
        if self.op == FUSED:
            return f"{shape} -> {self.out}, 3x3, bias, ReLU, 2x2 pool"
        if self.op == "dense":
            return f"{shape} -> {self.out}"
        if self.op == "max_pool2d":
            return f"{shape}, 2x2"
        return shape

    def flops(self, mode: str) -> int | None:
        """FLOPs of the pass (see ``benchmarks.common``); None for ops that are memory-bound.
        The fused cases count their convolution's FLOPs only (over its whole output)."""
        if self.op in CONVOLUTIONS:
            N, H, W, C = self.shape
            forward = conv2d_flops(N, *self.output_shape[1:3], self.out, self.kernel, self.kernel, C)
        elif self.op == FUSED:
            N, H, W, C = self.shape
            forward = conv2d_flops(N, H - 2, W - 2, self.out, 3, 3, C)
        elif self.op == "dense":
            forward = dense_flops(self.shape[0], self.shape[1], self.out)
        else:
            return None
        if mode == NO_DX:
            return 2 * forward  # the forward and dw, each one forward's worth
        return forward if mode == "forward" else fwd_bwd_flops(forward)

    def traffic(self, mode: str) -> int | None:
        """Bytes a memory-bound pass moves at least, by this accounting: every tensor of the pass read or
        written once as float32 (per-channel vectors and filters too small to count), the backward
        reading x again. None for the convolutions and dense layers (the FLOP table's) and pools.

            depthwise             forward x in, y out; backward x and dy in, dx out
            batch normalization   the same sizes (y, dy and dx are x-shaped)
            relu6                 forward x in, y out; backward x and dy in, dx out
            moments               forward x in; backward x in, dx out (the gradients of the mean
                                  and variance are per channel)
        """
        if self.op not in (*DEPTHWISE, "batch_normalization", "relu6", "moments"):
            return None
        x = int(np.prod(self.shape))
        y = 0 if self.op == "moments" else int(np.prod(self.output_shape))
        forward = x + y
        backward = 2 * x if self.op == "moments" else 2 * x + y
        return 4 * (forward if mode == "forward" else forward + backward)

    def arrays(self, seed: int = 0) -> dict[str, np.ndarray]:
        """float32 inputs by name, plus ``dy`` (the random upstream gradient, output-shaped).

        Keys: conv2d x, w; fused conv + pool x, w, bias; dense x, kernel, bias; depthwise x, w;
        batch normalization x, mean, variance, offset, scale; pool, relu and relu6 x; moments x and,
        for its two outputs, dmean and dvariance instead of dy. Weights are Glorot-scaled so values
        stay O(1) layer after layer.
        """
        rng = np.random.default_rng(seed)

        def normal(shape, scale=1.0):
            return (rng.standard_normal(shape) * scale).astype(np.float32)

        arrays = {"x": normal(self.shape)}
        C = self.shape[-1]
        if self.op in (*CONVOLUTIONS, FUSED):
            k = self.kernel
            arrays["w"] = normal((k, k, C, self.out), (2.0 / (k * k * (C + self.out))) ** 0.5)
        if self.op in DEPTHWISE:
            arrays["w"] = normal((3, 3, C, 1), (2.0 / 18) ** 0.5)
        if self.op == "batch_normalization":
            arrays.update(mean=normal((C,), 0.1), variance=rng.uniform(0.5, 1.5, C).astype(np.float32),
                          offset=normal((C,), 0.1), scale=normal((C,), 0.1) + 1)  # fmt: skip
        if self.op == "moments":
            arrays.update(dmean=normal((C,)), dvariance=normal((C,)))
            return arrays
        if self.op in (FUSED, CONV_BIAS):
            arrays["bias"] = normal((self.out,), 0.1)
        elif self.op == DEPTHWISE_BIAS:
            arrays["bias"] = normal((C,), 0.1)
        elif self.op == "dense":
            arrays["kernel"] = normal((self.shape[1], self.out), (2.0 / (self.shape[1] + self.out)) ** 0.5)
            arrays["bias"] = normal((self.out,), 0.1)
        arrays["dy"] = normal(self.output_shape)
        return arrays


def _conv(model, layer, N, H, W, C, K):
    return OpCase(model, layer, "conv2d", (N, H, W, C), K)


def _pool(model, layer, N, H, W, C):
    return OpCase(model, layer, "max_pool2d", (N, H, W, C))


def _conv_pool(model, layer, N, H, W, C, K):
    return OpCase(model, layer, FUSED, (N, H, W, C), K)


def _dense(model, layer, M, I, O):
    return OpCase(model, layer, "dense", (M, I), O)


MNIST = (
    _conv("mnist", "conv1", 64, 28, 28, 1, 32),
    OpCase("mnist", "relu1", "relu", (64, 26, 26, 32)),
    _pool("mnist", "pool1", 64, 26, 26, 32),
    _conv("mnist", "conv2", 64, 13, 13, 32, 64),
    _pool("mnist", "pool2", 64, 11, 11, 64),
    _conv("mnist", "conv3", 64, 5, 5, 64, 64),
    _dense("mnist", "dense1", 64, 576, 64),
    _dense("mnist", "dense2", 64, 64, 10),
    _conv_pool("mnist", "conv1+pool1", 64, 28, 28, 1, 32),
    _conv_pool("mnist", "conv2+pool2", 64, 13, 13, 32, 64),
)

CATS = (
    _conv("cats", "conv1", 20, 150, 150, 3, 32),
    _pool("cats", "pool1", 20, 148, 148, 32),
    _conv("cats", "conv2", 20, 74, 74, 32, 64),
    _pool("cats", "pool2", 20, 72, 72, 64),
    _conv("cats", "conv3", 20, 36, 36, 64, 128),
    _pool("cats", "pool3", 20, 34, 34, 128),
    _conv("cats", "conv4", 20, 17, 17, 128, 128),
    _pool("cats", "pool4", 20, 15, 15, 128),
    _dense("cats", "dense1", 20, 6272, 512),
    _dense("cats", "dense2", 20, 512, 1),
    _conv_pool("cats", "conv1+pool1", 20, 150, 150, 3, 32),
    _conv_pool("cats", "conv2+pool2", 20, 74, 74, 32, 64),
    _conv_pool("cats", "conv3+pool3", 20, 36, 36, 64, 128),
    _conv_pool("cats", "conv4+pool4", 20, 17, 17, 128, 128),
)

MOBILE_OPS = ("depthwise_conv2d", "batch_normalization", "moments", "relu6", CONV_BIAS, DEPTHWISE_BIAS)


def _mobile(name, N, H, W, C, pointwise):
    """A block of a MobileNet / EfficientNet-Lite tensor: depthwise (stride 1; 2 for the large ones),
    batch normalization, moments, relu6 and the pointwise convolution to ``pointwise`` channels;
    then the depthwise and the pointwise convolution as a frozen base runs them (bias, ReLU6 fused)."""
    shape = (N, H, W, C)
    cases = [OpCase("mobile", f"dw3x3s1-{name}", "depthwise_conv2d", shape)]
    if H >= 56:
        cases.append(OpCase("mobile", f"dw3x3s2-{name}", "depthwise_conv2d", shape, stride=2))
    cases += [OpCase("mobile", f"bn-{name}", "batch_normalization", shape),
              OpCase("mobile", f"moments-{name}", "moments", shape),
              OpCase("mobile", f"relu6-{name}", "relu6", shape),
              OpCase("mobile", f"pw1x1-{name}", "conv2d", shape, pointwise, kernel=1),
              OpCase("mobile", f"dw3x3s1+bias+relu6-{name}", DEPTHWISE_BIAS, shape),
              OpCase("mobile", f"pw1x1+bias+relu6-{name}", CONV_BIAS, shape, pointwise, kernel=1)]  # fmt: skip
    return tuple(cases)


MOBILE = _mobile("112x32", 32, 112, 112, 32, 64) + _mobile("56x144", 32, 56, 56, 144, 24) + _mobile(
    "14x480", 32, 14, 14, 480, 80)

ALL = MNIST + CATS + MOBILE
BY_ID = {case.id: case for case in ALL}
QUICK = ("mnist/conv2", "mnist/pool1", "mnist/dense1")  # one of each kind, small: for smoke tests


def select(which: str, quick: bool = False) -> list[OpCase]:
    """The cases of ``which`` ("mnist", "cats", "mobile" or "all"); with ``quick`` only the QUICK ones among them."""
    if which not in ("mnist", "cats", "mobile", "all"):
        raise ValueError(f"cases: expected 'mnist', 'cats', 'mobile' or 'all', got {which!r}")
    chosen = [c for c in ALL if which in ("all", c.model)]
    if quick:
        chosen = [c for c in chosen if c.id in QUICK] or chosen[:2]
    return chosen
