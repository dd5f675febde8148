"""Run CASA (casatools / casatasks) offline, with its log kept out of the working directory.

CASA 6 reads its configuration through `casaconfig` when `casatools` is first imported: a *site*
config named by the environment variable ``CASASITECONFIG`` (a fully qualified path), then the
user's ``~/.casa/config.py``. Left alone it would try to download measures and data tables at
import time (no network here, nor on a compute node), write ``casa-<time>.log`` into the current
folder and create ``~/.casa``. So before the first import we

* write a site config into a private cache folder (``$LWA_CALIB_CACHE``, else
  ``$XDG_CACHE_HOME/lwa-calib``, else ``~/.cache/lwa-calib``) that turns both auto-updates off, points
  ``measurespath``/``datapath`` at the data of the ``casadata`` wheel and sends the start-up log to
  that folder, and set ``CASASITECONFIG`` to it;
* import with ``--noconfig`` in ``sys.argv`` (casaconfig parses ``sys.argv``, restored right after) so
  that a user config cannot switch the downloads back on, and so that our own ``--config FILE``
  option is not taken for casaconfig's ``--configfile``.

The user's ``~/.casa`` is never read nor written. `casa_log(path)` sends the CASA log of one run
to a file of our choosing (the output folder), and back to the cache afterwards. CASA's C++ code
also prints to the terminal (solver notes on stdout, SEVERE messages on stderr) whatever its log
settings; `run_task` runs a task with file descriptors 1 and 2 sent to the CASA log file, so that
our stdout carries only results and a failure stays one line on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lwa_common.errors import LwaError

__all__ = ["cache_dir", "site_config_path", "casatasks", "casatools", "casa_log", "run_task", "captured_output"]

log = logging.getLogger(__name__)

_SITE_CONFIG = """\
# Written by lwa-calib: CASA configured fully offline (see lwa_calib.casa_env).
measurespath = {measures!r}
datapath = [{measures!r}]
measures_auto_update = False
data_auto_update = False
skipnetworkcheck = True
nologfile = False
logfile = {logfile!r}
cachedir = {cache!r}
startupfile = {startup!r}
nogui = True
nologger = True
log2term = False
casaconfig_verbose = 0
"""

_MODULES: dict[str, Any] = {}


def cache_dir() -> Path:
    """Private folder for the CASA site config and the start-up log."""
    env = os.environ.get("LWA_CALIB_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "lwa-calib"
    base.mkdir(parents=True, exist_ok=True)
    return base.resolve()


def _casadata_path() -> str:
    try:
        import casadata
    except ImportError:
        raise LwaError("the 'casadata' package is not installed (pip install casadata): CASA needs its "
                       "measures tables offline") from None
    path = Path(casadata.datapath)
    if not (path / "geodetic").is_dir():
        raise LwaError(f"casadata at {path} has no geodetic/ measures folder")
    return str(path)


def site_config_path() -> Path:
    """Write (if changed) and return the offline CASA site config."""
    cache = cache_dir()
    text = _SITE_CONFIG.format(
        measures=_casadata_path(),
        logfile=str(cache / "casa-startup.log"),
        cache=str(cache),
        startup=str(cache / "startup.py"),
    )
    path = cache / "casasiteconfig.py"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _import() -> None:
    if _MODULES:
        return
    os.environ["CASASITECONFIG"] = str(site_config_path())
    saved = list(sys.argv)
    sys.argv = [saved[0] if saved else "lwa-calib", "--noconfig"]
    try:
        import casatasks as _tasks
        import casatools as _tools
    except ImportError as err:
        raise LwaError(f"CASA is not importable ({err}); install casatools and casatasks") from None
    finally:
        sys.argv = saved
    _MODULES["casatasks"] = _tasks
    _MODULES["casatools"] = _tools
    log.debug("CASA %s configured offline with %s", _tools.version_string(), os.environ["CASASITECONFIG"])


def casatasks() -> Any:
    """The `casatasks` module, configured offline (imported on first use)."""
    _import()
    return _MODULES["casatasks"]


def casatools() -> Any:
    """The `casatools` module, configured offline (imported on first use)."""
    _import()
    return _MODULES["casatools"]


@contextlib.contextmanager
def captured_output(path: str | Path) -> Iterator[None]:
    """Send what C/C++ code writes to file descriptors 1 and 2 to `path` (appended) for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


def _first_severe(logfile: Path, offset: int) -> str:
    """The first SEVERE message CASA logged after byte `offset` (leap-second notes skipped)."""
    try:
        with open(logfile, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[1].strip() == "SEVERE" and "TAI_UTC" not in line and "UTC could be" not in line \
                and "table is updated" not in line:
            return parts[3].strip().removeprefix("Caught exception:").strip()
    return ""


def run_task(task: str, **kwargs: Any) -> Any:
    """Run casatasks.`task`(**kwargs), logged at INFO, terminal output captured into the CASA log.

    A task that raises becomes an `LwaError` carrying CASA's first SEVERE message.
    """
    tasks = casatasks()
    log.info("casatasks.%s(%s)", task, ", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
    target = Path(tasks.casalog.logfile() or cache_dir() / "casa-startup.log")
    offset = target.stat().st_size if target.exists() else 0
    try:
        with captured_output(target):
            return getattr(tasks, task)(**kwargs)
    except RuntimeError as err:
        reason = _first_severe(target, offset) or (str(err).splitlines()[0] if str(err) else "error")
        raise LwaError(f"CASA {task} on {kwargs.get('vis', '?')} failed: {reason}") from None


@contextlib.contextmanager
def casa_log(path: str | Path) -> Iterator[Path]:
    """Send CASA's log to `path` while the block runs (then back to the cache folder)."""
    tasks = casatasks()
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = tasks.casalog.logfile()
    tasks.casalog.setlogfile(str(path))
    try:
        yield path
    finally:
        tasks.casalog.setlogfile(previous if previous else str(cache_dir() / "casa-startup.log"))
