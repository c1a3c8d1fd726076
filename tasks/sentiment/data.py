"""Loaders for ``sentiment``: IMDB (folder or verified download), Cornell polarity, CSV/TSV.

Every loader returns ``(text, label)`` pairs, ``label`` 1 for positive and 0
for negative, in a fixed order (sorted file names, file line order), so that
the seed alone decides the split. Missing or malformed data raises
:class:`~harness.contract.errors.HarnessError` with a message that says how to fix it.
"""

from __future__ import annotations

import csv
import io
import shutil
import tarfile
from pathlib import Path

import torch

from harness.contract import seeding
from harness.contract.errors import HarnessError
from tasks.datasets import cache_dir, check_file, download, fetch  # noqa: F401  (fetch: tests replace it here)

Example = tuple[str, int]

# ------------------------------------------------------------------ decoding


def read_text(path: Path) -> str:
    """A file's text: UTF-8, or Latin-1 when it is not valid UTF-8 (the original Cornell files are Latin-1)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ------------------------------------------------------- Cornell sentence polarity

POLARITY_FILES = ("rt-polarity.pos", "rt-polarity.neg")
POLARITY_URL = "http://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"


def load_polarity(path: str | Path) -> list[Example]:
    """``rt-polarity.pos`` / ``rt-polarity.neg``, one snippet per line, from ``path`` or ``path/rt-polaritydata``.

    Positives come first, then negatives, in file order; blank lines are skipped.
    """
    folder = _polarity_folder(Path(path).expanduser())
    examples: list[Example] = []
    for name, label in zip(POLARITY_FILES, (1, 0)):
        lines = (line.strip() for line in read_text(folder / name).splitlines())
        examples.extend((line, label) for line in lines if line)
    return examples


def _polarity_folder(path: Path) -> Path:
    for folder in (path, path / "rt-polaritydata"):
        if all((folder / name).is_file() for name in POLARITY_FILES):
            return folder
    raise HarnessError(
        f"no rt-polarity.pos and rt-polarity.neg in {path}; pass --task-opt path=DIR for the folder holding them "
        f"(the sentence polarity dataset v1.0, {POLARITY_URL})")


# ----------------------------------------------------------------------- IMDB

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
IMDB_SIZE = 84_125_825
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
_IMDB_PARTS = ("train/pos", "train/neg", "test/pos", "test/neg")


def load_imdb(root: str | Path) -> tuple[list[Example], list[Example]]:
    """The official ``(train, test)`` splits of an ``aclImdb`` folder (``unsup`` is ignored).

    :param root: the ``aclImdb`` folder itself or a folder that contains it.
    """
    folder = _imdb_folder(Path(root).expanduser())
    if folder is None:
        raise HarnessError(f"{root} does not hold the IMDB layout aclImdb/{{train,test}}/{{pos,neg}}/*.txt; "
                           f"pass --task-opt path=DIR for the folder holding aclImdb/ (or the archive "
                           f"{IMDB_ARCHIVE}), or --task-opt download=true to fetch it")
    splits = []
    for split in ("train", "test"):
        examples: list[Example] = []
        for part, label in (("pos", 1), ("neg", 0)):
            files = sorted((folder / split / part).glob("*.txt"))
            if not files:
                raise HarnessError(f"{folder / split / part} has no .txt reviews; the IMDB copy is incomplete "
                                   f"(re-extract {IMDB_ARCHIVE})")
            examples.extend((read_text(f).strip(), label) for f in files)
        splits.append(examples)
    return splits[0], splits[1]


def _imdb_folder(path: Path) -> Path | None:
    for folder in (path, path / "aclImdb"):
        if all((folder / part).is_dir() for part in _IMDB_PARTS):
            return folder
    return None


def verify_archive(path: Path, size: int | None = None, sha256: str | None = None) -> None:
    """Raise unless ``path`` has the official IMDB archive's size and SHA-256."""
    check_file(path, size=IMDB_SIZE if size is None else size, sha256=IMDB_SHA256 if sha256 is None else sha256,
               fix=f"delete it and download {IMDB_URL} again")


def download_imdb(cache: Path) -> Path:
    """Fetch and verify the official archive into ``cache``; return its path (see :func:`tasks.datasets.download`)."""
    return download(IMDB_URL, cache / IMDB_ARCHIVE, verify_archive, fetch=fetch)


