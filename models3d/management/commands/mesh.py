"""manage.py mesh SERIES_UID (--preset NAME | --threshold HU | ...): mesh a series now.

The same job the API queues, run synchronously in this process with a progress bar
on stderr. Asking again with the same parameters prints the stored result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from archive.errors import ArchiveError
from archive.indexing import sha256_file
from archive.models import Series
from models3d import services
from models3d.models import MeshJob

BAR_WIDTH = 30


class ProgressBar:
    """``[#####.....]  45% smooth  ETA 12 s`` on one line of a terminal, a line per stage otherwise."""

    def __init__(self, stream) -> None:
        self.stream, self.tty = stream, stream.isatty()
        self.start, self.last_stage = time.monotonic(), None

    def __call__(self, stage: str, percent: int) -> None:
        if not self.tty and stage == self.last_stage:
            return
        self.last_stage = stage
        elapsed = time.monotonic() - self.start
        eta = f"  ETA {elapsed * (100 - percent) / percent:.0f} s" if 0 < percent < 100 else ""
        filled = BAR_WIDTH * percent // 100
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% {stage:<10}{eta}"
        self.stream.write(("\r" + line.ljust(70)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Mesh a stored CT series at a threshold and store the Encapsulated STL (and OBJ) in its study."

    def add_arguments(self, parser):
        parser.add_argument("series_uid", help="SeriesInstanceUID of the source series")
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--preset", choices=services.PRESETS, help="bone (300 HU), soft_tissue (-300..200), "
                          "skin (-500) or micro_ct (Otsu)")
        what.add_argument("--threshold", type=float, metavar="HU", help="iso level in HU (inside: above it)")
        what.add_argument("--band", type=float, nargs=2, metavar=("LOW", "HIGH"), help="HU band, inclusive")
        what.add_argument("--otsu", action="store_true", help="Otsu's threshold of the whole volume")
        what.add_argument("--mask", metavar="SERIES_UID", help="a SEG or RTSTRUCT series of the same study")
        what.add_argument("--nifti", metavar="PATH", help="a NIfTI-1 label map (.nii/.nii.gz) over the series")
        parser.add_argument("--labels", nargs="+", default=[],
                            help="with --mask or --nifti: segment/ROI numbers or names, label values")
        parser.add_argument("--target-triangles", type=int, metavar="N", help="decimate to at most N triangles")
        parser.add_argument("--smooth-iterations", type=int, default=None, metavar="N")
        parser.add_argument("--passband", type=float, default=None)
        parser.add_argument("--obj", action="store_true", help="store an Encapsulated OBJ as well")
        parser.add_argument("--crop", type=int, nargs=6, metavar=("Z0", "Z1", "Y0", "Y1", "X0", "X1"))
        parser.add_argument("--downsample", type=int, default=None, metavar="N")
        parser.add_argument("--keep-largest", action="store_true", help="keep only the largest component")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        series = Series.objects.select_related("study__patient").filter(series_uid=options["series_uid"]).first()
        if series is None:
            raise CommandError(f"no series {options['series_uid']} in the archive")
        raw = {
            "preset": options["preset"], "threshold_hu": options["threshold"],
            "band_hu": options["band"], "otsu": options["otsu"] or None,
            "mask": self._mask(options),
            "target_triangles": options["target_triangles"], "smooth_iterations": options["smooth_iterations"],
            "smooth_passband": options["passband"], "outputs": ["stl", "obj"] if options["obj"] else ["stl"],
            "crop": options["crop"], "downsample": options["downsample"],
            "keep_largest": options["keep_largest"],
        }
        try:
            params = services.canonical_params({k: v for k, v in raw.items() if v is not None})
            job, _queued = services.request_job(series, params)
        except ArchiveError as exc:
            raise CommandError(exc.detail) from None
        if job.state == MeshJob.State.RUNNING:
            raise CommandError(f"mesh job {job.pk} for these parameters is running elsewhere ({job.percent}%)")
        if job.state == MeshJob.State.QUEUED:
            bar = ProgressBar(self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr)
            try:
                job = services.run_mesh_job(job.pk, on_progress=bar)
            finally:
                bar.close()
        else:
            self.stderr.write(f"mesh job {job.pk} with these parameters is {job.state} already")
        if job.state != MeshJob.State.DONE:
            raise CommandError(f"mesh job {job.pk} {job.state}: {job.error}")
        self._report(job, options["json"])

    def _mask(self, options) -> dict | None:
        if options["mask"]:
            return {"series_uid": options["mask"], "labels": options["labels"]}
        if options["nifti"]:
            path = Path(options["nifti"]).resolve()
            if not path.is_file():
                raise CommandError(f"no file {path}")
            return {"nifti_path": str(path), "nifti_sha256": sha256_file(path), "labels": options["labels"]}
        return None

    def _report(self, job: MeshJob, as_json: bool) -> None:
        meshes = list(job.meshes.select_related("stl_instance", "obj_instance"))
        result = {
            "job": job.pk, "series_uid": job.result_series_uid, "model_group_uid": job.model_group_uid,
            "meshes": [{
                "label": m.label, "stl_sop_instance_uid": m.stl_instance.sop_uid,
                "obj_sop_instance_uid": m.obj_instance.sop_uid if m.obj_instance else None,
                "triangles": m.triangles, "volume_mm3": m.volume_mm3, "area_mm2": m.area_mm2,
                "bbox_min_mm": m.bbox_min_mm, "bbox_max_mm": m.bbox_max_mm, "watertight": m.watertight,
            } for m in meshes],
        }
        if as_json:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(f"mesh job {job.pk}: series {job.result_series_uid}")
        for m in meshes:
            self.stdout.write(
                f"  {m.label or services.describe_params(job.params)}: {m.triangles} triangles, "
                f"{m.volume_mm3:.1f} mm3, {m.area_mm2:.1f} mm2, watertight={m.watertight}, "
                f"STL {m.stl_instance.sop_uid}" + (f", OBJ {m.obj_instance.sop_uid}" if m.obj_instance else ""))
        self.stdout.write(self.style.SUCCESS("stored"))
