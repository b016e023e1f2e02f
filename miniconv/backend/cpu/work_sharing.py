"""Share chunks of every cpu kernel between the calling thread and a small thread pool.

Why not let OpenBLAS and Numba each parallelise their half? Both split work statically over
their own threads, so on a busy (shared, virtualised) machine each product and each parallel
loop waits for its slowest thread to be scheduled — measured here at whole scheduler slices
(~4 ms) per call. Here the work is cut into chunks (im2col of a block of rows + its product,
for example) that the caller and the pool's threads pull from one counter: whoever runs takes
the next chunk, a thread that is not scheduled takes none, and nobody waits for it. BLAS runs
single-threaded inside each chunk and NumPy releases the GIL during products, as Numba's
``nogil`` kernels do, so the chunks really run in parallel.

The loop kernels (pooling, activations, bias) are shared the same way (``parallel_range``), not
through Numba's ``prange``: a second set of threads (Numba's pool) spinning beside this one cost
a third of every training step (measured: 23 ms a step with both, 16 ms with Numba's threads off).

The pool's threads (``_Workers``) spin for a while after each job instead of sleeping at once: on
this virtual machine a sleeping thread took 16-48 us to wake (median 30-38), and an idle guest core
halts at once (its halt polling is off), so each kernel paid a wake-up before its second thread
started. Measured, two threads: ``run_chunks`` of four empty chunks 35 -> 6 us; MNIST's conv3
forward + backward (64 x 5 x 5 x 64 -> 64) best of 100 calls 0.98-1.00 -> 0.91-0.94 ms. A chunk's
Python still needs the GIL, and a thread waiting for it sleeps (CPython's rule), so the threads can
still meet a wake-up inside a job.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading

import numba
import numpy as np
from numba import njit

from .small_products import matmul_into
from .spin_wait import FLAG_SLOTS, spins_for, wait_for_change

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # then BLAS keeps its own threads; correct, only slower on a busy machine
    ThreadpoolController = None

_workers = None  # the _Workers, started by the first kernel that shares chunks
_threads: int | None = None
_scratch = threading.local()
_workers_lock = threading.Lock()
_blas_libraries = None
SPIN_MICROSECONDS = 200  # how long an idle worker (and a caller waiting for the last chunk) spins before sleeping


def thread_count() -> int:
    """Threads that share a kernel's chunks: Numba's setting (NUMBA_NUM_THREADS, default the cores).

    Read once, when the first kernel asks (the pool is sized by it then): each call of
    ``numba.get_num_threads`` takes two locks, one of them a process lock (~2-9 us here, and the
    kernels of a training step asked 24 times a step).
    """
    global _threads
    if _threads is None:
        _threads = numba.get_num_threads()
    return _threads


class _Workers:
    """``count`` daemon threads that each run every posted job (a function that pulls chunks until
    none are left, so a late or repeated run does nothing).

    A worker that has run a job spins on the job counter for SPIN_MICROSECONDS without the GIL
    (``spin_wait``), so the next kernel's post reaches it in microseconds rather than the tens a
    sleeping thread takes to wake here; after that it sleeps on a condition until the next post.
    Two threads posting at once: the workers run the later job, and each poster pulls its own
    job's chunks itself, so both finish (the earlier one without help).
    """

    def __init__(self, count: int):
        self.count = count
        self.posted = np.zeros(FLAG_SLOTS, np.int64)  # [0]: the number of the latest job
        self.job = None
        self.sleeping = 0
        self.wake = threading.Condition()
        self.spins = spins_for(SPIN_MICROSECONDS)
        for i in range(count):
            threading.Thread(target=self._serve, name=f"miniconv-{i}", daemon=True).start()

    def post(self, job) -> None:
        self.job = job
        self.posted[0] += 1
        if self.sleeping:
            with self.wake:
                self.wake.notify_all()

    def _serve(self) -> None:
        seen = 0
        while True:
            latest = wait_for_change(self.posted, seen, self.spins)
            if latest == seen:
                with self.wake:
                    self.sleeping += 1
                    while self.posted[0] == seen:
                        self.wake.wait()
                    self.sleeping -= 1
                    latest = int(self.posted[0])
            seen = latest
            job = self.job
            if job is not None:  # (None: its caller has finished it already)
                job()
            job = None  # nor does a spinning worker keep the finished job's arrays alive


def _get_workers() -> _Workers:
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = _Workers(max(1, thread_count() - 1))
    return _workers


def _forget_workers() -> None:
    """In a forked child: the parent's threads are not there, so the first kernel starts new ones."""
    global _workers, _workers_lock
    _workers, _workers_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_workers)


def run_chunks(task, chunk_count: int) -> None:
    """Call ``task(i)`` once for each i in range(chunk_count); return when every chunk has finished.

    Which thread runs which chunk varies from call to call: a task must write only its own
    chunk's part of the result (reductions keep one partial per chunk or group, summed in order).
    A chunk's error is raised here once every chunk has finished.
    """
    if min(thread_count(), chunk_count) <= 1:
        for i in range(chunk_count):
            task(i)
        return

    counter = itertools.count()  # next() on it is atomic under the GIL
    remaining = [chunk_count]
    lock = threading.Lock()
    finished = np.zeros(FLAG_SLOTS, np.int64)  # [0] becomes 1 when the last chunk has finished
    all_done = threading.Event()
    errors = []

    def pull_chunks():
        while True:
            i = next(counter)
            if i >= chunk_count:
                return
            try:
                task(i)
            except BaseException as error:  # noqa: BLE001  (re-raised in the caller below)
                errors.append(error)
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    finished[0] = 1
                    all_done.set()

    workers = _get_workers()
    workers.post(pull_chunks)
    pull_chunks()
    if not all_done.is_set():  # a worker is finishing the last chunks: spin, then sleep
        wait_for_change(finished, 0, workers.spins)
        all_done.wait()
    if workers.job is pull_chunks:  # so that the pool does not keep this call's arrays alive
        workers.job = None
    if errors:
        raise errors[0]


