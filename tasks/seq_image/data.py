"""Finding, checking and loading MNIST and Fashion-MNIST for ``seq-image``.

Both data sets are four idx files (:mod:`tasks.seq_image.idx`), plain or gzip-compressed::

    train-images-idx3-ubyte[.gz]  60,000 x 28 x 28    train-labels-idx1-ubyte[.gz]  60,000
    t10k-images-idx3-ubyte[.gz]   10,000 x 28 x 28    t10k-labels-idx1-ubyte[.gz]   10,000

A folder holds them if they lie in it, in its ``raw/``, or in torchvision's ``MNIST/raw/`` or
``FashionMNIST/raw/`` under it. Without a ``path`` the task looks in the cache (:func:`tasks.datasets.cache_dir`)
and where Debian's ``dataset-fashion-mnist`` package puts the files (:data:`DEBIAN_DIR`).

Checks (``docs/tasks.md`` lists the digests):

* every file: its idx header (element type, dimensions) and its exact decompressed size, so a truncated file is
  named; a broken gzip stream is named too; labels must lie in 0-9;
* Fashion-MNIST: the SHA-256 of each file's *decompressed* bytes. Debian recompressed the ``.gz`` files, so their
  md5s differ from upstream's, but the idx bytes inside are the same in the official files, torchvision's copies
  and Debian's: all of them pass;
* MNIST: no copy was at hand to take decompressed digests from, so local MNIST files get the header, size and
  label checks only; a download is checked against the md5s of the official ``.gz`` files that torchvision lists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import HarnessError
from tasks.datasets import cache_dir, check_file, download, fetch  # noqa: F401  (fetch: tests replace it here)
from tasks.seq_image import idx

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SIDE = 28
PIXELS = SIDE * SIDE
N_CLASSES = 10
SHAPES = {TRAIN_IMAGES: (60_000, SIDE, SIDE), TRAIN_LABELS: (60_000,),
          TEST_IMAGES: (10_000, SIDE, SIDE), TEST_LABELS: (10_000,)}

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` files."""
DEBIAN_PACKAGE = "dataset-fashion-mnist"


@dataclass(frozen=True)
class Source:
    """One data set: where it comes from, how its files are checked, and where copies of it are looked for."""

    name: str
    label: str
    """The attribution written to config.json."""
    url: str
    """The folder the four ``.gz`` files are downloaded from."""
    gz_md5: dict[str, str]
    """md5 of the official ``.gz`` files (as torchvision lists them): checks a download, and tells the source."""
    content_sha256: dict[str, str] | None
    """SHA-256 of each file's decompressed idx bytes; ``None`` where no copy was at hand to take them from."""
    torchvision: str
    """The folder name torchvision gives the data set (``<root>/<name>/raw/``)."""

    def cached(self) -> list[Path]:
        """The folders in the cache that may hold this data set (``<cache>/<name>``, torchvision's layout)."""
        return [cache_dir() / self.name, cache_dir() / self.torchvision / "raw"]

    def locations(self) -> list[Path]:
        """Every automatic location, in the order they are tried."""
        return self.cached() + ([DEBIAN_DIR] if self.name == "fashion-mnist" else [])


