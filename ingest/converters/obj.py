"""Textured models: OBJ with its MTL and textures, and PLY/GLB/glTF converted to OBJ.

An OBJ group becomes one Encapsulated OBJ and its Encapsulated MTL (one M3D series),
and one VL Photographic image per texture (an XC series); every instance carries the
same Model Group UID, and each file's references are recorded with the relative URI
it uses (Referenced Instance Sequence), so ``read_model_zip`` can rebuild a folder
that any 3D viewer opens. Texture JPEGs are kept byte for byte; their EXIF orientation
is ignored, because UV coordinates address the stored pixel grid.
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydicom.dataset import Dataset

from archive.dicom.encapsulated import (
    DocumentKind,
    ModelInfo,
    RelatedFile,
    build_mtl_instance,
    build_obj_instance,
    read_encapsulated_mtl,
    read_encapsulated_obj,
)
from archive.dicom.photo import PHOTO_SOP_CLASS, read_photo_jpeg, read_photo_pixels
from archive.errors import InvalidInput
from ingest.converters.base import OutputFile, Target, output_set
from ingest.converters.photo import DEFAULT_MAX_PIXELS, build_photo_dataset

__all__ = ["MeshFiles", "convert_mesh_to_obj", "convert_obj", "find_obj_references", "read_model_zip"]

_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", re.MULTILINE)
_MAPS = re.compile(
    rb"^[ \t]*(map_\w+|bump|disp|decal|refl|norm)[ \t]+(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE
)
# What trimesh's loaders raise on malformed input (they have no common base class).
_TRIMESH_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError,
                   NotImplementedError, struct.error)
_TEXTURE_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                 ".tif": "image/tiff", ".tiff": "image/tiff"}


@dataclass(frozen=True)
class MeshFiles:
    """An OBJ's bytes, its MTL (name, bytes) and its textures {name: bytes}."""

    obj_name: str
    obj: bytes
    mtl_name: str | None
    mtl: bytes | None
    textures: dict[str, bytes]


def _safe_relative(name: str, owner: str) -> str:
    """Normalise a reference; refuse absolute paths and escapes from the folder."""
    clean = name.strip().strip('"').replace("\\", "/")
    norm = posixpath.normpath(clean)
    if not clean or clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or norm.startswith(".."):
        raise InvalidInput(f"{owner} references {name!r}, which is not a relative path inside its folder")
    return norm


def _reference_from_line(value: bytes, folder: Path, owner: str) -> str:
    """The file a ``mtllib``/``map_*`` line names: options first, the file name last."""
    text = value.decode("utf-8", "replace")
    tokens = text.split()
    # Names may contain spaces: prefer the longest tail that exists on disk.
    for i in range(len(tokens)):
        candidate = " ".join(tokens[i:])
        if not candidate.startswith("-") and (folder / _safe_relative(candidate, owner)).is_file():
            return _safe_relative(candidate, owner)
    return _safe_relative(tokens[-1], owner)


def find_obj_references(obj_path: Path) -> MeshFiles:
    """Read an OBJ and every file it needs from its folder.

    Raises
    ------
    InvalidInput
        If the OBJ names a material library or texture that is not there, or a path
        that leaves the folder.
    """
    folder = obj_path.parent
    obj = obj_path.read_bytes()
    libs = _MTLLIB.findall(obj)
    if len(libs) > 1:
        raise InvalidInput(f"{obj_path.name} names {len(libs)} material libraries; only one is supported")
    mtl_name, mtl, textures = None, None, {}
    if libs:
        mtl_name = _reference_from_line(libs[0], folder, obj_path.name)
        if not (folder / mtl_name).is_file():
            raise InvalidInput(f"{obj_path.name} references material library {mtl_name!r}, which was not uploaded")
        mtl = (folder / mtl_name).read_bytes()
        mtl_dir = PurePosixPath(mtl_name).parent
        for _key, value in _MAPS.findall(mtl):
            rel = _reference_from_line(value, folder / mtl_dir, mtl_name)
            full = posixpath.normpath(str(mtl_dir / rel))
            if not (folder / full).is_file():
                raise InvalidInput(f"{mtl_name} references texture {rel!r}, which was not uploaded")
            textures[rel] = (folder / full).read_bytes()
    return MeshFiles(obj_path.name, obj, mtl_name, mtl, textures)


