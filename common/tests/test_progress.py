"""lwa_common.progress: log lines of a long loop (count, elapsed, time left), throttled."""

from __future__ import annotations

import logging

from lwa_common.progress import progress

log = logging.getLogger("test_progress")


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test_progress"]


def test_a_line_per_item_when_unthrottled(caplog):
    caplog.set_level(logging.INFO)
    assert list(progress(["a", "b", "c"], what="concat", logger=log, every_s=0)) == ["a", "b", "c"]
    lines = _lines(caplog)
    assert [line.split(",")[0] for line in lines] == ["concat: 1/3 done", "concat: 2/3 done", "concat: 3/3 done"]
    assert lines[-1].endswith("about 0 s left")


def test_throttled_keeps_the_first_and_the_last(caplog):
    caplog.set_level(logging.INFO)
    assert sum(progress(range(50), what="apply", logger=log, every_s=3600)) == sum(range(50))
    assert [line.split(",")[0] for line in _lines(caplog)] == ["apply: 1/50 done", "apply: 50/50 done"]


def test_without_a_length(caplog):
    caplog.set_level(logging.INFO)
    list(progress((i for i in range(2)), what="scan", logger=log, every_s=0))
    assert [line.split(",")[0] for line in _lines(caplog)] == ["scan: 1 done", "scan: 2 done"]


def test_a_bar_on_a_terminal(caplog, capsys):
    """With a bar (stderr a terminal) tqdm draws on stderr, no per-item lines, one total line."""
    caplog.set_level(logging.INFO)
    assert list(progress(["a", "b", "c"], what="concat", logger=log, every_s=0, bar=True)) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert "concat" in err and "3/3" in err
    assert _lines(caplog) == [_lines(caplog)[0]] and _lines(caplog)[0].startswith("concat: 3 done in ")


def test_no_bar_in_a_log_file(caplog, capsys):
    caplog.set_level(logging.INFO)
    list(progress(["a"], what="concat", logger=log, every_s=0))  # pytest's stderr is not a terminal
    assert "1/1" not in capsys.readouterr().err
    assert _lines(caplog)[0].startswith("concat: 1/1 done")
