"""Bad antennas from the OVRO-LWA antenna-health record: the MNC API or an exported file.

Sources, in the order `--source auto` tries them: a HEALTH_FILE when one is given; otherwise the
MNC API (`from mnc import anthealth; anthealth.get_badants(method, time=mjd)`, the OVRO-LWA
monitor-and-control package) when it is importable. With neither there is nothing to go on and
the command fails with one line.

Health files (what MNC exports or a person writes), CSV or YAML/JSON:
  * a list of antenna names (`LWA-123`, `LWA123`, `123A` -- a trailing A/B polarisation letter is
    accepted and the whole antenna is flagged) and/or correlator numbers (integers);
  * CSV with a header: a name column (`antname`, `name`, `antenna`, `ant`, `signal`) or a
    correlator column (`corr_num`, `correlator`, `corr`), optionally a status column (`bad`,
    `flag`, `flagged`: true/1/yes marks bad; or `healthy`, `ok`, `good`: false/0/no marks bad);
  * YAML/JSON: a list; a mapping with one of the keys `bad_antennas`, `badants`, `antennas`,
    `antnames`, `names`, `bad` (names) or `corr_nums`, `correlators`, `bad_correlator_numbers`
    (correlator numbers); or `[mjd, [names...]]` as `get_badants` returns it.

Names map to MS antennas through the ANTENNA table NAME column. Correlator numbers map through
system_cfg.yml (`--system-cfg`) or, for a full 352-antenna MS whose ANTENNA rows are in
correlator order, directly.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lwa_common.errors import LwaError
from lwa_flag._ms import antenna_names, flag_rows, normalise_antenna_name

__all__ = ["HealthList", "read_health_file", "mnc_available", "query_mnc", "resolve_antennas",
           "flag_antennas", "FULL_ARRAY"]

log = logging.getLogger(__name__)

FULL_ARRAY = 352
_NAME_COLUMNS = ("antname", "name", "antenna", "ant", "antenna_name", "signal", "signal_name")
_CORR_COLUMNS = ("corr_num", "correlator", "corr", "correlator_number", "corr_number")
_BAD_COLUMNS = ("bad", "flag", "flagged")
_GOOD_COLUMNS = ("healthy", "ok", "good")
_NAME_KEYS = ("bad_antennas", "badants", "antennas", "antnames", "names", "bad", "flagged", "flag")
_CORR_KEYS = ("corr_nums", "correlators", "bad_correlator_numbers", "bad_correlators", "corr_num")
_TRUE = {"1", "true", "yes", "y", "t", "bad"}
_FALSE = {"0", "false", "no", "n", "f", "ok", "good"}


@dataclass(frozen=True)
class HealthList:
    """Bad antennas as read: normalised names and correlator numbers, and where they came from."""

    source: str
    names: tuple[str, ...] = ()
    corr_nums: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.names and not self.corr_nums


def _classify(tokens: list, *, ids: str, where: str) -> tuple[list[str], list[int]]:
    names: list[str] = []
    corrs: list[int] = []
    for tok in tokens:
        if tok is None or (isinstance(tok, str) and not tok.strip()):
            continue
        if isinstance(tok, bool):
            raise LwaError(f"{where}: unexpected value {tok!r} in the antenna list")
        text = str(tok).strip()
        is_number = isinstance(tok, int) or re.fullmatch(r"\d+", text) is not None
        if ids == "correlators":
            if not is_number:
                raise LwaError(f"{where}: '{text}' is not a correlator number (--ids correlators)")
            corrs.append(int(text))
        elif is_number and ids == "auto":
            corrs.append(int(text))
        else:
            name = normalise_antenna_name(text)
            if name is None:
                raise LwaError(f"{where}: '{text}' is neither an antenna name (LWA-123, ANT001) nor a correlator number")
            names.append(name)
    return names, corrs


def _truthy(value: str, where: str) -> bool:
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise LwaError(f"{where}: cannot read '{value}' as true/false")


def _read_csv(text: str, path: Path, ids: str) -> tuple[list[str], list[int]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].strip().startswith("#")]
    if not rows:
        return [], []
    header = [h.strip().lower() for h in rows[0]]
    name_col = next((header.index(c) for c in _NAME_COLUMNS if c in header), None)
    corr_col = next((header.index(c) for c in _CORR_COLUMNS if c in header), None)
    if name_col is None and corr_col is None:
        if any(re.fullmatch(r"[a-z_ ]+", h) and normalise_antenna_name(h) is None for h in header if h):
            raise LwaError(f"{path}: CSV header {rows[0]} has no antenna column "
                           f"(one of {', '.join(_NAME_COLUMNS + _CORR_COLUMNS)})")
        tokens = [cell.strip() for row in rows for cell in row if cell.strip()]
        return _classify(tokens, ids=ids, where=str(path))
    bad_col = next((header.index(c) for c in _BAD_COLUMNS if c in header), None)
    good_col = next((header.index(c) for c in _GOOD_COLUMNS if c in header), None)
    names: list[str] = []
    corrs: list[int] = []
    for k, row in enumerate(rows[1:], start=2):
        where = f"{path} line {k}"
        if bad_col is not None and bad_col < len(row) and not _truthy(row[bad_col], where):
            continue
        if good_col is not None and good_col < len(row) and _truthy(row[good_col], where):
            continue
        if name_col is not None and name_col < len(row) and row[name_col].strip():
            n, c = _classify([row[name_col]], ids="names" if ids == "auto" else ids, where=where)
        elif corr_col is not None and corr_col < len(row) and row[corr_col].strip():
            n, c = _classify([row[corr_col]], ids="correlators", where=where)
        else:
            continue
        names += n
        corrs += c
    return names, corrs


def _read_yaml(text: str, path: Path, ids: str) -> tuple[list[str], list[int]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LwaError(f"{path} is not valid YAML/JSON: {str(err).splitlines()[0]}") from None
    if data is None:
        return [], []
    if isinstance(data, list):
        if len(data) == 2 and isinstance(data[0], (int, float)) and isinstance(data[1], list):
            data = data[1]  # (mjd, [names]) as anthealth.get_badants returns it
        return _classify(data, ids=ids, where=str(path))
    if isinstance(data, dict):
        lowered = {str(k).lower(): v for k, v in data.items()}
        names: list[str] = []
        corrs: list[int] = []
        found = False
        for key in _NAME_KEYS:
            if key in lowered and isinstance(lowered[key], list):
                n, c = _classify(lowered[key], ids=ids, where=f"{path}: {key}")
                names, corrs, found = names + n, corrs + c, True
        for key in _CORR_KEYS:
            if key in lowered and isinstance(lowered[key], list):
                _, c = _classify(lowered[key], ids="correlators", where=f"{path}: {key}")
                corrs, found = corrs + c, True
        if not found:
            raise LwaError(f"{path}: no list of bad antennas under any of the keys "
                           f"{', '.join(_NAME_KEYS + _CORR_KEYS)}")
        return names, corrs
    raise LwaError(f"{path}: expected a list or a mapping of bad antennas, got {type(data).__name__}")


def read_health_file(path: str | Path, *, ids: str = "auto") -> HealthList:
    """Read a CSV or YAML/JSON antenna-health file (see the module docstring for the formats).

    `ids`: "auto" (integers are correlator numbers, anything else a name), "names" (bare numbers
    are antenna numbers, e.g. 123 -> LWA-123) or "correlators".
    """
    if ids not in ("auto", "names", "correlators"):
        raise LwaError(f"--ids must be auto, names or correlators, got {ids}")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise LwaError(f"cannot read health file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise LwaError(f"health file {path} is not a text file") from None
    if path.suffix.lower() in (".csv", ".txt"):
        if not text.strip():  # a failed download: a CSV listing no bad antenna still has its header line
            raise LwaError(f"health file {path} is empty (a CSV listing no bad antenna has its header line)")
        names, corrs = _read_csv(text, path, ids)
    else:
        names, corrs = _read_yaml(text, path, ids)
    return HealthList(source=str(path), names=tuple(dict.fromkeys(names)), corr_nums=tuple(dict.fromkeys(corrs)))


def mnc_available() -> bool:
    try:
        from mnc import anthealth  # noqa: F401
    except ImportError:
        return False
    return True


def query_mnc(mjd: float, *, method: str = "selfcorr", max_age_days: float = 1.0) -> HealthList:
    """Bad antennas from the MNC antenna-health record nearest to `mjd`."""
    try:
        from mnc import anthealth
    except ImportError:
        raise LwaError("the OVRO-LWA mnc package is not importable; give a HEALTH_FILE instead") from None
    try:
        result = anthealth.get_badants(method, time=mjd)
    except Exception as err:  # the MNC client raises whatever its backend raises
        raise LwaError(f"MNC anthealth.get_badants('{method}') failed: {type(err).__name__}: {err}") from None
    try:
        found_mjd, bad = result
        found_mjd = float(found_mjd)
    except (TypeError, ValueError):
        raise LwaError(f"MNC anthealth.get_badants returned {result!r}, expected (mjd, [names])") from None
    if abs(found_mjd - mjd) > max_age_days:
        log.warning("MNC antenna health is from MJD %.3f, %.1f days from the data (MJD %.3f)",
                    found_mjd, abs(found_mjd - mjd), mjd)
    names, corrs = _classify(list(bad), ids="names", where=f"MNC {method}")
    return HealthList(source=f"mnc:anthealth.get_badants('{method}', mjd={found_mjd:.5f})",
                      names=tuple(dict.fromkeys(names)), corr_nums=tuple(dict.fromkeys(corrs)))


def resolve_antennas(health: HealthList, ms: str | Path, *, system_cfg: str | Path | None = None
                     ) -> tuple[dict[int, str], list[str]]:
    """MS antenna indices of the bad antennas ({index: name}) and the entries not in this MS."""
    ms_names = antenna_names(Path(ms))
    by_name = {}
    for i, nm in enumerate(ms_names):
        key = normalise_antenna_name(nm)
        if key is not None:
            by_name.setdefault(key, i)
    found: dict[int, str] = {}
    missing: list[str] = []
    for name in health.names:
        if name in by_name:
            found[by_name[name]] = ms_names[by_name[name]]
        else:
            missing.append(name)
    if health.corr_nums:
        if system_cfg is not None:
            from lwa_flag.wiring import load_wiring

            corr_to_name = {w.corr_num: w.name for w in load_wiring(system_cfg).values() if w.corr_num >= 0}
            for c in health.corr_nums:
                name = corr_to_name.get(c)
                if name is not None and name in by_name:
                    found[by_name[name]] = ms_names[by_name[name]]
                else:
                    missing.append(f"corr {c}" + (f" ({name})" if name else ""))
        elif len(ms_names) == FULL_ARRAY:
            for c in health.corr_nums:
                if 0 <= c < FULL_ARRAY:
                    found[c] = ms_names[c]
                else:
                    missing.append(f"corr {c}")
        else:
            raise LwaError(f"correlator numbers need --system-cfg to map to antennas: {ms} has "
                           f"{len(ms_names)} antennas, not the full {FULL_ARRAY} in correlator order")
    return dict(sorted(found.items())), missing


def flag_antennas(ms: str | Path, antennas: list[int] | dict[int, str]) -> int:
    """Flag every row (cross and auto) that involves one of `antennas`; returns rows flagged."""
    import numpy as np

    idx = sorted(antennas)
    if not idx:
        return 0
    n_ant = len(antenna_names(Path(ms)))
    bad = np.zeros(max(n_ant, max(idx) + 1), bool)
    bad[idx] = True
    return flag_rows(Path(ms), lambda c: bad[c["ANTENNA1"]] | bad[c["ANTENNA2"]],
                     description=f"{len(idx)} bad antennas")
