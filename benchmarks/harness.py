"""The one worker protocol of the benchmarks: a process per contestant, alternating rounds, the best round kept.

A benchmark module ``benchmarks.<module>`` is its own worker. ``python -m benchmarks.<module>
--worker NAME [options]`` measures one contestant and prints one JSON line on stdout (the last
line counts; anything else goes to stderr), then exits 0:

    {"contestant": NAME, "info": {...}, ...its measurements}     it ran
    {"contestant": NAME, "unavailable": "why"}                   it cannot run here (not installed, no GPU)

``worker_main`` is that entry: it prints what the measuring function returns, or the reason it
raised ``Unavailable``. Any other exception exits non-zero.

The coordinator runs every contestant in its own process (``run_worker``): Numba's, TensorFlow's
and PyTorch's thread pools slow each other down when they share one. A worker that exits non-zero,
prints no JSON or outlives ``timeout`` seconds is recorded as failed ({"failed": why}), never
raised, so the other contestants still run. Workers start from the repository root with
``WORKER_ENV`` (``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS reads it once, when NumPy loads; see
``miniconv/_threads.py``) and TensorFlow's C++ log level 2 unless set.

``run_rounds`` runs all contestants ``rounds`` times, in an order rotated by one each round (round
r starts with contestant r mod n), so no contestant always runs first or right after the same
neighbour. On a shared machine noise only ever adds time, so a contestant keeps its best round,
the one with the least time (``best_round``), and miniconv is compared with a reference by the
ratio of best times (``ratio_to``, ``ratios``; below 1: miniconv is faster). ``write_results``
writes ``<out>/<stem>.json`` and ``<out>/<stem>.md`` atomically: a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .common import blas_env

ROOT = Path(__file__).resolve().parent.parent  # the repository: workers run from here
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
MINICONV = "miniconv"  # contestants named miniconv or miniconv-<backend> are the ones compared
MINICONV_PREFIX = MINICONV + "-"
WORKER_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}
WORKER_TIMEOUT_S = 3600


class Unavailable(Exception):
    """The contestant cannot run in this environment (the message says why)."""


# --- the coordinator -----------------------------------------------------------------------------


def split(text: str | None) -> list[str]:
    """"a, b,," -> ["a", "b"]: a comma-separated option."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def contestants(backends: str, references: str, known: Sequence[str], references_first: bool = False) -> list[str]:
    """miniconv-<backend> for each of ``backends`` and each of ``references`` that is ``known`` (others are dropped)."""
    minis = [MINICONV_PREFIX + backend for backend in split(backends)]
    refs = [name for name in split(references) if name in known]
    return refs + minis if references_first else minis + refs


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The order of round ``round_index`` (from 0): ``names`` rotated left by round_index mod len(names)."""
    if not names:
        return []
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def worker_env() -> dict[str, str]:
    """The environment of a worker: ours, plus ``WORKER_ENV``, TF's log level, the repository on PYTHONPATH."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), **WORKER_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_worker(module: str, name: str, args: Sequence[str] = (), timeout: float = WORKER_TIMEOUT_S) -> dict:
    """``python -m module --worker name *args`` in its own process: its JSON line, or {"failed": why}."""
    command = [sys.executable, "-m", module, "--worker", name, *args]
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, env=worker_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"worker {name} timed out after {timeout:g} s", file=sys.stderr)
        return {"failed": f"timed out after {timeout:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            out = json.loads(lines[-1])
        except json.JSONDecodeError:
            out = None
        if isinstance(out, dict):
            return out
        print(f"worker {name} printed no JSON result: {lines[-1][:200]}", file=sys.stderr)
        return {"failed": f"no JSON result: {lines[-1][:200]}"}
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"worker {name} failed (exit {done.returncode}): {tail}", file=sys.stderr)
    return {"failed": f"exit {done.returncode}: {tail}"}


@dataclass
class Rounds:
    """What ``run_rounds`` saw.

    status  {name: {"available": True, "info": {...}}} if it ran at least once, else
            {"available": False, "reason": why}; a failed round of a contestant that ran is listed
            in its "failures" ([{"round": r, "reason": why}])
    runs    {name: [the worker's JSON plus {"round": r}, one per round it ran, in round order]}
    """

    status: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, list[dict]] = field(default_factory=dict)

    def any_ran(self) -> bool:
        return any(s["available"] for s in self.status.values())


