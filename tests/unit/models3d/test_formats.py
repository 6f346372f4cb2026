"""Writers and readers round-trip, and stream in chunks."""

from __future__ import annotations

import io

import numpy as np
import pytest

from archive.errors import InvalidInput
from models3d import formats, measure
from models3d.kernels import Mesh, isosurface
from tests.factories.meshes import cube_mesh
from tests.factories.volumes import sphere_volume


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    vol = sphere_volume((16, 16, 16))
    return isosurface(vol.data, vol.iso, vol.spacing_mm)


def same_surface(a, b) -> None:
    """Same triangles as sets of corner coordinates (vertex order may differ)."""
    ta = np.sort(np.asarray(a[0])[np.asarray(a[1])].reshape(len(a[1]), -1), axis=0)
    tb = np.sort(np.asarray(b[0])[np.asarray(b[1])].reshape(len(b[1]), -1), axis=0)
    assert np.allclose(ta, tb, atol=1e-6)


def test_binary_stl_round_trip_streams_in_chunks(sphere):
    whole, chunked = io.BytesIO(), io.BytesIO()
    n = formats.write_stl(sphere, whole)
    formats.write_stl(sphere, chunked, chunk_faces=7)
    assert n == len(whole.getvalue()) == 84 + 50 * len(sphere.faces)
    assert whole.getvalue() == chunked.getvalue()
    verts, faces = formats.read_stl(whole.getvalue())
    same_surface(sphere, (verts, faces))
    back = Mesh(verts, faces.astype(np.int32))
    assert measure.is_watertight(back)
    assert measure.volume_mm3(back) == pytest.approx(measure.volume_mm3(sphere), rel=1e-6)


def test_stl_normals_point_outward():
    buf = io.BytesIO()
    formats.write_stl(cube_mesh(), buf)
    rec = np.frombuffer(buf.getvalue(), dtype=formats._STL_RECORD, offset=84)
    centres = rec["v"].mean(axis=1) - 1.0
    assert np.all(np.einsum("ij,ij->i", rec["normal"], centres) > 0)


def test_ascii_stl_round_trip(sphere):
    buf = io.BytesIO()
    formats.write_ascii_stl(sphere, buf)
    verts, faces = formats.read_stl(buf.getvalue())
    same_surface(sphere, (verts, faces))


def test_obj_round_trip(sphere):
    buf = io.BytesIO()
    formats.write_obj(sphere, buf, chunk_faces=10)
    lines = buf.getvalue().decode().splitlines()
    v = np.array([ln.split()[1:] for ln in lines if ln.startswith("v ")], np.float32)
    f = np.array([ln.split()[1:] for ln in lines if ln.startswith("f ")], np.int64) - 1
    assert np.array_equal(v, sphere.vertices) and np.array_equal(f, sphere.faces)


def test_glb_round_trip(sphere):
    buf = io.BytesIO()
    total = formats.write_glb(sphere, buf, chunk_faces=5)
    data = buf.getvalue()
    assert total == len(data) and len(data) % 4 == 0
    verts, faces = formats.read_glb(data)
    assert np.allclose(verts, sphere.vertices, atol=1e-4)
    assert np.array_equal(faces, sphere.faces)


def test_readers_reject_garbage():
    with pytest.raises(InvalidInput):
        formats.read_stl(b"\x01" * 200)
    with pytest.raises(InvalidInput):
        formats.read_glb(b"\x00" * 40)
