"""Small DICOM whole-slide series for the IIIF tests: one TILED_FULL level file per halving.

Built with the ingest builder (``archive.dicom.wsi``): frames are JPEG tiles encoded
with Pillow from a seeded pattern, edge tiles padded to the full tile size as DICOM
WSI stores them.  Returns the level files and the frames as written, so that tests can
check that a tile request gives back exactly the stored bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from archive.dicom.refs import PatientInfo, SeriesRef, StudyRef
from archive.dicom.wsi import LevelSpec, SlideInfo, build_wsi_level, write_wsi_level
from tests.factories.datasets import uid
from tests.factories.images import build_noise_image


@dataclass(frozen=True)
class WsiSeries:
    study_uid: str
    series_uid: str
    paths: list[Path]  # level 0 first
    frames: list[list[bytes]]  # frames[level][frame_index], as stored
    sizes: list[tuple[int, int]]  # (width, height) per level
    tile: int
    pixels: np.ndarray  # level 0, (h, w, 3) uint8


def _encode(block: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(block).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def build_wsi_series(
    folder: Path,
    *,
    size: tuple[int, int] = (1000, 700),
    tile: int = 256,
    levels: int = 3,
    seed: int = 0,
    quality: int = 90,
    study_uid: str | None = None,
    patient_id: str = "SLIDE-1",
    description: str = "Synthetic slide",
) -> WsiSeries:
    """Write a pyramid of ``levels`` halvings of a ``size`` (width, height) slide."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    pixels = build_noise_image(width, height, seed=seed)
    study = StudyRef(study_uid=study_uid or uid(), description=description)
    series = SeriesRef(series_uid=uid(), number=1, description=description)
    slide = SlideInfo(
        container_id=patient_id, specimen_id=patient_id, specimen_uid=uid(), pyramid_uid=uid(),
        frame_of_reference_uid=uid(), dimension_organization_uid=uid(), description=description,
    )
    patient = PatientInfo(patient_id=patient_id, name="Slide^Synthetic")
    image = Image.fromarray(pixels)
    paths, all_frames, sizes = [], [], []
    for index in range(levels):
        if index:
            image = image.reduce(2)
        array = np.asarray(image)
        h, w = array.shape[:2]
        frames = []
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                block = np.zeros((tile, tile, 3), np.uint8)
                part = array[ty : ty + tile, tx : tx + tile]
                block[: part.shape[0], : part.shape[1]] = part
                frames.append(_encode(block, quality))
        spec = LevelSpec(
            index=index, total_columns=w, total_rows=h, tile_columns=tile, tile_rows=tile,
            pixel_spacing_mm=(0.00025 * 2**index, 0.00025 * 2**index),
        )
        ds = build_wsi_level(
            level=spec, slide=slide, patient=patient, study=study, series=series,
            instance_uid=uid(), created=datetime(2024, 5, 6, 7, 8, 9),
        )
        path = write_wsi_level(folder / f"level{index}.dcm", ds, frames)
        paths.append(path)
        all_frames.append(frames)
        sizes.append((w, h))
    return WsiSeries(study.study_uid, series.series_uid, paths, all_frames, sizes, tile, pixels)