@contextlib.contextmanager
def single_threaded_blas():
    """Inside the block NumPy's BLAS uses one thread (the chunks provide the parallelism)."""
    global _blas_libraries
    if ThreadpoolController is None:
        yield
        return
    if _blas_libraries is None:
        _blas_libraries = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    previous = [lib.num_threads for lib in _blas_libraries]
    for lib in _blas_libraries:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, count in zip(_blas_libraries, previous):
            lib.set_num_threads(count)


def _matmul_whole(a, b, out) -> None:
    np.matmul(a, b, out=out)


SERIAL_FLOPS = 1 << 24  # below ~17 MFLOP (~0.2 ms on one core) sharing a product costs more than it saves


def matmul(a, b, pieces: bool = False):
    """a @ b for 2-D float arrays, cut into row (or column) blocks shared as chunks.

    Products under SERIAL_FLOPS run on the calling thread alone. Blocks go along the longer
    side of the output, about four per thread, so a late thread still finds work. With
    ``pieces``, a block of rows is multiplied in OpenBLAS's small-matrix pieces where those apply
    (``small_products.matmul_into``: the thin products of 1 x 1 convolutions).
    """
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), np.result_type(a, b))
    multiply = matmul_into if pieces else _matmul_whole
    if 2 * m * n * a.shape[1] < SERIAL_FLOPS or thread_count() == 1:
        with single_threaded_blas():
            multiply(a, b, out)
        return out
    along_rows = m >= n
    length = m if along_rows else n
    bounds = chunk_bounds(length, max(16, -(-length // (4 * thread_count()))))

    def task(i):
        start, stop = bounds[i]
        if along_rows:
            multiply(a[start:stop], b, out[start:stop])
        else:
            np.matmul(a, b[:, start:stop], out=out[:, start:stop])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return out


def scratch(slot: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread working array, reused across calls (fresh buffers cost page faults every call).

    Valid until this thread asks for the same ``slot`` again; contents are undefined. Never
    return it to a caller. Called once per chunk, so kept to a few dictionary lookups.
    """
    size = math.prod(shape)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    key = (slot, dtype)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(max(size, 1), dtype)
    return buffer[:size].reshape(shape)


CACHE_LINE = 64  # bytes


def partials(count: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    """(count, *shape) zeros for per-chunk partial sums, each partial starting on its own cache line.

    Chunks i and i + 1 usually run at the same time on two threads. If their partials shared a
    cache line (one np.zeros((count, K)) puts partial i + 1 right after partial i, at any
    alignment), every += of one would evict the other's line from the other core: measured 2x
    slower for a first layer's backward, whose dbias and dw take a += per pooling window.
    """
    itemsize = np.dtype(dtype).itemsize
    size = math.prod(shape)
    stride = -(-size * itemsize // CACHE_LINE) * CACHE_LINE // itemsize  # a whole number of lines
    buffer = np.zeros(count * stride + CACHE_LINE // itemsize, dtype)
    first = (-buffer.ctypes.data % CACHE_LINE) // itemsize
    return buffer[first : first + count * stride].reshape(count, stride)[:, :size].reshape(count, *shape)


def sum_in_order(partials: np.ndarray) -> np.ndarray:
    """partials[0] + partials[1] + ... added in that order, as a new array of partials[0]'s shape.

    The order is fixed whichever thread computed which partial, so a seeded run repeats to the
    bit. One pass over the partials (``_add_in_order``) instead of one NumPy ``+=`` each: 67 -> 37 us
    for conv2's sixteen (288, 64) filter-gradient partials, 18 -> 3 us for sixteen biases.
    """
    count = partials.shape[0]
    total = np.empty(partials.shape[1:], partials.dtype)
    _add_in_order(partials.reshape(count, -1), total.reshape(-1))
    return total


SUM_BLOCK = 2048  # elements of the total kept in L1 while every partial is added to them


@njit(nogil=True, cache=True)
def _add_in_order(partials, total):
    """total[e] = ((partials[0, e] + partials[1, e]) + partials[2, e]) + ..., block by block of e."""
    count, size = partials.shape
    for start in range(0, size, SUM_BLOCK):
        length = min(SUM_BLOCK, size - start)
        out = total[start : start + length]
        first = partials[0, start : start + length]
        for e in range(length):
            out[e] = first[e]
        for i in range(1, count):
            row = partials[i, start : start + length]
            for e in range(length):
                out[e] += row[e]


def parallel_range(task, total: int, grain: int) -> None:
    """Call ``task(start, stop)`` over pieces of [0, total), shared between the threads.

    Pieces hold at least ``grain`` items (so that each is worth a thread's wake-up, ~20 us), and
    about four per thread otherwise; work for one piece runs on the caller alone.
    """
    bounds = chunk_bounds(total, max(grain, -(-total // (4 * thread_count())), 1))
    if len(bounds) <= 1:
        task(0, total)
        return
    run_chunks(lambda i: task(*bounds[i]), len(bounds))


@functools.lru_cache(maxsize=512)
def chunk_bounds(total: int, chunk: int) -> tuple[tuple[int, int], ...]:
    """((0, chunk), (chunk, 2 chunk), ..., (.., total)), remembered: a training step asks for the same few."""
    return tuple((start, min(start + chunk, total)) for start in range(0, total, chunk))
