"""The runs of a study as tasks on Dask distributed: a local cluster or ``--scheduler ADDRESS``.

Each (engine, seed) run is one task, ``run_task``: it starts ``python -m miniconv.compare.run`` as a
subprocess of the Dask worker (a fresh process per run, so TensorFlow and Numba never share one), with
the worker's miniconv on PYTHONPATH, and returns the run's JSON line as a dict. The run watches the
worker's pid and exits when the worker dies, so a killed worker leaves no training behind.

The local cluster (no ``--scheduler``) has ``workers`` worker processes with one thread each (default:
one per two cores, so concurrent runs don't fight over cores), and each run gets
``cpu_count // workers`` threads. On an existing cluster, start workers with ``--nthreads 1`` and as
many per machine as its runs should share it.

Nothing is lost (``execute``):

- the study process appends each finished run to the results file the moment its task's result
  arrives (``results.append``: flushed and fsynced), before it looks at the next one;
- a run whose process fails (a non-zero exit, no JSON) raises ``RunFailed`` in its task, and Dask
  runs the task again, up to ``retries`` more times;
- a worker that dies mid-run (killed, out of memory, its machine gone) has its task rescheduled by
  the scheduler on a live worker (the nanny restarts a local one); after Dask's
  ``distributed.scheduler.allowed-failures`` deaths (default 3) the task fails with ``KilledWorker``;
- a run that failed for good is reported, the others go on; the study exits non-zero and a
  restart runs the missing ones.

The progress line counts runs done, running (a task whose process has started, on a worker that is
still working on it; tasks announce their start through Dask's event log) and left.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import results

TOPIC = "miniconv-compare"
CORES_PER_RUN = 2


class RunFailed(Exception):
    """A run's process exited non-zero or printed no result; the message ends with its last stderr line."""


