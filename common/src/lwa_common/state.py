"""Run state that concurrent jobs cannot corrupt: one small record per update, merged on read.

The driver's jobs (up to 16 subbands' Setup/Peel/Image jobs and every peel array task, on many
nodes) record their progress at the same time. A read-change-rename of one shared JSON file loses
updates (each writer renames its own copy over the others'), so each update is a record of its own:

* ``lwa-common state run/state.json KEY=VALUE ...`` writes one record
  ``run/state.json.d/<time_ns>-<host>-<pid>-<random>.json`` (written under a hidden temporary name,
  renamed when complete) and never touches it again;
* the state is the merge of every record in name order -- that is, time order; a later record's
  value of a key wins (`read_state`);
* ``run/state.json`` is a *view* of that merge, rewritten by every writer under a temporary name and
  renamed into place, so a reader always finds one complete JSON document. After its rename a
  writer lists the records again and rewrites the view until the listing no longer changes
  (`converge_view`); the writer of the last rename therefore saw every record, and the view holds
  them all.

Why records and not a lock: the only file-system operations that Lustre and NFS both guarantee to be
atomic across nodes are creating a file under a name nobody else uses and ``rename(2)`` within one
directory. ``flock``/``fcntl`` locks are not dependable there: Lustre clients mounted with
``localflock`` (a common site default) take locks that exclude only processes on the same node,
and with ``noflock`` the call fails; NFS locks need lockd (v3) or lease state (v4) that a killed
job can leave held until a timeout. Records need neither, leave no lock to clean up after a crash,
and keep a history of who wrote what and when.

`converge_view` is the same idea for any view merged from per-writer files (the archive's per-target
tables and detection list use it).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lwa_common.errors import LwaError

__all__ = ["update_state", "read_state", "parse_assignments", "records_dir", "converge_view", "replace_bytes"]

_RECORD_SUFFIX = ".json"


def records_dir(state_file: str | Path) -> Path:
    """The folder of per-update records of `state_file` (``<state_file>.d``)."""
    state_file = Path(state_file)
    return state_file.with_name(state_file.name + ".d")


def replace_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically: a unique temporary sibling, then one ``rename(2)``.

    Unlike `lwa_common.io.atomic_path` (which moves an existing file aside first, for folders),
    `path` never disappears, so concurrent readers and writers always see a complete file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _signature(paths: Iterable[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((str(p), st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def converge_view(view: str | Path, *, sources: Callable[[], Sequence[Path]],
                  render: Callable[[Sequence[Path]], bytes], max_rounds: int = 1000) -> bool:
    """Rewrite `view` as ``render(sources())`` until the sources no longer change; True if written.

    Every writer calls this after adding its own source file. A writer whose snapshot of the sources
    is stale is always followed by a check that sees the newer listing and rewrites the view; the
    view is left untouched when it already holds exactly the rendered bytes (a rerun is a no-op).
    """
    view = Path(view)
    wrote = False
    for _ in range(max_rounds):
        listed = list(sources())
        before = _signature(listed)
        data = render(listed)
        try:
            current = view.read_bytes()
        except FileNotFoundError:
            current = None
        if current != data:
            replace_bytes(view, data)
            wrote = True
        if _signature(sources()) == before:
            return wrote
    raise LwaError(f"{view}: its sources kept changing over {max_rounds} rewrites")


def _records(state_file: Path) -> list[Path]:
    folder = records_dir(state_file)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == _RECORD_SUFFIX and not p.name.startswith("."))


def _assign(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise LwaError(f"state key '{key}' crosses a non-table value")
    node[parts[-1]] = value


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _merge(records: Sequence[Path]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for rec in records:
        try:
            entry = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue  # never happens for renamed-complete records; a foreign file is ignored
        for key, value in entry.get("set", {}).items():
            try:
                _assign(data, key, value)
            except LwaError:
                continue  # refused when written (see update_state); only a race can bring one here
        if "time" in entry:
            data["updated"] = entry["time"]
    return data


def read_state(state_file: str | Path) -> dict[str, Any]:
    """The merged run state (every record, later values winning); {} before the first update."""
    state_file = Path(state_file)
    records = _records(state_file)
    if not records and state_file.is_file():  # a state written before records existed
        try:
            return json.loads(state_file.read_text())
        except ValueError as err:
            raise LwaError(f"run state {state_file} is not JSON ({err})") from None
    return _merge(records)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """['a.b=1', 'c=x'] -> {'a.b': '1', 'c': 'x'}; `LwaError` for an item that is not KEY=VALUE."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LwaError(f"state assignment '{item}' is not KEY=VALUE")
        _assign({}, key, value)  # validates the dotted key
        out[key] = value
    return out


def update_state(state_file: str | Path, assignments: dict[str, str]) -> dict[str, Any]:
    """Record `assignments` (dotted keys nest) as one new record, refresh the view; the merged state."""
    state_file = Path(state_file)
    folder = records_dir(state_file)
    current = read_state(state_file)
    for key in assignments:
        _assign(current, key, assignments[key])  # a key crossing a plain value is refused here
    if not folder.is_dir() and state_file.is_file():  # a state from before records: keep it as the first one
        folder.mkdir(parents=True, exist_ok=True)
        legacy = {k: v for k, v in _flatten(read_state(state_file)).items() if k != "updated"}
        replace_bytes(folder / f"{0:020d}-legacy{_RECORD_SUFFIX}", json.dumps({"set": legacy}).encode())
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    name = f"{time.time_ns():020d}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{_RECORD_SUFFIX}"
    replace_bytes(folder / name, json.dumps({"time": now, "set": assignments}).encode())

    def render(records: Sequence[Path]) -> bytes:
        return json.dumps(_merge(records), indent=1, sort_keys=True).encode()

    converge_view(state_file, sources=lambda: _records(state_file), render=render)
    return read_state(state_file)
