"""Where a plugin comes from: its distribution, version, editable folder, and whether it is this project's own.

The built-ins are recognised by two facts that a third-party package cannot
fake without replacing this project's files: the entry point belongs to the
distribution ``rnn-harness``, and the module it loads is one of this project's
packages (``harness``, ``cells``, ``tasks``) in the same folder as the
``harness`` package that is running. That holds for an ordinary install, an
editable one, and a checkout that is the working directory (whose
``rnn_harness.egg-info`` is then found before the installed metadata).
"""

from __future__ import annotations

import json
import re
import sys
import weakref
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

OWN_DISTRIBUTION = "rnn-harness"
OWN_PACKAGES = ("harness", "cells", "tasks")
IN_PROCESS = "in-process"
"""The package name recorded for plugin objects registered from Python (``add_plugin``, ``extra_plugins``)."""


@dataclass(frozen=True)
class Source:
    """Where a registration came from."""

    plugin: str
    """The plugin's name: its entry point's name (``DIST:NAME`` when two distributions use the same name)."""
    package: str
    """The distribution that declared the entry point (``in-process`` for objects registered from Python)."""
    version: str
    path: str = ""
    """For an editable install, the project folder the code is loaded from; empty otherwise."""
    own: bool = False
    """Registered by this project (``rnn-harness``) itself: a built-in."""

    @property
    def label(self) -> str:
        """``package version``: how warnings name the package."""
        return f"{self.package} {self.version}" if self.version else self.package

    def __str__(self) -> str:
        return f"{self.label}, editable at {self.path}" if self.path else self.label

    def as_dict(self) -> dict[str, str]:
        """The facts recorded in ``config.json`` and shown by ``harness list --json``."""
        return {"plugin": self.plugin, "package": self.package, "version": self.version, "path": self.path}


def normalize(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``Rnn_Harness`` -> ``rnn-harness``."""
    return re.sub(r"[-_.]+", "-", name).lower()


_FACTS: "weakref.WeakKeyDictionary[metadata.Distribution, tuple[str, str]]" = weakref.WeakKeyDictionary()
"""Each distribution's name and version, read once: every read of ``dist.metadata`` parses the METADATA file
again, which made plugin discovery cost a tenth of a second per command and per sweep unit."""


def _facts(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", ""
    if dist not in _FACTS:
        meta = dist.metadata
        _FACTS[dist] = (meta["Name"] or "?", meta["Version"] or "")
    return _FACTS[dist]


def distribution_name(ep: metadata.EntryPoint) -> str:
    return _facts(ep)[0]


def distribution_version(ep: metadata.EntryPoint) -> str:
    return _facts(ep)[1]


def editable_path(ep: metadata.EntryPoint) -> str:
    """The project folder of an editable install (PEP 610 ``direct_url.json``) that the entry point's module
    (already loaded) really comes from; ``""`` otherwise.

    Every copy of the distribution's metadata on the path is read, because a checkout that is the working
    directory shows its ``egg-info`` (which has no ``direct_url.json``) before the installed ``dist-info``; and
    the module's file must lie in the folder, so that an editable install shadowed by another copy is not named.
    """
    file = _module_file(ep)
    name = distribution_name(ep)
    dists = [ep.dist] if getattr(ep, "dist", None) is not None else []
    if name != "?":  # other copies of the same distribution: same name, and they declare this very entry point
        dists += [d for d in metadata.distributions(name=name)
                  if any((e.group, e.name, e.value) == (ep.group, ep.name, ep.value) for e in d.entry_points)]
    for dist in dists:
        try:
            text = dist.read_text("direct_url.json")
            info = json.loads(text) if text else {}
        except (OSError, ValueError):
            continue
        url = urlparse(info.get("url", ""))
        if info.get("dir_info", {}).get("editable") and url.scheme == "file":
            folder = Path(unquote(url.path))
            if file is not None and file.is_relative_to(folder.resolve()):
                return str(folder)
    return ""


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a PyPI name), or ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def requirement_versions(distributions) -> dict[str, str | None]:
    """``{name: installed version or None}`` for the packages a cell computes with (``CellSpec.requires``)."""
    return {name: installed_version(name) for name in distributions}


def _module_file(ep: metadata.EntryPoint) -> Path | None:
    """The file of the module an entry point names, once imported."""
    module = sys.modules.get(ep.value.split(":")[0].strip())
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _own_root() -> Path:
    """The folder holding the running ``harness`` package (the checkout, or site-packages)."""
    return Path(__file__).resolve().parents[2]  # harness/plugins/provenance.py -> the folder above harness/


def is_own(ep: metadata.EntryPoint) -> bool:
    """Whether ``ep`` (already loaded) is one of this project's built-ins; see the module docstring."""
    if normalize(distribution_name(ep)) != OWN_DISTRIBUTION:
        return False
    if ep.value.split(":")[0].strip().split(".")[0] not in OWN_PACKAGES:
        return False
    file = _module_file(ep)
    return file is not None and file.is_relative_to(_own_root())
