"""tests/cuda: the cuda backend under Numba's CUDA simulator, a separate pytest run.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda

The variable must be set before Numba is imported (the parent conftest imports it through
``miniconv.available_backends()``), so it comes from the environment, never from this file.
In the normal run (simulator off) the test module skips itself at import, saying how to run it,
and never imports numba.cuda. Each GPU thread is a Python thread in the simulator: keep shapes
tiny and cases few.
"""

from __future__ import annotations

import os

import pytest

SIMULATOR_REQUESTED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_report_header(config):
    if not SIMULATOR_REQUESTED:
        return None
    from kernels_cuda._common import SIMULATOR

    return f"kernels_cuda: CUDA simulator {'on' if SIMULATOR else 'OFF (numba.cuda was imported before the variable was set)'}"


@pytest.fixture(scope="session", autouse=True)
def _simulator_is_really_on():
    """With NUMBA_ENABLE_CUDASIM=1 set, the kernels must really run in the simulator (not fail on a missing GPU)."""
    if SIMULATOR_REQUESTED:
        from kernels_cuda._common import SIMULATOR

        if not SIMULATOR:
            pytest.exit(
                "NUMBA_ENABLE_CUDASIM=1 is set but numba.cuda was imported before it; set it before Python starts", 2
            )
    yield
