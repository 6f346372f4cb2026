"""The conversion core and the archive's file-level modules are pure: neither their source
nor their import graph touches Django."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PURE = sorted(
    [*ROOT.joinpath("archive", "dicom").glob("*.py"), *ROOT.joinpath("ingest", "converters").glob("*.py"),
     ROOT / "ingest" / "metadata.py",
     *(ROOT / "archive" / f"{name}.py" for name in ("errors", "part10", "indexing", "dicomjson", "multipart", "background"))]
)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_never_imports_django(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        assert not any(n == "django" or n.startswith(("django.", "rest_framework")) for n in names), (
            f"{path.name} imports {names}")


def test_import_graph_has_no_django():
    modules = [_module(p) for p in PURE]
    code = (
        "import sys\n"
        f"for m in {modules!r}:\n"
        "    __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"django modules imported: {done.stdout}"
    assert len(modules) >= 15
