"""sentiment's data source: ``auto`` (the default) infers it from what ``path`` holds; a path that does not
exist always stops the run; synthetic data is used only when no path is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract.errors import HarnessError
from tasks import sentiment

SMALL = {"val_fraction": 0.1, "test_fraction": 0.1}


def polarity(folder: Path, n: int = 30) -> Path:
    folder.mkdir(parents=True)
    (folder / "rt-polarity.pos").write_text("".join(f"a fine film {i}\n" for i in range(n)))
    (folder / "rt-polarity.neg").write_text("".join(f"a dull film {i}\n" for i in range(n)))
    return folder


def table(file: Path, sep: str = ",", n: int = 40) -> Path:
    file.write_text(f"text{sep}label\n" + "".join(f"review {i} {'good' if i % 2 else 'bad'}{sep}{i % 2}\n"
                                                 for i in range(n)))
    return file


def imdb(root: Path) -> Path:
    for split in ("train", "test"):
        for part in ("pos", "neg"):
            folder = root / "aclImdb" / split / part
            folder.mkdir(parents=True)
            for i in range(10):
                (folder / f"{i}_5.txt").write_text(f"{part} review {i}")
    return root


def build(**options):
    return sentiment.SPEC.build(8, 4, 0, {**SMALL, **options})


@pytest.mark.parametrize("make, source", [
    (lambda tmp: polarity(tmp / "rt"), "rt-polarity"),
    (lambda tmp: polarity(tmp / "outer" / "rt-polaritydata").parent, "rt-polarity"),
    (lambda tmp: table(tmp / "reviews.csv"), "csv"),
    (lambda tmp: table(tmp / "reviews.tsv", sep="\t"), "csv"),
    (lambda tmp: imdb(tmp / "corpus"), "imdb"),
    (lambda tmp: imdb(tmp / "corpus") / "aclImdb", "imdb"),
])
def test_a_path_without_a_source_infers_it(tmp_path, make, source):
    task = build(path=str(make(tmp_path)))
    assert task.source == source
    assert task.config()["source_chosen"] == "inferred from what path holds"
    assert task.config()["source"].startswith(source)


def test_no_path_means_synthetic_and_says_so():
    task = sentiment.SPEC.build(16, 4, 0, {"n_reviews": 60})
    assert task.source == "synthetic" and task.config()["source_chosen"] == "default (no path given)"


def test_a_path_that_holds_nothing_known_names_the_choices(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(HarnessError, match=r"cannot tell which data it holds; name it with --task-opt "
                                               r"source=imdb .*rt-polarity .*csv"):
            build(path=str(path))


@pytest.mark.parametrize("source", ["auto", "rt-polarity", "imdb", "csv"])
def test_a_path_that_does_not_exist_always_stops(tmp_path, source):
    with pytest.raises(HarnessError, match=r"path=.*nothing-here: no such file or folder"):
        build(source=source, path=str(tmp_path / "nothing-here"))


def test_synthetic_given_on_purpose_refuses_a_path(tmp_path):
    with pytest.raises(HarnessError, match="source=synthetic generates its reviews and reads no path"):
        build(source="synthetic", path=str(polarity(tmp_path / "rt")))


def test_the_command_line_stops_on_a_missing_path(cli, tmp_path):
    code, out, err = cli("run", "--cells", "lstm", "--task", "sentiment", "--task-opt", "path=/nonexistent",
                         "--out", tmp_path / "r", "--no-progress", "--no-plots")
    assert code == 2 and not (tmp_path / "r").exists()
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert lines == ["harness run: error: --task-opt path=/nonexistent: no such file or folder"]
