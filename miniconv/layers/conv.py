"""Conv1D and Conv2D, as ``keras.layers.Conv1D`` / ``Conv2D``: kernel (*kernel_size, in, filters), bias (filters,).

    y = activation(conv(x, kernel) + bias)      x (N, W, C) or (N, H, W, C), channels last

computed with ``nn.conv1d`` / ``nn.conv2d``, ``nn.bias_add`` and the activation's op.
"""

from __future__ import annotations

from .. import initializers, nn
from ..ops import vjp
from ..shapes import normalize_tuple, output_size
from . import activations
from .base import Layer, format_shape


def check_int(value, name: str, owner: str, minimum: int = 1) -> int:
    import numbers

    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_tuple(value, n: int, name: str, owner: str) -> tuple[int, ...]:
    """An int or n positive ints -> tuple; the error names the layer."""
    try:
        return normalize_tuple(value, n, name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: {error}") from None


def check_padding(padding, owner: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def check_data_format(data_format, owner: str) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{owner}: only data_format='channels_last' is supported, got {data_format!r}")


def spatial_output_shape(layer, input_shape, window, strides, dilations, padding, what="kernel"):
    """Output sizes of the spatial axes (None stays None); raises if the window does not fit."""
    sizes = []
    for size, k, s, d in zip(input_shape[1:-1], window, strides, dilations):
        if size is None:
            sizes.append(None)
            continue
        out = output_size(size, k, s, d, padding.upper())[0]
        if out <= 0:
            raise ValueError(
                f"{layer.describe()}: {what} size {tuple(window)} (dilation {tuple(dilations)}) is larger than "
                f"its input {format_shape(input_shape)} with padding {padding!r}; the output would be empty"
            )
        sizes.append(out)
    return sizes


class _Conv(Layer):
    rank = 2

    skips_input_gradient = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner = self.describe()
        self.filters = check_int(filters, "filters", owner)
        self.kernel_size = check_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = check_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = check_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: strides > 1 is not supported together with dilation_rate > 1, "
                             f"got strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = check_padding(padding, owner)
        check_data_format(data_format, owner)
        if groups != 1:
            raise ValueError(f"{owner}: only groups=1 is supported, got {groups!r}")
        for arg, value in (("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer),
                           ("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"{owner}: {arg} is not supported, got {value!r}")
        self.activation, self._activation_op = activations.get(activation, owner)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        layout = "(batch, width, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        self._expect_rank(input_shape, self.rank + 2, layout)
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the channel axis of the input must be known, got {format_shape(input_shape)}")
        sizes = spatial_output_shape(self, input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (input_shape[0], *sizes, self.filters)

    def _build(self, input_shape, rng):
        self.kernel = self.add_weight("kernel", (*self.kernel_size, input_shape[-1], self.filters), self.kernel_initializer, rng)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer, rng) if self.use_bias else None

    def _conv_vjp(self, x):
        raise NotImplementedError

    def forward(self, x, training=False, apply_activation=True):
        if self.rank == 2 and self.use_bias and apply_activation and self.activation == "relu":
            return self._forward_fused(x)
        z, conv_pullback = self._conv_vjp(x)
        bias_pullback = activation_pullback = None
        if self.use_bias and apply_activation and self.activation == "relu":
            z, bias_pullback = vjp(nn.bias_add_relu, z, self.bias)  # one pass instead of two
            apply_activation = False
        elif self.use_bias:
            z, bias_pullback = vjp(nn.bias_add, z, self.bias)
        if apply_activation:
            z, activation_pullback = activations.apply(self._activation_op, z)

        def backward(dy, input_gradient=True):
            if activation_pullback is not None:
                (dy,) = activation_pullback(dy)
            if bias_pullback is not None:
                dy, self.grads[1] = bias_pullback(dy)
            dx, self.grads[0] = conv_pullback(dy, input_gradient=input_gradient)
            return dx

        return z, backward

    def _forward_fused(self, x):
        """relu(conv + bias) as one op (nn.conv2d_bias_relu): the bias and ReLU ride along the convolution's passes."""
        z, pullback = vjp(
            nn.conv2d_bias_relu, x, self.kernel, self.bias, strides=self.strides, padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

        def backward(dz, input_gradient=True):
            dx, self.grads[0], self.grads[1] = pullback(dz, input_gradient=input_gradient)
            return dx

        return z, backward

    def forward_with_next(self, next_layer, x, training=False):
        """A Conv2D(relu) followed by a MaxPooling2D with strides = pool size and VALID padding runs as
        ``nn.conv2d_bias_relu_max_pool2d``: the convolution's output is pooled chunk by chunk, never stored."""
        from .pooling import MaxPooling2D  # (pooling imports this module)

        fuses = (
            self.rank == 2 and self.use_bias and self.activation == "relu" and isinstance(next_layer, MaxPooling2D)
            and next_layer.padding == "valid" and next_layer.strides == next_layer.pool_size
        )
        if not fuses:
            return None
        y, pullback = vjp(
            nn.conv2d_bias_relu_max_pool2d, x, self.kernel, self.bias, next_layer.pool_size, strides=self.strides,
            padding=self.padding.upper(), dilations=self.dilation_rate,
        )

        def backward(dy, input_gradient=True):
            dx, self.grads[0], self.grads[1] = pullback(dy, input_gradient=input_gradient)
            return dx

        return y, backward

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides), padding=self.padding,
            dilation_rate=list(self.dilation_rate), activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
        )
        return config


class Conv2D(_Conv):
    """2-D convolution layer: (N, H, W, C) -> (N, P, Q, filters). Kernel (R, S, C, filters)."""

    rank = 2

    def _conv_vjp(self, x):
        return vjp(nn.conv2d, x, self.kernel, strides=self.strides, padding=self.padding.upper(), dilations=self.dilation_rate)


class Conv1D(_Conv):
    """1-D convolution layer: (N, W, C) -> (N, Q, filters). Kernel (S, C, filters)."""

    rank = 1

    def _conv_vjp(self, x):
        return vjp(nn.conv1d, x, self.kernel, stride=self.strides[0], padding=self.padding.upper(),
                   dilations=self.dilation_rate[0])


Convolution1D = Conv1D
Convolution2D = Conv2D
