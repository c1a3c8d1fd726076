"""char-lm loaders: PTB-char files, text8/enwik8 (fake official zips and bare files with the split scaled down),
text files and folders, the shared rt-polarity copy as source=text, inference from the path, and every bad input.

No test touches the network: the download step is replaced.
"""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.contract.errors import HarnessError
from tasks.char_lm import data

SHARED_POLARITY = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"
needs_shared = pytest.mark.skipif(not (SHARED_POLARITY / "rt-polarity.pos").is_file(),
                                  reason=f"shared rt-polarity copy not at {SHARED_POLARITY}")


# ------------------------------------------------------------------ fixtures

def write_ptb(folder: Path, lines: dict[str, list[str]] | None = None) -> Path:
    """ptb.char.{train,valid,test}.txt in Mikolov's layout: space-separated characters, '_' between words."""
    lines = lines or {"train": ["a _ c a t", "t h e _ d o g"], "valid": ["a _ d o g"], "test": ["t h e _ c a t"]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (folder / f"ptb.char.{split}.txt").write_text("".join(f" {row} \n" for row in rows))
    return folder


def fake_official(monkeypatch, tmp_path: Path, name: str, payload: bytes, split=(20, 6, 4)) -> tuple[Path, Path]:
    """A small 'official' corpus: its zip and bare file, with OFFICIAL[name] pinned to their sizes and digests and
    the split scaled down (the real one is 90M / 5M / 5M). -> (zip path, bare path)."""
    folder = tmp_path / f"{name}-files"
    folder.mkdir()
    spec = data.OFFICIAL[name]
    bare = folder / spec.member
    bare.write_bytes(payload)
    archive = folder / spec.zip_name
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(spec.member, payload)
    raw = archive.read_bytes()
    monkeypatch.setitem(data.OFFICIAL, name, replace(
        spec, zip_size=len(raw), zip_sha256=hashlib.sha256(raw).hexdigest(), size=len(payload),
        md5=hashlib.md5(payload).hexdigest(), split=split))
    return archive, bare


TEXT8 = b"anarchism originated as a term of abuse "[:30]          # 30 bytes: a-z and space
ENWIK8 = "<page><title>Zürich</title></page>".encode()[:30]      # 30 bytes, one character split over two


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "fetch", lambda url, dest: pytest.fail("must not download unless asked"))
    return tmp_path / "cache" / "char-lm"


# ----------------------------------------------------------------- PTB-char

def test_ptb_char_reads_each_token_as_one_symbol_and_ends_every_line(tmp_path):
    corpus = data.load_ptb_char(str(write_ptb(tmp_path / "ptb")))
    assert corpus.train == "a_cat\nthe_dog\n" and corpus.val == "a_dog\n" and corpus.test == "the_cat\n"
    assert corpus.unit == "character"


def test_ptb_char_is_found_in_the_data_folder_of_mikolovs_archive_and_in_the_cache(tmp_path, cache):
    write_ptb(tmp_path / "simple-examples" / "data")
    assert data.load_ptb_char(str(tmp_path / "simple-examples")).val == "a_dog\n"
    assert data.infer_source(str(tmp_path / "simple-examples")) == "ptb-char"
    with pytest.raises(HarnessError, match=r"no path was given.*ptb\.char\.\{train,valid,test\}"):
        data.load_ptb_char("")
    write_ptb(cache / "ptb-char")
    assert data.load_ptb_char("").test == "the_cat\n"


def test_ptb_char_missing_file_and_wrong_layout_are_one_line_errors(tmp_path):
    folder = write_ptb(tmp_path / "ptb")
    (folder / "ptb.char.valid.txt").unlink()
    with pytest.raises(HarnessError, match=r"lacks ptb\.char\.valid\.txt") as err:
        data.load_ptb_char(str(folder))
    assert "\n" not in str(err.value)
    write_ptb(tmp_path / "words", {"train": ["the cat"], "valid": ["a"], "test": ["b"]})
    with pytest.raises(HarnessError, match=r"line 1: token 'the' is not one character.*source=text"):
        data.load_ptb_char(str(tmp_path / "words"))


# ------------------------------------------------------------- text8, enwik8

