"""Loaders for ``char-lm``: the Mikolov PTB-char files, text8 and enwik8 (official zip or bare file), any text.

Every loader returns a :class:`Corpus`: the train, validation and test splits
as one ``str`` each (characters) or ``bytes`` each (enwik8, modelled byte by
byte), in corpus order. What each source reads, and how, is in
``docs/tasks.md`` (section ``char-lm``). Missing, corrupt or unusable data
raises a one-line :class:`~harness.errors.HarnessError` that names the fix.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from harness import HarnessError
from tasks.datasets import cache_dir, check_file, download, fetch  # noqa: F401  (fetch: tests replace it here)

SOURCES = ("ptb-char", "text8", "enwik8", "text")
CHOICES = ("source=ptb-char (a folder with ptb.char.{train,valid,test}.txt), text8 or enwik8 (the official zip or "
           "the bare file), or text (any UTF-8 file or folder)")
CACHE_FOLDER = "char-lm"
"""Subfolder of :func:`tasks.datasets.cache_dir` where downloads and copies of the corpora live."""


@dataclass
class Corpus:
    """The three splits of one corpus, in corpus order: ``str`` (characters) or ``bytes`` (bytes)."""

    train: str | bytes
    val: str | bytes
    test: str | bytes
    unit: str
    """``"character"`` or ``"byte"``: what one symbol is."""
    described: dict[str, Any] = field(default_factory=dict)
    """Where the data came from and how it was split (for ``config.json``)."""


# ----------------------------------------------------------------- PTB-char (Mikolov)

PTB_FILES = {"train": "ptb.char.train.txt", "val": "ptb.char.valid.txt", "test": "ptb.char.test.txt"}
PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
END_OF_LINE = "\n"
"""The symbol that ends every line of a PTB-char file (the end of a sentence)."""


def ptb_folder(path: Path) -> Path | None:
    """``path`` or ``path/data`` (the layout of Mikolov's simple-examples archive) when it holds any PTB-char file."""
    for folder in (path, path / "data"):
        if any((folder / name).is_file() for name in PTB_FILES.values()):
            return folder
    return None


def read_ptb_char(file: Path) -> str:
    """One PTB-char file as a string of symbols.

    Each line holds one sentence as space-separated characters, ``_`` between words
    (``a e r _ b a n k n o t e``). Every token becomes one symbol (``_`` stays ``_``, the word
    boundary), and every line ends with one end-of-line symbol ``\\n``, so the model also predicts
    where a sentence ends. A token longer than one character is not this layout: the run stops.
    """
    text = _utf8(file)
    symbols: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        for token in tokens:
            if len(token) != 1:
                raise HarnessError(f"{file}, line {number}: token {token!r} is not one character; a PTB-char file "
                                   "holds space-separated characters (Mikolov's ptb.char.*.txt); read other text "
                                   "with --task-opt source=text")
        symbols.extend(tokens)
        symbols.append(END_OF_LINE)
    if not symbols:
        raise HarnessError(f"{file} is empty; PTB-char needs the non-empty ptb.char.*.txt files ({PTB_URL}, data/)")
    return "".join(symbols)


def load_ptb_char(path: str) -> Corpus:
    """Mikolov's train/valid/test PTB-char files, from ``path`` or, without a path, the cache."""
    root = Path(path).expanduser() if path else cache_dir() / CACHE_FOLDER / "ptb-char"
    folder = ptb_folder(root) if root.is_dir() else None
    if folder is None:
        where = f"--task-opt path={path}" if path else f"no path was given and {root}"
        raise HarnessError(f"{where} holds no ptb.char.train.txt; pass --task-opt path=DIR for the folder holding "
                           f"ptb.char.{{train,valid,test}}.txt (the data/ folder of {PTB_URL}), or copy them to "
                           f"{cache_dir() / CACHE_FOLDER / 'ptb-char'}")
    missing = [name for name in PTB_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise HarnessError(f"{folder} lacks {', '.join(missing)}; PTB-char needs all three of "
                           f"ptb.char.{{train,valid,test}}.txt ({PTB_URL}, data/)")
    splits = {split: read_ptb_char(folder / name) for split, name in PTB_FILES.items()}
    return Corpus(**splits, unit="character",
                  described={"files": [str(folder / name) for name in PTB_FILES.values()],
                             "split": "Mikolov's official train/valid/test files",
                             "reading": "space-separated characters; '_' is the word boundary; '\\n' ends each line"})


# ------------------------------------------------------------------- text8 and enwik8

@dataclass(frozen=True)
class Official:
    """An official corpus of the Large Text Compression Benchmark, with its published sizes and digests."""

    name: str
    url: str
    zip_name: str
    zip_size: int
    zip_sha256: str
    member: str
    size: int
    """Bytes of the unzipped file."""
    md5: str
    """MD5 of the unzipped file."""
    split: tuple[int, int, int]
    """Train, validation and test sizes in bytes, taken in that order from the file's start."""
    unit: str


# Sizes and digests: docs/tasks.md (char-lm, "Checksums") says where each one was checked.
OFFICIAL = {
    "text8": Official("text8", "http://mattmahoney.net/dc/text8.zip", "text8.zip", 31_344_016,
                      "a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232", "text8", 100_000_000,
                      "3bea1919949baf155f99411df5fada7e", (90_000_000, 5_000_000, 5_000_000), "character"),
    "enwik8": Official("enwik8", "http://mattmahoney.net/dc/enwik8.zip", "enwik8.zip", 36_445_475,
                       "547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc", "enwik8", 100_000_000,
                       "a1fa5ffddb56f4953e226637dabbb36a", (90_000_000, 5_000_000, 5_000_000), "byte"),
}


def verify_zip(spec: Official, file: Path) -> None:
    """Raise unless ``file`` has the official zip's size and SHA-256."""
    check_file(file, size=spec.zip_size, sha256=spec.zip_sha256,
               fix=f"delete it and download {spec.url} again (or pass --task-opt download=true)")


def verify_bare(spec: Official, file: Path) -> None:
    """Raise unless ``file`` has the unzipped file's size and MD5."""
    check_file(file, size=spec.size, md5=spec.md5,
               fix=f"unzip {spec.zip_name} ({spec.url}) again, or pass the zip itself")


def read_official(spec: Official, file: Path) -> bytes:
    """The verified bytes of ``file``: the official zip (its member is read) or the bare file."""
    if file.suffix.lower() == ".zip" or zipfile.is_zipfile(file):
        verify_zip(spec, file)
        try:
            with zipfile.ZipFile(file) as archive:
                data = archive.read(spec.member)
        except KeyError:
            raise HarnessError(f"{file} has no member {spec.member!r}; is it {spec.zip_name} from {spec.url}?") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise HarnessError(f"{file} cannot be read as a zip ({exc}); delete it and download {spec.url} again") \
                from None
        if len(data) != spec.size:
            raise HarnessError(f"{file}: {spec.member} unzips to {len(data):,} bytes, expected {spec.size:,}; "
                               f"delete it and download {spec.url} again")
        return data
    verify_bare(spec, file)
    return file.read_bytes()


def find_official(spec: Official, path: str, want_download: bool, cache: Path | None = None) -> Path:
    """The file to read, in this order: ``path`` (the zip, the bare file, or a folder holding either); the cache
    (``<cache>/char-lm/<zip>`` or ``<member>``); a verified download when ``want_download``. Otherwise one
    error that names all three."""
    folder = (cache_dir() if cache is None else cache) / CACHE_FOLDER
    if path:
        given = Path(path).expanduser()
        if given.is_file():
            return given
        for name in (spec.zip_name, spec.member):
            if (given / name).is_file():
                return given / name
        raise HarnessError(f"--task-opt path={path} holds neither {spec.zip_name} nor {spec.member}; pass the file "
                           f"itself, or --task-opt download=true to fetch {spec.url}")
    for name in (spec.zip_name, spec.member):
        if (folder / name).is_file():
            return folder / name
    if want_download:
        return download(spec.url, folder / spec.zip_name, lambda part: verify_zip(spec, part), fetch=fetch)
    raise HarnessError(f"no {spec.name} data: pass --task-opt path=FILE ({spec.zip_name} or the bare {spec.member}), "
                       f"or add --task-opt download=true to fetch {spec.url} ({spec.zip_size / 1e6:.0f} MB) into "
                       f"{folder} (set HARNESS_CACHE to use another folder)")


def load_official(name: str, path: str, want_download: bool) -> Corpus:
    """text8 or enwik8: the standard split, the first 90M / next 5M / last 5M bytes (``OFFICIAL[name].split``)."""
    spec = OFFICIAL[name]
    file = find_official(spec, path, want_download)
    data = read_official(spec, file)
    n_train, n_val, n_test = spec.split
    parts = data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:n_train + n_val + n_test]
    if spec.unit == "character":  # text8 is a-z and space: one byte, one character
        parts = tuple(part.decode("latin-1") for part in parts)
    return Corpus(*parts, unit=spec.unit,
                  described={"files": [str(file)], "split": f"first {n_train:,} / next {n_val:,} / next {n_test:,} "
                                                            f"{'characters' if spec.unit == 'character' else 'bytes'}",
                             "verified": f"{spec.zip_name}: size and SHA-256; bare {spec.member}: size and MD5"})


# ------------------------------------------------------------------------------ text

SKIPPED_NAMES = ("readme*", "license*", "licence*", "copying*")
"""Files of a folder that are never read as text (any case): the documentation that ships beside a corpus."""


def text_files(folder: Path, pattern: str = "*") -> list[Path]:
    """The files a folder contributes, in sorted name order: every regular file at its top level whose name matches
    ``pattern``, whatever its extension, except hidden files (a leading ``.``) and :data:`SKIPPED_NAMES`."""
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and not f.name.startswith(".") and fnmatch(f.name, pattern)
                  and not any(fnmatch(f.name.lower(), skip) for skip in SKIPPED_NAMES))


