"""lwa_common.ms.ms_output (copy or in place) and lwa_common.products (table names, units, fields)."""

from __future__ import annotations

import pytest

from lwa_common.errors import LwaError
from lwa_common.ms import check_ms_output, ms_output
from lwa_common.products import (
    CANDIDATES,
    LEGACY_PHOTOMETRY,
    PHOTOMETRY,
    find_tables,
    photometry_schema,
    unit_of,
)


def _ms(folder, name="in.ms", text="v0"):
    ms = folder / name
    ms.mkdir()
    (ms / "table.dat").write_text(text)
    return ms


def test_ms_output_copies_atomically_and_never_touches_the_input(tmp_path):
    ms = _ms(tmp_path)
    out = tmp_path / "out.ms"
    with ms_output(ms, out) as target:
        assert target != out and not out.exists()  # work happens under a temporary name
        (target / "table.dat").write_text("v1")
    assert (out / "table.dat").read_text() == "v1" and (ms / "table.dat").read_text() == "v0"
    with pytest.raises(LwaError, match="--overwrite"):
        check_ms_output(ms, out)
    with pytest.raises(RuntimeError), ms_output(ms, out, overwrite=True) as target:  # a failure keeps the old
        (target / "table.dat").write_text("v2")
        raise RuntimeError("boom")
    assert (out / "table.dat").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ms", "out.ms"]


def test_ms_output_in_place_named_and_bad_requests(tmp_path):
    ms = _ms(tmp_path)
    with ms_output(ms, in_place=True) as target:
        assert target == ms
    with ms_output(ms, tmp_path / "named.ms", named=True) as target:
        assert target == tmp_path / "named.ms" and (target / "table.dat").exists()
    with pytest.raises(RuntimeError), ms_output(ms, tmp_path / "gone.ms", named=True):
        raise RuntimeError("boom")
    assert not (tmp_path / "gone.ms").exists()
    for kwargs, words in (({}, "exactly one"), ({"output": tmp_path / "x.ms", "in_place": True}, "exactly one"),
                          ({"output": ms}, "is the input")):
        with pytest.raises(LwaError, match=words):
            check_ms_output(ms, **kwargs)


def test_products_names_units_and_fields(tmp_path):
    assert PHOTOMETRY.file_name("3C 48") == "3C 48_photometry.csv" and PHOTOMETRY.subject("a/Vir_photometry.csv") == "Vir"
    assert PHOTOMETRY.matches(tmp_path / "x_photometry.csv") and not CANDIDATES.matches(tmp_path / "x.csv")
    assert [unit_of(c) for c in ("I_peak_jy", "flux_jy", "pos_ra_deg", "freq_mhz", "mjd_mid", "snr", "x")] == [
        "Jy/beam", "Jy", "deg", "MHz", "d (MJD UTC)", "", "pixel"]
    assert set(PHOTOMETRY.required) <= set(PHOTOMETRY.columns) and set(CANDIDATES.required) <= set(CANDIDATES.columns)
    assert photometry_schema(["target", "detected"]) is PHOTOMETRY
    assert photometry_schema(["Target", "Detection"]) is LEGACY_PHOTOMETRY and photometry_schema(["x"]) is None
    row = {"target": "A", "lwa_target": "B", "flux_jy": "", "I_peak_jy": 2.5}
    assert PHOTOMETRY.value(row, "name") == "B" and PHOTOMETRY.value(row, "flux_jy") == 2.5
    assert PHOTOMETRY.value(row, "snr", "none") == "none"
    (tmp_path / "a" / ".hidden").mkdir(parents=True)
    for p in ("a/X_photometry.csv", "a/.hidden/Y_photometry.csv", "candidates.csv"):
        (tmp_path / p).write_text("")
    assert [p.name for p in find_tables(tmp_path, PHOTOMETRY)] == ["X_photometry.csv"]


def test_flag_chunks_fold_flag_row_in_and_cover_every_row(tmp_path):
    """Every row once, in order, with its own TIME; a FLAG_ROW row is flagged in every channel and pol."""
    import numpy as np
    from casacore.tables import makearrcoldesc, makescacoldesc, maketabdesc, table

    from lwa_common.ms import flag_chunks

    path, n = tmp_path / "flags.ms", 5000
    desc = maketabdesc([makearrcoldesc("FLAG", False, ndim=2, shape=[3, 4]), makescacoldesc("FLAG_ROW", False),
                        makescacoldesc("TIME", 0.0)])
    flag = np.zeros((n, 3, 4), bool)
    flag[::7, 1, 2] = True
    flag_row = np.zeros(n, bool)
    flag_row[::11] = True
    with table(str(path), desc, nrow=n, ack=False) as t:
        t.putcol("FLAG", flag)
        t.putcol("FLAG_ROW", flag_row)
        t.putcol("TIME", np.arange(n, dtype=float))
    chunks = list(flag_chunks(path, columns=["TIME"], chunk_bytes=12 * 1500))
    assert [len(f) for f, _ in chunks] == [1500, 1500, 1500, 500]  # 12 flags a row: 1500 rows a chunk
    flags = np.concatenate([f for f, _ in chunks])
    assert np.array_equal(np.concatenate([c["TIME"] for _, c in chunks]), np.arange(n))
    assert np.array_equal(flags, flag | flag_row[:, None, None])