def extract_imdb(archive: Path, cache: Path) -> Path:
    """Verify ``archive`` and unpack it into ``cache/aclImdb`` (via a temporary folder, so a
    half-finished extraction is never mistaken for a complete one)."""
    verify_archive(archive)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / ".aclImdb.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")  # refuses absolute paths and links out of tmp
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HarnessError(f"cannot extract {archive}: {exc}; delete it and download {IMDB_URL} again") from None
    found = _imdb_folder(tmp)
    if found is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HarnessError(f"{archive} does not contain aclImdb/{{train,test}}/{{pos,neg}}")
    target = cache / "aclImdb"
    shutil.rmtree(target, ignore_errors=True)
    found.replace(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_imdb(path: str, download: bool, cache: Path | None = None) -> Path:
    """The ``aclImdb`` folder to read, in this order: ``path`` (a folder, or the archive, which is
    verified and extracted into the cache); an extracted copy in the cache; the archive in the
    cache; a download when ``download`` is true. Otherwise one error saying how to provide it."""
    cache = cache_dir() if cache is None else cache
    if path:
        given = Path(path).expanduser()
        if given.is_file():  # the archive
            if _imdb_folder(cache) is None:
                return extract_imdb(given, cache)
            verify_archive(given)  # only the official archive passes, so the earlier extraction holds the same data
            return cache / "aclImdb"
        if not given.exists():
            raise HarnessError(f"--task-opt path={path}: no such file or folder")
        return given
    if _imdb_folder(cache) is not None:
        return cache / "aclImdb"
    if (cache / IMDB_ARCHIVE).is_file():
        return extract_imdb(cache / IMDB_ARCHIVE, cache)
    if download:
        return extract_imdb(download_imdb(cache), cache)
    raise HarnessError(f"no IMDB data: pass --task-opt path=DIR (a folder holding aclImdb/{{train,test}}/{{pos,neg}}) "
                       f"or path=FILE ({IMDB_ARCHIVE}), or add --task-opt download=true to fetch {IMDB_URL} "
                       f"(84 MB) into {cache} (set HARNESS_CACHE to use another folder)")


# ------------------------------------------------------------ which source a path holds

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
CHOICES = "source=imdb (an aclImdb folder or archive), rt-polarity (rt-polarity.pos/.neg) or csv (a .csv/.tsv file)"


def infer_source(path: str) -> str:
    """``imdb``, ``rt-polarity`` or ``csv``, from what ``path`` holds; one error naming the choices otherwise.

    A folder with the ``aclImdb`` layout (or holding ``aclImdb/``) is IMDB, a file named ``aclImdb*.tar.gz``
    its archive; a folder with ``rt-polarity.pos`` and ``.neg`` (or ``rt-polaritydata/``) is rt-polarity; a
    ``.csv``, ``.tsv`` or ``.tab`` file is csv.
    """
    given = require_path(path)
    if given.is_dir():
        if _imdb_folder(given) is not None:
            return "imdb"
        if any(all((folder / name).is_file() for name in POLARITY_FILES)
               for folder in (given, given / "rt-polaritydata")):
            return "rt-polarity"
    else:
        name = given.name.lower()
        if name.startswith("aclimdb") and name.endswith((".tar.gz", ".tgz")):
            return "imdb"
        if given.suffix.lower() in TABLE_SUFFIXES:
            return "csv"
    raise HarnessError(f"--task-opt path={path}: cannot tell which data it holds; name it with --task-opt {CHOICES}")


def require_path(path: str) -> Path:
    """``path`` as a :class:`Path` that exists; a given path that does not exist always stops the run."""
    given = Path(path).expanduser()
    if not given.exists():
        raise HarnessError(f"--task-opt path={path}: no such file or folder")
    return given


# ------------------------------------------------------------------- CSV / TSV

POSITIVE_LABELS = {"1", "pos", "positive"}
NEGATIVE_LABELS = {"0", "neg", "negative"}


def parse_label(value: str) -> int | None:
    """``1/pos/positive`` -> 1, ``0/neg/negative`` -> 0 (any case); anything else -> None."""
    v = value.strip().lower()
    if v in POSITIVE_LABELS:
        return 1
    if v in NEGATIVE_LABELS:
        return 0
    return None


def load_table(path: str | Path, text_column: str = "text", label_column: str = "label",
               delimiter: str = "") -> list[Example]:
    """A CSV or TSV file with a header row. The delimiter is a tab for ``.tsv``/``.tab`` files and a
    comma otherwise, unless given. Labels: 0/1, neg/pos, negative/positive."""
    file = Path(path).expanduser()
    if not str(path) or not file.is_file():
        raise HarnessError(f"source=csv needs --task-opt path=FILE, a CSV/TSV file with a header row "
                           f"(got {str(path)!r}, which is not a file)")
    sep = delimiter or ("\t" if file.suffix.lower() in (".tsv", ".tab") else ",")
    sep = "\t" if sep in ("\\t", "tab") else sep
    if len(sep) != 1:
        raise HarnessError(f"--task-opt delimiter={delimiter!r}: give one character (or 'tab')")
    csv.field_size_limit(1 << 30)  # whole reviews in one field
    reader = csv.DictReader(io.StringIO(read_text(file), newline=""), delimiter=sep)
    columns = reader.fieldnames or []
    for option, name in (("text_column", text_column), ("label_column", label_column)):
        if name not in columns:
            raise HarnessError(f"{file}: no column {name!r} (columns: {', '.join(columns) or 'none'}); "
                               f"set --task-opt {option}=NAME")
    examples: list[Example] = []
    for row_number, row in enumerate(reader, start=2):  # line 1 is the header
        label = parse_label(row[label_column] or "")
        if label is None:
            raise HarnessError(f"{file}, row {row_number}: label {row[label_column]!r} is not one of "
                               f"0/1, neg/pos, negative/positive")
        examples.append((row[text_column] or "", label))
    if not examples:
        raise HarnessError(f"{file} has a header but no rows")
    return examples


# --------------------------------------------------------------------- splits

SPLIT_STREAM = 10  # seeding stream for the train/val/test permutation (TRAIN..INIT are 0..3)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int
                  ) -> tuple[list[int], list[int], list[int]]:
    """A seeded permutation of ``range(n)`` cut into train, val and test index lists.

    Val and test get ``round(n * fraction)`` items (at least one each when the fraction is
    positive); train keeps the rest and must not be empty.
    """
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise HarnessError(f"{n} examples are too few for val_fraction={val_fraction} and "
                           f"test_fraction={test_fraction}; lower the fractions or add data")
    perm = torch.randperm(n, generator=seeding.generator(seed, SPLIT_STREAM)).tolist()
    return perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test]