def _utf8(file: Path) -> str:
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{file} is not UTF-8 text (byte {exc.start:,}); convert it (e.g. iconv -f latin1 "
                           "-t utf-8) or leave it out with --task-opt files=PATTERN") from None


def read_text_source(path: str, pattern: str = "*") -> tuple[str, list[Path]]:
    """The text of a UTF-8 file, or of a folder's :func:`text_files` joined in order, each ending with a newline
    (one is added where a file lacks it). -> ``(text, files read)``."""
    given = Path(path).expanduser()
    files = text_files(given, pattern) if given.is_dir() else [given]
    if not files:
        raise HarnessError(f"--task-opt path={path}: no text files in this folder (read: every top-level file "
                           f"matching files={pattern!r} except hidden, README, LICENSE and COPYING files); "
                           f"point path at the text, or name the data with --task-opt {CHOICES}")
    parts = []
    for file in files:
        text = _utf8(file)
        if text and not text.endswith("\n"):
            text += "\n"
        parts.append(text)
    text = "".join(parts)
    if not text:
        raise HarnessError(f"--task-opt path={path}: {'the files are' if len(files) > 1 else 'the file is'} empty; "
                           "char-lm needs some text")
    return text, files


def split_text(text: str, val_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """Contiguous train / validation / test: the first ``1 - val - test`` of the characters, then the next
    ``val_fraction``, then the last ``test_fraction`` (each rounded to whole characters). Every split needs at
    least two characters (one character and the one after it)."""
    n = len(text)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 2:
        raise HarnessError(f"the text has {n:,} characters: too few for train, val_fraction={val_fraction} and "
                           f"test_fraction={test_fraction} (each split needs at least 2); add text or change the "
                           "fractions")
    return text[:n_train], text[n_train:n_train + n_val], text[n_train + n_val:]


def load_text(path: str, pattern: str, val_fraction: float, test_fraction: float) -> Corpus:
    if not path:
        raise HarnessError("source=text needs --task-opt path=FILE_OR_DIR, a UTF-8 text file or a folder of them")
    text, files = read_text_source(path, pattern)
    train, val, test = split_text(text, val_fraction, test_fraction)
    return Corpus(train, val, test, unit="character",
                  described={"files": [str(f) for f in files],
                             "split": f"contiguous: first {1 - val_fraction - test_fraction:g} train, next "
                                      f"{val_fraction:g} validation, last {test_fraction:g} test (of the characters)"})


# --------------------------------------------------------------------- which source a path holds

def require_path(path: str) -> Path:
    given = Path(path).expanduser()
    if not given.exists():
        raise HarnessError(f"--task-opt path={path}: no such file or folder")
    return given


def infer_source(path: str) -> str:
    """What ``path`` holds: ``ptb-char`` (a folder with a ``ptb.char.*.txt`` file, or its ``data/``), ``text8`` or
    ``enwik8`` (a file named ``text8``, ``text8.zip``, ``enwik8``, ``enwik8.zip``, or a folder holding one), else
    ``text`` (any other file or folder)."""
    given = require_path(path)
    if given.is_dir():
        if ptb_folder(given) is not None:
            return "ptb-char"
        for name, spec in OFFICIAL.items():
            if (given / spec.zip_name).is_file() or (given / spec.member).is_file():
                return name
        return "text"
    for name, spec in OFFICIAL.items():
        if given.name in (spec.zip_name, spec.member):
            return name
    return "text"


def load(source: str, opts: dict[str, Any]) -> Corpus:
    """The corpus of a resolved ``source`` (never ``auto``) with the task's options."""
    if source == "ptb-char":
        return load_ptb_char(opts["path"])
    if source in OFFICIAL:
        return load_official(source, opts["path"], opts["download"])
    return load_text(opts["path"], opts["files"], opts["val_fraction"], opts["test_fraction"])