@pytest.mark.parametrize("which", ["zip", "bare"])
def test_text8_reads_the_zip_or_the_bare_file_with_the_split_rule(tmp_path, monkeypatch, cache, which):
    archive, bare = fake_official(monkeypatch, tmp_path, "text8", TEXT8)
    corpus = data.load_official("text8", str(archive if which == "zip" else bare), False)
    assert (corpus.train, corpus.val, corpus.test) == (TEXT8[:20].decode(), TEXT8[20:26].decode(), TEXT8[26:30].decode())
    assert corpus.unit == "character" and isinstance(corpus.train, str)


@pytest.mark.parametrize("which", ["zip", "bare"])
def test_enwik8_is_bytes_split_by_bytes(tmp_path, monkeypatch, cache, which):
    archive, bare = fake_official(monkeypatch, tmp_path, "enwik8", ENWIK8)
    corpus = data.load_official("enwik8", str(archive if which == "zip" else bare), False)
    assert corpus.unit == "byte" and corpus.train == ENWIK8[:20] and corpus.test == ENWIK8[26:30]


def test_official_files_are_inferred_by_name_and_found_in_a_folder_or_the_cache(tmp_path, monkeypatch, cache):
    archive, bare = fake_official(monkeypatch, tmp_path, "text8", TEXT8)
    assert data.infer_source(str(archive)) == data.infer_source(str(bare)) == "text8"
    assert data.infer_source(str(archive.parent)) == "text8"
    assert data.find_official(data.OFFICIAL["text8"], str(archive.parent), False) == archive
    cache.mkdir(parents=True)
    (cache / "text8").write_bytes(TEXT8)
    assert data.find_official(data.OFFICIAL["text8"], "", False) == cache / "text8"


def test_no_official_data_and_no_download_names_every_fix(cache):
    with pytest.raises(HarnessError, match=r"no enwik8 data: pass --task-opt path=FILE.*download=true.*HARNESS_CACHE"):
        data.load_official("enwik8", "", False)


def test_a_truncated_zip_fails_its_size_check(tmp_path, monkeypatch, cache):
    archive, _ = fake_official(monkeypatch, tmp_path, "text8", TEXT8)
    truncated = tmp_path / "text8.zip"
    truncated.write_bytes(archive.read_bytes()[:-10])
    with pytest.raises(HarnessError, match=r"corrupt or incomplete: .* bytes, expected .*download http://mattmahoney"):
        data.load_official("text8", str(truncated), False)


def test_a_corrupt_zip_of_the_right_size_fails_its_checksum(tmp_path, monkeypatch, cache):
    archive, _ = fake_official(monkeypatch, tmp_path, "enwik8", ENWIK8)
    raw = bytearray(archive.read_bytes())
    raw[40] ^= 0xFF
    corrupt = tmp_path / "enwik8.zip"
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(HarnessError, match=r"fails its checksum \(sha256 [0-9a-f]+, expected [0-9a-f]+\)"):
        data.load_official("enwik8", str(corrupt), False)


def test_a_bare_file_is_checked_by_size_and_md5(tmp_path, monkeypatch, cache):
    _, bare = fake_official(monkeypatch, tmp_path, "text8", TEXT8)
    bare.write_bytes(TEXT8[:-1] + b"x")                        # right size, other content
    with pytest.raises(HarnessError, match=r"fails its checksum \(md5"):
        data.load_official("text8", str(bare), False)
    bare.write_bytes(TEXT8[:10])
    with pytest.raises(HarnessError, match=r"10 bytes, expected 30"):
        data.load_official("text8", str(bare), False)


def test_download_is_verified_then_kept_in_the_cache(tmp_path, monkeypatch, cache):
    archive, _ = fake_official(monkeypatch, tmp_path, "text8", TEXT8)
    calls = []
    monkeypatch.setattr(data, "fetch", lambda url, dest: (calls.append(url), Path(dest).write_bytes(archive.read_bytes())))
    assert data.load_official("text8", "", True).val == TEXT8[20:26].decode()
    assert calls == ["http://mattmahoney.net/dc/text8.zip"] and (cache / "text8.zip").is_file()
    data.load_official("text8", "", True)                      # found in the cache: no second download
    assert len(calls) == 1


