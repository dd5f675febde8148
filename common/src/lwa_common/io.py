"""Atomic output: write to a temporary sibling, then rename into place.

A crash mid-write never leaves a half-written product under the final name, and a rerun that
fails leaves the previous good product untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lwa_common.errors import LwaError

__all__ = ["atomic_path", "check_output", "atomic_copytree"]


def check_output(path: str | Path, *, overwrite: bool) -> Path:
    """Fail before work when `path` exists (without --overwrite) or its folder is not writable."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LwaError(f"output exists: {path} (use --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise LwaError(f"output folder is not writable: {parent}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`.

    Works for files and for directories (an MS). An existing `path` is replaced only after the new
    one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent))
    target = tmp / f"out{suffix}" if not directory else tmp / path.name
    try:
        yield target
        if not target.exists():
            raise LwaError(f"nothing was written for {path}")
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_copytree(src: str | Path, dst: str | Path) -> Path:
    """Copy a directory (an MS) to `dst` atomically."""
    with atomic_path(dst, directory=True) as tmp:
        shutil.copytree(src, tmp, symlinks=True)
    return Path(dst)
