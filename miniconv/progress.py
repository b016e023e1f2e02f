"""A Keras-style progress bar for ``fit`` / ``evaluate`` / ``predict``.

    Epoch 1/5
    469/469 ━━━━━━━━━━━━━━━━━━━━ 9s 19ms/step - accuracy: 0.9312 - loss: 0.2210 - val_accuracy: ...

verbose=1: the bar is redrawn in place (carriage return) at most every 0.1 s with the ETA, and
ends with the epoch's time; when the output is not a terminal only the final line is printed.
verbose=2: one line per epoch, no bar. verbose=0: nothing.
"""

from __future__ import annotations

import sys
import time


def resolve_verbose(verbose) -> int:
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if isinstance(verbose, bool):
        return int(verbose)
    if isinstance(verbose, int) and verbose in (0, 1, 2):
        return verbose
    raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")


def _format_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{round(seconds)}s"


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_logs(logs: dict) -> str:
    return "".join(f" - {key}: {value:.4f}" for key, value in sorted(logs.items()))


class ProgressBar:
    """``update(step, logs)`` after each step; ``finish(logs)`` once at the end."""

    WIDTH = 20

    def __init__(self, total: int, verbose: int, stream=None):
        self.total, self.verbose = total, verbose
        self.stream = stream or sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.last_length = 0

    def _line(self, step: int, logs: dict, final: bool) -> str:
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(step, 1)
        filled = self.WIDTH if final else int(self.WIDTH * step / max(self.total, 1))
        bar = "━" * filled + ("" if final else "─" * (self.WIDTH - filled))
        clock = _format_time(elapsed if final else per_step * (self.total - step))
        width = len(str(self.total))
        return f"{step:>{width}}/{self.total} {bar} {clock} {_format_per_step(per_step)}{format_logs(logs)}"

    def update(self, step: int, logs: dict) -> None:
        if self.verbose != 1 or not self.interactive:
            return
        now = time.perf_counter()
        if now - self.last_draw < 0.1 and step < self.total:
            return
        self.last_draw = now
        line = self._line(step, logs, final=False)
        self.stream.write("\r" + line + " " * max(0, self.last_length - len(line)))
        self.last_length = len(line)
        self.stream.flush()

    def finish(self, logs: dict) -> None:
        if self.verbose == 0:
            return
        if self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            per_step = elapsed / max(self.total, 1)
            line = f"{self.total}/{self.total} - {_format_time(elapsed)} - {_format_per_step(per_step)}{format_logs(logs)}"
        else:
            line = self._line(self.total, logs, final=True)
        prefix = "\r" if self.interactive and self.verbose == 1 else ""
        self.stream.write(prefix + line + " " * max(0, self.last_length - len(line)) + "\n")
        self.stream.flush()
