"""Data files of the built-in tasks: where they are cached, how they are checked, how they are fetched.

The conventions follow torchvision and Hugging Face: a cache folder that an
environment variable moves (``$HARNESS_CACHE``; else ``$XDG_CACHE_HOME/rnn-harness``;
else ``~/.cache/rnn-harness``), official files checked by size and digest, and
a download only when the user asks for one (``--task-opt download=true``).
Every problem is a one-line :class:`~harness.contract.errors.HarnessError` that names
the fix.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from harness.contract.errors import HarnessError


def cache_dir() -> Path:
    """``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/rnn-harness``, else ``~/.cache/rnn-harness``."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "rnn-harness"
    return Path.home() / ".cache" / "rnn-harness"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, *, size: int | None = None, sha256: str | None = None, md5: str | None = None,
               fix: str = "delete it and fetch it again") -> None:
    """Raise a one-line :class:`HarnessError` unless ``path`` has the expected size and digests.

    :param fix: what the user should do about a mismatch (named in the message).
    """
    actual = Path(path).stat().st_size
    if size is not None and actual != size:
        raise HarnessError(f"{path} is corrupt or incomplete: {actual:,} bytes, expected {size:,}; {fix}")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            found = file_digest(path, algorithm)
            if found != expected:
                raise HarnessError(f"{path} fails its checksum ({algorithm} {found}, expected {expected}); {fix}")


def fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest``: the one network step (tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def download(url: str, dest: Path, check: Callable[[Path], None], *,
             fetch: Callable[[str, Path], None] = fetch) -> Path:
    """Fetch ``url`` into ``dest`` through a ``.part`` file that is renamed only after ``check`` passes
    (and removed when it does not), so a broken download never looks like a finished one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        fetch(url, part)
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise HarnessError(f"could not download {url} ({reason}); download it by hand and pass "
                           f"--task-opt path=FILE_OR_FOLDER, or put it at {dest}") from None
    try:
        check(part)
    except HarnessError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest
