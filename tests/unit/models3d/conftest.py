"""Shared helpers for the pure meshing tests (no Django)."""

from __future__ import annotations

import os

import pytest

#: True when CI runs the kernels as plain Python for coverage.
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"

#: Marks a test that is too heavy to run with NUMBA_DISABLE_JIT=1.
needs_jit = pytest.mark.skipif(NO_JIT, reason="too slow without the JIT (NUMBA_DISABLE_JIT=1)")
