"""Device-resident training of a ``miniconv.Sequential``: one batch moves in per step, nothing else.

    trainer = DeviceTrainer(model)              # a built, compiled model; weights copied to the GPU once
    for xb, yb in batches:
        loss = trainer.train_step(xb, yb)       # forward, fused softmax-crossentropy, backward, update
    trainer.sync_to_host()                      # weights and optimizer state back into the model

Shape legend: N batch, H W input size, C channels, K filters, M rows of a (M, features) view.

What stays on the device across steps: the weights, their gradients, the optimizer's state
(``optim.DeviceOptimizer``), every activation of the step. What crosses the bus per step: the
batch (x, y) in, the N per-sample losses out (for the returned mean). The host model's weights
and optimizer are untouched until ``sync_to_host``.

Supported layers: Conv1D / Conv2D and Dense (linear, relu, sigmoid activations; softmax as the
last layer), MaxPooling / AveragePooling 1D / 2D, the global poolings, Flatten, ReLU,
Activation, Dropout (mask drawn on the device) and InputLayer; losses: (sparse) categorical
crossentropy from a softmax output or from logits, fused with the softmax. Anything else raises
``NotImplementedError`` naming it.

``Sequential.fit`` under ``use_backend("cuda")`` trains through this class (progress bar, metrics
and callbacks as usual: each step also copies the batch's N predictions back for the metrics,
and the weights come back to the host at the end of every epoch, before validation and the
callbacks); a model it does not support is trained op by op instead, with a warning. Not done
yet: validation on the device (it runs op by op), streams / pinned-memory prefetch of the next
batch.
"""

from __future__ import annotations

import numpy as np

from miniconv.shapes import conv_geometry, pool_geometry

from . import conv, dense, elementwise, losses, pool
from ._common import to_device
from .optim import DeviceOptimizer


