"""``pipeline.warm_up``: after it, a job of any volume type loads no kernel.

Run in a fresh interpreter: in this one, earlier tests have loaded kernels already,
and the check could not fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.models3d.conftest import NO_JIT

ROOT = Path(__file__).resolve().parents[3]

COUNT = """
import sys
import numpy as np
from numba.core.dispatcher import Dispatcher
from models3d import pipeline
from models3d.kernels.isosurface import SUPPORTED_DTYPES

def loaded():
    return sum(len(value.overloads) for name, module in list(sys.modules.items()) if name.startswith("models3d")
               for value in vars(module).values() if isinstance(value, Dispatcher))

if sys.argv[1] == "warm":
    pipeline.warm_up()
before = loaded()
z, y, x = np.mgrid[:20, :20, :20]
ball = (((z - 9.5) ** 2 + (y - 9.5) ** 2 + (x - 9.5) ** 2) < 40).astype(np.uint8) * 100
for dtype in SUPPORTED_DTYPES:
    params = pipeline.MeshParams(iso=50.0, keep_largest=True, smooth_iterations=20, decimate_count=300)
    pipeline.mesh_volume(ball.astype(dtype), (1.0, 0.8, 0.8), params)
print(before, loaded())
"""


@pytest.mark.skipif(NO_JIT, reason="nothing to load without the JIT")
@pytest.mark.parametrize("first", ["warm", "cold"])
def test_after_warm_up_a_job_loads_no_kernel(first):
    done = subprocess.run([sys.executable, "-c", COUNT, first], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    if first == "warm":
        assert before == after > 0  # everything the jobs ran was loaded by the warm-up
    else:
        assert before < after  # the control: without it, the jobs load kernels
