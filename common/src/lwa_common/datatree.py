"""The observatory's data archive as it is stored: find the MS files, unpack the tarred ones.

The archive holds ``<root>/<XXMHz>/<YYYY-MM-DD>/<HH>/YYYYMMDD_HHMMSS_XXMHz_averaged.ms`` (frequency
averaged, 48 channels) or ``..._XXMHz.ms`` (192 channels), older hours tarred as ``<name>.ms.tar``.
`find_ms` accepts that layout, a flat folder, or any depth in between; it never descends into an
MS and skips the subband and date folders that cannot hold what is asked for.

The archive is read-only to the pipeline: nothing here writes into it, creates a lock in it, or
opens a table in it for writing. A tar is read and its MS unpacked into the (node-local) work
folder, under a hidden temporary name renamed when complete, so a rerun reuses it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

from lwa_common.errors import LwaError
from lwa_common.io import temporary_folder
from lwa_common.naming import MsName, parse_ms_name

__all__ = ["find_ms", "unpack_ms_tar", "local_copies"]

log = logging.getLogger(__name__)

_SUBBAND_DIR = re.compile(r"^(\d+)MHz$")
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse(name: str) -> MsName | None:
    try:
        return parse_ms_name(name)
    except LwaError:
        return None


def find_ms(data: str | Path, subband_mhz: int, *, dates: Iterable[str] | None = None) -> list[Path]:
    """Every MS (or `.ms.tar`) of the subband below `data`, one per observation time, sorted by time.

    `dates` (``YYYY-MM-DD``) restricts the date folders searched (other folders are searched
    whatever their name). When one observation is stored several ways, an MS is preferred to its
    tar and the full-resolution MS to the averaged one; the others are logged and skipped.
    """
    data = Path(data)
    wanted_dates = set(dates) if dates is not None else None
    found: dict[float, list[tuple[tuple[bool, bool], Path]]] = {}
    for dirpath, dirnames, filenames in os.walk(data):
        keep = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            parsed = _parse(name)
            if parsed is not None or name.endswith(".ms"):  # an MS: a leaf, whatever it holds
                if parsed is not None and not parsed.tarred and parsed.subband_mhz == subband_mhz:
                    found.setdefault(parsed.time.mjd, []).append(((False, parsed.averaged), Path(dirpath, name)))
                continue
            sb = _SUBBAND_DIR.match(name)
            if sb and int(sb.group(1)) != subband_mhz:
                continue
            if wanted_dates is not None and _DATE_DIR.match(name) and name not in wanted_dates:
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            parsed = _parse(name)
            if parsed is not None and parsed.tarred and parsed.subband_mhz == subband_mhz:
                found.setdefault(parsed.time.mjd, []).append(((True, parsed.averaged), Path(dirpath, name)))
    out = []
    for mjd in sorted(found):
        choices = sorted(found[mjd])
        out.append(choices[0][1])
        for _, other in choices[1:]:
            log.warning("%s: the same observation as %s; skipped", other, choices[0][1])
    return out


def _ms_inside(folder: Path) -> Path | None:
    if (folder / "table.dat").is_file():
        return folder
    for dirpath, dirnames, _ in os.walk(folder):
        for name in sorted(dirnames):
            if (Path(dirpath, name) / "table.dat").is_file():
                return Path(dirpath, name)
    return None


def unpack_ms_tar(tar: str | Path, workdir: str | Path) -> Path:
    """Unpack the MS of `tar` to ``workdir/<its MS name>``; reuse one unpacked before. Its path.

    The tar may hold the MS folder (at any depth) or the MS's files at its top. An unreadable tar
    or one without an MS is an `LwaError` naming it; nothing is left behind in `workdir`.
    """
    tar = Path(tar)
    parsed = parse_ms_name(tar.name)
    if not parsed.tarred:
        raise LwaError(f"{tar} is not an MS tar (*.ms.tar)")
    workdir = Path(workdir)
    dest = workdir / parsed.ms_name
    if (dest / "table.dat").is_file():
        log.info("%s: unpacked before, reused %s", tar, dest)
        return dest
    workdir.mkdir(parents=True, exist_ok=True)
    with temporary_folder(workdir, prefix=f".{parsed.ms_name}.", suffix=".tmp") as tmp:
        try:
            with tarfile.open(tar, "r:*") as tf:
                tf.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise LwaError(f"{tar}: unreadable tar ({err or type(err).__name__})") from None
        ms = _ms_inside(tmp)
        if ms is None:
            raise LwaError(f"{tar}: holds no MeasurementSet (no table.dat)")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(ms, dest)
    log.info("unpacked %s -> %s", tar, dest)
    return dest


def local_copies(files: Iterable[str | Path], workdir: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """MS paths to work on: each MS as given, each tar unpacked into `workdir`; plus (file, why) failures."""
    usable: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for f in map(Path, files):
        try:
            parsed = parse_ms_name(f.name)
            if parsed.tarred:
                usable.append(unpack_ms_tar(f, workdir))
            elif not (f / "table.dat").is_file():
                raise LwaError(f"{f}: not a MeasurementSet (no table.dat)")
            else:
                usable.append(f)
        except LwaError as err:
            failed.append((f, str(err)))
    return usable, failed
