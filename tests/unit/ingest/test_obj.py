from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest

from archive.dicom.encapsulated import read_encapsulated_obj
from archive.errors import InvalidInput
from ingest.converters.obj import convert_mesh_to_obj, convert_obj, read_model_zip
from tests.factories.files import obj_group
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing


def _read_all(outputs):
    return [pydicom.dcmread(o.path) for o in outputs]


def test_obj_group_roundtrips_to_zip(target, tmp_path):
    obj = obj_group(tmp_path / "in")
    outputs = convert_obj(obj, target)
    datasets = _read_all(outputs)
    kinds = sorted(d.SOPClassUID.rsplit(".", 1)[-1] for d in datasets)
    assert kinds == ["4", "4", "5"]  # VL Photographic (77.1.4), OBJ (104.4), MTL (104.5)
    assert len({d.ModelGroupUID for d in datasets}) == 1
    for ds in datasets:
        check_iod(ds)
    archive = zipfile.ZipFile(io.BytesIO(read_model_zip(reversed(datasets))))
    assert sorted(archive.namelist()) == ["model.mtl", "model.obj", "skin.jpg"]
    for name in archive.namelist():
        assert archive.read(name) == (tmp_path / "in" / name).read_bytes()


def test_zip_opens_in_trimesh(target, tmp_path):
    import trimesh

    datasets = _read_all(convert_obj(obj_group(tmp_path / "in"), target))
    folder = tmp_path / "back"
    zipfile.ZipFile(io.BytesIO(read_model_zip(datasets))).extractall(folder)
    mesh = trimesh.load(folder / "model.obj", force="mesh")
    assert len(mesh.faces) == 4
    assert mesh.visual.kind == "texture"


def test_texture_in_subfolder(target, tmp_path):
    folder = tmp_path / "in"
    obj = obj_group(folder, texture="tex/skin.jpg")
    datasets = _read_all(convert_obj(obj, target))
    names = zipfile.ZipFile(io.BytesIO(read_model_zip(datasets))).namelist()
    assert "tex/skin.jpg" in names


def test_missing_mtl(target, tmp_path):
    obj = obj_group(tmp_path / "in", with_mtl=False)
    with pytest.raises(InvalidInput, match="material library 'model.mtl', which was not uploaded"):
        convert_obj(obj, target)
    assert listing(target.out_dir) == []


def test_missing_texture(target, tmp_path):
    obj = obj_group(tmp_path / "in", with_texture=False)
    with pytest.raises(InvalidInput, match="texture 'skin.jpg', which was not uploaded"):
        convert_obj(obj, target)
    assert listing(target.out_dir) == []


def test_texture_path_escaping_folder(target, tmp_path):
    obj = obj_group(tmp_path / "in", texture_ref="../secret.jpg")
    with pytest.raises(InvalidInput, match="not a relative path inside its folder"):
        convert_obj(obj, target)
    assert listing(target.out_dir) == []


@pytest.mark.parametrize("fmt", ["ply", "glb"])
def test_ply_and_glb_become_obj_with_vertex_colours(fmt, target, tmp_path):
    import trimesh

    mesh = trimesh.creation.box(extents=(10, 20, 30))
    colours = np.tile(np.array([[200, 30, 40, 255]], np.uint8), (len(mesh.vertices), 1))
    mesh.visual.vertex_colors = colours
    src = tmp_path / f"box.{fmt}"
    mesh.export(src)
    datasets = _read_all(convert_mesh_to_obj(src, target))
    [obj] = [d for d in datasets if d.SOPClassUID.endswith("104.4")]
    assert "converted to OBJ by trimesh" in obj.DerivationDescription
    assert obj.DerivationCodeSequence[0].CodeValue
    assert obj.DerivationAlgorithmSequence[0].AlgorithmName == "trimesh"
    check_iod(obj)
    back = trimesh.load(io.BytesIO(read_encapsulated_obj(obj)), file_type="obj", force="mesh")
    assert back.bounds[1] - back.bounds[0] == pytest.approx([10, 20, 30])
    assert tuple(back.visual.vertex_colors[0][:3]) == (200, 30, 40)


def test_unreadable_mesh(target, tmp_path):
    src = tmp_path / "junk.ply"
    src.write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(InvalidInput, match="junk.ply"):
        convert_mesh_to_obj(src, target)
    assert listing(target.out_dir) == []
