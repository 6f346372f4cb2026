"""The pure pipeline: thresholds, presets, crop/downsample frames and progress."""

from __future__ import annotations

import numpy as np
import pytest

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import isosurface
from models3d.pipeline import (
    HU_PRESETS,
    MeshParams,
    crop_and_downsample,
    mesh_volume,
    otsu_threshold,
)
from tests.factories.volumes import porous_volume, sphere_volume, torso_volume


def test_bone_preset_meshes_the_torso_with_progress():
    vol = torso_volume((24, 48, 48))
    seen = []
    params = MeshParams(preset="bone", smooth_iterations=10, decimate_ratio=0.5,
                        keep_largest=False)
    mesh, m = mesh_volume(vol.data, vol.spacing_mm, params,
                          on_progress=lambda stage, f: seen.append((stage, f)))
    finished = [s for s, f in seen if f == 1.0]
    assert [s for i, s in enumerate(finished) if s not in finished[:i]] == [
        "isosurface", "smooth", "decimate", "measure"]
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    # Every long stage reports inside itself, not only its start and end.
    for stage in ("isosurface", "smooth", "decimate"):
        assert any(0.0 < f < 1.0 for s, f in seen if s == stage), stage
    assert m.watertight and m.volume_mm3 > 0 and m.n_faces == len(mesh.faces)
    raw = isosurface(vol.data, HU_PRESETS["bone"][0], vol.spacing_mm)
    assert m.n_faces <= 0.5 * len(raw.faces) + 1


def test_soft_tissue_band_is_a_two_threshold_mask():
    data = np.full((10, 10, 10), -1000, np.int16)
    data[2:8, 2:8, 2:8] = 100  # soft tissue
    data[4:6, 4:6, 4:6] = 900  # bone inside it: outside the band, a cavity
    params = MeshParams(preset="soft_tissue", smooth_iterations=0)
    _mesh, m = mesh_volume(data, (1.0, 1.0, 1.0), params)
    assert m.n_components == 2 and m.watertight
    # The band's solid is "at least -300 HU" minus "above 200 HU", both as 0/1 masks.
    low = isosurface((data >= -300).astype(np.uint8), 0.5, (1, 1, 1))
    high = isosurface((data > 200).astype(np.uint8), 0.5, (1, 1, 1))
    expected = measure.volume_mm3(low) - measure.volume_mm3(high)
    assert m.volume_mm3 == pytest.approx(expected, rel=1e-9)


def test_otsu_separates_pores_from_bone():
    vol = porous_volume((32, 32, 32), period_vox=16.0, noise=100.0)
    level = otsu_threshold(vol.data)
    assert 1500 < level < 2500
    with pytest.raises(InvalidInput):
        otsu_threshold(np.zeros((2, 2, 2), np.uint8))


def test_crop_keeps_the_original_frame():
    vol = sphere_volume((30, 30, 30), spacing_mm=(2.0, 1.0, 0.5))
    full, _ = mesh_volume(vol.data, vol.spacing_mm, MeshParams(iso=0.0, smooth_iterations=0))
    crop, _ = mesh_volume(vol.data, vol.spacing_mm,
                          MeshParams(iso=0.0, smooth_iterations=0, crop=(2, 29, 3, 28, 1, 30)))
    assert np.allclose(np.sort(full.vertices, axis=0), np.sort(crop.vertices, axis=0), atol=1e-4)


def test_downsample_roughly_keeps_volume_and_frame():
    vol = sphere_volume((40, 40, 40))
    _full, m_full = mesh_volume(vol.data, vol.spacing_mm, MeshParams(iso=0.0, smooth_iterations=0))
    _half, m_half = mesh_volume(vol.data, vol.spacing_mm,
                               MeshParams(iso=0.0, smooth_iterations=0, downsample=2))
    assert m_half.volume_mm3 == pytest.approx(m_full.volume_mm3, rel=0.03)
    centre = (np.array(m_half.bbox_min_mm) + np.array(m_half.bbox_max_mm)) / 2
    assert np.allclose(centre, (np.array(m_full.bbox_min_mm) + np.array(m_full.bbox_max_mm)) / 2,
                       atol=0.25)
    assert m_half.n_faces < 0.4 * m_full.n_faces


def test_keep_largest_and_islands():
    data = np.zeros((20, 20, 20), np.uint8)
    data[2:12, 2:12, 2:12] = 1
    data[15, 15, 15] = 1
    p = {"iso": 0.5, "smooth_iterations": 0}
    _, m = mesh_volume(data, (1, 1, 1), MeshParams(**p))
    assert m.n_components == 2
    _, m = mesh_volume(data, (1, 1, 1), MeshParams(**p, keep_largest=True))
    assert m.n_components == 1
    _, m = mesh_volume(data, (1, 1, 1), MeshParams(**p, min_island_mm3=2.0))
    assert m.n_components == 1


@pytest.mark.parametrize("params", [
    MeshParams(), MeshParams(iso=1.0, preset="bone"), MeshParams(preset="lung"),
    MeshParams(band=(5.0, 1.0)), MeshParams(iso=1.0, downsample=0),
    MeshParams(iso=1.0, crop=(0, 50, 0, 4, 0, 4)),
])
def test_rejects_bad_params(params):
    with pytest.raises(InvalidInput):
        mesh_volume(np.zeros((4, 4, 4), np.int16), (1, 1, 1), params)


def test_crop_and_downsample_offsets():
    data = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    sub, spacing, offset = crop_and_downsample(data, (1.0, 2.0, 3.0), (0, 4, 0, 4, 2, 4), 2)
    assert sub.shape == (2, 2, 1) and spacing == (2.0, 4.0, 6.0)
    assert np.allclose(offset, [2 * 3.0 + 0.5 * 3.0, 0.5 * 2.0, 0.5 * 1.0])
    assert sub[0, 0, 0] == pytest.approx(data[0:2, 0:2, 2:4].mean())


def test_decimate_count_caps_the_faces_before_measuring():
    vol = torso_volume((24, 48, 48))
    raw = isosurface(vol.data, HU_PRESETS["bone"][0], vol.spacing_mm)
    budget = len(raw.faces) // 4
    seen = []
    mesh, m = mesh_volume(vol.data, vol.spacing_mm,
                          MeshParams(preset="bone", smooth_iterations=5, decimate_count=budget),
                          on_progress=lambda stage, f: seen.append(stage))
    assert budget - 2 <= m.n_faces <= budget and m.n_faces == len(mesh.faces)
    assert "decimate" in seen and m.watertight
    # A budget above the isosurface's count leaves the mesh as it is.
    _, whole = mesh_volume(vol.data, vol.spacing_mm,
                           MeshParams(preset="bone", smooth_iterations=0, decimate_count=10**9))
    assert whole.n_faces == len(raw.faces)


def test_ratio_and_count_together_are_rejected():
    vol = sphere_volume((12, 12, 12))
    with pytest.raises(InvalidInput, match="decimate_ratio and decimate_count"):
        mesh_volume(vol.data, vol.spacing_mm, MeshParams(iso=0.0, decimate_ratio=0.5, decimate_count=10))
