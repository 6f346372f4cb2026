"""The pure IIIF modules must not import Django, directly or through anything they import."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import iiif.imageapi
import iiif.presentation

ROOT = Path(__file__).resolve().parents[3]
PURE_PACKAGES = (iiif.imageapi, iiif.presentation)


def _pure_module_names() -> list[str]:
    names = ["iiif.errors"]
    for package in PURE_PACKAGES:
        names.append(package.__name__)
        names.extend(
            info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        )
    return sorted(names)


def test_pure_modules_are_found() -> None:
    names = _pure_module_names()
    assert "iiif.imageapi.render" in names and "iiif.presentation.manifest" in names


def test_no_pure_module_imports_django() -> None:
    # A fresh interpreter, so that Django imported by other tests cannot hide an import.
    code = (
        "import importlib, sys\n"
        f"for name in {_pure_module_names()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "", f"django imported: {done.stdout.strip()}"


def test_every_pure_module_imports() -> None:
    for name in _pure_module_names():
        assert importlib.import_module(name) is not None
