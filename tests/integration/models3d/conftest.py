"""A synthetic CT sphere in the archive (the real Celery worker is ``job_worker``, tests/conftest.py)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from archive.models import Study, Visibility
from models3d.models import MeshJob
from tests.factories.datasets import ct_series
from tests.integration.dicomweb.conftest import store

#: The sphere: centre (x, y, z) in patient mm, radius, and the width of the HU ramp.
CENTRE_MM = (8.1, 7.7, 11.6)
RADIUS_MM = 6.0
RAMP_MM = 2.0
SPACING_MM = (1.0, 0.5, 0.5)  # (between slices, between rows, between columns)
CURATOR = ("curator", "curator-pass-1")


def sphere_hu(slices: int = 24, size: int = 32, spacing_mm=SPACING_MM, centre_mm=CENTRE_MM,
              radius_mm: float = RADIUS_MM, ramp_mm: float = RAMP_MM) -> np.ndarray:
    """(slices, size, size) int16 HU: -1000 outside, +1000 inside, 0 exactly at the radius.

    A linear ramp across the surface, so linear interpolation along a voxel edge finds
    the 0 HU surface where it is.
    """
    dz, dy, dx = spacing_mm
    z = np.arange(slices)[:, None, None] * dz - centre_mm[2]
    y = np.arange(size)[None, :, None] * dy - centre_mm[1]
    x = np.arange(size)[None, None, :] * dx - centre_mm[0]
    r = np.sqrt(x**2 + y**2 + z**2)
    return np.round(np.clip((radius_mm - r) / ramp_mm, -0.5, 0.5) * 2000).astype(np.int16)


def sphere_datasets(slices: int = 24, size: int = 32, *, positions_z=None, **kwargs):
    """A CT series of the sphere: IPP (0, 0, z), rows along y, columns along x, -1024 intercept."""
    hu = sphere_hu(slices, size)
    datasets = ct_series(slices, size=size, **kwargs)
    for k, ds in enumerate(datasets):
        z = positions_z[k] if positions_z is not None else k * SPACING_MM[0]
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.PixelSpacing = [SPACING_MM[1], SPACING_MM[2]]
        ds.SliceThickness = SPACING_MM[0]
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.int16).tobytes()
    return datasets


def sphere_volume_mm3(radius_mm: float = RADIUS_MM) -> float:
    return 4.0 / 3.0 * math.pi * radius_mm**3


def store_series(datasets, *, public: bool = False):
    for ds in datasets:
        store(ds)
    if public:
        Study.objects.filter(study_uid=datasets[0].StudyInstanceUID).update(visibility=Visibility.PUBLIC)
    return datasets


@pytest.fixture
def sphere_series(db):
    """24 slices of 32x32, private study."""
    return store_series(sphere_datasets(patient_id="SPHERE-1", patient_name="Sphere^Test"))


def wait_for_job(job_id: int, *, states=MeshJob.FINISHED, timeout_s: float = 180.0) -> MeshJob:
    """Poll the job's row until it reaches one of ``states`` (a generous limit: the first
    run may compile the Numba kernels)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = MeshJob.objects.get(pk=job_id)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"mesh job {job_id} still {job.state} ({job.stage} {job.percent}%) after {timeout_s} s")
        time.sleep(0.1)
