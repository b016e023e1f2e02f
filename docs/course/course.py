"""What the course notebooks share: quick mode, where the cats-vs-dogs photos are, figure settings.

    from course import QUICK, pick, cats_dogs_dir
    epochs = pick(full=30, quick=1)          # 30 normally, 1 under MINICONV_QUICK=1

Quick mode (``MINICONV_QUICK=1``) is for CI: every notebook runs top to bottom with few images and
one or two epochs, to show that the code works, not what it learns. The saved outputs are full runs.
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK = os.environ.get("MINICONV_QUICK", "0").strip().lower() not in ("", "0", "false", "no")

CATS_DOGS_VARIABLE = "MINICONV_CATS_DOGS"
CATS_DOGS_SHARED = Path("shared") / "data" / "cats_and_dogs_small"


def pick(full, quick):
    """``full`` in a normal run, ``quick`` under ``MINICONV_QUICK=1``."""
    return quick if QUICK else full


def cats_dogs_dir() -> Path:
    """The cats-vs-dogs photos (``train/`` and ``validation/``, each with ``cats/`` and ``dogs/``).

    ``$MINICONV_CATS_DOGS`` if set; otherwise ``shared/data/cats_and_dogs_small`` beside the
    repository (``../shared`` from its root) or beside any folder above this one. Nothing is
    downloaded: a missing folder is an error saying where it was looked for.
    """
    given = os.environ.get(CATS_DOGS_VARIABLE)
    if given:
        candidates = [Path(given).expanduser()]
    else:
        here = Path.cwd().resolve()
        candidates = [parent / CATS_DOGS_SHARED for parent in (here, *here.parents)]
    for folder in candidates:
        if (folder / "train").is_dir() and (folder / "validation").is_dir():
            return folder
    where = f"${CATS_DOGS_VARIABLE} = {given}" if given else f"{CATS_DOGS_SHARED} beside {Path.cwd()} or its parents"
    raise FileNotFoundError(
        f"The cats-vs-dogs photos were not found ({where}). This notebook needs the folder that holds train/ "
        f"and validation/, each with cats/ and dogs/ inside (Chollet's 2,000 + 1,000 image subset of Kaggle's "
        f"Dogs vs. Cats). Put it at ../shared/data/cats_and_dogs_small beside the repository, or set "
        f"{CATS_DOGS_VARIABLE}=/path/to/cats_and_dogs_small before starting Jupyter.")


def models_dir() -> Path:
    """Where notebooks leave trained models for later notebooks (``models/``, ``models/quick/`` in quick
    mode, so a quick run never replaces a full one); not under version control."""
    folder = Path(__file__).resolve().parent / "models" / ("quick" if QUICK else "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def setup_figures(dpi: int = 72) -> None:
    """Inline figures at a modest resolution, so the saved notebooks stay small."""
    import matplotlib

    try:  # in a notebook: inline figures from the start, so a returned Figure is drawn as a picture
        from IPython import get_ipython

        if get_ipython() is not None:
            get_ipython().run_line_magic("matplotlib", "inline")
    except ImportError:
        pass
    matplotlib.rcParams["figure.dpi"] = dpi
    matplotlib.rcParams["savefig.dpi"] = dpi


def mode_line() -> str:
    """One line saying which mode ran, for the top of every notebook's output."""
    return ("QUICK mode (MINICONV_QUICK=1): few images and epochs; the numbers below only show that the code runs"
            if QUICK else "Full mode: the numbers below are the lesson's results")


def as_jpeg(figure, quality: int = 80):
    """The figure as a JPEG picture for the notebook to show: photos and feature-map grids are many
    times smaller as JPEG than as PNG, which keeps the saved notebooks small."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", pil_kwargs={"quality": quality})
    plt.close(figure)  # a pyplot figure would otherwise be drawn a second time, as PNG, at the cell's end
    return Image(data=buffer.getvalue(), format="jpeg")
