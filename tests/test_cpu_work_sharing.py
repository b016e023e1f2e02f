"""The cpu backend's worker threads: a post reaches a spinning worker and a sleeping one, a forked child
starts its own, and two callers at once both finish (``work_sharing``, ``spin_wait``)."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

import miniconv

pytestmark = pytest.mark.skipif("cpu" not in miniconv.available_backends(), reason="cpu backend unavailable")


def _two_threads_meet(run_chunks) -> set[str]:
    """run_chunks of two chunks that each wait for the other at a barrier: only two threads running at
    once get past it (a worker that never started would break it). The names of the threads that ran."""
    barrier, names = threading.Barrier(2, timeout=10), set()

    def task(i):
        barrier.wait()
        names.add(threading.current_thread().name)

    run_chunks(task, 2)
    return names


def _within(seconds: float, condition) -> bool:
    """Whether ``condition()`` holds within ``seconds`` (polled; a loaded machine may be slow to get there)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def two_threads(monkeypatch):
    from miniconv.backend.cpu import work_sharing

    monkeypatch.setattr(work_sharing, "_threads", 2)  # (a pool started here keeps its one worker afterwards)
    return work_sharing


def test_wait_for_change_sees_another_threads_store_and_gives_up_after_its_spins():
    from miniconv.backend.cpu.spin_wait import FLAG_SLOTS, spins_for, wait_for_change

    flags = np.zeros(FLAG_SLOTS, np.int64)
    assert wait_for_change(flags, 0, 1000) == 0  # nothing changed: old, after the spins
    flags[0] = 7
    assert wait_for_change(flags, 0, 1) == 7
    assert wait_for_change(flags, 7, 10) == 7

    seen = []
    waiter = threading.Thread(target=lambda: seen.append(wait_for_change(flags, 7, spins_for(5_000_000))))
    waiter.start()
    time.sleep(0.05)  # the waiter spins, without the GIL, so this thread runs
    flags[0] = 8
    waiter.join(timeout=10)
    assert seen == [8]
    assert 1 <= spins_for(1) <= spins_for(1000)


def test_a_spinning_and_a_sleeping_worker_both_take_chunks(two_threads):
    names = _two_threads_meet(two_threads.run_chunks)  # starts the worker
    assert len(names) == 2 and threading.current_thread().name in names
    assert len(_two_threads_meet(two_threads.run_chunks)) == 2  # right after: the worker still spins
    workers = two_threads._workers
    assert _within(2.0, lambda: workers.sleeping == workers.count)  # past its spin (200 us): it sleeps
    assert len(_two_threads_meet(two_threads.run_chunks)) == 2


def test_two_callers_at_once_both_get_every_chunk(two_threads):
    results, errors = {}, []

    def caller(name):
        try:
            for round_ in range(50):
                seen, lock = [], threading.Lock()

                def task(i, seen=seen, lock=lock):
                    with lock:
                        seen.append(i)

                two_threads.run_chunks(task, 9)
                assert sorted(seen) == list(range(9)), (name, round_, seen)
            results[name] = True
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    callers = [threading.Thread(target=caller, args=(name,)) for name in "ab"]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(timeout=60)
    assert not errors and results == {"a": True, "b": True}


def test_no_finished_call_is_kept_alive_by_the_pool(two_threads):
    """The pool drops a call's job once it has finished: its arrays are freed, not kept until the next kernel."""
    import gc
    import weakref

    class Arrays:
        pass

    arrays = Arrays()
    alive = weakref.ref(arrays)
    barrier = threading.Barrier(2, timeout=10)

    def task(i, arrays=arrays):
        barrier.wait()  # both threads run the job (the worker held it too)

    two_threads.run_chunks(task, 2)
    del task, arrays
    assert _within(2.0, lambda: gc.collect() >= 0 and alive() is None)  # once the worker is back to waiting


def _child(queue):
    from miniconv.backend.cpu import work_sharing

    queue.put(sorted(_two_threads_meet(work_sharing.run_chunks)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_worker(two_threads):
    assert len(_two_threads_meet(two_threads.run_chunks)) == 2  # the parent's worker runs
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    names = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and len(names) == 2  # the parent's thread is not in the child: a new one ran
