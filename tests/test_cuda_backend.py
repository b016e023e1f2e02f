"""The cuda backend where it cannot run: clear errors, not listed, and a cheap import.

The kernels themselves are tested in the CUDA simulator (tests/cuda, a separate run) and
compiled to PTX in tests/test_cuda_ptx.py. These tests need no numba-cuda and no GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import kernels_cuda
import miniconv
from miniconv.backend import BackendUnavailableError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
no_gpu = pytest.mark.skipif(kernels_cuda.is_available(), reason="a GPU (or the simulator) is present: cuda runs here")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=environment,
                          timeout=300, check=False)  # fmt: skip


@no_gpu
def test_asking_for_cuda_without_a_gpu_says_so_and_how_to_simulate():
    assert "cuda" not in miniconv.available_backends()
    for ask in (lambda: miniconv.get_backend("cuda"), lambda: miniconv.use_backend("cuda").__enter__(),
                lambda: miniconv.nn.relu(np.ones(3, np.float32), backend="cuda")):  # fmt: skip
        with pytest.raises(BackendUnavailableError) as error:
            ask()
        message = str(error.value)
        assert "no CUDA GPU was found" in message and "NUMBA_ENABLE_CUDASIM=1" in message, message
    assert miniconv.current_backend() != "cuda"


def test_without_numba_cuda_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(kernels_cuda, "numba_cuda_installed", lambda: False)
    monkeypatch.delitem(kernels_cuda.__dict__, "BACKEND", raising=False)
    monkeypatch.setattr(miniconv.backend, "_LOADED", {k: v for k, v in miniconv.backend._LOADED.items() if k != "cuda"})
    with pytest.raises(BackendUnavailableError, match=r'pip install "miniconv\[cuda\]"'):
        miniconv.get_backend("cuda")
    assert "cuda" not in miniconv.available_backends()


def test_importing_the_package_touches_no_gpu_and_no_numba_cuda():
    done = run_python("import sys, kernels_cuda; print('numba.cuda' in sys.modules, 'numba' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.skipif(
    not kernels_cuda.numba_cuda_installed(), reason='numba-cuda is not installed: pip install "miniconv[cuda]"'
)
def test_the_simulator_makes_cuda_available():
    code = (
        "import numpy as np, miniconv; print('cuda' in miniconv.available_backends()); "
        "print(miniconv.nn.relu(np.array([-1, 2], np.float32), backend='cuda').tolist())"
    )
    done = run_python(code, NUMBA_ENABLE_CUDASIM="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "[0.0, 2.0]"]


@no_gpu
def test_the_benchmark_skips_cuda_without_a_gpu():
    """``python -m benchmarks ops --backends cuda`` records "no GPU" instead of failing."""
    sys.path.insert(0, ROOT)
    from benchmarks import contestants

    out = contestants.run_worker("miniconv-cuda", ["mnist/conv2"], ["forward"], {})
    assert out["unavailable"].startswith("no GPU: ") and "results" not in out
