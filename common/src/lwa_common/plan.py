"""Pre-flight audit and run plan for the driver (bin/run_hour.sh).

Before anything is submitted the driver asks: for each subband and LST hour, which MS files lie in
the UTC range, and does each open with its first data row readable (an MS that does not is left
out with a warning, so one broken file does not stop a night; a subband-hour none of whose MS reads
is planned as it is, with a warning, and fails on its own); are the calibration tables readable; are the target and catalogue files there; is
there disk space; are the tools on PATH. Every problem goes into one table; the plan (MS lists per
subband-hour) is written as JSON only when there are none.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u

from lwa_common.datatree import find_ms
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import check_ms
from lwa_common.naming import parse_ms_name, subband_label
from lwa_common.site import LstHour, split_lst_range

__all__ = ["Problem", "Plan", "make_plan", "find_ms", "format_problems", "subband_placement", "job_resources"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    what: str
    where: str
    detail: str


@dataclass
class Plan:
    hours: list[LstHour]
    ms: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # subband -> hour label -> files
    problems: list[Problem] = field(default_factory=list)
    placement: dict[str, dict[str, str]] = field(default_factory=dict)  # subband -> {"node"|"partition": name}
    local_workdir: str = ""
    unusable: dict[str, str] = field(default_factory=dict)  # MS path -> why it was left out
    jobs: dict[str, dict[str, str]] = field(default_factory=dict)  # job type -> {"cpus", "mem", "time"} (Slurm)
    peel_tasks: int = 4
    peel_refine_once: bool = False  # refine the peel model once per subband-hour (a Refine job before Peel)
    account: str = ""  # Slurm account of every job ("" = the user's default)

    def as_dict(self) -> dict:
        return {
            "hours": [h.as_dict() for h in self.hours],
            "ms": self.ms,
            "placement": self.placement,
            "local_workdir": self.local_workdir,
            "jobs": self.jobs,
            "peel_tasks": self.peel_tasks,
            "peel_refine_once": int(self.peel_refine_once),
            "account": self.account,
            "problems": [p.__dict__ for p in self.problems],
            "unusable": self.unusable,
        }


def subband_placement(entries: Iterable[str], remaps: Iterable[str], subbands: Iterable[int]) -> dict[str, dict]:
    """Where each subband's jobs run: config `cluster.nodes` entries, then `--remap` overrides.

    Each entry is "SUBBAND=NODE" or "SUBBAND=partition:NAME" (SUBBAND as 55 or 55MHz). A remap of
    a subband not run is an error (a typo would otherwise go unnoticed); config entries for other
    subbands are ignored. Subbands without an entry run wherever Slurm puts them ({}).
    """
    labels = {subband_label(s) for s in subbands}
    out: dict[str, dict[str, str]] = {}
    for source, items in (("config cluster.nodes", entries), ("--remap", remaps)):
        for item in items:
            key, sep, value = str(item).partition("=")
            try:
                label = subband_label(int(key.strip().removesuffix("MHz")))
            except ValueError:
                label = None
            value = value.strip()
            if not sep or label is None or not value or value == "partition:":
                raise LwaError(f"{source} entry '{item}' is not SUBBAND=NODE or SUBBAND=partition:NAME")
            if label not in labels:
                if source == "--remap":
                    raise LwaError(f"--remap {item}: subband {label} is not among those run ({', '.join(sorted(labels))})")
                continue
            if value.startswith("partition:"):
                out[label] = {"partition": value.removeprefix("partition:")}
            else:
                out[label] = {"node": value}
    return {label: out[label] for label in sorted(out)}


JOB_TYPES = ("setup", "refine", "peel", "image", "aggregate")


def job_resources(entries: Iterable[str]) -> dict[str, dict[str, str]]:
    """config `cluster.jobs` ("JOB=CPUS:MEMORY[@TIME]", e.g. "image=32:96G@12:00:00") -> {job: {"cpus",
    "mem"[, "time"]}}; TIME in a Slurm form (MINUTES, H:MM:SS, D-HH:MM:SS)."""
    out: dict[str, dict[str, str]] = {}
    for item in entries:
        job, sep, value = str(item).partition("=")
        value, at, limit = value.partition("@")
        cpus, colon, mem = value.partition(":")
        job, cpus, mem, limit = job.strip(), cpus.strip(), mem.strip(), limit.strip()
        if not sep or not colon or job not in JOB_TYPES or not cpus.isdigit() or int(cpus) < 1 \
                or re.fullmatch(r"\d+[KMGT]?", mem) is None \
                or (at and re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}", limit) is None):
            raise LwaError(f"config cluster.jobs entry '{item}' is not JOB=CPUS:MEMORY[@TIME] with JOB one of "
                           f"{', '.join(JOB_TYPES)} (e.g. image=32:96G@12:00:00)")
        out[job] = {"cpus": cpus, "mem": mem, **({"time": limit} if at else {})}
    return out


def _table_readable(path: Path) -> str:
    from casacore.tables import table

    if not path.exists():
        return "not found"
    try:
        with table(str(path), ack=False) as t:
            if t.nrows() == 0:
                return "table has no rows"
    except RuntimeError as err:
        return f"unreadable: {str(err).splitlines()[0] if str(err) else 'casacore error'}"
    return ""


def _readable_ms(paths: list[Path]) -> tuple[list[str], dict[str, str]]:
    """The MS of `paths` whose tables and first data row read (`check_ms`), and why the others do not.

    One broken MS does not stop a run: it is left out of the plan with a warning naming it (the plan
    lists it under "unusable"). Archive tars are checked when unpacked. Opened by 8 threads, since on
    a parallel file system the time is the latency of opening 360 tables, not reading them.
    """
    def why(path: Path) -> str:
        if path.name.endswith(".tar"):
            return ""
        try:
            check_ms(path)
        except LwaError as err:
            return str(err)
        return ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(why, paths))
    unusable = {str(p): r for p, r in zip(paths, reasons) if r}
    for path, reason in unusable.items():
        log.warning("left out of the plan: %s", reason if path in reason else f"{path}: {reason}")
    return [str(p) for p, r in zip(paths, reasons) if not r], unusable


def make_plan(
    *,
    data: Path,
    subbands: list[int],
    lst_range: str,
    date: str,
    workdir: Path,
    tables: dict[str, Path | None] | None = None,
    files: dict[str, Path | None] | None = None,
    tools: list[str] | None = None,
    min_free_gb: float = 1.0,
    skip_subbands: tuple[int, ...] = (13,),
) -> Plan:
    hours = split_lst_range(lst_range, date)
    plan = Plan(hours=hours)
    # date folders searched: the hours' UTC dates and a day either side (a folder may be dated locally)
    dates = {(t + dt * u.day).utc.datetime.strftime("%Y-%m-%d")
             for h in hours for t in (h.utc_start, h.utc_end) for dt in (-1, 0, 1)}
    if not data.is_dir():
        plan.problems.append(Problem("data", str(data), "data folder not found"))
    for sb in subbands:
        label = subband_label(sb)
        if sb in skip_subbands:
            log.warning("subband %s is skipped by design", label)
            continue
        all_ms = find_ms(data, sb, dates=dates) if data.is_dir() else []
        plan.ms[label] = {}
        for h in hours:
            t0, t1 = h.utc_start.mjd, h.utc_end.mjd
            in_hour = [p for p in all_ms if t0 <= parse_ms_name(p.name).time.mjd < t1]
            chosen, unusable = _readable_ms(in_hour)
            if in_hour and not chosen:  # that subband-hour fails in its first step; the others go on
                log.warning("%s LST %s: none of its %d MS is readable; its steps will fail", label, h.label,
                            len(in_hour))
                chosen, unusable = [str(p) for p in in_hour], {}
            plan.ms[label][h.label] = chosen
            plan.unusable.update(unusable)
            if not in_hour:
                plan.problems.append(Problem("data", f"{label} LST {h.label}",
                                             f"no MS between {h.utc_start.isot} and {h.utc_end.isot} UTC"))
    for name, path in (tables or {}).items():
        if path is None:
            continue
        why = _table_readable(Path(path))
        if why:
            plan.problems.append(Problem("table", f"{name} {path}", why))
    for name, path in (files or {}).items():
        if path is not None and not Path(path).is_file():
            plan.problems.append(Problem("file", f"{name} {path}", "not found"))
    for tool in tools or []:
        if shutil.which(tool) is None:
            plan.problems.append(Problem("tool", tool, "not on PATH"))
    probe = workdir if workdir.exists() else workdir.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    if free_gb < min_free_gb:
        plan.problems.append(Problem("disk", str(probe), f"{free_gb:.1f} GB free < {min_free_gb:.1f} GB"))
    return plan


def format_problems(problems: list[Problem]) -> str:
    rows = [("what", "where", "problem")] + [(p.what, p.where, p.detail) for p in problems]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def write_plan(plan: Plan, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan.as_dict(), indent=1))
