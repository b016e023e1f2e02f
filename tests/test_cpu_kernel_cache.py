"""``backend.cpu.kernel_cache``: Numba's on-disk cache of the cpu kernels is dropped when any kernel
source changes, since Numba itself misses an edit of a kernel that another file's kernel calls.

The end-to-end test builds a two-file package of cached kernels in a temporary directory (``kern.g``
calls ``rows.f``), edits ``rows.py`` between two processes, and shows both sides: without the check
the second process runs the old ``f`` compiled into ``g``'s cache; with it, the new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from miniconv.backend.cpu import depthwise_rows, kernel_cache


def _touch(path: Path, text: str) -> None:
    path.write_text(text)


def test_cache_files_of_the_package_are_dropped_once_per_change(tmp_path):
    package, cache = tmp_path / "package", tmp_path / "cache"
    package.mkdir()
    cache.mkdir()
    _touch(package / "rows.py", "A = 1\n")
    _touch(package / "kern.py", "B = 2\n")

    def fill_cache():
        names = ["rows.f-3.py311.nbi", "rows.f-3.py311.1.nbc", "kern.g-7.py311.nbi", "other.h-1.py311.nbi", "notes.txt"]
        for name in names:
            _touch(cache / name, "x")

    fill_cache()
    assert kernel_cache.drop_if_sources_changed(cache, package)  # no stamp yet: the package's entries go
    assert sorted(p.name for p in cache.iterdir()) == ["miniconv-kernel-sources.sha256", "notes.txt",
                                                       "other.h-1.py311.nbi"]
    assert (cache / kernel_cache.STAMP_NAME).read_text().strip() == kernel_cache.sources_digest(package)

    fill_cache()
    assert not kernel_cache.drop_if_sources_changed(cache, package)  # nothing changed: everything stays
    assert (cache / "rows.f-3.py311.1.nbc").exists() and (cache / "kern.g-7.py311.nbi").exists()

    _touch(package / "rows.py", "A = 3\n")  # one source edited: every module's entries go
    assert kernel_cache.drop_if_sources_changed(cache, package)
    assert not (cache / "kern.g-7.py311.nbi").exists() and (cache / "other.h-1.py311.nbi").exists()
    assert not list(cache.glob("*.tmp"))


def test_the_digest_covers_names_and_contents(tmp_path):
    _touch(tmp_path / "a.py", "x = 1\n")
    first = kernel_cache.sources_digest(tmp_path)
    _touch(tmp_path / "a.py", "x = 2\n")
    second = kernel_cache.sources_digest(tmp_path)
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert len({first, second, kernel_cache.sources_digest(tmp_path)}) == 3


def test_the_probe_is_cached_where_the_kernels_are():
    """The directory checked is the one Numba uses for the package's kernels (a dispatcher's own)."""
    assert kernel_cache.numba_cache_dir() == Path(depthwise_rows.dot9_row._cache.cache_path)


def test_an_edit_of_a_called_kernel_reaches_its_caller(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    shutil.copy(kernel_cache.__file__, package / "kernel_cache.py")
    _touch(package / "__init__.py", textwrap.dedent("""\
        import os
        if os.environ.get("CHECK_SOURCES") == "1":
            from .kernel_cache import drop_stale_kernels
            drop_stale_kernels()
        """))
    _touch(package / "kern.py", textwrap.dedent("""\
        from numba import njit
        from .rows import f

        @njit(cache=True)
        def g():
            return f() + 100
        """))

    def run(value: int, check: bool) -> int:
        _touch(package / "rows.py", f"from numba import njit\n\n@njit(cache=True)\ndef f():\n    return {value}\n")
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "CHECK_SOURCES": "1" if check else "0"}
        env.pop("NUMBA_CACHE_DIR", None)
        out = subprocess.run([sys.executable, "-c", "from pkg import kern; print(kern.g())"], env=env,
                             capture_output=True, text=True, check=True, timeout=120)
        return int(out.stdout.split()[-1])

    assert run(1, check=False) == 101
    assert run(22, check=False) == 101  # Numba alone: g's cache still holds the old f
    assert run(333, check=True) == 433  # the check drops the package's cache: the new f
    assert run(333, check=True) == 433  # and keeps it while nothing changes
    assert list(package.glob("__pycache__/kern.g-*.nbc"))


def test_a_failed_stamp_write_leaves_the_old_stamp_and_no_temporary(tmp_path, monkeypatch):
    """The digest is written beside the stamp and renamed over it: a failure before the rename (a full
    disk, a kill) leaves the previous stamp whole and removes the half-written file."""
    stamp = tmp_path / kernel_cache.STAMP_NAME
    stamp.write_text("old digest\n")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(kernel_cache.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        kernel_cache._write_atomically(stamp, "new digest\n")
    assert stamp.read_text() == "old digest\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [kernel_cache.STAMP_NAME]


def test_no_cache_directory_or_an_unwritable_one_drops_nothing(tmp_path, monkeypatch):
    """Where Numba keeps no cache for the package, or its directory cannot be made (here its parent
    is a file), the check does nothing and says so; importing miniconv must not fail over it."""
    monkeypatch.setattr(kernel_cache, "numba_cache_dir", lambda: None)
    assert kernel_cache.drop_stale_kernels() is False
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setattr(kernel_cache, "numba_cache_dir", lambda: blocker / "cache")
    assert kernel_cache.drop_stale_kernels() is False
    assert blocker.read_text() == ""
