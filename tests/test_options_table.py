"""docs/options.md lists every option of every command as the code has it (tests/options_table.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_options_table_is_current():
    spec = importlib.util.spec_from_file_location("options_table", REPO / "tests" / "options_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    current = (REPO / "docs" / "options.md").read_text()
    assert current == mod.table(), ("docs/options.md is out of date: "
                                    ".venv/bin/python tests/options_table.py > docs/options.md")
