"""The contestants, each run in its own worker process: miniconv backends, TensorFlow, PyTorch.

A worker is ``python -m benchmarks.ops --worker NAME --case-ids ...`` (the protocol of
``benchmarks.harness``); ``measure`` times every requested (case, mode) pair, and the worker prints
the result as one JSON line. Each library lives in its own process because Numba's, TensorFlow's
and PyTorch's thread pools slow each other down when they share one.

``build(case, mode, arrays)`` returns a no-argument callable doing one call of the pass:
    forward   the op on prepared inputs
    fwd+bwd   the op and its vector-Jacobian product with the upstream gradient dy, for every
              input (x and w; x, kernel and bias): ``miniconv.vjp``, ``tf.GradientTape`` inside a
              ``tf.function``, ``torch.autograd.grad``; the call returns (y, gradients), as training
              needs both (a ``tf.function`` returning the gradients alone drops a forward they do
              not read: a convolution's, a dense layer's)
    fwd+bwd no dx    the same for every input but x (a first layer's convolution in training)
"""

from __future__ import annotations

import os
import sys
import traceback

from .cases import BY_ID, CONV_BIAS, DEPTHWISE_BIAS, FUSED, NO_DX, OpCase
from .common import copy_bandwidth, sgemm_peak, time_call
from .harness import MINICONV_PREFIX, Unavailable

REFERENCES = ("tf", "torch")
BN_EPSILON = 1e-3


# --- miniconv ------------------------------------------------------------------------------------


def _miniconv(backend: str):
    if backend == "cuda":
        return _miniconv_cuda()
    import miniconv
    from miniconv import nn

    try:
        usable = backend in miniconv.available_backends()
    except Exception as error:  # noqa: BLE001 - a broken backend registry is reported, not raised
        raise Unavailable(f"miniconv.available_backends() failed: {error!r}") from None
    if not usable:
        raise Unavailable(f"miniconv backend {backend!r} is not available here")
    info = {"version": miniconv.__version__, "backend": backend}

    def build(case: OpCase, mode: str, a: dict):
        op = getattr(nn, case.op)
        args, kwargs = _miniconv_call(case, a)
        if mode == "forward":
            return lambda: op(*args, backend=backend, **kwargs)

        upstream = (a["dmean"], a["dvariance"]) if case.op == "moments" else (a["dy"],)

        def fwd_bwd():
            y, pullback = miniconv.vjp(op, *args, backend=backend, **kwargs)
            if mode == NO_DX:
                return y, pullback(*upstream, input_gradient=False)[1:]
            return y, pullback(*upstream)

        return fwd_bwd

    return build, info


def _miniconv_call(case: OpCase, a: dict):
    if case.op == "conv2d":
        return (a["x"], a["w"]), {"strides": 1, "padding": "VALID"}
    if case.op == "depthwise_conv2d":
        return (a["x"], a["w"]), {"strides": [1, case.stride, case.stride, 1], "padding": "SAME"}
    if case.op == DEPTHWISE_BIAS:
        return (a["x"], a["w"], a["bias"]), {"strides": [1, case.stride, case.stride, 1], "padding": "SAME",
                                             "activation": "relu6"}
    if case.op == CONV_BIAS:
        return (a["x"], a["w"], a["bias"]), {"strides": 1, "padding": "VALID", "activation": "relu6"}
    if case.op == "batch_normalization":
        return tuple(a[n] for n in _names(case)), {"variance_epsilon": BN_EPSILON}
    if case.op == "moments":
        return (a["x"],), {"axes": [0, 1, 2]}
    if case.op == "max_pool2d":
        return (a["x"],), {"ksize": 2, "strides": 2, "padding": "VALID"}
    if case.op == FUSED:
        return (a["x"], a["w"], a["bias"], 2), {"strides": 1, "padding": "VALID"}
    if case.op == "dense":
        return (a["x"], a["kernel"], a["bias"]), {}
    return (a["x"],), {}


