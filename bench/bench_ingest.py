"""Ingest benchmark: Vitrine's converters against named references.

1. WSI: a synthetic 40000 x 30000 pyramidal JPEG TIFF (256 px tiles, made with pyvips)
   to a VL Whole Slide Microscopy series, beside OrthancWSIDicomizer (Debian
   ``orthanc-wsi``) converting the same file into a folder.
2. Micro-CT: a 1024-slice stack of 1024 x 1024 16-bit TIFFs to a CT series, beside a
   plain ``cp -r`` (+ sync) of the same bytes.
3. 3D: a 400 MB binary STL to Encapsulated STL, beside ``cp`` (+ sync).

Every measured command runs in its own child process; wall time and peak RSS come
from ``os.wait4``. Big files go under ``--workdir`` (default /tmp/vitrine-bench) and
are deleted at the end unless ``--keep``. ``--quick`` shrinks every case.

    .venv/bin/python bench/bench_ingest.py [--quick] [--only wsi,ct,stl]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL = {"wsi": (40000, 30000), "ct": (1024, 1024, 1024), "stl_mb": 400}
QUICK = {"wsi": (8000, 6000), "ct": (256, 512, 512), "stl_mb": 50}


def run_measured(cmd: list[str]) -> tuple[float, float, float | None]:
    """Run ``cmd`` under GNU time: (wall seconds, peak RSS MiB, in-process seconds).

    GNU time (a small process) execs the command, so the RSS is the command's own and
    not inflated by this Python parent. The third value is what a Vitrine child
    reports for the conversion alone (without interpreter start and imports).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", report.name, *cmd],
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}")
        wall, rss_kib = report.read().split()[-2:]
    inner = None
    for line in done.stdout.splitlines():
        if line.startswith("CONVERSION_SECONDS "):
            inner = float(line.split()[1])
    return float(wall), int(rss_kib) / 1024.0, inner


def du_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- generators -------------------------------------------------------------------


def make_slide(path: Path, size: tuple[int, int]) -> None:
    """A pyramidal JPEG TIFF (Q90, 256 px tiles) of a smooth pattern plus mild noise."""
    import pyvips

    width, height = size
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    r = ((x / 37 + y / 53).sin() * 90 + 150)
    g = ((x / 71).cos() * (y / 29).sin() * 80 + 140)
    b = ((x + y) / 97).sin() * 70 + 170
    noise = pyvips.Image.gaussnoise(width, height, sigma=6, mean=0)
    image = (r.bandjoin([g, b]) + noise).cast("uchar")
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=90,
                   tile_width=256, tile_height=256, bigtiff=True, xres=4000.0, yres=4000.0, resunit="cm")


def make_stack(folder: Path, shape: tuple[int, int, int]) -> None:
    import numpy as np
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    slices, rows, cols = shape
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4000, size=(rows, cols), dtype=np.uint16)
    for i in range(slices):
        tifffile.imwrite(folder / f"slice_{i:04d}.tif", np.roll(base, i, axis=1), photometric="minisblack")


def make_stl(path: Path, megabytes: int) -> None:
    import numpy as np

    triangles = (megabytes * 1_000_000 - 84) // 50
    rng = np.random.default_rng(0)
    dtype = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    with open(path, "wb") as fp:
        fp.write(b"vitrine bench".ljust(80, b" ") + int(triangles).to_bytes(4, "little"))
        left = triangles
        while left:
            n = min(left, 1_000_000)
            rec = np.zeros(n, dtype)
            rec["v"] = rng.normal(size=(n, 3, 3)).astype(np.float32)
            fp.write(rec.tobytes())
            left -= n


# --- children (one conversion per process) -------------------------------------------


def child(kind: str, src: str, out: str) -> None:
    from archive.dicom.refs import PatientInfo, StudyRef
    from ingest.converters.base import Target, make_uid_factory

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = Target(out_dir=out_dir, patient=PatientInfo("BENCH"), study=StudyRef("1.2.826.0.1.3680043.10.543.1"),
                    uids=make_uid_factory("1.2.826.0.1.3680043.10.543.2"), now=datetime(2024, 1, 1))
    from ingest.converters.stl import convert_stl
    from ingest.converters.volume import convert_tiff_stack
    from ingest.converters.wsi import convert_wsi

    start = time.perf_counter()
    if kind == "wsi":
        convert_wsi(Path(src), target)
    elif kind == "ct":
        convert_tiff_stack(Path(src), target, voxel_mm=(0.01, 0.01, 0.01))
    elif kind == "stl":
        convert_stl(Path(src), target)
    print(f"CONVERSION_SECONDS {time.perf_counter() - start:.3f}", flush=True)


