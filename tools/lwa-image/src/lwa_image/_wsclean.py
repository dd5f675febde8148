"""Running wsclean safely and turning its products into self-describing lwa-pipe images.

wsclean writes many files next to its ``-name`` prefix (dirty, psf, model, residual, reordering
scratch). Each run therefore happens in a private temporary folder inside the output folder;
only the finished products are rewritten (with `lwa_common.fitsio.write_image`, atomically) under
their final names, and the folder is removed whatever happens. The exact command is logged at
INFO as run. The HISTORY of every product records a rerunnable form of it (`rerun_command`: the
same options with ``-name`` pointing at the output folder and the scratch ``-temp-dir`` dropped)
and the name wsclean gave that image, so a user can rerun it and find the file.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from lwa_common.config import Imaging
from lwa_common.errors import LwaError
from lwa_common.fitsio import read_image, write_image
from lwa_common.io import WSCLEAN_SCRATCH_PREFIX, make_dirs, temporary_folder
from lwa_common.provenance import keep_tool_output

__all__ = ["Timings", "wsclean_exe", "run_wsclean", "gridder_args", "rerun_command", "scratch_dir", "finalize_product",
           "product_name", "check_products", "wsclean_date_obs", "below_elevation"]

log = logging.getLogger(__name__)

TOOL = "lwa-image"


@dataclass
class Timings:
    """Wall-clock seconds spent in external tools vs in total (filled by the run_* functions)."""

    external_s: float = 0.0
    total_s: float = 0.0
    commands: list[str] = field(default_factory=list)

    @property
    def own_s(self) -> float:
        return max(self.total_s - self.external_s, 0.0)


def wsclean_exe() -> str:
    exe = shutil.which("wsclean")
    if exe is None:
        raise LwaError("wsclean not found on PATH (Debian: apt-get install wsclean)")
    return exe


GRIDDERS = {"wgridder": ["-use-wgridder"], "wstack": []}


def gridder_args(imaging: Imaging, environ: Mapping[str, str] | None = None, *, share: int = 1) -> list[str]:
    """wsclean's gridder, thread and memory options (shared by snapshots and science).

    The gridder and threads come from ``cfg.imaging``. Inside a Slurm job, wsclean would see the
    whole node (all its cores, all its memory) and size its buffers on it: its threads follow the
    job's ``SLURM_CPUS_PER_TASK`` (when ``imaging.threads`` is 0) and ``-abs-mem`` keeps it to
    ``imaging.slurm_mem_fraction`` of the job's ``SLURM_MEM_PER_NODE``, so the job is never killed
    by its own memory request. `share`: wsclean runs sharing the job (each gets its part).
    """
    env = os.environ if environ is None else environ
    if imaging.gridder not in GRIDDERS:
        raise LwaError(f"config imaging.gridder must be one of {', '.join(GRIDDERS)}, not '{imaging.gridder}'")
    args = list(GRIDDERS[imaging.gridder])
    threads = imaging.threads or int(env.get("SLURM_CPUS_PER_TASK", "0") or 0)
    if threads > 0:
        args += ["-j", str(threads)]
    mem_mb = env.get("SLURM_MEM_PER_NODE", "")
    if mem_mb.isdigit() and int(mem_mb) > 0:
        args += ["-abs-mem", f"{int(mem_mb) / 1024 * imaging.slurm_mem_fraction / max(share, 1):.1f}"]
    return args


def product_name(subband: str, config: str, interval: int | None = None, suffix: str = "image") -> str:
    """`{SUBBAND}-{CONFIG}[-t000N]-image.fits` (N 1-based)."""
    tag = f"-t{interval:04d}" if interval is not None else ""
    return f"{subband}-{config}{tag}-{suffix}.fits"


def wsclean_output(prefix: Path, interval: int | None, n_intervals: int, stokes: str | None = None,
                   kind: str = "image") -> Path:
    """The file wsclean writes for 1-based `interval` of `n_intervals` (and `stokes` with -pol I,V).

    wsclean tags intervals `-t0000`, `-t0001`, ... only when -intervals-out is above 1.
    """
    tag = f"-t{interval - 1:04d}" if interval is not None and n_intervals > 1 else ""
    pol = f"-{stokes}" if stokes else ""
    return Path(f"{prefix}{tag}{pol}-{kind}.fits")


def check_products(paths: Sequence[Path], *, overwrite: bool) -> None:
    """Fail before any work when a product exists and --overwrite was not given."""
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise LwaError(f"output exists: {existing[0]}{more} (use --overwrite to replace)")


@contextmanager
def scratch_dir(outdir: Path, label: str) -> Iterator[Path]:
    """A private temporary folder inside `outdir`, removed on exit.

    Its name carries this host and process (`.wsclean-LABEL-HOST-PID-XXXX`), so the scratch of a run
    that was killed (kill -9, a node crash: no cleanup ran) is recognised and removed by the next
    run on the same host: a folder whose process no longer exists.
    """
    make_dirs(outdir)
    _remove_dead_scratch(outdir)
    tag = f"{socket.gethostname()}-{os.getpid()}"
    with temporary_folder(outdir, prefix=f"{WSCLEAN_SCRATCH_PREFIX}{label}-{tag}-") as tmp:
        yield tmp.resolve()


def _remove_dead_scratch(outdir: Path) -> None:
    host = socket.gethostname()
    for old in outdir.glob(f"{WSCLEAN_SCRATCH_PREFIX}*-{host}-*-*"):
        match = re.search(rf"-{re.escape(host)}-(\d+)-[^-]+$", old.name)
        if not (match and old.is_dir()):
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            log.info("removing %s, the scratch of a run that did not finish", old)
            shutil.rmtree(old, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def run_wsclean(args: Sequence[str], *, workdir: Path, timings: Timings | None = None,
                label: str = "wsclean", keep_log: Path | None = None) -> str:
    """Run ``wsclean *args`` (output captured to workdir/wsclean.log); returns the command line.

    A non-zero exit raises LwaError quoting wsclean's last message; the full log is copied to
    `keep_log` (when given) so the user can read it after the scratch folder is gone.
    """
    cmd = [wsclean_exe(), *map(str, args)]
    text = shlex.join(["wsclean", *cmd[1:]])
    log.info("running: %s", text)
    log_path = workdir / "wsclean.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, check=False)
    dt = time.perf_counter() - t0
    if timings is not None:
        timings.external_s += dt
        timings.commands.append(text)
    output = log_path.read_text(errors="replace")
    log.debug("wsclean output:\n%s", output)
    keep_tool_output("wsclean", text, output)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        quoted = [ln.lstrip("+> ").strip() for ln in lines if ln.startswith("+ >>>")]
        errors = [ln for ln in lines if "error" in ln.lower() or "exception" in ln.lower()]
        last = (quoted or errors or lines or ["no output"])[-1]
        where = ""
        if keep_log is not None:
            shutil.copyfile(log_path, keep_log)
            where = f"; log: {keep_log}"
        raise LwaError(f"wsclean failed for {label} (exit {proc.returncode}): {last}{where}")
    if keep_log is not None and keep_log.exists():
        keep_log.unlink()  # a failed earlier attempt's log: this run succeeded
    log.info("wsclean %s done in %.1f s", label, dt)
    return text


def rerun_command(args: Sequence[str], *, prefix: Path, ms: Path) -> str:
    """The command a user can rerun: ``wsclean ARGS -name PREFIX MS`` (no scratch ``-temp-dir``).

    `args` are the options without ``-temp-dir``/``-name``/MS; `prefix` is the final output
    prefix (output folder / ``{SB}-{CONFIG}``), so the rerun writes wsclean's own file names
    (0-based ``-t000N``, plus its side products) into the output folder.
    """
    return shlex.join(["wsclean", *map(str, args), "-name", str(prefix), str(ms)])


def finalize_product(src: Path, dst: Path, *, keywords: dict[str, Any], command: str,
                     extra_history: Sequence[str] = (), cards: dict[str, tuple[Any, str]] | None = None,
                     blank: np.ndarray | None = None, scratch: Path | None = None) -> Path:
    """Rewrite wsclean's `src` as `dst` with our keywords (wsclean's BMAJ/BMIN/BPA kept unless in `cards`).

    `command` (the rerunnable one, `rerun_command`) is recorded as ``wsclean: <command>``, followed
    by ``wsclean product: <src name> (renamed <dst name>)``, the file that command writes; wsclean's
    own HISTORY (the command as run, in the scratch folder) stays above it. `cards` are extra
    header cards (value, comment) set before the keywords. `blank`: pixels (the image's last two
    axes) set to NaN. `scratch`: the run's scratch folder (`scratch_dir`), where `dst` is written
    before it is renamed into place (none: a temporary folder of its own).
    """
    if not src.exists():
        raise LwaError(f"wsclean did not write the expected product {src.name}")
    data, header = read_image(src, native=False)  # only passed on: written in the file's byte order
    if blank is not None:
        data = np.array(data, copy=True)
        data[..., blank] = np.nan
    for key, card in (cards or {}).items():
        header[key] = card
    renamed = f" (renamed {dst.name})" if src.name != dst.name else ""
    history = [f"wsclean: {command}", f"wsclean product: {src.name}{renamed}", *extra_history]
    write_image(dst, data, header, tool=TOOL, keywords=keywords, extra_history=history, overwrite=True,
                scratch=scratch)
    log.info("wrote %s", dst)
    return dst


def below_elevation(image: Path, elevation_deg: float) -> np.ndarray:
    """The pixels of `image` (a SIN-projected wsclean product) below `elevation_deg` from its phase centre.

    Taking the phase centre as the zenith, as wsclean's ``-horizon-mask`` does: a pixel's offsets
    from the reference pixel are its direction cosines (l, m) and it lies below the elevation when
    sqrt(l^2 + m^2) > cos(elevation). Computed from the header rather than read from wsclean's
    ``<prefix>-horizon-mask.fits``, so the blanked region stays at ``imaging.horizon_mask_deg``
    when CLEAN is kept higher (``imaging.clean_horizon_deg``). Below that elevation the pixels are
    not data (beyond the horizon, not on the sky at all): the wgridder leaves structured junk there
    that changes with the time range.
    """
    header = fits.getheader(image)
    nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    y, x = np.mgrid[1:ny + 1, 1:nx + 1]  # FITS pixels are 1-based
    l = (x - header["CRPIX1"]) * np.radians(header["CDELT1"])
    m = (y - header["CRPIX2"]) * np.radians(header["CDELT2"])
    return np.hypot(l, m) > np.cos(np.radians(elevation_deg))


def wsclean_date_obs(path: Path) -> str | None:
    try:
        return str(fits.getheader(path).get("DATE-OBS", "")) or None
    except OSError:
        return None