def local_workers(cpu_count: int | None = None) -> int:
    """Worker processes of the local cluster: one per ``CORES_PER_RUN`` cores, at least one."""
    return max(1, (cpu_count or os.cpu_count() or 1) // CORES_PER_RUN)


def dask_thread_variables() -> dict[str, str]:
    """The variables a Dask nanny sets in its workers (``distributed.nanny.pre-spawn-environ``: OMP_NUM_THREADS=1, ...)."""
    try:
        import dask
        import distributed  # noqa: F401  (its import adds its defaults to dask.config)

        return {k: str(v) for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()}
    except (ImportError, KeyError):
        return {}


def user_environment() -> dict[str, str | None]:
    """The study process's own values (None: unset) of the variables Dask's nanny overrides in its workers."""
    return {name: os.environ.get(name) for name in dask_thread_variables()}


def run_environment(restore: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a run: the worker's, without what Dask's nanny set (a run gets the environment
    its user has, not Dask's single-threaded BLAS), with ``restore``'s values (the study's, on a local
    cluster), and the directory holding this miniconv first on PYTHONPATH."""
    import miniconv

    root = str(Path(miniconv.__file__).resolve().parent.parent)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    for name, value in dask_thread_variables().items():
        if env.get(name) == value:
            del env[name]
    for name, value in (restore or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run_command(spec: dict, watch_pid: int) -> list[str]:
    """The command line of one run (``miniconv.compare.run``)."""
    command = [sys.executable, "-m", "miniconv.compare.run", "--engine", spec["engine"], "--seed", str(spec["seed"]),
               "--watch-pid", str(watch_pid), "--tag", spec.get("tag", "")]
    if spec.get("threads"):
        command += ["--threads", str(spec["threads"])]
    return command + ["--", *spec["train_argv"]]


def _tail(handle, lines: int = 3) -> str:
    handle.seek(0)
    text = handle.read().decode(errors="replace").replace("\r", "\n")
    found = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(found[-lines:]) or "no output"


def _abandoned(worker, key) -> bool:
    """True once the scheduler no longer wants this task from this worker (the study cancelled it or went away)."""
    try:
        task = worker.state.tasks.get(key)
    except AttributeError:  # another distributed: never abandon
        return False
    return task is None or task.state in ("cancelled", "released", "forgotten")


def run_task(spec: dict) -> dict:
    """The Dask task of one run: the run's process, its JSON result (``RunFailed`` if it has none). A run the
    study no longer wants (cancelled: Ctrl-C, the client gone) is stopped rather than left to finish."""
    worker = key = None
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
        worker.log_event(TOPIC, {"key": key, "worker": worker.address})
    except (ImportError, ValueError):
        pass  # called outside a worker (a test): nothing to announce
    what = f"{spec['engine']} seed {spec['seed']}"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as log:
        process = subprocess.Popen(run_command(spec, os.getpid()), stdout=out, stderr=log,
                                   env=run_environment(spec.get("environment")))
        while True:
            try:
                process.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                if worker is not None and _abandoned(worker, key):
                    process.kill()
                    process.wait()
                    raise RunFailed(f"{what}: stopped, the study cancelled it") from None
        out.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
        if process.returncode != 0 or not lines:
            raise RunFailed(f"{what}: exit status {process.returncode}: {_tail(log)}")
        try:
            result = json.loads(lines[-1])
        except ValueError:
            raise RunFailed(f"{what}: no JSON result: {lines[-1][:200]}") from None
    if (result.get("engine"), result.get("seed")) != (spec["engine"], spec["seed"]):
        raise RunFailed(f"{what}: the run reported {result.get('engine')} seed {result.get('seed')}")
    result["worker"] = getattr(worker, "address", None)
    return result


class Progress:
    """One line, "[####....] 3/8 done, 1 running, 4 left": redrawn in place on a terminal, else printed when it changes."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.last = None

    def text(self, done: int, running: int, failed: int = 0) -> str:
        filled = round(self.width * done / self.total) if self.total else self.width
        left = self.total - done - failed
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} done, {running} running, "
                f"{left - running} left" + (f", {failed} failed" if failed else ""))

    def show(self, done: int, running: int, failed: int = 0) -> None:
        line = self.text(done, running, failed)
        if line != self.last:
            self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
            self.stream.flush()
            self.last = line

    def say(self, message: str) -> None:
        """A line of its own above the bar."""
        self.stream.write(("\r\033[K" if self.tty else "") + message + "\n")
        if self.tty and self.last:
            self.stream.write(self.last)
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Outcome:
    finished: list[dict] = field(default_factory=list)
    failed: list[tuple[dict, str]] = field(default_factory=list)


def _failure(future, spec: dict) -> str:
    """Why a task ended without a result: the run's own message, Dask's (KilledWorker), or a cancellation."""
    what = f"{spec['engine']} seed {spec['seed']}"
    if future.status == "cancelled":
        return f"{what}: cancelled: the scheduler lost the task"
    error = future.exception()
    return str(error) if isinstance(error, RunFailed) else f"{what}: {type(error).__name__}: {error}"


def connect(scheduler: str | None, workers: int, timeout: float = 30):
    """(client, cluster): a client of ``scheduler``, or of a new local cluster (``cluster`` is then closed by the caller)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout=timeout), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit=0, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def execute(specs: list[dict], path: Path, settings: dict, client, *, retries: int = 2,
            progress: Progress | None = None, describe=lambda run: "") -> Outcome:
    """Run ``specs`` on ``client``'s cluster, appending each finished run (with ``settings``) to ``path``."""
    progress = progress or Progress(len(specs))
    started: dict[str, str] = {}  # task key -> the worker it last started on
    client.subscribe_topic(TOPIC, lambda event: started.__setitem__(event[1]["key"], event[1]["worker"]))
    token = uuid.uuid4().hex[:8]
    futures = {}
    for i, spec in enumerate(specs):
        key = f"compare-{spec['engine']}-{spec['seed']}-{token}"
        futures[key] = (client.submit(run_task, spec, key=key, retries=retries, pure=False, priority=-i), spec)
    outcome = Outcome()
    try:
        while futures:
            for key, (future, spec) in list(futures.items()):
                if not future.done():
                    continue
                del futures[key]
                if future.status == "finished":
                    run = {**future.result(), "settings": settings}
                    results.append(path, run)
                    outcome.finished.append(run)
                    progress.say(f"{spec['engine']} seed {spec['seed']}: {describe(run)}")
                else:
                    message = _failure(future, spec)
                    outcome.failed.append((spec, message))
                    progress.say(f"failed: {message}")
            processing = client.processing()
            running = sum(1 for key, worker in list(started.items())  # a copy: the event handler adds to it
                          if key in futures and key in processing.get(worker, ()))
            progress.show(len(outcome.finished), running, len(outcome.failed))
            if futures:
                time.sleep(0.5)
    finally:
        client.unsubscribe_topic(TOPIC)
        for future, _ in futures.values():
            future.cancel()
        progress.close()
    return outcome
