"""Every table product of lwa-pipe: its file name and CSV schema (columns and units), in one place.

Images are chosen by header (`lwa_common.images`); tables by file name and columns, so the writer
and every reader of a table take both from here (`Table`). A reader maps a table's rows onto the
fields it needs with the table's own `fields` (the columns that give each field, first non-blank
wins), never by guessing column names across products.

Units follow the column name (`unit_of`): `_jy` Jy (peak and RMS values Jy/beam), `_deg`, `_arcsec`,
`_arcmin`, `_mhz`, `_px`/`x`/`y` pixels, `mjd*` days (MJD UTC); other columns are text, flags or
dimensionless (S/N, ratios, scores).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Table",
    "unit_of",
    "find_tables",
    "is_blank",
    "MEASUREMENT_COLUMNS",
    "PHOTOMETRY",
    "LEGACY_PHOTOMETRY",
    "PHOTOMETRY_SCHEMAS",
    "photometry_schema",
    "CANDIDATES",
    "FLUX_CHECK",
    "DETECTIONS_SUMMARY",
    "THERMAL_NOISE",
    "FLAGGED_BASELINES",
    "BAD_INTEGRATIONS",
    "DEWARP_ANCHORS",
    "TABLES",
    "OWN_PREFIX",
]

OWN_PREFIX = "lwa_"
"""A writer's column that an input (e.g. a targets CSV copied into each row) already has is written
as `lwa_<name>`; readers look for `lwa_<name>` before `<name>`."""

_JY_PER_BEAM = ("peak_jy", "rms_jy", "fit_peak_jy", "expected_rms_jy")


def unit_of(column: str) -> str:
    """The unit of a column, from its name (see the module docstring); "" for none."""
    name = column.removeprefix(OWN_PREFIX)
    bare = name[2:] if name[:2] in ("I_", "V_") else name
    if bare.endswith("_jy"):
        return "Jy/beam" if bare in _JY_PER_BEAM or bare.endswith("peak_jy") else "Jy"
    if bare == "rms":
        return "Jy/beam"
    for suffix, unit in (("_deg", "deg"), ("_arcsec", "arcsec"), ("_arcmin", "arcmin"), ("_mhz", "MHz"),
                         ("_px", "pixel"), ("_au", "au"), ("_lambda", "wavelengths"), ("_bytes", "byte"),
                         ("_ns", "ns")):
        if bare.endswith(suffix):
            return unit
    if bare in ("ra", "dec"):
        return "deg"
    if bare in ("x", "y") or bare.startswith(("x_", "y_")):
        return "pixel"
    if bare.startswith("mjd"):
        return "d (MJD UTC)"
    return ""


def is_blank(value: Any) -> bool:
    """None, NaN or an empty/whitespace text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


@dataclass(frozen=True)
class Table:
    """One table product: where it is written, by whom, its columns and how readers map its rows.

    `pattern` is the file name, `{name}` standing for the subject (a target, a body); `columns` the
    columns the writer writes first, in order (a writer may add more after them); `required` what
    every row has, so a reader may rely on it; `detection` the column that says a row is a
    detection; `fields` the reader's fields (`name`, `flux_jy`, `ra_deg` ...) -> this table's
    columns that give them (first non-blank wins).
    """

    key: str
    pattern: str
    writer: str
    columns: tuple[str, ...]
    required: tuple[str, ...] = ()
    detection: str | None = None
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def glob(self) -> str:
        return self.pattern.replace("{name}", "*")

    @property
    def stem(self) -> str:
        """The file name without `.csv`."""
        return self.pattern.removesuffix(".csv")

    def file_name(self, name: str = "") -> str:
        return self.pattern.replace("{name}", name)

    def path(self, folder: str | Path, name: str = "") -> Path:
        return Path(folder) / self.file_name(name)

    def matches(self, path: str | Path) -> bool:
        return Path(path).match(self.glob)

    def subject(self, path: str | Path) -> str:
        """The `{name}` part of a file name of this table ("" when the pattern has none)."""
        head, sep, tail = self.pattern.partition("{name}")
        return Path(path).name.removeprefix(head).removesuffix(tail) if sep else ""

    def units(self) -> dict[str, str]:
        return {c: unit_of(c) for c in self.columns}

    def missing(self, columns: Iterable[str]) -> list[str]:
        """Required columns not among `columns`."""
        have = set(columns)
        return [c for c in self.required if c not in have]

    def value(self, row: Mapping[str, Any], name: str, default: Any = None) -> Any:
        """The first non-blank cell of `row` among the columns of field `name` (`lwa_` first)."""
        for column in self.fields.get(name, ()):
            for key in (OWN_PREFIX + column, column):
                if key in row and not is_blank(row[key]):
                    return row[key]
        return default


