"""One entry point: uploaded paths in, Part 10 files out, chosen by content not by name.

``convert`` expands zips (safely) and folders, sniffs every file's magic bytes with
the ``SNIFFERS`` table, groups files into jobs (an OBJ with its MTL and textures, a
folder of TIFF slices), runs each job's converter from ``CONVERTERS`` and returns
what was written. If any job fails, everything this call wrote is removed.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from archive.dicom.ct import Rescale
from archive.errors import InvalidInput, UnsupportedMediaType
from ingest.converters.base import (
    ConversionResult,
    OutputFile,
    ProgressCallback,
    Target,
    UidFactory,
    no_progress,
)
from ingest.converters.document import convert_dicom, convert_pdf, is_part10
from ingest.converters.obj import convert_mesh_to_obj, convert_obj, find_obj_references
from ingest.converters.photo import convert_photo
from ingest.converters.safezip import ZipLimits, extract_zip, is_zip
from ingest.converters.stl import convert_stl, inspect_stl
from ingest.converters.volume import convert_nifti, convert_tiff_stack
from ingest.converters.wsi import convert_wsi, is_tiled_pyramid
from ingest.metadata import CuratorMetadata, build_metadata_attributes, to_patient_info, to_study_ref

__all__ = ["CONVERTERS", "SNIFFERS", "Job", "convert", "plan_jobs", "sniff"]

_SIDECARS = {"metadata.json", "vitrine.json"}
_SLIDE_VENDORS = {".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"}


def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as fp:
        return fp.read(n)


def _is_stl(path: Path, head: bytes) -> bool:
    if path.suffix.lower() != ".stl" and not head.lstrip().lower().startswith(b"solid"):
        # Binary STL has no magic: trust the size formula only with the extension.
        return False
    try:
        inspect_stl(path)
    except InvalidInput:
        return path.suffix.lower() == ".stl"  # let the converter report why
    return True


def _is_obj(path: Path, head: bytes) -> bool:
    text = head.decode("latin-1")
    lines = [ln.strip() for ln in text.splitlines()]
    return path.suffix.lower() == ".obj" or any(ln.startswith(("v ", "vt ", "f ", "mtllib ")) for ln in lines[:40])


def _is_nifti(path: Path, head: bytes) -> bool:
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fp:
                head = fp.read(352)
        except (OSError, EOFError):
            return False
    return len(head) >= 348 and head[344:347] == b"n+1"


def _is_tiff(head: bytes) -> bool:
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _tiff_kind(path: Path, meta: CuratorMetadata) -> str:
    """Slide pyramid, grayscale slice (stack) or photograph."""
    import tifffile

    if meta.object_kind == "slide" or is_tiled_pyramid(path):
        return "wsi"
    if meta.object_kind == "photo":
        return "photo"
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            gray = page.samplesperpixel == 1  # type: ignore[union-attr]
            pages = len(tif.pages)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: unreadable TIFF ({exc})") from exc
    if gray and (pages > 1 or meta.object_kind == "volume" or meta.voxel_size_mm is not None):
        return "stack"
    return "photo"


# Ordered: the first predicate that accepts a file names its kind.
SNIFFERS: list[tuple[str, Callable[[Path, bytes, CuratorMetadata], bool]]] = [
    ("dicom", lambda p, h, m: len(h) >= 132 and h[128:132] == b"DICM"),
    ("pdf", lambda p, h, m: h.lstrip()[:5] == b"%PDF-"),
    ("nifti", lambda p, h, m: _is_nifti(p, h)),
    ("glb", lambda p, h, m: h[:4] == b"glTF"),
    ("ply", lambda p, h, m: h[:4] in (b"ply\n", b"ply\r")),
    ("gltf", lambda p, h, m: p.suffix.lower() == ".gltf" and h.lstrip()[:1] == b"{"),
    ("tiff", lambda p, h, m: _is_tiff(h)),
    ("jpeg", lambda p, h, m: h[:3] == b"\xff\xd8\xff"),
    ("png", lambda p, h, m: h[:8] == b"\x89PNG\r\n\x1a\n"),
    ("stl", lambda p, h, m: _is_stl(p, h)),
    ("obj", lambda p, h, m: _is_obj(p, h)),
]


def sniff(path: Path, meta: CuratorMetadata) -> str:
    """The kind of one file, by content. Raises UnsupportedMediaType if none fits."""
    head = _head(path)
    for kind, accepts in SNIFFERS:
        if accepts(path, head, meta):
            if kind == "tiff":
                return _tiff_kind(path, meta)
            if kind in ("jpeg", "png"):
                return "wsi" if meta.object_kind == "slide" else "photo"
            if kind in ("glb", "ply", "gltf"):
                return "mesh"
            return kind
    if path.suffix.lower() in _SLIDE_VENDORS:
        return "wsi"
    raise UnsupportedMediaType(f"{path.name}: unsupported file type (starts with {head[:8]!r})")


@dataclass(frozen=True)
class Job:
    """One conversion: a kind and the path it starts from."""

    kind: str
    path: Path


def _run_stack(path: Path, target: Target, meta: CuratorMetadata) -> list[OutputFile]:
    rescale = Rescale(meta.rescale_slope, meta.rescale_intercept, meta.hounsfield)
    return convert_tiff_stack(path, target, voxel_mm=meta.voxel_size_mm, rescale=rescale)


CONVERTERS: dict[str, Callable[[Path, Target, CuratorMetadata], list[OutputFile]]] = {
    "dicom": lambda p, t, m: convert_dicom(p, t),
    "pdf": lambda p, t, m: convert_pdf(p, t),
    "stl": lambda p, t, m: convert_stl(p, t),
    "obj": lambda p, t, m: convert_obj(p, t),
    "mesh": lambda p, t, m: convert_mesh_to_obj(p, t),
    "photo": lambda p, t, m: convert_photo(p, t),
    "wsi": lambda p, t, m: convert_wsi(p, t, spacing_mm=m.pixel_spacing_mm),
    "stack": _run_stack,
    "nifti": lambda p, t, m: convert_nifti(p, t, hounsfield=m.hounsfield),
}
# Series numbers each kind may use (an OBJ group has a model and a texture series).
_SERIES_USED = {"obj": 2, "mesh": 2}


def _files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and "__MACOSX" not in p.parts)


def plan_jobs(files: Sequence[Path], meta: CuratorMetadata) -> list[Job]:
    """Group sniffed files into jobs: OBJ groups absorb their MTL and textures;
    grayscale TIFF slices of one folder form one stack."""
    kinds = {}
    for path in files:
        if path.name.lower() in _SIDECARS:
            continue
        kinds[path] = sniff(path, meta) if path.suffix.lower() != ".mtl" else "mtl"
    consumed: set[Path] = set()
    jobs: list[Job] = []
    for path, kind in kinds.items():
        if kind == "obj":
            refs = find_obj_references(path)
            if refs.mtl_name:
                consumed.add((path.parent / refs.mtl_name).resolve())
                mtl_dir = (path.parent / refs.mtl_name).parent
                consumed.update((mtl_dir / name).resolve() for name in refs.textures)
    stacks: dict[Path, list[Path]] = {}
    for path, kind in kinds.items():
        if path.resolve() in consumed:
            continue
        if kind == "mtl":
            raise InvalidInput(f"{path.name}: material library without an OBJ that uses it")
        if kind == "stack" and len(files) > 1 and path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                single = len(tif.pages) == 1
            if single:
                stacks.setdefault(path.parent, []).append(path)
                continue
        jobs.append(Job(kind, path))
    for folder, slices in stacks.items():
        if len(slices) == 1:
            jobs.append(Job("stack", slices[0]))
        else:
            others = [p for p in _files_under(folder) if p.suffix.lower() in (".tif", ".tiff")
                      and p not in slices]
            if others:
                raise InvalidInput(f"{folder.name}: TIFF slices are mixed with other TIFF files")
            jobs.append(Job("stack", folder))
    return jobs


def convert(
    paths: Sequence[Path],
    *,
    metadata: CuratorMetadata,
    uids: UidFactory,
    now: datetime,
    out_dir: Path,
    study_uid: str | None = None,
    on_progress: ProgressCallback = no_progress,
    zip_limits: ZipLimits = ZipLimits(),
    work_dir: Path | None = None,
) -> ConversionResult:
    """Convert uploaded files, folders and zips into Part 10 files in ``out_dir``.

    Parameters
    ----------
    paths
        Files, folders or zip archives, as uploaded.
    metadata
        Curator metadata; it names the object (Patient/Study) and sets voxel sizes.
    uids
        Source of new UIDs (deterministic in tests, ``generate_uid`` in production).
    now
        Creation timestamp written into every instance.
    out_dir
        Existing folder for the outputs; on failure it is left as found.
    on_progress
        Called with ``(stage, fraction)``; fraction runs 0..1 over the whole upload.

    Raises
    ------
    InvalidInput
        For malformed or unsafe input (zip traversal, bombs, truncated files...).
    UnsupportedMediaType
        For a file no converter handles.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"out_dir must be an existing folder, got {out_dir}")
    result = ConversionResult(study_uid=study_uid or uids())
    target = Target(
        out_dir=out_dir, patient=to_patient_info(metadata),
        study=to_study_ref(metadata, study_uid=result.study_uid, started=now), uids=uids, now=now,
        series_description=metadata.series_description, extra=build_metadata_attributes(metadata),
    )
    scratch = Path(tempfile.mkdtemp(prefix="vitrine-ingest-", dir=work_dir))
    try:
        files: list[Path] = []
        for i, path in enumerate(paths):
            path = Path(path)
            if not path.exists():
                raise InvalidInput(f"upload path does not exist: {path.name}")
            if path.is_file() and is_zip(path) and not is_part10(path):
                on_progress("unzip", 0.0)
                extract_zip(path, scratch / f"zip{i}", zip_limits)
                files += _files_under(scratch / f"zip{i}")
            else:
                files += _files_under(path)
        if not files:
            raise InvalidInput("the upload holds no files")
        jobs = plan_jobs(files, metadata)
        number = 1
        for index, job in enumerate(jobs):
            def progress(stage: str, fraction: float, _i: int = index) -> None:
                on_progress(stage, min(1.0, (_i + fraction) / len(jobs)))

            job_target = replace(target, series_number=number, on_progress=progress)
            result.files += CONVERTERS[job.kind](job.path, job_target, metadata)
            number += _SERIES_USED.get(job.kind, 1)
        on_progress("done", 1.0)
        return result
    except BaseException:
        for out in result.files:
            out.path.unlink(missing_ok=True)
        result.files.clear()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
