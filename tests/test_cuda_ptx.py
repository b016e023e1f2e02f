"""Every CUDA kernel compiles to PTX for compute capabilities 8.0 and 9.0, with no GPU needed.

``numba.cuda.compile_ptx`` with the exact argument types the launchers pass (each module's
``SIGNATURES``). Checked in the PTX: the target, one kernel entry, and no float64 arithmetic
(an accumulator started at ``0.0`` instead of ``float32(0)`` would show up as ``.f64``). Where a
``ptxas`` able to read this PTX is present, every kernel is also assembled for sm_90 and must
not spill to local memory (``python -m kernels_cuda.ptx_report`` prints the full table).

The kernels' *results* are tested in the CUDA simulator: tests/cuda (a separate pytest run).
"""

from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("numba_cuda", reason='numba-cuda is not installed: pip install "miniconv[cuda]"')
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("compile_ptx needs the real CUDA target, not the simulator", allow_module_level=True)

from kernels_cuda import _ptx

KERNELS = _ptx.all_kernels()
# numba.cuda.random's xoroshiro128+ converts its uint64 draw to float32 through float64
F64_ALLOWED = {"elementwise.dropout_random_kernel", "elementwise.keep_mask_kernel"}
F64_INSTRUCTION = re.compile(r"^\s*(?!cvt)[a-z.]*\.f64\b", re.MULTILINE)


@pytest.fixture(scope="module")
def ptx_sm90():
    """PTX for sm_90 of every kernel, compiled once for the tests below."""
    return {entry.label: _ptx.compile_ptx(entry, (9, 0)) for entry in KERNELS}


def test_every_op_module_has_kernels():
    modules = {entry.module for entry in KERNELS}
    assert modules == set(_ptx.MODULES)
    assert len(KERNELS) >= 30


@pytest.mark.parametrize("cc", [(8, 0), (9, 0)], ids=["cc80", "cc90"])
def test_every_kernel_compiles_to_ptx(cc, ptx_sm90):
    failures = []
    for entry in KERNELS:
        ptx = ptx_sm90[entry.label] if cc == (9, 0) else _ptx.compile_ptx(entry, cc)
        if f".target sm_{cc[0]}{cc[1]}" not in ptx or len(re.findall(r"^\.visible \.entry", ptx, re.MULTILINE)) != 1:
            failures.append(f"{entry.label}: no single .entry for sm_{cc[0]}{cc[1]}")
        if entry.label not in F64_ALLOWED and F64_INSTRUCTION.search(ptx):
            failures.append(f"{entry.label}: float64 arithmetic ({F64_INSTRUCTION.search(ptx).group(0).strip()})")
    assert not failures, "\n".join(failures)


def test_no_kernel_spills_registers_on_sm90(ptx_sm90):
    sample = next(iter(ptx_sm90.values()))
    ptxas, tried = _ptx.working_ptxas(sample)
    if ptxas is None:
        pytest.skip("no ptxas that reads this PTX (install nvidia-cuda-nvcc matching nvidia-nvvm): " + "; ".join(tried))
    spills = []
    for label, ptx in ptx_sm90.items():
        info = _ptx.assemble(ptx, "sm_90", ptxas)
        if info.spill_stores or info.spill_loads:
            spills.append(f"{label}: {info}")
    assert not spills, "\n".join(spills)