def find_tables(root: str | Path, table: Table) -> list[Path]:
    """Every file of `table` under `root` (recursively; hidden folders skipped), sorted."""
    root = Path(root)
    return sorted(p for p in root.rglob(table.glob)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


# ---------------------------------------------------------------------------------- lwa-cutout
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "image", "cat_jy", "peak_jy", "peak_ra_deg", "peak_dec_deg", "peak_offset_arcsec", "rms_jy", "snr",
    "detected", "fit_peak_jy", "fit_flux_jy", "fit_ra_deg", "fit_dec_deg", "fit_major_arcsec",
    "fit_minor_arcsec", "fit_pa_deg", "masked_px", "note",
)
"""Column suffixes of one measurement in a photometry row (prefixed by the Stokes: I_peak_jy, ...)."""

PHOTOMETRY = Table(
    key="photometry",
    pattern="{name}_photometry.csv",
    writer="lwa-cutout targets / solar-system",
    columns=(
        "target", "subband", "freq_mhz", "interval", "I_kind", "date_obs", "date_end", "mjd_mid", "pos_ra_deg",
        "pos_dec_deg", "elevation_deg", "azimuth_deg", "search_radius_arcsec", "beam_major_arcsec",
        "beam_minor_arcsec", "pbcor", "dewarped",
        *(f"I_{c}" for c in MEASUREMENT_COLUMNS), *(f"V_{c}" for c in MEASUREMENT_COLUMNS),
        "stokes", "flux_jy", "snr", "detection_stokes", "detected",
    ),
    required=("subband", "interval", "mjd_mid", "pos_ra_deg", "pos_dec_deg"),
    detection="detected",
    fields={"name": ("target",), "subband": ("subband",), "freq_mhz": ("freq_mhz",),
            "stokes": ("stokes", "detection_stokes"), "flux_jy": ("flux_jy", "I_peak_jy", "V_peak_jy"),
            "snr": ("snr", "I_snr", "V_snr"), "ra_deg": ("pos_ra_deg",), "dec_deg": ("pos_dec_deg",)},
)
"""One row per subband and interval; the subject's own columns (the targets CSV row) come first,
then these (a body's ephemeris columns come before `stokes`)."""

LEGACY_PHOTOMETRY = Table(
    key="photometry (OVRO-LWA pipeline before lwa-pipe)",
    pattern="{name}_photometry.csv",
    writer="the earlier OVRO-LWA pipeline (read only)",
    columns=("Target", "Freq_MHz", "I_Src_Jy", "Detection"),
    detection="Detection",
    fields={"name": ("Target",), "subband": ("subband", "Subband"), "freq_mhz": ("Freq_MHz",),
            "stokes": ("Stokes",), "flux_jy": ("I_Src_Jy", "I_Flux_Jy", "Flux_Jy"), "snr": ("SNR",),
            "ra_deg": ("RA",), "dec_deg": ("DEC",)},
)

PHOTOMETRY_SCHEMAS = (PHOTOMETRY, LEGACY_PHOTOMETRY)


def photometry_schema(columns: Iterable[str]) -> Table | None:
    """The schema of a `*_photometry.csv` with these columns, by its detection column (None: neither)."""
    have = set(columns)
    return next((t for t in PHOTOMETRY_SCHEMAS if t.detection in have), None)


FLUX_CHECK = Table(
    key="flux_check",
    pattern="flux_check.csv",
    writer="lwa-cutout flux-check",
    columns=(
        "calibrator", "reference", "subband", "freq_mhz", "date_obs", "mjd_mid", "ra_deg", "dec_deg",
        "elevation_deg", "model_jy", "measured_jy", "measure", "ratio", "ratio_err", "peak_jy", "fit_flux_jy",
        "rms_jy", "snr", "peak_offset_arcsec", "pbcor", "dewarped", "image", "note",
    ),
    required=("calibrator", "subband", "measured_jy", "ratio"),
    fields={"name": ("calibrator",), "subband": ("subband",), "freq_mhz": ("freq_mhz",), "flux_jy": ("measured_jy",),
            "snr": ("snr",), "ra_deg": ("ra_deg",), "dec_deg": ("dec_deg",)},
)
"""One row per calibrator and image: measured / model flux ratio (`ratio`, dimensionless)."""

