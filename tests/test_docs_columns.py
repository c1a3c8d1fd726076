"""docs/results.md documents every column the harness writes (summary.csv, bench.csv)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.measurements.bench import BENCH_COLUMNS
from harness.reports.columns import SUMMARY_NAMES

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def _section(title: str) -> str:
    text = RESULTS.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("title, columns", [("## `summary.csv`", SUMMARY_NAMES),
                                            ("## `bench.csv`", BENCH_COLUMNS)])
def test_every_column_is_documented_in_its_section(title, columns):
    documented = set(re.findall(r"`([a-z_A-Z0-9]+)`", _section(title)))
    assert set(columns) - documented == set()
