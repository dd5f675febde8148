"""Atomic output: write to a temporary sibling, then rename into place.

A crash mid-write never leaves a half-written product under the final name, and a rerun that
fails leaves the previous good product untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from lwa_common.errors import LwaError

__all__ = ["atomic_path", "temporary_folder", "write_in_progress", "WSCLEAN_SCRATCH_PREFIX", "check_output", "make_dirs", "remove_created", "forget_created",
           "check_writable_folder", "user_cache_dir"]

_created: list[Path] = []  # folders make_dirs created in this run, top-most first
# lwa-image's scratch folders in a product folder (wsclean's files; products renamed out as they finish)
WSCLEAN_SCRATCH_PREFIX = ".wsclean-"


def write_in_progress(name: str) -> bool:
    """Whether a folder named `name` holds a write still in progress: `atomic_path`'s
    `.<name>.<random>.tmp` or lwa-image's `.wsclean-*` scratch (a reader of a run waits for both)."""
    return name.startswith(".") and (name.endswith(".tmp") or name.startswith(WSCLEAN_SCRATCH_PREFIX))


def user_cache_dir() -> Path:
    """The pipeline's folder in the user cache ($XDG_CACHE_HOME or ~/.cache, then lwa-pipe): the
    beam file, the casarc of DP3, the Earth-orientation table (`lwa_common.altaz`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lwa-pipe"


def check_output(path: str | Path, *, overwrite: bool) -> Path:
    """Fail before work when `path` exists (without --overwrite) or its folder cannot be made or written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LwaError(f"output exists: {path} (use --overwrite to replace it)")
    check_writable_folder(path.parent if str(path.parent) else Path("."))
    return path


def check_writable_folder(folder: str | Path) -> Path:
    """Fail when `folder` cannot be created or written: its nearest existing ancestor is a file or read-only."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise LwaError(f"output folder {folder} cannot be created: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise LwaError(f"output folder is not writable: {existing}")
    return Path(folder)


def make_dirs(path: str | Path) -> Path:
    """`mkdir -p` that remembers the folders it created, so a failed run removes them (`remove_created`)."""
    path = Path(path)
    check_writable_folder(path)
    missing = []
    p = path.absolute()
    while not p.exists() and not p.is_symlink() and p.parent != p:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    _created.extend(reversed(missing))
    return path


def remove_created() -> None:
    """Remove the folders `make_dirs` created in this run, with what is in them (the run failed)."""
    while _created:
        shutil.rmtree(_created.pop(0), ignore_errors=True)


def forget_created() -> None:
    """Start a run: folders created by an earlier run in this process are that run's products."""
    _created.clear()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, directory: bool = False, scratch: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`.

    Works for files and for directories (an MS). An existing `path` is replaced only after the new
    one is complete. `scratch`: a private temporary folder the caller already holds (made with
    `temporary_folder` in `path`'s folder, so on the same file system, and removed by its owner
    with whatever a failed write left in it; each product name once per scratch folder); the
    temporary is written there instead of in a folder made and removed for this one product. A
    run that writes many products (24 pilot snapshots out of wsclean's scratch folder) so saves a
    mkdir and an rmtree per product.
    """
    path = Path(path)
    make_dirs(path.parent)
    if scratch is not None:
        yield from _swap_in(scratch / f".part.{path.name}", path)
        return
    suffix = "".join(path.suffixes) or ""
    with temporary_folder(path.parent, prefix=f".{path.stem}.", suffix=".tmp") as tmp:
        yield from _swap_in(tmp / f"out{suffix}" if not directory else tmp / path.name, path)


def _swap_in(target: Path, path: Path) -> Iterator[Path]:
    """Yield `target` to be written; then put it at `path` (interrupts held)."""
    yield target
    if not target.exists():
        raise LwaError(f"nothing was written for {path}")
    with _interrupts_held():
        _replace(target, path)


@contextlib.contextmanager
def temporary_folder(parent: str | Path, *, prefix: str, suffix: str = "") -> Iterator[Path]:
    """A new private folder in `parent` (`tempfile.mkdtemp`), removed with what is in it on exit.

    SIGINT and SIGTERM are held while it is made and while it is removed, so an interrupt (Ctrl-C,
    scancel) can never land between the folder existing and the cleanup that owns it.
    """
    tmp = None
    try:
        with _interrupts_held():
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
        yield tmp
    finally:
        if tmp is not None:
            with _interrupts_held():
                shutil.rmtree(tmp, ignore_errors=True)


def _replace(new: Path, path: Path) -> None:
    """Put `new` at `path`; an existing `path` (file or folder) is removed only once `new` is in place."""
    if not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for a few file-system calls that must finish together (make the
    temporary and remember it, swap the product in, remove the temporary); a signal that arrives
    meanwhile is handled, with the handler it would have met, as soon as they are done.

    Held in Python, not with `pthread_sigmask`: a process with other threads (BLAS, casacore, a
    thread pool) gets a signal on any thread that does not block it, and Python then runs its
    handler in the main thread at once, mask or not. Only the main thread handles signals, so
    elsewhere this holds nothing and need not.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: pending.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in pending[:1]:  # the first is enough: it ends the run
            _deliver(sig, previous[sig])


def _deliver(sig: int, handler) -> None:
    """Handle a held signal now, as it would have been handled when it came."""
    if callable(handler):
        handler(sig, None)  # a Python handler (run_main's raises): its exception is raised here
    elif handler in (signal.SIG_DFL, None):
        signal.raise_signal(sig)  # the default action (ends the process)

