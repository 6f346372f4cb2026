"""The pure meshing modules must not import Django, directly or through a dependency."""

from __future__ import annotations

import subprocess
import sys

PURE_MODULES = [
    "models3d.kernels", "models3d.kernels.cases", "models3d.kernels.config",
    "models3d.kernels.decimate", "models3d.kernels.isosurface", "models3d.kernels.mesh",
    "models3d.kernels.smoothing", "models3d.measure", "models3d.formats", "models3d.pipeline",
    "models3d.typed",
]


def test_pure_modules_import_no_django():
    """Import each module in a fresh interpreter and list what it pulled in."""
    code = (
        "import importlib, sys\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"NUMBA_DISABLE_JIT": "1", "PATH": ""}, cwd=_repo_root())
    assert out.stdout.strip() == "", f"django imported: {out.stdout.strip()}"


def _repo_root() -> str:
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[3])
