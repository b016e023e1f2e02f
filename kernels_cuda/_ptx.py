"""Compile every kernel to PTX without a GPU, and assemble it with ``ptxas`` for resource usage.

    for entry in all_kernels():                      # (module, name, python function, signature)
        ptx = compile_ptx(entry, cc=(9, 0))
    info = assemble(ptx, "sm_90")                    # registers, spills, shared memory (needs ptxas)

``numba.cuda.compile_ptx`` needs no GPU for a kernel alone, but numba-cuda compiles the *device
functions* a kernel calls for "the current device" (``dispatcher.compile_device`` asks
``get_current_device().compute_capability``), which fails where there is no driver. While
compiling here, with no GPU present, that one lookup is pointed at the requested compute
capability; nothing else changes, and with a GPU present nothing is patched.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MODULES = ("_common", "conv", "pool", "elementwise", "dense", "optim", "losses", "merge", "checks", "depthwise",
           "normalization")


@dataclass(frozen=True)
class KernelEntry:
    module: str
    name: str
    pyfunc: object
    signature: object

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}"


def all_kernels() -> list[KernelEntry]:
    """Every kernel of every op module, with the argument types its launcher passes."""
    entries = []
    for module_name in MODULES:
        module = importlib.import_module(f"kernels_cuda.{module_name}")
        for kernel, signature in module.SIGNATURES.items():
            pyfunc = getattr(kernel, "py_func", kernel)
            entries.append(KernelEntry(module_name, pyfunc.__name__, pyfunc, signature))
    return entries


class _Device:
    compute_capability = (9, 0)


@contextlib.contextmanager
def _device_functions_for(cc):
    """Compile device functions for ``cc`` (instead of asking a driver there is none of)."""
    from numba import cuda
    from numba.cuda import dispatcher

    if cuda.is_available() or not hasattr(dispatcher, "get_current_device"):
        yield
        return
    original = dispatcher.get_current_device
    device = _Device()
    device.compute_capability = tuple(cc)
    dispatcher.get_current_device = lambda: device
    try:
        yield
    finally:
        dispatcher.get_current_device = original


def compile_ptx(entry: KernelEntry, cc=(9, 0)) -> str:
    """The PTX of one kernel for compute capability ``cc`` (no GPU needed)."""
    from numba import cuda

    with _device_functions_for(cc):
        ptx, _ = cuda.compile_ptx(entry.pyfunc, entry.signature, cc=tuple(cc))
    return ptx


# --- ptxas ---------------------------------------------------------------------------------------


def ptxas_candidates() -> list[str]:
    """ptxas binaries to try, newest toolkit first: $PTXAS, the pip wheel nvidia-cuda-nvcc, PATH, /usr/local/cuda."""
    found = []
    if os.environ.get("PTXAS"):
        found.append(os.environ["PTXAS"])
    for base in sys.path:
        found += sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "bin", "ptxas")), reverse=True)
        found += glob.glob(os.path.join(base, "nvidia", "cuda_nvcc", "bin", "ptxas"))
    for candidate in (shutil.which("ptxas"), "/usr/local/cuda/bin/ptxas"):
        if candidate:
            found.append(candidate)
    unique = []
    for path in found:
        real = os.path.realpath(path)
        if os.path.isfile(real) and os.access(real, os.X_OK) and real not in unique:
            unique.append(real)
    return unique


def ptxas_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"release (\S+), V(\S+)", out)
    return match.group(2) if match else "unknown"


@dataclass(frozen=True)
class Resources:
    registers: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    shared_bytes: int


_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


class PtxasError(RuntimeError):
    pass


def assemble(ptx: str, arch: str = "sm_90", ptxas: str | None = None) -> Resources:
    """Assemble PTX with ``ptxas -v``; the resources of its (single) kernel."""
    ptxas = ptxas or (ptxas_candidates() or [None])[0]
    if ptxas is None:
        raise PtxasError("no ptxas found (install nvidia-cuda-nvcc matching nvidia-nvvm, or set PTXAS)")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "kernel.ptx")
        with open(source, "w") as f:
            f.write(ptx)
        done = subprocess.run(
            [ptxas, f"-arch={arch}", "-v", source, "-o", os.path.join(tmp, "kernel.cubin")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise PtxasError(f"{ptxas} failed: {log.strip().splitlines()[-1] if log.strip() else done.returncode}")
    used, spill = _USED.search(log), _SPILL.search(log)
    smem = _SMEM.search(log)
    return Resources(
        registers=int(used.group(1)) if used else -1,
        stack_bytes=int(spill.group(1)) if spill else 0,
        spill_stores=int(spill.group(2)) if spill else 0,
        spill_loads=int(spill.group(3)) if spill else 0,
        shared_bytes=int(smem.group(1)) if smem else 0,
    )


def working_ptxas(sample_ptx: str, arch: str = "sm_90") -> tuple[str | None, list[str]]:
    """The first ptxas that assembles ``sample_ptx`` (an older toolkit rejects newer PTX), and why others failed."""
    failures = []
    for path in ptxas_candidates():
        try:
            assemble(sample_ptx, arch, path)
            return path, failures
        except (PtxasError, OSError, subprocess.SubprocessError) as error:
            failures.append(f"{path} (CUDA {ptxas_version(path)}): {error}")
    return None, failures
