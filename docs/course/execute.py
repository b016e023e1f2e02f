"""Run course notebooks top to bottom and save their outputs in place (how the saved outputs were made).

    python docs/course/execute.py docs/course/chollet_5_1_mnist.ipynb        # full mode, saves the outputs
    MINICONV_QUICK=1 python docs/course/execute.py docs/course/*.ipynb       # quick mode: runs, saves nothing

Each notebook runs in a fresh Python kernel with its own folder as the working directory (as
``pytest --nbmake`` runs it), with no time limit, and what it prints (the epochs) is echoed here as
it comes, so a long run can be watched. A notebook is written back only after every cell ran, and
never in quick mode: the saved outputs are full runs. A saved notebook gets a note, near its top,
with the command that made its outputs, the date and the wall time (``stamp``). Needs nbclient and
ipykernel (extra ``dev``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

#: the metadata key of the markdown cell that says how the saved outputs were made
STAMP_KEY = "miniconv_saved_run"


def command_for(path: Path) -> str:
    """The command that runs ``path`` in full mode, as typed from the repository's root."""
    try:
        shown = path.resolve().relative_to(Path(__file__).resolve().parents[2])
    except ValueError:
        shown = path
    return f"python docs/course/execute.py {shown.as_posix()}"


def describe_machine() -> str:
    """Like "2 cores of an AMD EPYC (x86_64)": what the wall time was measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cores} CPU cores ({model}, the cpu backend)"


def stamp_text(command: str, seconds: float, date: str, machine: str) -> str:
    return (f"**Saved outputs.** The outputs below come from a full-mode run, `{command}`, on {date}; "
            f"it took {seconds / 60:.1f} min on {machine}.")


def stamp(notebook, command: str, seconds: float, date: str | None = None, machine: str | None = None) -> None:
    """Write (or rewrite) the note saying how the outputs were made: a markdown cell marked with
    ``STAMP_KEY``, placed after the title cell the first time."""
    import nbformat

    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    machine = machine or describe_machine()
    text = stamp_text(command, seconds, date, machine)
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.metadata.get(STAMP_KEY):
            cell.source = text
            return
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata[STAMP_KEY] = True
    notebook.cells.insert(1 if notebook.cells else 0, cell)


def execute(path: Path, save: bool) -> float:
    import nbformat
    from nbclient import NotebookClient

    class Echo(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream":
                print(msg["content"]["text"], end="", flush=True)
            return super().output(outs, msg, display_id, cell_index)

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    Echo(notebook, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    if save:
        stamp(notebook, command_for(path), seconds)
        nbformat.write(notebook, path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    quick = os.environ.get("MINICONV_QUICK", "0").strip().lower() not in ("", "0", "false", "no")
    for path in args.notebooks:
        print(f"=== {path} ({'quick mode, not saved' if quick else 'full mode'})", flush=True)
        seconds = execute(path.resolve(), save=not quick)
        print(f"=== {path}: {seconds / 60:.1f} min" + ("" if quick else ", outputs saved"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