def _write_group(files: MeshFiles, target: Target, *, derivation: str = "",
                 algorithm: tuple[str, str] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> list[OutputFile]:
    """Build and write the OBJ, MTL and texture instances of one model group."""
    group_uid = target.uids()
    frame_uid = target.uids()
    model_series = target.new_series(files.obj_name)
    texture_series = target.new_series(f"{files.obj_name} textures", offset=1)
    common = dict(patient=target.patient, study=target.study, created=target.now)
    photos: dict[str, Dataset] = {}
    for number, (name, data) in enumerate(sorted(files.textures.items()), 1):
        ds = build_photo_dataset(
            data, name, series=texture_series, instance_uid=target.uids(),
            instance_number=number, max_pixels=max_pixels, apply_orientation=False,
            **common,  # type: ignore[arg-type]
        )
        ds.ModelGroupUID = group_uid
        photos[name] = ds
    mtl_ds = None
    if files.mtl is not None and files.mtl_name is not None:
        related = tuple(
            RelatedFile(name, PHOTO_SOP_CLASS, ds.SOPInstanceUID,
                        _TEXTURE_MIME.get(PurePosixPath(name).suffix.lower(), "image/jpeg"))
            for name, ds in photos.items()
        )
        mtl_model = ModelInfo(frame_of_reference_uid=frame_uid, model_group_uid=group_uid,
                              related=related, derivation=derivation, algorithm=algorithm)
        mtl_ds = build_mtl_instance(
            files.mtl, series=model_series, instance_uid=target.uids(), instance_number=2,
            title=PurePosixPath(files.mtl_name).name[:64], model=mtl_model,
            equipment=target.equipment, **common,  # type: ignore[arg-type]
        )
    related_obj: tuple[RelatedFile, ...] = ()
    if mtl_ds is not None and files.mtl_name is not None:
        related_obj = (RelatedFile(files.mtl_name, DocumentKind.MTL.sop_class_uid,
                                   mtl_ds.SOPInstanceUID, "model/mtl"),)
    obj_model = ModelInfo(frame_of_reference_uid=frame_uid, model_group_uid=group_uid,
                          related=related_obj, derivation=derivation, algorithm=algorithm)
    obj_ds = build_obj_instance(
        files.obj, series=model_series, instance_uid=target.uids(), instance_number=1,
        title=files.obj_name[:64], model=obj_model, equipment=target.equipment,
        **common,  # type: ignore[arg-type]
    )
    with output_set(target.out_dir, files.obj_name) as outputs:
        for ds in [obj_ds, mtl_ds, *photos.values()]:
            if ds is None:
                continue
            if target.extra is not None:
                ds.update(target.extra)
            outputs.write(ds)
    return outputs.files


def convert_obj(path: Path, target: Target, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[OutputFile]:
    """Convert an OBJ, its MTL and its textures (found next to it) into one model group."""
    target.on_progress("obj", 0.0)
    files = find_obj_references(Path(path))
    out = _write_group(files, target, max_pixels=max_pixels)
    target.on_progress("obj", 1.0)
    return out


def convert_mesh_to_obj(path: Path, target: Target, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[OutputFile]:
    """Convert PLY, GLB or glTF to OBJ (+MTL, textures) with trimesh, keeping vertex colours.

    The conversion is recorded as a derivation (Derivation Description, Derivation
    Code Sequence, Derivation Algorithm Sequence naming trimesh and its version).
    """
    import trimesh

    path = Path(path)
    target.on_progress("mesh", 0.0)
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except _TRIMESH_ERRORS as exc:
        raise InvalidInput(f"{path.name}: trimesh cannot read this mesh ({exc})") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise InvalidInput(f"{path.name}: the file holds no triangles")
    stem = path.stem
    exported = trimesh.exchange.obj.export_obj(
        loaded, include_color=True, include_texture=True, return_texture=True,
        mtl_name=f"{stem}.mtl",
    )
    obj_text, extra_files = exported if isinstance(exported, tuple) else (exported, {})
    mtl_name = f"{stem}.mtl" if f"{stem}.mtl" in extra_files else None
    textures = {k: v for k, v in extra_files.items() if k != mtl_name}
    files = MeshFiles(f"{stem}.obj", obj_text.encode() if isinstance(obj_text, str) else obj_text,
                      mtl_name, extra_files.get(mtl_name) if mtl_name else None, textures)
    fmt = path.suffix.lstrip(".").upper() or "mesh"
    out = _write_group(files, target, derivation=f"{fmt} file {path.name} converted to OBJ by trimesh "
                       f"{trimesh.__version__}", algorithm=("trimesh", trimesh.__version__),
                       max_pixels=max_pixels)
    target.on_progress("mesh", 1.0)
    return out


def read_model_zip(datasets: Iterable[Dataset]) -> bytes:
    """Rebuild an OBJ group as a zip (OBJ, MTL, textures under their original names).

    ``datasets`` are the instances of one model group (any order). JPEG textures come
    back byte-identical; losslessly stored textures are written as PNG.
    """
    items = list(datasets)
    objs = [d for d in items if d.SOPClassUID == DocumentKind.OBJ.sop_class_uid]
    if len(objs) != 1:
        raise InvalidInput(f"a model group must hold exactly one OBJ, got {len(objs)}")
    by_uid = {d.SOPInstanceUID: d for d in items}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        obj = objs[0]
        zf.writestr(str(obj.DocumentTitle) or "model.obj", read_encapsulated_obj(obj))
        for ref in obj.get("ReferencedInstanceSequence", []):
            mtl = by_uid.get(ref.ReferencedSOPInstanceUID)
            if mtl is None:
                raise InvalidInput(f"MTL {ref.ReferencedSOPInstanceUID} of the OBJ is missing")
            mtl_name = str(ref.RelativeURIReferenceWithinEncapsulatedDocument)
            zf.writestr(mtl_name, read_encapsulated_mtl(mtl))
            mtl_dir = PurePosixPath(mtl_name).parent
            for tex_ref in mtl.get("ReferencedInstanceSequence", []):
                photo = by_uid.get(tex_ref.ReferencedSOPInstanceUID)
                if photo is None:
                    raise InvalidInput(f"texture {tex_ref.ReferencedSOPInstanceUID} is missing")
                name = posixpath.normpath(str(mtl_dir / str(tex_ref.RelativeURIReferenceWithinEncapsulatedDocument)))
                zf.writestr(name, _texture_bytes(photo))
    return out.getvalue()


def _texture_bytes(ds: Dataset) -> bytes:
    """The JPEG kept as is, or the lossless pixels as PNG."""
    if ds.file_meta.TransferSyntaxUID.startswith("1.2.840.10008.1.2.4.5"):
        return read_photo_jpeg(ds)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(read_photo_pixels(ds)).save(buf, "PNG")
    return buf.getvalue()
