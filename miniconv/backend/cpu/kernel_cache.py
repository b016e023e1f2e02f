"""Numba's on-disk cache of this package's kernels, dropped whenever any of their sources changes.

Numba invalidates a cached kernel when its own source file changes, but not when a kernel it calls,
compiled into it, changes in another file (numba/numba#8396, not merged as of Numba 0.68). The
kernels here call each other across files (``depthwise_kernels`` calls ``depthwise_rows``' row
loops, for example), so after an edit of ``depthwise_rows.py`` alone the cached
``depthwise_kernels`` went on running the old row loops: measured here, a 2x slower fused forward
that no source file contained any more. Students who edit a kernel and see no change, and a ``git
pull`` that changes one file, meet the same. So, once per process, before any kernel is loaded:

    digest = sha256 over every *.py file of this package (names and contents, sorted by name)
    if digest != the one stored beside the cache: delete this package's cached kernels (the
        ``<module>.*.nbi`` / ``.nbc`` files of its modules), then store digest (atomically)

The cache directory is the one Numba itself picks for these files (``__pycache__`` beside them,
``NUMBA_CACHE_DIR``, or the user-wide fallback). Another process running kernels meanwhile only
loses entries it then compiles again: Numba treats an entry whose file has gone as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from numba import njit

PACKAGE_DIR = Path(__file__).resolve().parent
STAMP_NAME = "miniconv-kernel-sources.sha256"
CACHE_SUFFIXES = (".nbi", ".nbc")


def sources_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 (hex) over the names and contents of package_dir's *.py files, sorted by name."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@njit(cache=True)
def _probe():
    """A cached kernel of this package's directory: where Numba caches it, it caches them all."""
    return 0


def numba_cache_dir() -> Path | None:
    """The directory Numba caches this package's kernels in (``_probe``'s, as Numba chose it), or None
    if it does not cache them (a Numba whose dispatcher keeps its cache elsewhere also gives None,
    and then nothing is dropped)."""
    cache = getattr(_probe, "_cache", None)
    path = getattr(cache, "cache_path", None)
    return Path(path) if path else None


def drop_if_sources_changed(cache_dir: Path, package_dir: Path = PACKAGE_DIR) -> bool:
    """Delete package_dir's modules' cached kernels in cache_dir if the sources' digest is not the one
    stored there (or none is), then store the digest; True if anything was dropped."""
    stamp = cache_dir / STAMP_NAME
    digest = sources_digest(package_dir)
    with contextlib.suppress(OSError):
        if stamp.read_text().strip() == digest:
            return False
    modules = {path.stem for path in package_dir.glob("*.py")}
    dropped = False
    for path in cache_dir.glob("*.nb?"):
        if path.suffix in CACHE_SUFFIXES and path.name.split(".", 1)[0] in modules:
            with contextlib.suppress(FileNotFoundError):  # another process dropped it first
                path.unlink()
                dropped = True
    _write_atomically(stamp, digest + "\n")
    return dropped


def _write_atomically(path: Path, text: str) -> None:
    """path's content becomes text, never half-written: a temporary file beside it, then a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def drop_stale_kernels() -> bool:
    """``drop_if_sources_changed`` on Numba's cache directory for this package; False where Numba has
    none for it, or where the directory cannot be written to."""
    cache_dir = numba_cache_dir()
    if cache_dir is None:
        return False
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return drop_if_sources_changed(cache_dir)
    except OSError:
        return False
