"""Run course notebooks top to bottom and save their outputs in place (how the saved outputs were made).

    python docs/course/execute.py docs/course/chollet_5_1_mnist.ipynb        # full mode, saves the outputs
    MINICONV_QUICK=1 python docs/course/execute.py docs/course/*.ipynb       # quick mode: runs, saves nothing

Each notebook runs in a fresh Python kernel with its own folder as the working directory (as
``pytest --nbmake`` runs it), with no time limit, and what it prints (the epochs) is echoed here as
it comes, so a long run can be watched. A notebook is written back only after every cell ran, and
never in quick mode: the saved outputs are full runs. Needs nbclient and ipykernel (extra ``dev``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


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