def run_rounds(module: str, names: Sequence[str], args: Sequence[str], rounds: int, *,
               before_round: Callable[[int], None] | None = None, timeout: float = WORKER_TIMEOUT_S,
               worker: Callable[..., dict] = run_worker) -> Rounds:
    """Run every contestant once per round, ``rounds`` rounds, in ``rotated`` order; ``before_round(r)`` first.

    ``worker(module, name, args, timeout=...)`` runs one (``run_worker``; the tests pass a fake).
    """
    runs: dict[str, list[dict]] = {name: [] for name in names}
    info: dict[str, dict] = {}
    failures: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(rounds):
        if before_round is not None:
            before_round(r)
        for name in rotated(list(names), r):
            print(f"round {r + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            out = worker(module, name, args, timeout=timeout)
            if "unavailable" in out or "failed" in out:
                failures[name].append({"round": r + 1, "reason": out.get("unavailable") or out["failed"]})
                continue
            info.setdefault(name, out.get("info", {}))
            runs[name].append({**out, "round": r + 1})
    status = {}
    for name in names:
        if name in info:
            status[name] = {"available": True, "info": info[name]}
            if failures[name]:
                status[name]["failures"] = failures[name]
        else:
            status[name] = {"available": False,
                            "reason": failures[name][0]["reason"] if failures[name] else "did not run"}
    return Rounds(status, runs)


def best_round(runs: Sequence[dict], key: str) -> dict:
    """The run with the least ``key`` (a time): noise on a shared machine only ever adds time."""
    if not runs:
        raise ValueError("best_round: no runs")
    return min(runs, key=lambda run: run[key])


def ratio_to(seconds: dict[str, float], reference: str) -> dict[str, float]:
    """{name: seconds[name] / seconds[reference]} for each miniconv contestant; {} when the reference has no time."""
    ref = seconds.get(reference)
    if not ref:
        return {}
    return {name: t / ref for name, t in seconds.items() if name.startswith(MINICONV) and name != reference}


def ratios(seconds: dict[str, float], references: Sequence[str]) -> dict[str, float]:
    """{"miniconv-x/ref": ratio} for each miniconv contestant (in ``seconds``' order) and each reference present."""
    found = {ref: ratio_to(seconds, ref) for ref in references}
    return {f"{name}/{ref}": found[ref][name] for name in seconds for ref in references if name in found[ref]}


def label(name: str, labels: dict[str, str]) -> str:
    """How a table names a contestant: ``labels[name]``, else "miniconv-cpu" -> "miniconv cpu"."""
    return labels.get(name, name.replace(MINICONV_PREFIX, "miniconv "))


def warn_if_blas_set(command: str) -> None:
    """Say on stderr when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set: BLAS runs slower with them."""
    were_set = [name for name, value in blas_env().items() if value is not None]
    if were_set:
        print(f"warning: {', '.join(were_set)} set: BLAS runs slower; for real numbers run "
              f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE {command}`", file=sys.stderr)


def write_results(out: Path, stem: str, data: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``out/stem.json`` (``data``) and ``out/stem.md`` (``markdown``), each atomically; their paths."""
    from miniconv.saving import atomic_write  # here, not at the top: workers never load miniconv for this

    paths = Path(out) / f"{stem}.json", Path(out) / f"{stem}.md"
    for path, text in zip(paths, (json.dumps(data, indent=2) + "\n", markdown)):
        atomic_write(path, lambda handle, text=text: handle.write(text.encode()))
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return paths


# --- the worker ----------------------------------------------------------------------------------


def worker_main(name: str, measure: Callable[[], dict]) -> int:
    """A worker's entry: print ``measure()`` plus {"contestant": name} as one JSON line, or the
    reason ``measure`` raised ``Unavailable``; other exceptions propagate (the process fails)."""
    try:
        result = measure()
    except Unavailable as error:
        result = {"unavailable": str(error)}
    print(json.dumps({"contestant": name, **result}), flush=True)
    return 0
