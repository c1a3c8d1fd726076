"""sentiment loaders: IMDB (folder, archive, verified download), Cornell polarity, CSV/TSV, splits.

Every loader runs on tiny fixture data written here; the shared rt-polarity copy
(../shared/data/rt-polarity) is tested too when it is present (it is in CI).
No test touches the network: the download step is replaced.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
from pathlib import Path

import pytest

from harness.contract.errors import HarnessError
from tasks.sentiment import data
from tasks.sentiment.text import tokenize

SHARED_POLARITY = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"
needs_shared = pytest.mark.skipif(not (SHARED_POLARITY / "rt-polarity.pos").is_file(),
                                  reason=f"shared rt-polarity copy not at {SHARED_POLARITY}")


# ------------------------------------------------------------------ fixtures

def write_polarity(folder: Path, pos: list[str], neg: list[str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rt-polarity.pos").write_bytes(("\n".join(pos) + "\n").encode(encoding))
    (folder / "rt-polarity.neg").write_bytes(("\n".join(neg) + "\n").encode(encoding))
    return folder


def write_imdb(root: Path, per_part: int = 3) -> Path:
    """aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt, as published (plus an ignored unsup folder)."""
    for split in ("train", "test"):
        for part in ("pos", "neg"):
            folder = root / "aclImdb" / split / part
            folder.mkdir(parents=True)
            for i in range(per_part):
                stars = 8 if part == "pos" else 2
                (folder / f"{i}_{stars}.txt").write_text(f"{split} {part} review {i}.<br /><br />The end.")
    (root / "aclImdb" / "train" / "unsup").mkdir()
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("unlabelled")
    return root


def make_archive(tmp: Path) -> Path:
    src = write_imdb(tmp / "src", per_part=2)
    archive = tmp / "fake_aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "aclImdb", arcname="aclImdb")
    return archive


def pin_archive(monkeypatch, archive: Path) -> None:
    """Make the fake archive the 'official' one: its size and hash become the expected ones."""
    monkeypatch.setattr(data, "IMDB_SIZE", archive.stat().st_size)
    monkeypatch.setattr(data, "IMDB_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())


def copying_fetch(archive: Path, calls: list):
    def fetch(url, dest):
        calls.append(url)
        Path(dest).write_bytes(archive.read_bytes())
    return fetch


# ----------------------------------------------------------------- tokeniser

def test_tokenize_splits_punctuation_keeps_contractions_and_drops_html_breaks():
    assert tokenize("Amazing movie! I didn't<br />mind it.") == ["amazing", "movie", "!", "i", "didn't", "mind", "it", "."]
    assert tokenize("co-writer/director") == ["co-writer", "/", "director"]


def test_read_text_falls_back_to_latin1(tmp_path):
    (tmp_path / "a.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "b.txt").write_bytes("café".encode("utf-8"))
    assert data.read_text(tmp_path / "a.txt") == "café"
    assert data.read_text(tmp_path / "b.txt") == "café"


# ------------------------------------------------------------------ polarity

def test_load_polarity_reads_lines_labels_and_latin1(tmp_path):
    folder = write_polarity(tmp_path / "rt", ["a fine film .", "", "très bien ."], ["dull ."], encoding="latin-1")
    examples = data.load_polarity(folder)
    assert examples == [("a fine film .", 1), ("très bien .", 1), ("dull .", 0)]


def test_load_polarity_finds_the_archive_folder(tmp_path):
    write_polarity(tmp_path / "rt-polaritydata", ["good ."], ["bad ."])
    assert data.load_polarity(tmp_path) == [("good .", 1), ("bad .", 0)]


def test_load_polarity_missing_files_is_one_clear_error(tmp_path):
    with pytest.raises(HarnessError, match=r"no rt-polarity\.pos.*--task-opt path="):
        data.load_polarity(tmp_path)


@needs_shared
def test_load_polarity_on_the_shared_copy():
    examples = data.load_polarity(SHARED_POLARITY)
    labels = [label for _, label in examples]
    assert labels.count(1) == 5331 and labels.count(0) == 5331
    assert all(text.strip() == text and text for text, _ in examples)
    assert examples[0][0].startswith("the rock is destined")


# ---------------------------------------------------------------------- IMDB

def test_load_imdb_reads_the_published_layout(tmp_path):
    root = write_imdb(tmp_path)
    for given in (root, root / "aclImdb"):
        train, test = data.load_imdb(given)
        assert len(train) == 6 and len(test) == 6            # unsup is ignored
        assert [label for _, label in train] == [1, 1, 1, 0, 0, 0]
        assert train[0][0] == "train pos review 0.<br /><br />The end."
        assert tokenize(train[0][0])[-3:] == ["the", "end", "."]


def test_load_imdb_rejects_an_incomplete_copy(tmp_path):
    root = write_imdb(tmp_path)
    for f in (root / "aclImdb" / "test" / "neg").iterdir():
        f.unlink()
    with pytest.raises(HarnessError, match="incomplete"):
        data.load_imdb(root)
    with pytest.raises(HarnessError, match="aclImdb"):
        data.load_imdb(tmp_path / "nowhere")


def test_no_imdb_and_no_download_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "fetch", lambda url, dest: pytest.fail("must not download unless asked"))
    with pytest.raises(HarnessError, match=r"path=DIR.*download=true.*HARNESS_CACHE"):
        data.find_imdb("", download=False, cache=tmp_path / "cache")


def test_offline_download_is_one_clear_error(tmp_path, monkeypatch):
    def offline(url, dest):
        Path(dest).write_bytes(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(data, "fetch", offline)
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match=r"could not download .*aclImdb_v1\.tar\.gz.*name resolution"):
        data.find_imdb("", download=True, cache=cache)
    assert list(cache.iterdir()) == []                      # the partial file is gone


def test_corrupt_download_fails_the_size_check_and_is_removed(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)                         # not 84,125,825 bytes
    monkeypatch.setattr(data, "fetch", copying_fetch(archive, []))
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match=r"corrupt or incomplete.*expected 84,125,825"):
        data.find_imdb("", download=True, cache=cache)
    assert not any(cache.iterdir())


def test_corrupt_download_with_the_right_size_fails_the_checksum(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)
    monkeypatch.setattr(data, "IMDB_SIZE", archive.stat().st_size)   # size matches, the hash cannot
    monkeypatch.setattr(data, "fetch", copying_fetch(archive, []))
    with pytest.raises(HarnessError, match=f"checksum.*expected {data.IMDB_SHA256}"):
        data.find_imdb("", download=True, cache=tmp_path / "cache")


def test_verified_download_is_extracted_and_then_reused(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)
    pin_archive(monkeypatch, archive)
    calls: list = []
    monkeypatch.setattr(data, "fetch", copying_fetch(archive, calls))
    cache = tmp_path / "cache"
    folder = data.find_imdb("", download=True, cache=cache)
    assert calls == [data.IMDB_URL]
    assert folder == cache / "aclImdb" and (cache / data.IMDB_ARCHIVE).is_file()
    train, test = data.load_imdb(folder)
    assert len(train) == 4 and len(test) == 4
    # Later runs read the cache and never download again, asked or not.
    assert data.find_imdb("", download=True, cache=cache) == folder
    assert data.find_imdb("", download=False, cache=cache) == folder
    assert calls == [data.IMDB_URL]


def test_a_local_archive_is_verified_then_extracted(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match="corrupt"):       # not the official archive
        data.find_imdb(str(archive), download=False, cache=cache)
    pin_archive(monkeypatch, archive)
    folder = data.find_imdb(str(archive), download=False, cache=cache)
    assert len(data.load_imdb(folder)[0]) == 4


def test_cache_dir_follows_harness_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HARNESS_CACHE")
    assert data.cache_dir() == Path.home() / ".cache" / "rnn-harness"


# ------------------------------------------------------------------- CSV/TSV

def test_load_table_csv_with_label_spellings_and_quoted_commas(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text('review,sentiment\n"great, really",positive\nawful,NEG\nfine,1\nmeh,0\n"ok",Pos\n')
    examples = data.load_table(f, text_column="review", label_column="sentiment")
    assert examples == [("great, really", 1), ("awful", 0), ("fine", 1), ("meh", 0), ("ok", 1)]


def test_load_table_tsv_by_extension_and_by_option(tmp_path):
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("text\tlabel\na, b\tpos\nc\tnegative\n")
    assert data.load_table(tsv) == [("a, b", 1), ("c", 0)]
    txt = tmp_path / "mine.txt"
    txt.write_text("text|label\nx|1\n")
    assert data.load_table(txt, delimiter="|") == [("x", 1)]


def test_load_table_errors_name_the_fix(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("body,label\nhello,1\n")
    with pytest.raises(HarnessError, match=r"no column 'text' \(columns: body, label\).*text_column"):
        data.load_table(f)
    f.write_text("text,label\nhello,1\nbye,maybe\n")
    with pytest.raises(HarnessError, match=r"row 3: label 'maybe'"):
        data.load_table(f)
    with pytest.raises(HarnessError, match="path=FILE"):
        data.load_table(tmp_path / "absent.csv")
    with pytest.raises(HarnessError, match="one character"):
        data.load_table(f, delimiter=";;")


# -------------------------------------------------------------------- splits

def test_split_is_fixed_by_seed_disjoint_and_complete():
    a = data.split_indices(100, 0.1, 0.2, seed=0)
    assert a == data.split_indices(100, 0.1, 0.2, seed=0)
    assert a != data.split_indices(100, 0.1, 0.2, seed=1)
    train, val, test = a
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(train + val + test) == list(range(100))


def test_split_too_small_is_a_clear_error():
    with pytest.raises(HarnessError, match="too few"):
        data.split_indices(2, 0.5, 0.5, seed=0)
