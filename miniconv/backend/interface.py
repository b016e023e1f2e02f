"""The short, named list of what a device must implement.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size;
M the channel multiplier of a depthwise convolution (K = C * M). Normalisation kernels see
channels-last rows: x (rows, C) with one parameter per column. Arrays are C-contiguous NumPy arrays of one floating dtype (float32 from the ops layer; the
reference and the cpu kernels also run in float64 for gradient checks). Geometry comes as the
frozen records of ``miniconv.shapes``. Only ``miniconv.ops`` calls these methods; they never
validate (the ops layer already did) and may assume their inputs are well formed.

A 1-D op is the 2-D op with H = R = 1, and global pooling is pooling with the whole input as
window, so a backend implements only the 2-D kernels below.
"""

from __future__ import annotations

import numpy as np

from ..shapes import ConvGeometry, DepthwiseGeometry, PoolGeometry


class Backend:
    """Base class: every method raises until a backend provides it."""

    name = "abstract"
    # A module of one-pass optimizer updates on host float32 arrays (``backend/cpu/optimizer_kernels.py``),
    # or None: ``miniconv.optimizers`` then runs its NumPy formulas.
    optimizer_kernels = None

    # --- arrays: where they live ----------------------------------------------------------------
    def from_host(self, array):
        """A host NumPy array (or an array of this backend) as this backend's array: the array itself
        on backends that compute on the host; a device copy on a GPU backend."""
        return array

    def to_host(self, array) -> np.ndarray:
        """This backend's array as a host NumPy array (the array itself on host backends)."""
        return np.asarray(array)

    def all_finite(self, arrays) -> bool:
        """True when no element of any array of ``arrays`` is NaN or infinite."""
        return all(bool(np.isfinite(a).all()) for a in arrays)

    def is_native(self, array) -> bool:
        """True for an array this backend computes on without a copy."""
        return isinstance(array, np.ndarray)

    # --- optimizers -------------------------------------------------------------------------
    def optimizer_for(self, optimizer):
        """What applies a ``miniconv.optimizers.Optimizer``'s updates to this backend's arrays
        (``apply(grads, variables, keys)``): the optimizer itself where arrays live on the host; a
        GPU backend returns one that keeps the state on the device (and ``sync_to_host()``s it)."""
        return optimizer

    # --- the end of a training step ------------------------------------------------------------
    def loss_value_and_gradient(self, loss, targets, output, from_logits: bool):
        """(mean loss, d loss / d output as this backend's array, prediction as a host array) of a
        ``miniconv.losses.Loss`` (see ``ops/loss.py``). This default computes on the host with the
        loss's own NumPy formulas (``value_and_grad_logits`` / ``value_and_grad``)."""
        host = self.to_host(output)
        if from_logits:
            value, gradient, prediction = loss.value_and_grad_logits(targets, host)
        else:
            (value, gradient), prediction = loss.value_and_grad(targets, host), host
        return value, self.from_host(gradient), prediction

    # --- convolution -------------------------------------------------------------------------
    def conv2d_forward(self, x: np.ndarray, w: np.ndarray, g: ConvGeometry) -> np.ndarray:
        """(N, H, W, C), (R, S, C, K) -> y (N, P, Q, K)."""
        raise NotImplementedError

    def conv2d_backward_input(self, dy: np.ndarray, w: np.ndarray, g: ConvGeometry) -> np.ndarray:
        """(N, P, Q, K), (R, S, C, K) -> dx (N, H, W, C)."""
        raise NotImplementedError

    def conv2d_backward_filter(self, x: np.ndarray, dy: np.ndarray, g: ConvGeometry) -> np.ndarray:
        """(N, H, W, C), (N, P, Q, K) -> dw (R, S, C, K)."""
        raise NotImplementedError

    def conv2d_backward(self, x: np.ndarray, w: np.ndarray, dy: np.ndarray, g: ConvGeometry,
                        input_gradient: bool = True):
        """-> (dx or None, dw): both gradients at upstream dy.

        This default calls the two kernels above; a backend may share work between them (the cpu
        backend's Winograd transforms dy once for both).
        """
        dx = self.conv2d_backward_input(dy, w, g) if input_gradient else None
        return dx, self.conv2d_backward_filter(x, dy, g)

    # --- convolution + bias + ReLU: a Conv2D layer with activation="relu" -----------------------
    def conv2d_bias_relu_forward(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray, g: ConvGeometry) -> np.ndarray:
        """(N, H, W, C), (R, S, C, K), (K,) -> z (N, P, Q, K) = max(conv2d(x, w) + bias, 0).

        This default runs the convolution and then bias + ReLU; a backend may fuse them.
        """
        y = self.conv2d_forward(x, w, g)
        rows = g.N * g.P * g.Q  # explicit sizes: a GPU array's reshape takes no -1
        return self.bias_relu_forward(y.reshape(rows, g.K), bias).reshape(y.shape)

    def conv2d_bias_relu_backward(self, x, w, z, dz, g: ConvGeometry, input_gradient: bool = True):
        """-> (dx or None, dw, dbias) of z = conv2d_bias_relu(x, w, bias) at upstream dz.

        dy = dz where z > 0 else 0; dbias = sum of dy over N, P, Q; dx, dw = conv2d's at dy.
        """
        rows = g.N * g.P * g.Q
        dy, dbias = self.bias_relu_backward(dz.reshape(rows, g.K), z.reshape(rows, g.K))
        return (*self.conv2d_backward(x, w, dy.reshape(dz.shape), g, input_gradient), dbias)

    # --- convolution + bias [+ ReLU6]: a convolution with a batch normalization folded in ----------
    def conv2d_bias_forward(self, x, w, bias, g: ConvGeometry, activation: str | None = None) -> np.ndarray:
        """(N, H, W, C), (R, S, C, K), (K,) -> z (N, P, Q, K) = conv2d(x, w) + bias, then relu6 when
        ``activation == "relu6"`` (None: none).

        This default runs the convolution, then bias_add, then relu6; a backend may fuse them.
        """
        return self._bias_activation(self.conv2d_forward(x, w, g), bias, g.N * g.P * g.Q, g.K, activation)

    def depthwise_conv2d_bias_forward(self, x, w, bias, g: DepthwiseGeometry, activation: str | None = None
                                      ) -> np.ndarray:
        """(N, H, W, C), (R, S, C, M), (C * M,) -> z (N, P, Q, C * M) = depthwise_conv2d(x, w) + bias,
        then relu6 when ``activation == "relu6"``; this default runs the three ops one after the other."""
        return self._bias_activation(self.depthwise_conv2d_forward(x, w, g), bias, g.N * g.P * g.Q, g.K, activation)

    def conv2d_bias_backward(self, x, w, z, dz, g: ConvGeometry, activation: str | None = None,
                             input_gradient: bool = True):
        """-> (dx or None, dw, dbias) of z = conv2d_bias(x, w, bias, activation) at upstream dz.

        dy = dz * (0 < z < 6) for relu6 (dz itself for None); dbias = sum of dy over N, P, Q; dx, dw =
        conv2d's at dy. This default runs them one after the other.
        """
        dy, dbias = self._bias_activation_backward(dz, z, g.N * g.P * g.Q, g.K, activation)
        return (*self.conv2d_backward(x, w, dy, g, input_gradient), dbias)

    def depthwise_conv2d_bias_backward(self, x, w, z, dz, g: DepthwiseGeometry, activation: str | None = None,
                                       input_gradient: bool = True):
        """-> (dx or None, dw, dbias) of z = depthwise_conv2d_bias(x, w, bias, activation) at upstream dz, as
        ``conv2d_bias_backward``. This default runs them one after the other; a backend may form dy inside
        the convolution's backward (dbias then sums the same terms in another order)."""
        dy, dbias = self._bias_activation_backward(dz, z, g.N * g.P * g.Q, g.K, activation)
        return (*self.depthwise_conv2d_backward(x, w, dy, g, input_gradient), dbias)

    def _bias_activation(self, y, bias, rows: int, K: int, activation):
        """bias_add and relu6 as separate passes over y (N, P, Q, K) viewed (rows, K) (explicit sizes: a
        GPU array's reshape takes no -1)."""
        z = self.bias_add_forward(y.reshape(rows, K), bias)
        if activation == "relu6":
            z = self.relu6_forward(z)
        return z.reshape(y.shape)

    def _bias_activation_backward(self, dz, z, rows: int, K: int, activation):
        """(dy, dbias) of z = activation(y + bias) at upstream dz (N, P, Q, K): dy = dz * (0 < z < 6) for relu6
        (``relu6_backward``: TensorFlow's product, so an inf or NaN dz gives NaN where the mask is 0), dz
        itself for None; dbias = the sum of dy over N, P, Q (``bias_relu6_backward``: both in one pass where
        the backend can)."""
        if activation == "relu6":
            dy, dbias = self.bias_relu6_backward(dz.reshape(rows, K), z.reshape(rows, K))
            return dy.reshape(dz.shape), dbias
        return dz, self.bias_add_backward(dz.reshape(rows, K))

    # --- convolution + bias + ReLU + max pooling: a Conv2D(relu) followed by MaxPooling2D --------
    def conv2d_bias_relu_max_pool_forward(self, x, w, bias, g: ConvGeometry, pg: PoolGeometry):
        """-> (y, argmax) of y = max_pool2d(max(conv2d(x, w) + bias, 0)), pg the pooling of the
        conv output (N, P, Q, K): window = strides, VALID. argmax records each window's winner for
        this backend's own backward only (here ``max_pool2d_forward``'s; a fused kernel may encode it
        otherwise).

        This default runs the two ops one after the other; a backend may fuse them.
        """
        return self.max_pool2d_forward(self.conv2d_bias_relu_forward(x, w, bias, g), pg)

    def conv2d_bias_relu_max_pool_backward(self, x, w, y, argmax, dy, g: ConvGeometry, pg: PoolGeometry,
                                           input_gradient: bool = True):
        """-> (dx or None, dw, dbias) at the pooled upstream dy.

        dz = dy at each window's winner where y > 0, 0 elsewhere: at the winner y is ReLU's
        output, so ReLU's gradient there is y > 0; then dbias = sum of dz, dx, dw = conv2d's at dz.
        """
        dz = self.max_pool2d_backward(self.relu_backward(dy, y), argmax, pg)
        dbias = self.bias_add_backward(dz.reshape(g.N * g.P * g.Q, g.K))
        return (*self.conv2d_backward(x, w, dz, g, input_gradient), dbias)

    # --- depthwise convolution ---------------------------------------------------------------
    def depthwise_conv2d_forward(self, x: np.ndarray, w: np.ndarray, g: DepthwiseGeometry) -> np.ndarray:
        """(N, H, W, C), (R, S, C, M) -> y (N, P, Q, C * M); channel c * M + m is channel c under filter (c, m)."""
        raise NotImplementedError

    def depthwise_conv2d_backward_input(self, dy: np.ndarray, w: np.ndarray, g: DepthwiseGeometry) -> np.ndarray:
        """(N, P, Q, C * M), (R, S, C, M) -> dx (N, H, W, C)."""
        raise NotImplementedError

    def depthwise_conv2d_backward_filter(self, x: np.ndarray, dy: np.ndarray, g: DepthwiseGeometry) -> np.ndarray:
        """(N, H, W, C), (N, P, Q, C * M) -> dw (R, S, C, M)."""
        raise NotImplementedError

    def depthwise_conv2d_backward(self, x, w, dy, g: DepthwiseGeometry, input_gradient: bool = True):
        """-> (dx or None, dw): both gradients at upstream dy.

        This default calls the two kernels above; a backend may form both in one pass over dy
        (the op reads ~R*S times fewer values than it multiplies: memory, not arithmetic, bounds it).
        """
        dx = self.depthwise_conv2d_backward_input(dy, w, g) if input_gradient else None
        return dx, self.depthwise_conv2d_backward_filter(x, dy, g)

    # --- pooling -----------------------------------------------------------------------------
    def max_pool2d_forward(self, x: np.ndarray, g: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W, C) -> y (N, P, Q, C) and argmax (N, P, Q, C) ints: h * W + w of the winner."""
        raise NotImplementedError

    def max_pool2d_backward(self, dy: np.ndarray, argmax: np.ndarray, g: PoolGeometry) -> np.ndarray:
        """(N, P, Q, C) -> dx (N, H, W, C): each dy goes to its window's argmax."""
        raise NotImplementedError

    def avg_pool2d_forward(self, x: np.ndarray, g: PoolGeometry) -> np.ndarray:
        """(N, H, W, C) -> y (N, P, Q, C): mean over the valid (unpadded) cells of each window."""
        raise NotImplementedError

    def avg_pool2d_backward(self, dy: np.ndarray, g: PoolGeometry) -> np.ndarray:
        """(N, P, Q, C) -> dx (N, H, W, C)."""
        raise NotImplementedError

    # --- elementwise -------------------------------------------------------------------------
    def relu_forward(self, x: np.ndarray) -> np.ndarray:
        """y = max(x, 0); NaN stays NaN."""
        raise NotImplementedError

    def relu_backward(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dx = dy where y > 0, else 0."""
        raise NotImplementedError

    def sigmoid_forward(self, x: np.ndarray) -> np.ndarray:
        """y = 1 / (1 + exp(-x))."""
        raise NotImplementedError

    def sigmoid_backward(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dx = dy * y * (1 - y)."""
        raise NotImplementedError

    def softmax_forward(self, x: np.ndarray) -> np.ndarray:
        """(M, L) -> y (M, L): softmax over the last axis, max-subtracted."""
        raise NotImplementedError

    def softmax_backward(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(M, L) -> dx = y * (dy - sum(dy * y, last axis))."""
        raise NotImplementedError

    def relu6_forward(self, x: np.ndarray) -> np.ndarray:
        """y = min(max(x, 0), 6); NaN stays NaN."""
        raise NotImplementedError

    def relu6_backward(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dx = dy * (0 < y < 6), a product as TensorFlow's (so inf or NaN times a zero mask is NaN)."""
        raise NotImplementedError

    # --- normalisation (channels last: x (rows, C), one parameter per column) ----------------
    def batch_norm_forward(self, x, mean, variance, offset, scale, epsilon: float) -> np.ndarray:
        """(rows, C), four (C,) -> y = x * inv + (offset - mean * inv), inv = scale / sqrt(variance + epsilon)."""
        raise NotImplementedError

    def batch_norm_backward(self, dy, x, mean, variance, scale, epsilon: float):
        """(rows, C) upstream dy -> (dx (rows, C), dmean, dvariance, doffset, dscale (C,) each)."""
        raise NotImplementedError

    def moments_forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, C) -> (mean (C,), variance (C,)): the column means and population variances (two passes)."""
        raise NotImplementedError

    def moments_backward(self, dmean: np.ndarray, dvariance: np.ndarray, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """(C,), (C,), (rows, C), (C,) -> dx (rows, C) = dmean / rows + 2 (dvariance / rows) (x - mean)."""
        raise NotImplementedError

    # --- dense and dropout -------------------------------------------------------------------
    def dense_forward(self, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """(M, I), (I, O), (O,) or None -> y (M, O) = x @ kernel + bias."""
        raise NotImplementedError

    def dense_backward(self, dy, x, kernel, with_bias: bool):
        """(M, O) -> (dx (M, I), dkernel (I, O), dbias (O,) or None)."""
        raise NotImplementedError

    def bias_add_forward(self, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """(M, O), (O,) -> y (M, O) = x + bias, broadcast over rows."""
        raise NotImplementedError

    def bias_add_backward(self, dy: np.ndarray) -> np.ndarray:
        """(M, O) -> dbias (O,) = sum over rows of dy."""
        raise NotImplementedError

    def bias_relu_forward(self, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """(M, O), (O,) -> y (M, O) = max(x + bias, 0) in one pass (NaN kept, as relu)."""
        raise NotImplementedError

    def bias_relu_backward(self, dy: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, O) -> (dx = dy where y > 0 else 0, dbias = sum over rows of dx), in one pass."""
        raise NotImplementedError

    def bias_relu6_backward(self, dy: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, O) -> (dx = ``relu6_backward(dy, y)``, dbias = ``bias_add_backward(dx)``): composed here; a
        backend may form both in one pass, with the same numbers."""
        dx = self.relu6_backward(dy, y)
        return dx, self.bias_add_backward(dx)

    def dropout_keep_mask(self, x, rate: float, rng: np.random.Generator):
        """A bool mask of x's shape, each element kept with probability 1 - rate: ``rng.random(x.shape,
        float32) >= rate``, drawn on the host. A GPU backend draws a device mask for a device x, from
        a generator of its own seeded from ``rng``."""
        return rng.random(tuple(x.shape), dtype=np.float32) >= rate

    def dropout_forward(self, x: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
        """y = x * scale where keep else exactly 0 (a select, as tf.nn.dropout); keep is a bool mask of x's shape."""
        raise NotImplementedError

    def dropout_backward(self, dy: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
        """dx = dy * scale where keep else 0."""
        raise NotImplementedError

    # --- merging: the Add, Multiply and Concatenate layers -----------------------------------
    def add_forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """y = a + b, elementwise; a and b have one shape."""
        raise NotImplementedError

    def multiply_forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """y = a * b, elementwise; a and b have one shape."""
        raise NotImplementedError

    def concat_columns(self, blocks: list) -> np.ndarray:
        """[(M, W_0), (M, W_1), ...] -> (M, sum W_i): the blocks side by side."""
        raise NotImplementedError

    def split_columns(self, y: np.ndarray, widths: list) -> list:
        """(M, sum W_i) -> [(M, W_0), (M, W_1), ...]: concat_columns undone (new C-contiguous arrays)."""
        raise NotImplementedError

    # --- padding and state ---------------------------------------------------------------------
    def pad2d_forward(self, x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(N, H, W, C) -> (N, top + H + bottom, left + W + right, C): x inside zeros."""
        raise NotImplementedError

    def pad2d_backward(self, dy: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(N, P, Q, C) -> dx (N, P - top - bottom, Q - left - right, C): dy's inner rows and columns."""
        raise NotImplementedError

    def moving_average_update(self, variable, value, momentum: float) -> None:
        """variable <- variable * momentum + value * (1 - momentum) in float32, in place (this default:
        NumPy on host arrays)."""
        m = np.float32(momentum)
        one_minus = np.float32(1.0 - momentum)
        variable[...] = variable * m + value * one_minus