def test_a_corrupt_download_is_removed_and_named(tmp_path, monkeypatch, cache):
    fake_official(monkeypatch, tmp_path, "enwik8", ENWIK8)
    monkeypatch.setattr(data, "fetch", lambda url, dest: Path(dest).write_bytes(b"not a zip"))
    with pytest.raises(HarnessError, match=r"corrupt or incomplete"):
        data.load_official("enwik8", "", True)
    assert not any(cache.iterdir())


def test_an_offline_download_is_one_line(tmp_path, monkeypatch, cache):
    def offline(url, dest):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(data, "fetch", offline)
    with pytest.raises(HarnessError, match=r"could not download http://mattmahoney.net/dc/enwik8.zip \(no network\)"):
        data.load_official("enwik8", "", True)


def test_the_pinned_official_digests_are_the_published_ones():
    text8, enwik8 = data.OFFICIAL["text8"], data.OFFICIAL["enwik8"]
    assert (text8.zip_size, text8.size, text8.split) == (31_344_016, 100_000_000, (90_000_000, 5_000_000, 5_000_000))
    assert (enwik8.zip_size, enwik8.size) == (36_445_475, 100_000_000)
    assert enwik8.md5 == "a1fa5ffddb56f4953e226637dabbb36a"   # Mahoney's published listing (docs/tasks.md)
    assert all(len(s.zip_sha256) == 64 and len(s.md5) == 32 for s in (text8, enwik8))


# -------------------------------------------------------------------- text

def test_a_folder_is_read_in_sorted_order_without_readme_or_hidden_files(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "b.neg").write_text("second")                   # no trailing newline: one is added
    (folder / "a.pos").write_text("first\n")
    (folder / "README.txt").write_text("about the data")
    (folder / ".hidden").write_text("secret")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.txt").write_text("nested")
    text, files = data.read_text_source(str(folder))
    assert text == "first\nsecond\n" and [f.name for f in files] == ["a.pos", "b.neg"]
    assert data.read_text_source(str(folder), "*.neg")[0] == "second\n"


def test_text_is_split_contiguously_by_the_fractions():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    train, val, test = data.split_text(text, 0.1, 0.2)
    assert (train, val, test) == (text[:70], text[70:80], text[80:])
    with pytest.raises(HarnessError, match=r"5 characters: too few"):
        data.split_text("abcde", 0.1, 0.1)


def test_bad_text_input_is_one_line_each(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(HarnessError, match=r"the file is empty"):
        data.load_text(str(tmp_path / "empty.txt"), "*", 0.1, 0.1)
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(HarnessError, match=r"latin1.txt is not UTF-8 text \(byte 3\).*files=PATTERN"):
        data.load_text(str(tmp_path / "latin1.txt"), "*", 0.1, 0.1)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "README").write_text("only a readme")
    with pytest.raises(HarnessError, match=r"no text files in this folder") as err:
        data.load_text(str(tmp_path / "nothing"), "*", 0.1, 0.1)
    assert "\n" not in str(err.value)
    with pytest.raises(HarnessError, match=r"no such file or folder"):
        data.infer_source(str(tmp_path / "absent"))


def test_any_other_path_is_text(tmp_path):
    (tmp_path / "book.md").write_text("# a book\n")
    assert data.infer_source(str(tmp_path / "book.md")) == data.infer_source(str(tmp_path)) == "text"


@needs_shared
def test_the_shared_rt_polarity_folder_is_read_as_text():
    assert data.infer_source(str(SHARED_POLARITY)) == "text"
    corpus = data.load_text(str(SHARED_POLARITY), "*", 0.1, 0.1)
    files = [Path(f).name for f in corpus.described["files"]]
    assert files == ["rt-polarity.neg", "rt-polarity.pos"]      # README.txt is left out
    total = len(corpus.train) + len(corpus.val) + len(corpus.test)
    neg = (SHARED_POLARITY / "rt-polarity.neg").read_text(encoding="utf-8")
    assert corpus.train.startswith(neg[:200]) and abs(len(corpus.val) - 0.1 * total) <= 1
    assert corpus.test.endswith((SHARED_POLARITY / "rt-polarity.pos").read_text(encoding="utf-8")[-200:])