def _miniconv_cuda():
    """The cuda backend timed on the device: arrays stay on the GPU, each timed call ends in
    ``cuda.synchronize()`` (kernels launch asynchronously), warm-up first as for everyone.

    Only a real GPU counts: the CUDA simulator runs kernels as Python threads, so it is refused.
    """
    import kernels_cuda

    reason = kernels_cuda.unavailable_reason()
    if reason is not None:
        raise Unavailable(f"no GPU: {reason}")
    from kernels_cuda import _common, conv, dense, depthwise, elementwise, normalization, pool

    if _common.SIMULATOR:
        raise Unavailable("no GPU: NUMBA_ENABLE_CUDASIM=1 runs the CUDA simulator, whose timings mean nothing")
    from numba import cuda

    from miniconv.shapes import conv_geometry, depthwise_geometry, pool_geometry

    device = cuda.get_current_device()
    name = getattr(device, "name", "unknown")
    info = {"backend": "cuda", "device": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": list(getattr(device, "compute_capability", ())),
            "timing": "device-resident arrays; cuda.synchronize() ends every timed call"}  # fmt: skip

    def build(case: OpCase, mode: str, a: dict):
        if case.op == FUSED:
            raise NotImplementedError("kernels_cuda has no fused conv2d + bias + ReLU + max pool kernel")
        if case.op in (CONV_BIAS, DEPTHWISE_BIAS):
            raise NotImplementedError(f"kernels_cuda has no fused {case.op} kernel (the cuda backend runs the "
                                      f"convolution, bias_add and relu6 kernels in turn)")
        d = {name: cuda.to_device(array) for name, array in a.items()}
        if case.op == "conv2d":
            g = conv_geometry(a["x"].shape, a["w"].shape, (1, 1), "VALID", (1, 1))

            def forward():
                return conv.conv2d_forward(d["x"], d["w"], g)

            def backward(_):
                dw = conv.conv2d_backward_filter(d["x"], d["dy"], g)
                return dw if mode == NO_DX else (conv.conv2d_backward_input(d["dy"], d["w"], g), dw)

        elif case.op == "max_pool2d":
            g = pool_geometry(a["x"].shape, (2, 2), (2, 2), "VALID")

            def forward():
                return pool.max_pool2d_forward(d["x"], g)

            def backward(y_and_argmax):
                return pool.max_pool2d_backward(d["dy"], y_and_argmax[1], g)

        elif case.op == "dense":

            def forward():
                return dense.dense_forward(d["x"], d["kernel"], d["bias"])

            def backward(_):
                return dense.dense_backward(d["dy"], d["x"], d["kernel"], True)

        elif case.op == "depthwise_conv2d":
            g = depthwise_geometry(a["x"].shape, a["w"].shape, (case.stride,) * 2, "SAME", (1, 1))

            def forward():
                return depthwise.depthwise_conv2d_forward(d["x"], d["w"], g)

            def backward(_):
                return (depthwise.depthwise_conv2d_backward_input(d["dy"], d["w"], g),
                        depthwise.depthwise_conv2d_backward_filter(d["x"], d["dy"], g))  # fmt: skip

        elif case.op in ("batch_normalization", "moments"):
            rows = a["x"].size // a["x"].shape[-1]
            x = d["x"].reshape(rows, a["x"].shape[-1])
            if case.op == "batch_normalization":
                dy = d["dy"].reshape(x.shape)

                def forward():
                    return normalization.batch_norm_forward(x, d["mean"], d["variance"], d["offset"], d["scale"],
                                                            BN_EPSILON)  # fmt: skip

                def backward(_):
                    return normalization.batch_norm_backward(dy, x, d["mean"], d["variance"], d["scale"], BN_EPSILON)
            else:

                def forward():
                    return normalization.moments_forward(x)

                def backward(mean_and_variance):
                    return normalization.moments_backward(d["dmean"], d["dvariance"], x, mean_and_variance[0])

        else:  # relu and relu6, on the flat arrays
            x, dy = d["x"].reshape(a["x"].size), d["dy"].reshape(a["dy"].size)
            kernels = {"relu": (elementwise.relu_forward, elementwise.relu_backward),
                       "relu6": (elementwise.relu6_forward, elementwise.relu6_backward)}[case.op]  # fmt: skip

            def forward():
                return kernels[0](x)

            def backward(y):
                return kernels[1](dy, y)

        def timed():
            out = forward()
            if mode != "forward":
                out = out, backward(out)
            cuda.synchronize()
            return out

        return timed

    return build, info