def _rows(a):
    """A device array viewed as (M, last axis). (The simulator's shapes do not take negative indices.)"""
    last = tuple(a.shape)[-1]
    return a.reshape(a.size // last, last)


class _Activation:
    """relu / sigmoid / softmax (over the last axis) / linear on device arrays, with its backward."""

    def __init__(self, name: str):
        if name not in ("linear", "relu", "sigmoid", "softmax"):
            raise NotImplementedError(f"DeviceTrainer: activation {name!r} is not supported on the device")
        self.name = name

    def forward(self, z):
        if self.name == "linear":
            return z, lambda dy: dy
        if self.name == "softmax":
            y = elementwise.softmax_forward(_rows(z)).reshape(z.shape)
            return y, lambda dy: elementwise.softmax_backward(_rows(dy), _rows(y)).reshape(dy.shape)
        fwd, bwd = (
            (elementwise.relu_forward, elementwise.relu_backward)
            if self.name == "relu"
            else (elementwise.sigmoid_forward, elementwise.sigmoid_backward)
        )
        y = fwd(z.reshape(z.size)).reshape(z.shape)
        return y, lambda dy: bwd(dy.reshape(dy.size), y.reshape(y.size)).reshape(dy.shape)


class _Weighted:
    """Conv1D / Conv2D / Dense: product, bias (fused with relu where it applies), activation."""

    def __init__(self, layer, kind: str, params, last: bool, fused_loss: bool):
        self.layer, self.kind, self.params = layer, kind, params  # params: device kernel, bias or None
        self.activation = "linear" if (last and fused_loss) else layer.activation
        _Activation(self.activation)  # refuse unsupported names now
        self.grads = [None] * len(params)

    def _geometry(self, x):
        layer = self.layer
        if self.kind == "conv2d":
            return conv_geometry(
                x.shape, self.params[0].shape, layer.strides, layer.padding.upper(), layer.dilation_rate
            )
        # conv1d: (N, W, C) as (N, 1, W, C), filters (S, C, K) as (1, S, C, K)
        return conv_geometry(
            (x.shape[0], 1, *x.shape[1:]), (1, *self.params[0].shape), (1, layer.strides[0]), layer.padding.upper(),
            (1, layer.dilation_rate[0]),
        )  # fmt: skip

    def forward(self, x, training, input_gradient):
        kernel = self.params[0]
        bias = self.params[1] if len(self.params) > 1 else None
        if self.kind == "dense":
            rows = _rows(x)
            z = dense.matmul(rows, kernel)
            out_shape = (*x.shape[:-1], kernel.shape[1])
        else:
            g = self._geometry(x)
            x4 = x.reshape(g.input_shape)
            z = conv.conv2d_forward(x4, kernel.reshape(g.filter_shape), g)
            out_shape = g.output_shape if self.kind == "conv2d" else (g.N, g.Q, g.K)
        z_rows = _rows(z)
        fused_relu = bias is not None and self.activation == "relu"
        if fused_relu:
            y_rows = elementwise.bias_relu_forward(z_rows, bias)
            y, act_back = y_rows.reshape(out_shape), None
        else:
            if bias is not None:
                z_rows = elementwise.bias_add_forward(z_rows, bias)
            y, act_back = _Activation(self.activation).forward(z_rows.reshape(out_shape))

        def backward(dy):
            if fused_relu:
                dz_rows, dbias = elementwise.bias_relu_backward(_rows(dy), y_rows)
            else:
                dz_rows = _rows(act_back(dy))
                dbias = elementwise.bias_add_backward(dz_rows) if bias is not None else None
            if self.kind == "dense":
                self.grads[0] = dense.matmul(_rows(x), dz_rows, trans_a=True)
                dx = dense.matmul(dz_rows, kernel, trans_b=True).reshape(x.shape) if input_gradient else None
            else:
                dz = dz_rows.reshape(g.output_shape)
                self.grads[0] = conv.conv2d_backward_filter(x4, dz, g).reshape(kernel.shape)
                dx = (
                    conv.conv2d_backward_input(dz, kernel.reshape(g.filter_shape), g).reshape(x.shape)
                    if input_gradient
                    else None
                )
            if bias is not None:
                self.grads[1] = dbias
            return dx

        return y, backward


class _Pool:
    def __init__(self, layer, kind: str, rank: int, is_global: bool):
        self.layer, self.kind, self.rank, self.is_global = layer, kind, rank, is_global

    def forward(self, x, training, input_gradient):
        x4 = x.reshape(x.shape[0], 1, *x.shape[1:]) if self.rank == 1 else x
        N, H, W, C = x4.shape
        if self.is_global:
            g = pool_geometry(x4.shape, (H, W), (1, 1), "VALID")
            out_shape = (N, *([1] * self.rank), C) if self.layer.keepdims else (N, C)
        else:
            size, strides = self.layer.pool_size, self.layer.strides
            if self.rank == 1:
                size, strides = (1, size[0]), (1, strides[0])
            g = pool_geometry(x4.shape, size, strides, self.layer.padding.upper())
            out_shape = g.output_shape if self.rank == 2 else (g.N, g.Q, g.C)
        if self.kind == "max":
            y, argmax = pool.max_pool2d_forward(x4, g)

            def backward(dy):
                return pool.max_pool2d_backward(dy.reshape(g.output_shape), argmax, g).reshape(x.shape)
        else:
            y = pool.avg_pool2d_forward(x4, g)

            def backward(dy):
                return pool.avg_pool2d_backward(dy.reshape(g.output_shape), g).reshape(x.shape)

        return y.reshape(out_shape), backward


class _Simple:
    """Flatten, ReLU, Activation, Dropout, InputLayer."""

    def __init__(self, layer, kind: str, random=None):
        self.layer, self.kind, self.random = layer, kind, random

    def forward(self, x, training, input_gradient):
        if self.kind == "flatten":
            shape = x.shape
            return x.reshape(shape[0], x.size // shape[0]), lambda dy: dy.reshape(shape)
        if self.kind == "dropout":
            rate = self.layer.rate
            if not training or rate == 0:
                return x, lambda dy: dy
            y, keep = self.random(x, rate)
            scale = 1.0 / (1.0 - rate)
            return y, lambda dy: elementwise.dropout_backward(dy, keep, scale)
        if self.kind in ("relu", "activation"):
            name = "relu" if self.kind == "relu" else self.layer.activation
            return _Activation(name).forward(x)
        return x, lambda dy: dy


class DeviceTrainer:
    """Train a built, compiled ``miniconv.Sequential`` with every array of a step on the GPU."""

    def __init__(self, model, seed: int = 0):
        from miniconv import layers as L
        from miniconv import losses as LS
        from miniconv.training import leaf_layers

        if not model.built or model.loss is None:
            raise ValueError("DeviceTrainer: build and compile the model first (model.compile(optimizer, loss))")
        loss = model.loss
        if not isinstance(loss, (LS.SparseCategoricalCrossentropy, LS.CategoricalCrossentropy)):
            raise NotImplementedError(f"DeviceTrainer: loss {loss.name!r} is not supported on the device yet")
        self.model, self.loss = model, loss
        self.sparse = isinstance(loss, LS.SparseCategoricalCrossentropy)
        flat = [leaf for layer in model.layers for leaf in leaf_layers(layer)]
        last_activation = getattr(flat[-1], "activation", "linear")
        if last_activation == "softmax":
            fused = True
        elif loss.from_logits and last_activation == "linear":
            fused = False  # already logits
        else:
            raise NotImplementedError(
                "DeviceTrainer: the last layer must have a softmax activation (or the loss from_logits=True "
                f"with a linear last layer), got {last_activation!r}"
            )
        self.softmax_output = fused  # the model's output is the softmax of the loss's logits
        self.random = None
        self.steps: list = []
        self.variables, self.keys, self.owners = [], [], []
        for i, layer in enumerate(flat):
            last = i == len(flat) - 1
            if isinstance(layer, (L.Conv2D, L.Conv1D, L.Dense)):
                params = [to_device(p) for p in layer.params]
                kind = "dense" if isinstance(layer, L.Dense) else ("conv2d" if layer.rank == 2 else "conv1d")
                step = _Weighted(layer, kind, params, last, fused)
                if layer.trainable:
                    for j, (param, name) in enumerate(zip(params, layer.weight_names)):
                        self.variables.append(param)
                        self.keys.append(name)
                        self.owners.append((step, j))
            elif isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D, L.MaxPooling1D, L.AveragePooling1D)):
                step = _Pool(layer, layer.kind, layer.rank, False)
            elif isinstance(layer, (L.GlobalMaxPooling2D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
                                    L.GlobalAveragePooling1D)):  # fmt: skip
                step = _Pool(layer, layer.kind, layer.rank, True)
            elif isinstance(layer, L.Flatten):
                step = _Simple(layer, "flatten")
            elif isinstance(layer, L.Dropout):
                if self.random is None:
                    self.random = elementwise.DropoutRandom(seed)
                step = _Simple(layer, "dropout", self.random)
            elif isinstance(layer, L.ReLU):
                step = _Simple(layer, "relu")
            elif isinstance(layer, L.Activation):
                if last and fused:
                    step = _Simple(layer, "input")  # the softmax is fused into the loss
                else:
                    _Activation(layer.activation)
                    step = _Simple(layer, "activation")
            elif isinstance(layer, L.InputLayer):
                step = _Simple(layer, "input")
            else:
                raise NotImplementedError(f"DeviceTrainer: {type(layer).__name__} is not supported on the device yet")
            self.steps.append(step)
        self.first_trained = next((i for i, s in enumerate(self.steps) if any(o[0] is s for o in self.owners)), None)
        self.optimizer = DeviceOptimizer(model.optimizer)

    def train_step(self, x, y, return_prediction: bool = False):
        """One optimizer step on one batch (host arrays); returns the batch's mean loss.

        With ``return_prediction``: (loss, the model's output for the batch as a host array: the
        softmax probabilities, or the logits of a from_logits model), for the metrics.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        targets = self.loss.check_targets(y, self.model.output_shape, len(x))
        h = to_device(x)
        backward = []
        for i, step in enumerate(self.steps):
            needs_dx = self.first_trained is not None and i > self.first_trained
            h, back = step.forward(h, True, needs_dx)
            backward.append(back)
        z = _rows(h)
        if self.sparse:
            rows, dz, p = losses.softmax_crossentropy(z, labels=to_device(targets.reshape(-1), np.int64))
        else:
            rows, dz, p = losses.softmax_crossentropy(z, targets=to_device(targets.reshape(z.shape)))
        value = float(rows.copy_to_host().mean(dtype=np.float64))
        result = (value, (p if self.softmax_output else z).copy_to_host().reshape(h.shape)) if return_prediction else value
        if not np.isfinite(value) or self.first_trained is None:
            return result
        grad = dz.reshape(h.shape)
        for i in range(len(self.steps) - 1, self.first_trained - 1, -1):
            grad = backward[i](grad)
        self.optimizer.apply([s.grads[j] for s, j in self.owners], self.variables, self.keys)
        return result

    def fit(self, x, y, batch_size: int = 32, epochs: int = 1, shuffle: bool = True, seed: int = 0) -> list[float]:
        """A bare training loop; returns the mean loss of each epoch."""
        rng = np.random.default_rng(seed)
        history = []
        for _ in range(epochs):
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            total = 0.0
            for start in range(0, len(x), batch_size):
                index = order[start : start + batch_size]
                total += self.train_step(x[index], y[index]) * len(index)
            history.append(total / len(x))
        return history

    def sync_to_host(self) -> None:
        """Copy the device weights into the model's arrays (in place) and the optimizer state into its optimizer."""
        for (step, j), param in zip(self.owners, self.variables):
            np.copyto(step.layer.params[j], param.copy_to_host())
        self.optimizer.sync_to_host()