def me(kind: str, src: Path, out: Path) -> list[str]:
    return [sys.executable, __file__, "--child", kind, str(src), str(out)]


# --- cases -------------------------------------------------------------------------


def case_wsi(work: Path, size: tuple[int, int], rows: list[dict]) -> None:
    src = work / "slide.tif"
    t0 = time.perf_counter()
    make_slide(src, size)
    print(f"wsi: generated {size[0]}x{size[1]} in {time.perf_counter() - t0:.1f}s, {du_bytes(src) / 1e6:.0f} MB")
    wall, rss, inner = run_measured(me("wsi", src, work / "wsi-vitrine"))
    rows.append(dict(case=f"WSI {size[0]}x{size[1]}", tool="Vitrine convert_wsi", seconds=wall, rss_mib=rss,
                     inner=inner, mb=du_bytes(src) / 1e6, out_mb=du_bytes(work / "wsi-vitrine") / 1e6))
    orthanc = shutil.which("OrthancWSIDicomizer")
    if orthanc is None:
        print("wsi: OrthancWSIDicomizer not installed (apt-get install orthanc-wsi); skipped")
        return
    for threads, max_size in ((1, 0), (2, 0)):
        out = work / f"wsi-orthanc-{threads}"
        out.mkdir()
        cmd = [orthanc, f"--folder={out}", f"--threads={threads}", f"--max-size={max_size}", str(src)]
        wall, rss, _ = run_measured(cmd)
        rows.append(dict(case=f"WSI {size[0]}x{size[1]}", tool=f"OrthancWSIDicomizer --threads={threads} --max-size=0",
                         seconds=wall, rss_mib=rss, mb=du_bytes(src) / 1e6, out_mb=du_bytes(out) / 1e6))


def case_ct(work: Path, shape: tuple[int, int, int], rows: list[dict]) -> None:
    src = work / "stack"
    make_stack(src, shape)
    mb = du_bytes(src) / 1e6
    subprocess.run(["sync"], check=True)
    wall, rss, _ = run_measured(["sh", "-c", f"cp -r {src} {work / 'stack-copy'} && sync"])
    rows.append(dict(case=f"CT {shape[0]} x {shape[1]}x{shape[2]} u16", tool="cp -r + sync", seconds=wall,
                     rss_mib=rss, mb=mb))
    subprocess.run(["sync"], check=True)
    wall, rss, inner = run_measured(me("ct", src, work / "ct-vitrine"))
    rows.append(dict(case=f"CT {shape[0]} x {shape[1]}x{shape[2]} u16", tool="Vitrine convert_tiff_stack",
                     seconds=wall, rss_mib=rss, mb=mb, inner=inner))


def case_stl(work: Path, megabytes: int, rows: list[dict]) -> None:
    src = work / "big.stl"
    make_stl(src, megabytes)
    mb = du_bytes(src) / 1e6
    subprocess.run(["sync"], check=True)
    wall, rss, _ = run_measured(["sh", "-c", f"cp {src} {work / 'copy.stl'} && sync"])
    rows.append(dict(case=f"STL {mb:.0f} MB", tool="cp + sync", seconds=wall, rss_mib=rss, mb=mb))
    subprocess.run(["sync"], check=True)
    wall, rss, inner = run_measured(me("stl", src, work / "stl-vitrine"))
    rows.append(dict(case=f"STL {mb:.0f} MB", tool="Vitrine convert_stl (streamed, measured)",
                     seconds=wall, rss_mib=rss, mb=mb, inner=inner))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes, not tens of minutes)")
    parser.add_argument("--only", default="wsi,ct,stl", help="comma-separated cases")
    parser.add_argument("--workdir", default="/tmp/vitrine-bench")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = QUICK if args.quick else FULL
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows: list[dict] = []
    try:
        only = set(args.only.split(","))
        if "stl" in only:
            case_stl(work, sizes["stl_mb"], rows)
        if "ct" in only:
            case_ct(work, sizes["ct"], rows)
        if "wsi" in only:
            case_wsi(work, sizes["wsi"], rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ncpu: {os.cpu_count()} cores (shared with other jobs); {datetime.now().isoformat(timespec='seconds')}")
    print("| case | tool | process s | MB/s (input) | conversion s | MB/s (conversion) | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        inner = r.get("inner")
        extra = f"{inner:.2f} | {r['mb'] / inner:.0f}" if inner else "- | -"
        print(f"| {r['case']} | {r['tool']} | {r['seconds']:.2f} | {r['mb'] / r['seconds']:.0f} | {extra} "
              f"| {r['rss_mib']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
