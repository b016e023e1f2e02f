"""DIR/results.jsonl: every finished run of a study, one JSON object per line, appended as it finishes.

Nothing is lost and nothing is counted twice:

- ``append`` writes one whole line, flushes and fsyncs it before returning: a run the study has
  been told of survives Ctrl-C, kill -9 or a power cut right after.
- A line cut short (the study killed mid-write) has no newline at its end: ``repair`` cuts it
  off before the next append, so it can never glue onto a new line; ``read`` ignores it.
- Every line carries the study's ``settings`` (recipe, epochs, batch size, recipe options);
  ``read`` refuses a file holding runs of other settings (another study), so a restart with
  other options cannot mix them.
- Runs are keyed by (engine, seed): the first line of a key counts, later ones (a run finished
  twice, e.g. rerun after its worker died on the way back) are counted as duplicates and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..recipes.base import UsageError


@dataclass
class Results:
    """What a results file holds: ``runs[(engine, seed)]`` and what was ignored on reading."""

    runs: dict[tuple[str, int], dict] = field(default_factory=dict)
    duplicates: int = 0
    partial_line: bool = False
    unreadable_lines: list[int] = field(default_factory=list)


def read(path: Path, settings: dict | None = None) -> Results:
    """The file's runs, deduplicated; ``UsageError`` if a run's settings differ from ``settings`` (when given)."""
    found = Results()
    if not path.exists():
        return found
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # no newline at the end: a write the study did not finish
        found.partial_line = True
    for number, line in enumerate(lines, start=1):
        try:
            run = json.loads(line)
            key = (run["engine"], int(run["seed"]))
        except (ValueError, KeyError, TypeError):
            found.unreadable_lines.append(number)
            continue
        if settings is not None and run.get("settings") != settings:
            raise UsageError(f"{path} holds runs of another study (line {number}: {describe(run.get('settings'))}; "
                             f"this one: {describe(settings)}); use another --out, or the same options")
        if key in found.runs:
            found.duplicates += 1
        else:
            found.runs[key] = run
    return found


def describe(settings) -> str:
    """A study's settings as short text: "mnist, epochs 5, batch_size 64, limit 600"."""
    if not isinstance(settings, dict):
        return "no settings"
    return ", ".join([str(settings.get("recipe"))] + [f"{k} {v}" for k, v in settings.items()
                                                      if k != "recipe" and v is not None])


def repair(path: Path) -> bool:
    """Cut off a last line without its newline (an unfinished write); True if there was one."""
    if not path.exists():
        return False
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return False
        handle.truncate(data.rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def append(path: Path, run: dict) -> None:
    """Append ``run`` as one line; returns once it is on disk (flushed and fsynced)."""
    line = (json.dumps(run, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        while written < len(line):  # a regular file takes it whole; a short write continues where it stopped
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
