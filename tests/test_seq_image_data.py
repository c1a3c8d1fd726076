"""seq-image data: idx parsing, every supported layout and location, source inference, checksums, download, and
one-line errors for every bad input; on generated idx files and on the real Fashion-MNIST in shared/data."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import HarnessError
from tasks.seq_image import data, idx
from tests.conftest import SHARED_DATA

FASHION_DIR = SHARED_DATA / "fashion-mnist"


def fake_images(n: int) -> np.ndarray:
    """``n`` 28 x 28 images, blank but for one pixel each (so they compress, and each is told apart)."""
    images = np.zeros((n, 784), dtype=np.uint8)
    images[np.arange(n), np.arange(n) % 784] = 1 + np.arange(n) % 255
    return images.reshape(n, 28, 28)


def fake_arrays() -> dict[str, np.ndarray]:
    """Images and labels of the right shapes; labels cycle 0-9 (so they are balanced)."""
    return {data.TRAIN_IMAGES: fake_images(60_000), data.TRAIN_LABELS: (np.arange(60_000) % 10).astype(np.uint8),
            data.TEST_IMAGES: fake_images(10_000), data.TEST_LABELS: (np.arange(10_000) % 10).astype(np.uint8)}


@pytest.fixture(scope="module")
def fake_bytes() -> dict[str, bytes]:
    return {name: idx.encode(a) for name, a in fake_arrays().items()}


def write(folder: Path, contents: dict[str, bytes], gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in contents.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        else:
            (folder / name).write_bytes(raw)
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No cache and no Debian folder, unless a test puts data there."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian" / "fashion-mnist")
    return tmp_path


# ---------------------------------------------------------------- idx format


def test_idx_round_trip_and_the_header_layout():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx.encode(a)
    assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert idx.header(raw) == (8, (2, 3, 4))
    assert np.array_equal(idx.parse(raw, Path("f"), (2, 3, 4), "fix"), a)


def test_idx_errors_name_the_file_and_what_is_wrong():
    raw = idx.encode(np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(HarnessError, match=r"f is truncated: 3,000 bytes of idx data, expected 3,936"):
        idx.parse(raw[:3000], Path("f"), (5, 28, 28), "fix it")
    with pytest.raises(HarnessError, match="not an idx file"):
        idx.parse(b"hello world, not idx", Path("f"), (5, 28, 28), "fix it")
    with pytest.raises(HarnessError, match="header for 5x28x28 .* expected 6x28x28"):
        idx.parse(raw, Path("f"), (6, 28, 28), "fix it")


# ---------------------------------------------------------------- the real Fashion-MNIST


@pytest.fixture(scope="module")
def fashion():
    return data.load(str(FASHION_DIR), "auto", False)


def test_real_fashion_mnist_loads_is_recognised_by_content_and_passes_the_digests(fashion):
    assert fashion.source is data.FASHION
    assert fashion.train_images.shape == (60_000, 784) and fashion.test_images.shape == (10_000, 784)
    assert fashion.train_images.dtype == np.uint8 and fashion.train_images.max() == 255
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10      # balanced: the baseline is ln 10
    assert np.bincount(fashion.test_labels).tolist() == [1000] * 10
    assert "SHA-256" in fashion.checks


def test_debian_gz_differs_from_upstream_gz_but_its_content_digest_is_the_documented_one():
    gz = FASHION_DIR / "train-images-idx3-ubyte.gz"
    assert hashlib.md5(gz.read_bytes()).hexdigest().startswith("cf8536")              # Debian's recompression
    assert data.FASHION.gz_md5[data.TRAIN_IMAGES].startswith("8d4fb7")                  # upstream's
    for name in data.FILES:
        content = gzip.decompress((FASHION_DIR / f"{name}.gz").read_bytes())
        assert hashlib.sha256(content).hexdigest() == data.FASHION.content_sha256[name]


def test_a_recompressed_and_a_raw_copy_of_fashion_mnist_both_load(tmp_path, fashion):
    contents = {n: gzip.decompress((FASHION_DIR / f"{n}.gz").read_bytes()) for n in data.FILES}
    for gz, folder in ((True, tmp_path / "regz"), (False, tmp_path / "raw")):
        write(folder, contents, gz)                # another compressor's .gz: different bytes, same content
        loaded = data.load(str(folder), "auto", False)
        assert loaded.source is data.FASHION    # told by content, not by the folder's name
        assert np.array_equal(loaded.test_images, fashion.test_images)


def test_a_corrupted_fashion_file_fails_its_checksum_by_name(tmp_path):
    contents = {n: gzip.decompress((FASHION_DIR / f"{n}.gz").read_bytes()) for n in data.FILES}
    broken = bytearray(contents[data.TEST_IMAGES])
    broken[5000] ^= 0xFF                         # one pixel: same size, same header
    contents[data.TEST_IMAGES] = bytes(broken)
    folder = write(tmp_path / "fashion-mnist", contents, gz=False)
    with pytest.raises(HarnessError, match=r"t10k-images-idx3-ubyte fails its checksum: the SHA-256 .* expected "
                                           r"fashion-mnist's 5b4141"):
        data.load(str(folder), "auto", False)


# ---------------------------------------------------------------- layouts and locations


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("layout", ["flat", "raw-subfolder", "torchvision-root", "torchvision-dataset"])
def test_every_layout_loads_gz_or_raw(layout, gz, tmp_path, fake_bytes):
    root = tmp_path / "data"
    where = {"flat": root, "raw-subfolder": root / "raw", "torchvision-root": root / "MNIST" / "raw",
             "torchvision-dataset": root / "MNIST" / "raw"}[layout]
    write(where, fake_bytes, gz)
    given = root / "MNIST" if layout == "torchvision-dataset" else root
    loaded = data.load(str(given), "mnist", False)
    assert loaded.folder == where and loaded.source is data.MNIST
    assert np.array_equal(loaded.train_images.reshape(-1, 28, 28), fake_arrays()[data.TRAIN_IMAGES])
    assert all(p.name.endswith(".gz") == gz for p in loaded.files.values())
    assert "no content digest" in loaded.checks


def test_source_is_inferred_from_torchvision_folder_names_and_path_names(tmp_path, fake_bytes):
    write(tmp_path / "a" / "FashionMNIST" / "raw", fake_bytes, gz=False)
    with pytest.raises(HarnessError, match="fails its checksum"):   # inferred Fashion-MNIST, so its digests apply
        data.load(str(tmp_path / "a"), "auto", False)
    write(tmp_path / "b" / "my-mnist-copy", fake_bytes, gz=True)
    assert data.load(str(tmp_path / "b" / "my-mnist-copy"), "auto", False).source is data.MNIST
    write(tmp_path / "c" / "digits", fake_bytes, gz=True)
    with pytest.raises(HarnessError, match="cannot tell whether .* holds MNIST or Fashion-MNIST; name it with "
                                           "--task-opt source=mnist or source=fashion-mnist"):
        data.load(str(tmp_path / "c" / "digits"), "auto", False)


def test_a_root_with_both_torchvision_folders_asks_which(tmp_path, fake_bytes):
    write(tmp_path / "MNIST" / "raw", fake_bytes, gz=True)
    write(tmp_path / "FashionMNIST" / "raw", fake_bytes, gz=True)
    with pytest.raises(HarnessError, match="holds both torchvision folders"):
        data.load(str(tmp_path), "auto", False)
    assert data.load(str(tmp_path), "mnist", False).folder == tmp_path / "MNIST" / "raw"


def test_automatic_locations_cache_and_debian(isolated, fake_bytes, monkeypatch):
    with pytest.raises(HarnessError) as err:
        data.load("", "auto", False)
    message = str(err.value)
    assert "\n" not in message and "--task-opt path=DIR" in message and "download=true" in message
    assert "dataset-fashion-mnist" in message and str(isolated / "debian" / "fashion-mnist") in message

    shutil.copytree(FASHION_DIR, data.DEBIAN_DIR, ignore=shutil.ignore_patterns("README.txt"))
    assert data.load("", "auto", False).folder == data.DEBIAN_DIR               # Debian's package location
    write(isolated / "cache" / "MNIST" / "raw", fake_bytes, gz=True)
    assert data.load("", "mnist", False).folder == isolated / "cache" / "MNIST" / "raw"   # torchvision under cache
    write(isolated / "cache" / "fashion-mnist", {n: gzip.decompress((FASHION_DIR / f"{n}.gz").read_bytes())
                                                 for n in data.FILES}, gz=False)
    assert data.load("", "auto", False).folder == isolated / "cache" / "fashion-mnist"     # the cache comes first


# ---------------------------------------------------------------- bad input


def test_a_path_without_data_or_missing_one_file_is_one_line(tmp_path, fake_bytes):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="holds no MNIST-format data"):
        data.load(str(tmp_path / "empty"), "auto", False)
    with pytest.raises(HarnessError, match="no such file or folder"):
        data.load(str(tmp_path / "nowhere"), "auto", False)
    folder = write(tmp_path / "three", {k: v for k, v in fake_bytes.items() if k != data.TEST_LABELS}, gz=True)
    with pytest.raises(HarnessError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\] of the four"):
        data.load(str(folder), "mnist", False)
    with pytest.raises(HarnessError, match="is a file"):
        data.load(str(folder / "train-images-idx3-ubyte.gz"), "mnist", False)


def test_truncated_and_corrupt_files_are_named(tmp_path, fake_bytes):
    raw = write(tmp_path / "raw", fake_bytes, gz=False)
    (raw / data.TRAIN_LABELS).write_bytes(fake_bytes[data.TRAIN_LABELS][:30_000])
    with pytest.raises(HarnessError, match=r"train-labels-idx1-ubyte is truncated: 30,000 bytes .* expected 60,008"):
        data.load(str(raw), "mnist", False)

    gz = write(tmp_path / "gz", fake_bytes, gz=True)
    whole = (gz / f"{data.TEST_IMAGES}.gz").read_bytes()
    (gz / f"{data.TEST_IMAGES}.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(HarnessError, match=r"t10k-images-idx3-ubyte\.gz is truncated or corrupt \(gzip"):
        data.load(str(gz), "mnist", False)
    damaged = bytearray(whole)
    damaged[len(damaged) // 2] ^= 0xFF
    (gz / f"{data.TEST_IMAGES}.gz").write_bytes(bytes(damaged))
    with pytest.raises(HarnessError, match=r"t10k-images-idx3-ubyte\.gz is truncated or corrupt"):
        data.load(str(gz), "mnist", False)

    labels = fake_arrays()[data.TEST_LABELS].copy()
    labels[3] = 11
    write(tmp_path / "labels", {**fake_bytes, data.TEST_LABELS: idx.encode(labels)}, gz=False)
    with pytest.raises(HarnessError, match="a label is 11, labels are 0-9"):
        data.load(str(tmp_path / "labels"), "mnist", False)


# ---------------------------------------------------------------- download


def test_download_fetches_checks_md5_and_keeps_nothing_broken(isolated, fake_bytes, monkeypatch):
    served = {f"{name}.gz": gzip.compress(raw, mtime=0) for name, raw in fake_bytes.items()}
    official = {name: hashlib.md5(served[f"{name}.gz"]).hexdigest() for name in data.FILES}
    monkeypatch.setattr(data, "MNIST", data.Source(**{**data.MNIST.__dict__, "gz_md5": official}))
    monkeypatch.setitem(data.SOURCES, "mnist", data.MNIST)
    asked = []

    def fake_fetch(url, dest):
        asked.append(url)
        Path(dest).write_bytes(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(data, "fetch", fake_fetch)
    with pytest.raises(HarnessError, match="no mnist data found"):
        data.load("", "mnist", False)                                    # nothing is fetched unless asked
    assert asked == []
    loaded = data.load("", "mnist", True)
    assert sorted(asked) == sorted(f"{data.MNIST.url}{n}.gz" for n in data.FILES)
    assert loaded.folder == isolated / "cache" / "mnist"
    assert data.load("", "mnist", False).folder == loaded.folder         # the next run finds the cache

    served[f"{data.TEST_LABELS}.gz"] = b"not the official file"
    shutil.rmtree(isolated / "cache")
    with pytest.raises(HarnessError, match="fails its checksum"):
        data.load("", "mnist", True)
    assert not any(p.name.startswith(data.TEST_LABELS) for p in (isolated / "cache" / "mnist").iterdir())
