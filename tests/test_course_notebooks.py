"""The course notebooks' saved outputs (docs/course): full-mode runs only, each with the command that
made it, and the README's list of them. Running the notebooks is CI's separate quick-mode step
(``MINICONV_QUICK=1 python -m pytest --nbmake docs/course``); these tests read the saved files.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

COURSE = Path(__file__).resolve().parents[1] / "docs" / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
QUICK_LINE = "QUICK mode (MINICONV_QUICK=1)"  # what course.mode_line() prints in quick mode


def load_execute():
    spec = importlib.util.spec_from_file_location("course_execute", COURSE / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def output_texts(notebook: dict) -> list[str]:
    texts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    texts.append("".join(value) if isinstance(value, list) else value)
    return texts


def test_the_course_has_its_ten_notebooks():
    names = {path.stem for path in NOTEBOOKS}
    assert len(names) == 10
    assert {f"kaggle_{i}" for i in range(1, 7)} | {f"chollet_5_{i}" for i in range(1, 5)} == {
        re.match(r"(kaggle_\d|chollet_5_\d)", name).group(1) for name in names}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_are_a_stamped_full_run(path):
    """A notebook with outputs holds a full run: no quick-mode line, and the note made by execute.py
    naming this notebook's own command (never a quick run's outputs saved by hand)."""
    notebook = read(path)
    texts = output_texts(notebook)
    if not texts:
        pytest.skip("no saved outputs")
    assert not any(QUICK_LINE in text for text in texts), "quick-mode outputs saved"
    stamps = [source(c) for c in notebook["cells"] if c["cell_type"] == "markdown"
              and c.get("metadata", {}).get(load_execute().STAMP_KEY)]
    assert len(stamps) == 1, "no note (or several) saying which command made the outputs"
    assert f"`python docs/course/execute.py docs/course/{path.name}`" in stamps[0]
    assert re.search(r"took \d+\.\d min", stamps[0])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_readme_links_each_notebook_and_its_saved_run(path):
    readme = (COURSE / "README.md").read_text(encoding="utf-8")
    table, saved = readme.split("## The saved runs", 1)
    assert f"]({path.name})" in table
    if output_texts(read(path)):
        assert f"]({path.name})" in saved, "a notebook with saved outputs is missing from 'The saved runs'"


def test_stamp_is_written_once_after_the_title_and_rewritten_in_place():
    nbformat = pytest.importorskip("nbformat")
    execute = load_execute()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                               nbformat.v4.new_code_cell("print(1)")])
    command = execute.command_for(COURSE / "kaggle_3_maximum_pooling.ipynb")
    assert command == "python docs/course/execute.py docs/course/kaggle_3_maximum_pooling.ipynb"

    execute.stamp(notebook, command, 95.0, date="2026-12-06", machine="2 CPU cores (test)")
    assert [c.cell_type for c in notebook.cells] == ["markdown", "markdown", "code"]
    assert notebook.cells[1].metadata[execute.STAMP_KEY] is True
    assert f"`{command}`" in notebook.cells[1].source
    assert "2026-12-06" in notebook.cells[1].source and "took 1.6 min on 2 CPU cores (test)" in notebook.cells[1].source

    execute.stamp(notebook, command, 30.0, date="2026-12-07", machine="elsewhere")
    assert len(notebook.cells) == 3
    assert "took 0.5 min on elsewhere" in notebook.cells[1].source and "2026-12-06" not in notebook.cells[1].source
