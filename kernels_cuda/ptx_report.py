"""``python -m kernels_cuda.ptx_report``: registers, spills and shared memory of every CUDA kernel.

    python -m kernels_cuda.ptx_report                  # sm_90, the first ptxas that reads the PTX
    python -m kernels_cuda.ptx_report --cc 8.0         # another compute capability
    PTXAS=/path/to/ptxas python -m kernels_cuda.ptx_report

Compiles each kernel with ``numba.cuda.compile_ptx`` (no GPU needed) for the argument types its
launcher passes, assembles it with ``ptxas -v`` and prints one markdown row per kernel. The PTX
comes from numba-cuda's NVVM (the nvidia-nvvm wheel); an older toolkit's ptxas rejects a newer PTX
version, so install ``nvidia-cuda-nvcc`` at the nvidia-nvvm version (its ptxas is found
automatically) or point $PTXAS at a matching one. Without any, the PTX is still compiled and
the table says why it could not be assembled. Static numbers only: no kernel is run or timed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels_cuda.ptx_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 (default) or 8.0")
    args = parser.parse_args(argv)
    major, minor = (int(part) for part in args.cc.split("."))
    arch = f"sm_{major}{minor}"

    from . import numba_cuda_installed

    if not numba_cuda_installed():
        from . import INSTALL_HINT

        print(f"numba-cuda is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 1
    from . import _ptx

    start = time.perf_counter()
    entries = _ptx.all_kernels()
    ptx = {entry.label: _ptx.compile_ptx(entry, (major, minor)) for entry in entries}
    compiled_s = time.perf_counter() - start
    ptxas, failures = _ptx.working_ptxas(next(iter(ptx.values())), arch)

    print(f"# CUDA kernels of miniconv for {arch}\n")
    print(f"numba-cuda {_version('numba-cuda')}, NVVM from nvidia-nvvm {_version('nvidia-nvvm')}; "
          f"{len(entries)} kernels compiled to PTX in {compiled_s:.1f} s")  # fmt: skip
    if ptxas:
        print(f"assembled with {ptxas} (CUDA {_ptx.ptxas_version(ptxas)})")
    for failure in failures:
        print(f"skipped ptxas: {failure}")
    print()
    print("| kernel | registers | spill stores (B) | spill loads (B) | stack frame (B) | shared memory (B) |")
    print("|---|---:|---:|---:|---:|---:|")
    spilling = 0
    for entry in entries:
        if ptxas is None:
            print(f"| {entry.label} | - | - | - | - | - |")
            continue
        info = _ptx.assemble(ptx[entry.label], arch, ptxas)
        spilling += bool(info.spill_stores or info.spill_loads)
        print(f"| {entry.label} | {info.registers} | {info.spill_stores} | {info.spill_loads} | "
              f"{info.stack_bytes} | {info.shared_bytes} |")  # fmt: skip
    print()
    if ptxas is None:
        print("No ptxas could assemble this PTX: install nvidia-cuda-nvcc at the nvidia-nvvm version, or set PTXAS.")
        return 0
    print(f"{spilling} of {len(entries)} kernels spill to local memory.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
