"""Waiting for another thread without the GIL and without sleeping: a short spin on a flag.

Why: a thread that sleeps (a lock, an event, a queue) is woken by the kernel, and on this shared,
virtualised machine that took 16-48 us from a job's post to the worker starting it (median 30-38
us, measured), as long as a small layer's whole chunk. A thread that spins on a flag in memory
sees the post in 1-3 us. Spinning burns its core, so it lasts a bounded time (``spins_for``) and
the caller then sleeps as before.

    flag = np.zeros(FLAG_SLOTS, np.int64)     # one flag per array: its own cache lines
    seen = wait_for_change(flag, old, spins)  # nogil: returns flag[0] once it differs from old,
                                              # or old after ``spins`` rounds

The flag is written by plain NumPy stores from Python (under the GIL); ``wait_for_change`` reads
it with an atomic acquire load, so the loop cannot be hoisted and each round sees memory afresh.
"""

from __future__ import annotations

import platform
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

FLAG_SLOTS = 16  # int64s a flag array holds: 128 bytes, so two flags never share a cache line
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _load_acquire(typingctx, flags):
    """flags[0] (int64) by an atomic load with acquire ordering."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(array.data, "acquire", 8)

    return types.int64(flags), codegen


@intrinsic
def _pause(typingctx):
    """The CPU's spin-loop hint (x86 ``pause``: the spin yields the core's shared resources); nothing
    on other CPUs."""

    def codegen(context, builder, signature, args):
        if not _X86:
            return context.get_dummy_value()
        name = "llvm.x86.sse2.pause"
        function = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(ir.VoidType(), []), name=name)
        builder.call(function, [])
        return context.get_dummy_value()

    return types.none(), codegen


@njit(nogil=True, cache=True)
def wait_for_change(flags, old, spins):
    """flags[0] as soon as it differs from ``old``, or ``old`` after ``spins`` rounds of looking."""
    for _ in range(spins):
        current = _load_acquire(flags)
        if current != old:
            return current
        _pause()
    return old


_spins_per_microsecond: float | None = None


def spins_for(microseconds: float) -> int:
    """The rounds of ``wait_for_change`` that last about ``microseconds`` here (measured once)."""
    global _spins_per_microsecond
    if _spins_per_microsecond is None:
        flags = np.zeros(FLAG_SLOTS, np.int64)
        wait_for_change(flags, 0, 1)  # compiled (or loaded) before it is timed
        rounds = 20_000
        start = time.perf_counter()
        wait_for_change(flags, 0, rounds)
        _spins_per_microsecond = rounds / max((time.perf_counter() - start) * 1e6, 1.0)
    return max(1, int(microseconds * _spins_per_microsecond))
