"""The idx file format of MNIST and Fashion-MNIST, read with NumPy (no torchvision).

An idx file is a header and then the data, every number big-endian::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 unsigned byte (the only type these data sets use)
    byte  3     number of dimensions d (3 for images, 1 for labels)
    4 d bytes   each dimension as an unsigned 32-bit integer (images: N, 28, 28; labels: N)
    the rest    N x ... elements, row-major

So ``train-images-idx3-ubyte`` starts ``00 00 08 03 | 00 00 ea 60 | 00 00 00 1c | 00 00 00 1c`` (60,000 images
of 28 x 28) and holds 16 + 60,000 x 784 = 47,040,016 bytes. Files may be gzip-compressed (``.gz``); every check
here is on the decompressed bytes, which are the same in every copy of a data set, however it was compressed.
Every problem is a one-line :class:`HarnessError` that names the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from harness import HarnessError

UBYTE = 0x08


def read_bytes(path: Path, fix: str) -> bytes:
    """The file's decompressed bytes (``.gz`` files are decompressed); a broken gzip stream is a one-line error."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # truncated stream, bad CRC, not gzip at all
        raise HarnessError(f"{path} is truncated or corrupt (gzip: {exc}); {fix}") from None


def header(data: bytes) -> tuple[int, tuple[int, ...]] | None:
    """``(element type, dims)`` of an idx header, or ``None`` when ``data`` does not start like an idx file."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[3] == 0:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return data[2], dims


def parse(data: bytes, path: Path, shape: tuple[int, ...], fix: str) -> np.ndarray:
    """The uint8 array of an idx file whose dims must be ``shape``; one line naming ``path`` otherwise.

    :param data: the decompressed bytes (:func:`read_bytes`).
    """
    found = header(data)
    if found is None:
        raise HarnessError(f"{path} is not an idx file (it does not start with an idx header); {fix}")
    kind, dims = found
    if kind != UBYTE or dims != shape:
        want = "x".join(map(str, shape))
        raise HarnessError(f"{path} has an idx header for {'x'.join(map(str, dims))} elements of type "
                           f"0x{kind:02x}, expected {want} unsigned bytes; {fix}")
    offset = 4 + 4 * len(shape)
    expected = offset + int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise HarnessError(f"{path} is {what}: {len(data):,} bytes of idx data, expected {expected:,}; {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def encode(array: np.ndarray) -> bytes:
    """The idx bytes of a uint8 array (header + data): how tests and tools write small idx files."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    dims = np.asarray(array.shape, dtype=">u4").tobytes()
    return bytes([0, 0, UBYTE, array.ndim]) + dims + array.tobytes()
