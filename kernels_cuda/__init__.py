"""The "cuda" backend: Numba CUDA kernels (NVIDIA's ``numba-cuda``), one module per op family.

    miniconv.use_backend("cuda")                   # where a GPU is present, or under the simulator:
    NUMBA_ENABLE_CUDASIM=1 python ...              # Numba's CUDA simulator (slow: tiny shapes only)

Where each kernel lives (kernels first, launchers below, in every module):

    conv.py         conv2d forward / backward-input / backward-filter: tiled implicit GEMM in
                    shared memory, plus the one-thread-per-output oracles
    pool.py         max (argmax, TensorFlow's scan rule) and average pooling, forward and backward;
                    global pooling as a block reduction
    depthwise.py    depthwise conv2d forward (four cells a thread), backward-input (a gather),
                    backward-filter (split reduction), plus the one-thread-per-output oracles
    normalization.py  batch normalization and moments: elementwise kernels, column reductions
    elementwise.py  relu, relu6, sigmoid, softmax rows, bias add / bias gradient / fused bias + relu, dropout
    dense.py        tiled shared-memory matrix product (dense forward and backward) + naive oracle
    optim.py        SGD (momentum, Nesterov), RMSprop, Adam updates with Keras 3's rules
    losses.py       softmax + crossentropy fused, forward and backward
    merge.py        add, multiply, column blocks joined and split (Add, Multiply, Concatenate)
    checks.py       is every element finite (a training step checks its gradients where they live)
    backend.py      ``CudaBackend``: miniconv's backend interface on these launchers
    ptx_report.py   ``python -m kernels_cuda.ptx_report``: registers / spills / shared memory per kernel

The backend's methods keep device arrays on the device and copy host arrays in and out, so
``fit`` under ``use_backend("cuda")`` runs miniconv's one engine with every array of a step on
the GPU (only the batch in, the loss and predictions out), and the ops still take NumPy arrays.
The launchers of each module (``conv.conv2d_forward(x_dev, w_dev, g)``, ...) take and return
device arrays. Everything is float32 (the ops layer's dtype). Nothing here imports miniconv's
models or training: only the backend interface, the geometry records and the optimizers' rules.

Importing this package is cheap and touches no GPU: ``BACKEND`` is built on first access, and
raises ``miniconv.backend.BackendUnavailableError`` saying why when the backend cannot run here
(numba-cuda missing, or no GPU and no simulator), so ``miniconv.available_backends()`` lists
"cuda" only where it runs.
"""

from __future__ import annotations

import importlib.util
import os

from miniconv.backend import BackendUnavailableError

INSTALL_HINT = 'pip install "miniconv[cuda]"  (NVIDIA\'s numba-cuda with its CUDA 13 NVVM / NVRTC wheels)'
SIMULATOR_HINT = (
    "to run the cuda backend without a GPU, in Numba's CUDA simulator (slow: small arrays only), set "
    "NUMBA_ENABLE_CUDASIM=1 before Python starts, e.g. `NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`"
)


def numba_cuda_installed() -> bool:
    """NVIDIA's numba-cuda package (not Numba's deprecated built-in CUDA target)."""
    return importlib.util.find_spec("numba_cuda") is not None


def unavailable_reason() -> str | None:
    """Why the cuda backend cannot run here, or None when it can (a GPU, or the simulator)."""
    if not numba_cuda_installed():
        return f"the cuda backend needs NVIDIA's numba-cuda, which is not installed: {INSTALL_HINT}"
    try:
        from numba import cuda
    except ImportError as error:  # e.g. the CUDA Python bindings are missing
        return f"the cuda backend could not import numba.cuda ({error}); reinstall with {INSTALL_HINT}"
    from ._common import SIMULATOR

    if SIMULATOR:
        return None
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return (
            "NUMBA_ENABLE_CUDASIM=1 is set but numba.cuda was imported before it was, so the simulator is off; "
            "set it before Python starts"
        )
    if cuda.is_available():
        return None
    detail = ""
    try:
        from numba.cuda.cudadrv import driver

        detail = " ".join((driver.driver.initialization_error or "").split())
    except Exception as error:  # noqa: BLE001 - the detail is a courtesy, never the failure
        detail = f"the driver check itself failed: {error}"
    return f"no CUDA GPU was found{f' ({detail})' if detail else ''}; {SIMULATOR_HINT}"


def is_available() -> bool:
    """True where the cuda backend can run: a CUDA GPU with a working driver, or the simulator."""
    return unavailable_reason() is None


def __getattr__(name: str):
    # PEP 562: ``kernels_cuda.BACKEND`` (what miniconv's registry asks for) is built on first use.
    if name == "BACKEND":
        reason = unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"backend 'cuda' cannot run here: {reason}")
        from .backend import CudaBackend

        backend = CudaBackend()
        globals()["BACKEND"] = backend
        return backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# BACKEND is left out on purpose: ``from kernels_cuda import *`` must not require a GPU.
__all__ = ["INSTALL_HINT", "SIMULATOR_HINT", "is_available", "numba_cuda_installed", "unavailable_reason"]