# --- TensorFlow ----------------------------------------------------------------------------------


def _tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise Unavailable(f"TensorFlow is not installed ({error})") from None
    info = {"version": tf.__version__, "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
    # On a GPU, TF's ops return before the kernels finish: wait for them inside the timed call.
    gpus = tf.config.list_physical_devices("GPU")
    sync = getattr(tf.test.experimental, "sync_devices", None) if gpus else None
    if gpus:
        info["gpus"] = [gpu.name for gpu in gpus]
    ops = {
        "conv2d": lambda x, w: tf.nn.conv2d(x, w, 1, "VALID"),
        "max_pool2d": lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"),
        "relu": tf.nn.relu,
        "dense": lambda x, k, b: tf.matmul(x, k) + b,
        FUSED: lambda x, w, b: tf.nn.max_pool2d(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "VALID"), b)), 2, 2,
                                                "VALID"),
        "batch_normalization": lambda x, m, v, o, s: tf.nn.batch_normalization(x, m, v, o, s, BN_EPSILON),
        "moments": lambda x: tf.nn.moments(x, [0, 1, 2]),
        "relu6": tf.nn.relu6,
        CONV_BIAS: lambda x, w, b: tf.nn.relu6(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "VALID"), b)),
    }

    def build(case: OpCase, mode: str, a: dict):
        if case.op == "depthwise_conv2d":
            strides = [1, case.stride, case.stride, 1]
            op = lambda x, w: tf.nn.depthwise_conv2d(x, w, strides, "SAME")
        elif case.op == DEPTHWISE_BIAS:
            strides = [1, case.stride, case.stride, 1]
            op = lambda x, w, b: tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(x, w, strides, "SAME"), b))
        else:
            op = ops[case.op]
        args = [tf.constant(a[name]) for name in _names(case)]
        if mode == "forward":
            forward = tf.function(op)
            return _synced(lambda: forward(*args), sync)
        dy = [tf.constant(a["dmean"]), tf.constant(a["dvariance"])] if case.op == "moments" else tf.constant(a["dy"])
        first = 1 if mode == NO_DX else 0  # without dx: x is not watched, so no gradient flows to it

        @tf.function
        def fwd_bwd(*inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs[first:])
                y = op(*inputs)
            # y is returned too: a graph prunes what its outputs do not need, and the gradients of
            # a convolution (or dense, depthwise, batch normalization) do not need y, so returning
            # the gradients alone timed the backward without the forward (ONEDNN_VERBOSE=1 shows
            # no forward primitive then).
            return y, tape.gradient(y, inputs[first:], output_gradients=dy)

        return _synced(lambda: fwd_bwd(*args), sync)

    return build, info


def _synced(fn, sync):
    if sync is None:
        return fn

    def call():
        out = fn()
        sync()
        return out

    return call


# --- PyTorch (channels last) ---------------------------------------------------------------------