# ------------------------------------------------------------------------------- lwa-transient
CANDIDATES = Table(
    key="candidates",
    pattern="candidates.csv",
    writer="lwa-transient search",
    columns=(
        "stokes", "interval", "ra", "dec", "jname", "peak_jy", "rms_jy", "snr", "sign", "bilobe", "class",
        "catalog_match", "image", "subband", "freq_mhz", "x", "y", "partner_snr", "partner_ratio",
        "partner_sep_arcmin", "catalog_sep_arcmin", "cutout", "png", "reason", "beam_arcmin",
    ),
    required=("stokes", "interval", "ra", "dec", "peak_jy", "rms_jy", "snr", "image"),
    fields={"name": ("jname",), "subband": ("subband",), "freq_mhz": ("freq_mhz",), "stokes": ("stokes",),
            "flux_jy": ("peak_jy",), "snr": ("snr",), "ra_deg": ("ra",), "dec_deg": ("dec",)},
)
"""One row per candidate; `class` is `candidate`, `known` (a catalogue source) or `artefact` (bi-lobe)."""

# ---------------------------------------------------------------------------------- lwa-stack
DETECTIONS_SUMMARY = Table(
    key="detections_summary",
    pattern="detections_summary.csv",
    writer="lwa-stack gather",
    columns=("kind", "run", "name", "subband", "freq_mhz", "stokes", "flux_jy", "snr", "ra_deg", "dec_deg",
             "source_file"),
    required=("kind", "run", "name"),
)
"""Every detection of the runs gathered (`kind`: target, solar_system, transient), then every other
column of the tables read (union, blank where absent). A JSON of the same records is written beside it."""

THERMAL_NOISE = Table(
    key="thermal_noise",
    pattern="thermal_noise.csv",
    writer="lwa-stack noise / wideband",
    columns=("path", "subband", "freq_mhz", "stokes", "imgcat", "interval", "robust", "taper", "pbcor",
             "dewarped", "rms_jy", "n_pix", "size_bytes", "mtime_ns"),
    required=("path", "subband", "freq_mhz", "stokes", "rms_jy"),
)
"""One row per image: the sigma-clipped MAD noise of its inner part (Jy/beam); size and mtime say
whether the row still describes the file."""

# ----------------------------------------------------------------------------------- lwa-flag
FLAGGED_BASELINES = Table(
    key="flagged_baselines",
    pattern="flagged_baselines.csv",
    writer="lwa-flag hot-baselines (qa/)",
    columns=("ant1", "ant2", "name1", "name2", "uv_lambda", "reason", "score"),
    required=("ant1", "ant2", "reason"),
)
"""One row per flagged baseline (`reason` uv/cross/both), dead antenna or antenna over the fraction rule."""

BAD_INTEGRATIONS = Table(
    key="bad_integrations",
    pattern="bad_integrations.csv",
    writer="lwa-flag integrations (qa/)",
    columns=("time_utc", "mjd", "rms", "running_median", "score", "bad", "reason", "file"),
    required=("mjd", "rms", "bad"),
)
"""One row per Stokes V snapshot: its RMS (Jy/beam), the running median, score and verdict."""

# ---------------------------------------------------------------------------------- lwa-dewarp
DEWARP_ANCHORS = Table(
    key="anchors",
    pattern="anchors.csv",
    writer="lwa-dewarp fit (screen_qa/)",
    columns=(
        "name", "cat_ra_deg", "cat_dec_deg", "expected_jy", "x_cat", "y_cat", "x_obs", "y_obs", "obs_ra_deg",
        "obs_dec_deg", "flux_jy", "peak_jy", "snr", "flux_ratio", "pos_err_px", "dx_px", "dy_px", "dra_arcmin",
        "ddec_arcmin", "sep_arcmin",
    ),
    required=("name", "dx_px", "dy_px"),
)
"""One row per catalogue source matched to a compact detection (the screen's anchors)."""

TABLES = (PHOTOMETRY, LEGACY_PHOTOMETRY, FLUX_CHECK, CANDIDATES, DETECTIONS_SUMMARY, THERMAL_NOISE,
          FLAGGED_BASELINES, BAD_INTEGRATIONS, DEWARP_ANCHORS)
