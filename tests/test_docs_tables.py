"""Every markdown table in the docs has rows: a header whose numbers went missing is caught here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "studies" / "README.md"])
SEPARATOR = re.compile(r"^\|[-:| ]+\|\s*$")


def empty_tables(text: str) -> list[int]:
    """Line numbers (1-based) of table separators that no row follows."""
    lines = text.splitlines()
    return [i + 1 for i, line in enumerate(lines)
            if SEPARATOR.match(line) and (i + 1 == len(lines) or not lines[i + 1].startswith("|"))]


def test_the_check_finds_a_table_without_rows():
    assert empty_tables("| a | b |\n|---|---:|\n\ntext\n| c |\n|---|\n| 1 |\n") == [2]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_has_rows(page):
    assert empty_tables(page.read_text()) == [], f"{page.name}: a table with a header and no rows"
