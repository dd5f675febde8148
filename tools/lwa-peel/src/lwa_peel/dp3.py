"""Running DP3: find the executable, give it casacore measures data, write and run a parset.

DP3 (the `dp3` wheel's `DP3.py`, or a native `DP3`) runs as a subprocess with its own
environment: `OPENBLAS_NUM_THREADS=1` (DP3 threads itself; a threaded OpenBLAS inside it
oversubscribes and can stall) and `CASARCFILES` naming a casarc that points at casacore measures
data (`/usr/share/casacore/data` from the Debian casacore-data package, or the data bundled with
python-casacore). We never rely on the user's environment for either.

Every run writes its parset next to the products and logs the exact command at INFO, so a user can
rerun it by hand.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, user_cache_dir
from lwa_common.provenance import keep_tool_output

__all__ = [
    "Dp3Run",
    "find_dp3",
    "measures_dir",
    "casarc_path",
    "dp3_env",
    "parset_text",
    "write_parset",
    "run_dp3",
]

log = logging.getLogger(__name__)

_MEASURES_CANDIDATES = ("/usr/share/casacore/data", "/usr/local/share/casacore/data", "/opt/casacore/data")


def find_dp3() -> str:
    """Path of the DP3 executable: `$LWA_DP3`, `DP3.py` beside this Python, then `DP3.py` / `DP3` on PATH."""
    env = os.environ.get("LWA_DP3")
    if env:
        found = shutil.which(env)
        if not found:
            raise LwaError(f"LWA_DP3={env} is not an executable")
        return found
    beside = Path(sys.executable).parent / "DP3.py"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    for name in ("DP3.py", "DP3"):
        found = shutil.which(name)
        if found:
            return found
    raise LwaError("DP3 not found: install it with 'pip install dp3' (gives DP3.py) or set LWA_DP3")


def measures_dir() -> Path:
    """A casacore measures data folder (one holding `geodetic/`)."""
    candidates: list[Path] = []
    if os.environ.get("LWA_CASACORE_DATA"):
        candidates.append(Path(os.environ["LWA_CASACORE_DATA"]))
    candidates += [Path(p) for p in _MEASURES_CANDIDATES]
    spec = importlib.util.find_spec("casacore")
    if spec and spec.submodule_search_locations:
        candidates += [Path(p) / "data" for p in spec.submodule_search_locations]
    for path in candidates:
        if (path / "geodetic").is_dir():
            return path
    raise LwaError(
        "casacore measures data not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); install casacore-data or set LWA_CASACORE_DATA"
    )


def casarc_path() -> Path:
    """A casarc naming the measures data (written once into the user cache, atomically)."""
    data = measures_dir()
    text = f"measures.directory: {data}\n"
    path = user_cache_dir() / "casarc"
    try:
        if path.is_file() and path.read_text() == text:
            return path
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError as err:
        raise LwaError(f"cannot write the casarc for DP3 at {path}: {err.strerror}") from None
    return path


def dp3_env() -> dict[str, str]:
    """The variables DP3 needs on top of ours."""
    return {"OPENBLAS_NUM_THREADS": "1", "CASARCFILES": str(casarc_path())}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def parset_text(params: Mapping[str, object], *, comment: str = "") -> str:
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += [f"{key}={_value(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def write_parset(path: str | Path, params: Mapping[str, object], *, comment: str = "") -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(parset_text(params, comment=comment))
    return path


@dataclass(frozen=True)
class Dp3Run:
    command: list[str]
    env: dict[str, str]
    seconds: float
    iterations: tuple[int, ...]
    output: str

    @property
    def command_line(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"{env} {shlex.join(self.command)}"


def _error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if re.search(r"exception|error|cannot|could not|not found|failed", line, re.IGNORECASE):
            return line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_dp3(parset: str | Path, overrides: Sequence[str] = (), *, what: str = "DP3") -> Dp3Run:
    """Run `DP3 parset key=value ...`, log the command, raise LwaError (one line) on failure."""
    exe = find_dp3()
    env_extra = dp3_env()
    command = [exe, str(parset), *overrides]
    run_env = {**os.environ, **env_extra}
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env_extra.items()) + " " + shlex.join(command)
    log.info("running %s: %s", what, shown)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, env=run_env, capture_output=True, text=True, check=False)
    except OSError as err:
        raise LwaError(f"cannot run DP3 ({exe}): {err.strerror}") from None
    seconds = time.perf_counter() - t0
    output = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    keep_tool_output("dp3", shown.strip(), output)
    for line in output.splitlines():
        if line.strip():
            log.debug("DP3: %s", line.rstrip())
    if proc.returncode != 0:
        raise LwaError(f"{what} failed (exit {proc.returncode}, parset {parset}): {_error_line(output)}")
    iterations: tuple[int, ...] = ()
    match = re.search(r"Iterations taken:\s*\[([0-9,\s]*)\]", output)
    if match:
        iterations = tuple(int(v) for v in re.findall(r"\d+", match.group(1)))
    log.info("%s finished in %.1f s", what, seconds)
    return Dp3Run(command=command, env=env_extra, seconds=seconds, iterations=iterations, output=output)
