"""Every sweep file that the help and the documentation name exists: a copied example must run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = re.compile(r"studies/[A-Za-z0-9_.\-]+\.toml")


def _help_texts() -> dict[str, str]:
    from harness.cli import COMMANDS, build_parser

    parser = build_parser()
    texts = {"harness --help": parser.format_help()}
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        texts[f"harness {name} --help"] = sub.choices[name].format_help()
    return texts


def _documents() -> dict[str, str]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "studies").glob("*.md")),
             *sorted((ROOT / "studies").glob("*.toml"))]
    return {str(f.relative_to(ROOT)): f.read_text() for f in files}


def test_the_pattern_finds_the_studies_the_docs_name():
    """Guard for the test below: it must see the paths it is meant to check."""
    named = {p for text in _documents().values() for p in STUDY.findall(text)}
    assert "studies/arjovsky2016-copy.toml" in named and len(named) >= 5


TEXTS = {**_help_texts(), **_documents()}


@pytest.mark.parametrize("where", TEXTS)
def test_every_named_sweep_file_exists(where):
    missing = sorted({p for p in STUDY.findall(TEXTS[where]) if not (ROOT / p).is_file()})
    assert not missing, f"{where} names {', '.join(missing)}, which do(es) not exist"


def test_the_sweep_help_names_a_study_as_an_example():
    text = _help_texts()["harness sweep --help"]
    assert STUDY.search(text), "the sweep help should show a --config example with a real study"
