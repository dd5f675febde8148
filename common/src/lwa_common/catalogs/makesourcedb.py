"""makesourcedb / BBS / wsclean sky-model text."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from lwa_common.catalogs.angles import parse_dec_deg, parse_ra_deg
from lwa_common.catalogs.model import (
    CatalogSource,
    check_spectrum,
    composite_source,
    float_of_text,
    read_catalog_text,
)
from lwa_common.errors import LwaError

__all__ = ["read_makesourcedb"]

log = logging.getLogger(__name__)

FORMAT_RE = re.compile(r"#?\s*(?:\((?P<paren>.*)\)\s*=\s*format|format\s*=\s*(?P<plain>.*))", re.IGNORECASE)
_MSDB_FIELDS = {
    "name": "name",
    "type": "type",
    "patch": "patch",
    "ra": "ra",
    "dec": "dec",
    "i": "i",
    "q": "q",
    "u": "u",
    "v": "v",
    "referencefrequency": "ref",
    "spectralindex": "si",
    "logarithmicsi": "logsi",
    "majoraxis": "major",
    "minoraxis": "minor",
    "orientation": "pa",
}


def _split_fields(line: str) -> list[str]:
    """Split on commas outside [...] and quotes."""
    fields, current, depth, quote = [], [], 0, ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "[":
            depth += 1
            current.append(char)
        elif char == "]":
            depth = max(depth - 1, 0)
            current.append(char)
        elif char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def _format_columns(spec: str) -> tuple[list[str], dict[str, str]]:
    columns, defaults = [], {}
    for item in _split_fields(spec):
        key, _, default = item.partition("=")
        key = key.strip().lower()
        if not key:
            raise LwaError("empty column name in the format line")
        columns.append(_MSDB_FIELDS.get(key, key))
        if default.strip():
            defaults[columns[-1]] = _unquote(default)
    for needed, label in (("ra", "Ra"), ("dec", "Dec"), ("i", "I")):
        if needed not in columns:
            raise LwaError(f"format line has no '{label}' column")
    return columns, defaults


def _spectral_index(text: str) -> tuple[float, ...]:
    body = text.strip()
    if body.startswith("["):
        if not body.endswith("]"):
            raise LwaError(f"SpectralIndex '{text}' has no closing ']'")
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",")] if body.strip() else []
    return tuple(float_of_text(p, "SpectralIndex value") for p in parts)


def _msdb_source(values: dict[str, str]) -> CatalogSource:
    name = values.get("name", "")
    shape = values.get("type", "point").lower() or "point"
    if shape not in ("point", "gaussian"):
        raise LwaError(f"source '{name}': Type '{values.get('type')}' is not supported (POINT, GAUSSIAN)")
    for needed, label in (("ra", "Ra"), ("dec", "Dec"), ("i", "I")):
        if not values.get(needed):
            raise LwaError(f"source '{name}': no {label} value")
    coeffs = _spectral_index(values.get("si", ""))
    ref = float_of_text(values["ref"], "ReferenceFrequency") if values.get("ref") else math.nan
    check_spectrum(ref, coeffs)
    logsi = values.get("logsi", "true").strip().lower() or "true"
    if logsi not in ("true", "false", "1", "0", "t", "f"):
        raise LwaError(f"LogarithmicSI '{values['logsi']}' is not true or false")
    optional = {
        key: float_of_text(values[key], label) if values.get(key) else 0.0
        for key, label in (
            ("q", "Q"),
            ("u", "U"),
            ("v", "V"),
            ("major", "MajorAxis"),
            ("minor", "MinorAxis"),
            ("pa", "Orientation"),
        )
    }
    return CatalogSource(
        name=name,
        ra_deg=parse_ra_deg(values["ra"]),
        dec_deg=parse_dec_deg(values["dec"]),
        flux_jy=float_of_text(values["i"], "I"),
        ref_freq_hz=ref,
        spectral_index=coeffs,
        major_arcsec=optional["major"] if shape == "gaussian" else 0.0,
        minor_arcsec=optional["minor"] if shape == "gaussian" else 0.0,
        pa_deg=optional["pa"] if shape == "gaussian" else 0.0,
        q_jy=optional["q"],
        u_jy=optional["u"],
        v_jy=optional["v"],
        shape=shape,
        spectral_law="log" if logsi in ("true", "1", "t") else "linear",
        patch=values.get("patch", ""),
        catalog="makesourcedb",
    )


def parse_makesourcedb(text: str, path: Path, *, group_patches: bool) -> list[CatalogSource]:
    columns: list[str] | None = None
    defaults: dict[str, str] = {}
    sources: list[CatalogSource] = []
    patch_positions: dict[str, tuple[float, float]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fmt = FORMAT_RE.fullmatch(line)
        if fmt and columns is None:
            try:
                columns, defaults = _format_columns(fmt.group("paren") or fmt.group("plain") or "")
            except LwaError as err:
                raise LwaError(f"{path}:{lineno}: {err}") from None
            continue
        if line.startswith("#"):
            continue
        if columns is None:
            raise LwaError(
                f"{path}:{lineno}: data before the format line (expected 'FORMAT = Name, Type, Ra, Dec, I, ...')"
            )
        fields = _split_fields(line)
        if len(fields) > len(columns):
            raise LwaError(f"{path}:{lineno}: {len(fields)} fields but the format has {len(columns)} columns")
        values = dict(defaults)
        for column, value in zip(columns, fields, strict=False):
            value = _unquote(value)
            if value:
                values[column] = value
        given = dict(zip(columns, fields, strict=False))
        try:
            if not given.get("name") and not given.get("type"):  # a patch line: ", , Patch, ra, dec"
                patch = values.get("patch", "")
                if patch and given.get("ra") and given.get("dec"):
                    patch_positions[patch] = (parse_ra_deg(given["ra"]), parse_dec_deg(given["dec"]))
                continue
            if not given.get("name"):
                raise LwaError("a source needs a Name")
            sources.append(_msdb_source(values))
        except LwaError as err:
            raise LwaError(f"{path}:{lineno}: {err}") from None
    if columns is None:
        raise LwaError(f"{path}: no format line ('FORMAT = Name, Type, Ra, Dec, I, ...') found")
    if not group_patches:
        return sources
    grouped: list[CatalogSource] = []
    members: dict[str, list[CatalogSource]] = {}
    order: list[str | CatalogSource] = []
    for source in sources:
        if not source.patch:
            order.append(source)
            continue
        if source.patch not in members:
            members[source.patch] = []
            order.append(source.patch)
        members[source.patch].append(source)
    for item in order:
        if isinstance(item, CatalogSource):
            grouped.append(item)
        else:
            grouped.append(
                composite_source(
                    item,
                    members[item],
                    catalog="makesourcedb",
                    patch=item,
                    position=patch_positions.get(item),
                )
            )
    return grouped


def read_makesourcedb(path: str | Path, *, group_patches: bool = False) -> list[CatalogSource]:
    """Sources of a makesourcedb / BBS / wsclean sky model.

    The format line (`FORMAT = Name, Type, Ra, Dec, I, ...` or `# (Name, ...) = format`) names
    the columns and may give defaults (`ReferenceFrequency='150.e6'`). Ra is hh:mm:ss (hours) or
    dd.mm.ss (degrees), Dec dd.mm.ss or dd:mm:ss, SpectralIndex `[c0, c1, ...]`, MajorAxis /
    MinorAxis FWHM in arcsec, Orientation in degrees. Patch lines (`, , Patch, ra, dec`) are not
    sources; `group_patches=True` returns one composite source per patch (at the patch position).
    """
    path = Path(path)
    sources = parse_makesourcedb(read_catalog_text(path, "sky model"), path, group_patches=group_patches)
    log.info("read %d sources from %s", len(sources), path)
    return sources