def _torch():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        raise Unavailable(f"PyTorch is not installed ({error})") from None
    info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    cl = torch.channels_last

    def nchw(array):  # NHWC memory viewed as NCHW: exactly torch's channels-last layout
        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(memory_format=cl)

    def prepare(case: OpCase, a: dict):
        if case.op in ("conv2d", FUSED, CONV_BIAS):  # HWIO -> OIHW, stored channels last
            x_w = [nchw(a["x"]), torch.from_numpy(a["w"]).permute(3, 2, 0, 1).contiguous(memory_format=cl)]
            return x_w + [torch.from_numpy(a["bias"])] if case.op in (FUSED, CONV_BIAS) else x_w
        if case.op == DEPTHWISE_BIAS:  # (R, S, C, 1) -> (C, 1, R, S): groups=C
            w = torch.from_numpy(a["w"]).permute(2, 3, 0, 1).contiguous()
            return [nchw(a["x"]), w, torch.from_numpy(a["bias"])]
        if case.op == "dense":
            return [torch.from_numpy(a[n]) for n in ("x", "kernel", "bias")]
        return [nchw(a["x"])]

    ops = {
        "conv2d": lambda x, w: F.conv2d(x, w),
        "max_pool2d": lambda x: F.max_pool2d(x, 2, 2),
        "relu": F.relu,
        "dense": lambda x, k, b: torch.addmm(b, x, k),
        FUSED: lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b)), 2, 2),
        CONV_BIAS: lambda x, w, b: F.relu6(F.conv2d(x, w, b)),
        DEPTHWISE_BIAS: lambda x, w, b: F.relu6(F.conv2d(x, w, b, padding=1, groups=x.shape[1])),  # SAME, stride 1
    }

    def build(case: OpCase, mode: str, a: dict):
        if case.op not in ops:
            raise NotImplementedError(f"no PyTorch contestant for {case.op} (not written: PyTorch is not installed here)")
        if case.op == DEPTHWISE_BIAS and case.stride != 1:
            raise NotImplementedError("the PyTorch contestant writes TF's SAME padding for stride 1 only")
        op, args = ops[case.op], prepare(case, a)
        if mode == "forward":

            def forward():
                with torch.no_grad():
                    return op(*args)

            return forward
        first = 1 if mode == NO_DX else 0  # without dx: x needs no gradient
        wrt = [t.requires_grad_(True) for t in args[first:]]
        args = args[:first] + wrt
        dy = nchw(a["dy"]) if a["dy"].ndim == 4 else torch.from_numpy(a["dy"])

        def fwd_bwd():
            y = op(*args)
            return y, torch.autograd.grad(y, wrt, dy)

        return fwd_bwd

    return build, info


def _names(case: OpCase) -> tuple[str, ...]:
    return {"conv2d": ("x", "w"), FUSED: ("x", "w", "bias"), "dense": ("x", "kernel", "bias"),
            "depthwise_conv2d": ("x", "w"), DEPTHWISE_BIAS: ("x", "w", "bias"), CONV_BIAS: ("x", "w", "bias"),
            "batch_normalization": ("x", "mean", "variance", "offset", "scale")}.get(case.op, ("x",))  # fmt: skip


def load(name: str):
    """(build, info) for contestant ``name``: "tf", "torch" or "miniconv-<backend>"."""
    if name == "tf":
        return _tensorflow()
    if name == "torch":
        return _torch()
    if name.startswith(MINICONV_PREFIX):
        return _miniconv(name[len(MINICONV_PREFIX) :])
    raise ValueError(f"unknown contestant {name!r}: expected tf, torch or {MINICONV_PREFIX}<backend>")


def measure(name: str, case_ids: list[str], modes: list[str], timing: dict, seed: int = 0) -> dict:
    """Time every (case, mode) for contestant ``name`` ("sgemm": the machine's sgemm peak and copy
    bandwidth instead).

    Raises ``Unavailable`` when the contestant cannot run here; an error in one (case, mode) is
    recorded in its entry, not raised.
    """
    if name == "sgemm":
        return {"sgemm": sgemm_peak(timing.get("sgemm_n", 4096)), "copy": copy_bandwidth(timing.get("copy_mib", 256))}
    build, info = load(name)
    results = []
    for case_id in case_ids:
        case = BY_ID[case_id]
        arrays = case.arrays(seed)
        for mode in (m for m in modes if m in case.modes):
            entry = {"case": case_id, "mode": mode}
            try:
                entry.update(time_call(build(case, mode, arrays), **timing))
            except Exception as error:  # noqa: BLE001 - e.g. an op a backend does not have yet
                entry["error"] = f"{type(error).__name__}: {error}"
                traceback.print_exc(file=sys.stderr)
            results.append(entry)
    return {"info": info, "results": results}


def run_worker(name: str, case_ids: list[str], modes: list[str], timing: dict, seed: int = 0) -> dict:
    """``measure`` in this process, as a worker reports it: {"contestant", ...} or {"contestant", "unavailable"}."""
    try:
        return {"contestant": name, **measure(name, case_ids, modes, timing, seed)}
    except Unavailable as error:
        return {"contestant": name, "unavailable": str(error)}
