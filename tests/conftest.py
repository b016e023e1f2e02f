"""Shared test setup: quiet, light TensorFlow; hypothesis profiles; the ``backend`` fixture.

Every op test takes the ``backend`` fixture and so runs once per backend that can run here
(``miniconv.available_backends()``: "numpy" always, "cpu" once its Numba kernels exist, "cuda"
where a GPU or the simulator is present). ``MINICONV_TEST_BACKENDS=numpy,cpu`` narrows the list.

Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE`` (default ``ci``):
    ci        modest example counts: the whole suite runs in a few minutes on 2 cores
    dev       a few times more examples, for a change to a kernel
    thorough  many more, for a night run
"""

from __future__ import annotations

import os
import warnings

# Before TensorFlow is imported anywhere: no C++ log spam, no oneDNN banner.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# OpenBLAS reads this once, when NumPy loads: its idle workers then sleep at once instead of
# spinning and starving the Numba kernels (see miniconv/_threads.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, settings

import miniconv
from miniconv.backend import BackendUnavailableError

# The machine is shared and Numba's thread pool competes with TensorFlow's (see ARCHITECTURE.md):
# one TF thread is plenty for the small shapes tested here. Must run before TF's first op.
try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # TF already initialised by something else in this process
    pass

_COMMON = {
    "deadline": None,  # the first call of a Numba kernel compiles; timing is not what is tested
    "derandomize": False,
    "suppress_health_check": [HealthCheck.too_slow],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("dev", max_examples=200, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _backends() -> list[str]:
    """The backends to test: ``available_backends()``, narrowed by MINICONV_TEST_BACKENDS."""
    try:
        names = miniconv.available_backends()
    except Exception as error:  # noqa: BLE001 -- a half-written backend fails to load: test the others
        warnings.warn(f"miniconv.available_backends() failed ({error!r}); testing the backends that load", stacklevel=1)
        names = []
        for name in ("numpy", "cpu", "cuda"):
            try:
                backend = miniconv.get_backend(name)
            except (BackendUnavailableError, AttributeError, ImportError):
                continue
            check = getattr(backend, "is_available", None)
            if check is None or check():
                names.append(name)
    wanted = os.environ.get("MINICONV_TEST_BACKENDS")
    if wanted:
        names = [name for name in names if name in wanted.split(",")]
    return names


BACKENDS = _backends()


def pytest_report_header(config):
    return f"miniconv backends under test: {', '.join(BACKENDS) or 'none'}; hypothesis profile: {settings.get_current_profile_name()}"


# Session scope: hypothesis refuses function-scoped fixtures in @given tests, and a backend name
# carries no state between tests anyway.
@pytest.fixture(params=BACKENDS, scope="session")
def backend(request) -> str:
    """The name of a miniconv backend; pass it as ``backend=`` to the ops."""
    return request.param