FASHION = Source(
    name="fashion-mnist",
    label="fashion-mnist: Fashion-MNIST, Xiao, Rasul & Vollgraf (2017, arXiv:1708.07747), (c) 2017 Zalando SE, "
          "MIT licence",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    gz_md5={TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d", TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
            TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79", TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310"},
    # Taken from the decompressed files of Debian's package (shared/data/fashion-mnist): the same idx bytes
    # as upstream's, which is why upstream's own .gz md5s above can differ from Debian's .gz and still agree here.
    content_sha256={
        TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
    torchvision="FashionMNIST",
)
MNIST = Source(
    name="mnist",
    label="mnist: MNIST, LeCun, Cortes & Burges (yann.lecun.com/exdb/mnist; LeCun et al. 1998), from NIST data",
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    gz_md5={TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873", TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
            TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3", TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c"},
    content_sha256=None,
    torchvision="MNIST",
)
SOURCES = {s.name: s for s in (FASHION, MNIST)}
CHOICES = "--task-opt source=mnist or source=fashion-mnist"


@dataclass
class ImageData:
    """The four arrays of a data set: images ``(N, 784)`` uint8 in reading order (row by row, top left first),
    labels ``(N,)`` int64."""

    source: Source
    folder: Path
    files: dict[str, Path]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    checks: str
    """Which checks the files passed, in words (for config.json)."""


# ------------------------------------------------------------------ where the files are


def files_in(folder: Path) -> dict[str, Path] | None:
    """name -> file for the four files in ``folder`` (the uncompressed one where both are there), or ``None``
    when any is missing."""
    found = {name: file_of(folder, name) for name in FILES}
    return found if all(found.values()) else None  # type: ignore[return-value]


def file_of(folder: Path, name: str) -> Path | None:
    """``folder/name``, else ``folder/name.gz``, else ``None``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def candidates(path: Path, source: Source | None) -> list[Path]:
    """The folders under ``path`` that may hold the files: itself, ``raw/``, and torchvision's layout."""
    layouts = [s.torchvision for s in SOURCES.values()] if source is None else [source.torchvision]
    return [path, path / "raw", *(path / name / "raw" for name in layouts)]


def find_folder(path: str, source: Source | None) -> tuple[Path, dict[str, Path]]:
    """The folder under ``--task-opt path`` that holds the four files, and the files; one line otherwise."""
    given = Path(path).expanduser()
    if not given.exists():
        raise HarnessError(f"--task-opt path={path}: no such file or folder")
    if not given.is_dir():
        raise HarnessError(f"--task-opt path={path} is a file; pass the folder that holds {', '.join(FILES)} "
                           f"(each plain or .gz)")
    hits = [(folder, found) for folder in candidates(given, source) if (found := files_in(folder)) is not None]
    tv = [folder for folder, _ in hits if folder.parent.name in ("MNIST", "FashionMNIST")]
    if source is None and len(tv) > 1:
        raise HarnessError(f"--task-opt path={path} holds both torchvision folders MNIST/ and FashionMNIST/; "
                           f"choose one with {CHOICES}")
    if hits:
        return hits[0]
    for folder in candidates(given, source):
        present = [name for name in FILES if folder.is_dir() and file_of(folder, name) is not None]
        if present:  # some of the four, not all
            missing = ", ".join(f"{name}[.gz]" for name in FILES if name not in present)
            raise HarnessError(f"{folder} lacks {missing} of the four MNIST-format files; add "
                               f"{'them' if ',' in missing else 'it'} or pass another --task-opt path")
    raise HarnessError(f"--task-opt path={path} holds no MNIST-format data: expected {', '.join(FILES)} "
                       f"(each plain or .gz) in it, in its raw/, or in torchvision's MNIST/raw/ or FashionMNIST/raw/")


def find_automatic(source: Source | None) -> tuple[Source, Path, dict[str, Path]] | None:
    """The first automatic location that holds a data set (Fashion-MNIST's first when ``source`` is ``None``)."""
    for s in ([source] if source is not None else [FASHION, MNIST]):
        for folder in s.locations():
            found = files_in(folder)
            if found is not None:
                return s, folder, found
    return None


def missing_data_message(source: Source | None) -> str:
    """The one line that says where the task looked and the three ways to provide the data."""
    looked = [str(p) for s in ([source] if source else [FASHION, MNIST]) for p in s.locations()]
    wanted = source or FASHION
    debian = f", or install Debian's {DEBIAN_PACKAGE} package" if wanted is FASHION else ""
    return (f"no {'MNIST or Fashion-MNIST' if source is None else source.name} data found (looked in "
            f"{', '.join(looked)}): pass --task-opt path=DIR (a folder holding {', '.join(FILES)}, plain or .gz), "
            f"or add --task-opt download=true to fetch {wanted.name} from {wanted.url} into "
            f"{cache_dir() / wanted.name} (set HARNESS_CACHE to use another folder){debian}")


# ------------------------------------------------------------------ reading and checking


def read_all(files: dict[str, Path], fix: str) -> dict[str, bytes]:
    return {name: idx.read_bytes(files[name], fix) for name in FILES}


def identify(files: dict[str, Path], contents: dict[str, bytes], folder: Path) -> Source | None:
    """Which data set the files hold: by their content (Fashion-MNIST's decompressed digest, or MNIST's official
    ``.gz``), else by the names of the folders on the way (``FashionMNIST``, ``fashion...``, ``mnist``)."""
    if hashlib.sha256(contents[TRAIN_IMAGES]).hexdigest() == FASHION.content_sha256[TRAIN_IMAGES]:
        return FASHION
    first = files[TRAIN_IMAGES]
    if first.suffix == ".gz" and hashlib.md5(first.read_bytes()).hexdigest() == MNIST.gz_md5[TRAIN_IMAGES]:
        return MNIST
    names = [p.name.lower() for p in (folder, *folder.parents)][:4]
    if any("fashion" in n for n in names):
        return FASHION
    if any("mnist" in n for n in names):
        return MNIST
    return None


def verify(source: Source, files: dict[str, Path], contents: dict[str, bytes], fix: str) -> dict[str, np.ndarray]:
    """Parse each file (header, size) and check its content digest where the source has one; -> the arrays."""
    arrays = {}
    for name in FILES:
        path = files[name]
        arrays[name] = idx.parse(contents[name], path, SHAPES[name], fix)
        expected = (source.content_sha256 or {}).get(name)
        if expected is not None:
            found = hashlib.sha256(contents[name]).hexdigest()
            if found != expected:
                raise HarnessError(f"{path} fails its checksum: the SHA-256 of its idx bytes is {found}, expected "
                                   f"{source.name}'s {expected}; {fix}")
    for name in (TRAIN_LABELS, TEST_LABELS):
        if arrays[name].max(initial=0) >= N_CLASSES:
            raise HarnessError(f"{files[name]} is corrupt: a label is {int(arrays[name].max())}, labels are 0-9; {fix}")
    return arrays


def fix_for(source: Source | None) -> str:
    s = source or FASHION
    return f"replace it with the official file ({s.url}) or pass --task-opt download=true"


def load(path: str, source_name: str, want_download: bool) -> ImageData:
    """The data set that ``path`` (or an automatic location, or a download) holds, checked.

    :param source_name: ``auto``, ``mnist`` or ``fashion-mnist``.
    """
    source = SOURCES.get(source_name)
    if path:
        folder, files = find_folder(path, source)
    else:
        found = find_automatic(source)
        if found is None:
            if not want_download:
                raise HarnessError(missing_data_message(source))
            source = source or FASHION
            folder, files = download_source(source)
        else:
            found_source, folder, files = found
            source = source or found_source
    contents = read_all(files, fix_for(source))
    if source is None:
        source = identify(files, contents, folder)
        if source is None:
            raise HarnessError(f"cannot tell whether {folder} holds MNIST or Fashion-MNIST; name it with {CHOICES}")
    arrays = verify(source, files, contents, fix_for(source))
    checks = ("idx headers, sizes and labels; SHA-256 of the decompressed bytes" if source.content_sha256
              else "idx headers, sizes and labels (no content digest known for local MNIST files)")
    return ImageData(source, folder, files,
                     arrays[TRAIN_IMAGES].reshape(-1, PIXELS), arrays[TRAIN_LABELS].astype(np.int64),
                     arrays[TEST_IMAGES].reshape(-1, PIXELS), arrays[TEST_LABELS].astype(np.int64), checks)


# ------------------------------------------------------------------ download


def download_source(source: Source) -> tuple[Path, dict[str, Path]]:
    """Fetch the four official ``.gz`` files into ``<cache>/<name>``, each checked against its md5 before it
    takes its name (:func:`tasks.datasets.download`); files already there are kept."""
    folder = cache_dir() / source.name
    files = {}
    for name in FILES:
        dest = folder / f"{name}.gz"
        if not dest.is_file():
            fix = f"the download of {source.url}{name}.gz was damaged; try again"
            download(f"{source.url}{name}.gz", dest,
                     lambda p, n=name, f=fix: check_file(p, md5=source.gz_md5[n], fix=f), fetch=fetch)
        files[name] = dest
    return folder, files
