"""IIIF Image API tiles: Vitrine (granian) against iipsrv (lighttpd + FastCGI), one run.

The slide is a 40000 x 30000 synthetic pattern saved by libvips as a tiled pyramidal
JPEG TIFF (256 px tiles, Q 85). iipsrv serves that TIFF; Vitrine serves the same
tiles after the ingest converter has copied them, untouched, into a DICOM VL Whole
Slide Microscopy series (one TILED_FULL instance per level).

Measured, for both servers on the same URL lists:

* 2000 random tiles over all levels at concurrency 1, 4 and 16, each cold (a freshly
  started server: empty in-process caches) and warm (the same list again);
  tiles/s and p50/p95/p99 latency, from a small asyncio client in this file (closed
  loop: each keep-alive connection asks for the next tile as soon as it has the last;
  wrk cannot stop after a fixed count);
* ``full/256,/0/default.jpg`` warm, an 8192 px region scaled to 1024 px, and
  (Vitrine only: iipsrv does not read DICOM) a windowed 512 x 512 CT slice as JPEG,
  sequentially over keep-alive.

Everything runs on loopback and lives under ``/tmp/vitrine-iiif-bench``, which is
removed at the end (``--keep`` keeps it). Needs: ``apt-get install iipimage-server
lighttpd``. Run from the repository root: ``.venv/bin/python bench/bench_iiif.py``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, free_port, percentile, print_table, vitrine_env, wait_for_port

from archive.httpserver import DEFAULT_THREADS, default_workers, http_command

BENCH = Path(os.environ.get("VITRINE_IIIF_BENCH_ROOT", "/tmp/vitrine-iiif-bench"))
IIPSRV = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
WIDTH, HEIGHT, TILE, QUALITY = 40000, 30000, 256, 85
TILES = 2000
CONCURRENCY = (1, 4, 16)
SINGLE_REPEATS = 200
# The single requests run against Vitrine three times: as deployed; without the cache of
# rendered answers, but keeping decoded tiles (as iipsrv keeps its tiles, 64 MB here);
# and with no cache at all, so that every request decodes its tiles again.
VITRINE_CONFIGS = {
    "Vitrine": {},
    "Vitrine (no rendered cache)": {"VITRINE_IIIF_RENDERED_CACHE_BYTES": "0"},
    "Vitrine (no caches)": {"VITRINE_IIIF_RENDERED_CACHE_BYTES": "0", "VITRINE_IIIF_DECODED_CACHE_BYTES": "0"},
}


# --- the data ---------------------------------------------------------------------------


def make_slide(path: Path) -> None:
    """A colourful synthetic slide with some texture (so tiles are not trivially small)."""
    import pyvips

    # A 1024 px textured patch, repeated, under a slide-wide colour gradient: cheap to
    # make at 1.2 gigapixels, and tiles that compress like stained tissue (~20 kB).
    patch = pyvips.Image.xyz(1024, 1024)
    px, py = patch[0], patch[1]
    noise = pyvips.Image.gaussnoise(1024, 1024, sigma=14, mean=0)
    texture = ((px / 37).sin() * 50 + (py / 53).cos() * 50 + noise).bandjoin(
        [((px + py) / 91).sin() * 70 + noise, ((px - py) / 29).cos() * 60 - noise])
    texture = texture.copy_memory().replicate(-(-WIDTH // 1024), -(-HEIGHT // 1024)).crop(0, 0, WIDTH, HEIGHT)
    xy = pyvips.Image.xyz(WIDTH, HEIGHT)
    gradient = (xy[0] * (90 / WIDTH) + 120).bandjoin([xy[1] * (90 / HEIGHT) + 110, (xy[0] + xy[1]) * (60 / (WIDTH + HEIGHT)) + 150])
    image = (texture + gradient).cast("uchar")
    image.tiffsave(
        str(path), tile=True, tile_width=TILE, tile_height=TILE, pyramid=True,
        compression="jpeg", Q=QUALITY, bigtiff=True,
    )


def ingest(tiff: Path, var_dir: Path) -> dict:
    """Run the ingest converter and store the outputs, in a child with Vitrine's environment."""
    out = var_dir / "ingest.json"
    subprocess.run(
        [PYTHON, __file__, "_ingest", str(tiff), str(out)],
        env=vitrine_env(var_dir), cwd=ROOT, check=True, timeout=1800,
    )
    return json.loads(out.read_text())


def _ingest_child(tiff: str, out: str) -> None:
    import django

    django.setup()
    from datetime import datetime

    from archive.dicom.refs import PatientInfo, StudyRef
    from archive.models import Study, Visibility
    from archive.services import store_file
    from archive.storage import get_storage
    from ingest.converters.base import Target, make_uid_factory
    from ingest.converters.wsi import convert_wsi
    from tests.factories.datasets import ct_slice, to_bytes

    storage = get_storage()
    incoming = storage.incoming_dir()
    target = Target(
        out_dir=incoming, patient=PatientInfo(patient_id="BENCH-SLIDE", name="Bench^Slide"),
        study=StudyRef(study_uid="1.2.826.0.1.3680043.10.1561.77.1", description="Bench slide"),
        uids=make_uid_factory("1.2.826.0.1.3680043.10.1561.77.9"), now=datetime(2024, 1, 1),
    )
    started = time.perf_counter()
    outputs = convert_wsi(Path(tiff), target)
    converted = time.perf_counter() - started
    series_uid = outputs[0].series_uid
    for output in outputs:
        store_file(output.path)
    ct = ct_slice(size=512, patient_id="BENCH-CT")
    with storage.incoming_file() as fp:
        fp.write(to_bytes(ct))
    store_file(fp.name)
    Study.objects.update(visibility=Visibility.PUBLIC)
    Path(out).write_text(json.dumps({
        "series_uid": series_uid, "ct_uid": ct.SOPInstanceUID, "levels": len(outputs),
        "convert_s": round(converted, 1),
    }))


def tile_paths(prefix: str, count: int, seed: int) -> list[str]:
    """``count`` random tiles over all levels of the pyramid, as IIIF paths after ``prefix``."""
    tiles = []
    sf = 1
    while True:
        width, height = -(-WIDTH // sf), -(-HEIGHT // sf)
        for row in range(-(-height // TILE)):
            for col in range(-(-width // TILE)):
                x, y = col * TILE * sf, row * TILE * sf
                w, h = min(TILE * sf, WIDTH - x), min(TILE * sf, HEIGHT - y)
                out_w, out_h = -(-w // sf), -(-h // sf)
                tiles.append(f"{prefix}/{x},{y},{w},{h}/{out_w},{out_h}/0/default.jpg")
        if width <= TILE and height <= TILE:
            break
        sf *= 2
    return random.Random(seed).sample(tiles, min(count, len(tiles)))


# --- the servers ------------------------------------------------------------------------


@dataclass
class Running:
    name: str
    port: int
    process: subprocess.Popen
    prefix: str  # IIIF prefix of the slide, up to and including its identifier

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_vitrine(var_dir: Path, series_uid: str, workers: int, threads: int, **env: str) -> Running:
    """The HTTP server of ``manage.py serve`` (archive/httpserver.py), less its access log."""
    port = free_port()
    log = (var_dir / "http.log").open("a")
    command = http_command(Path(PYTHON).parent, "127.0.0.1", port, workers, threads, access_log=False)
    process = subprocess.Popen(
        command, env=vitrine_env(var_dir, **env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    running = Running("Vitrine", port, process, f"/iiif/3/{series_uid}")
    wait_until_answering(running, workers * threads)
    return running


def wait_until_answering(server: Running, connections: int, timeout_s: float = 60.0) -> None:
    """Block until ``connections`` parallel requests for an unknown image all get their 404.

    Only then are the workers up: the port listens as soon as the master binds it, and
    a benchmark that starts earlier measures the workers' boot, not the server.
    """
    import asyncio

    async def probe() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /iiif/3/1.2.3.4/info.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, _ = await _read_response(reader)
        writer.close()
        if status != 404:
            raise RuntimeError(f"{server.name} answered {status} to the readiness probe")

    async def all_probes() -> None:
        await asyncio.gather(*(probe() for _ in range(connections)))

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            asyncio.run(asyncio.wait_for(all_probes(), 10))
            return
        except (OSError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_iipsrv(folder: Path, tiff: Path, processes: int) -> Running:
    port = free_port()
    www = folder / "www"
    www.mkdir(parents=True, exist_ok=True)
    config = folder / "lighttpd.conf"
    config.write_text(f"""
server.modules = ("mod_fastcgi")
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{folder}/lighttpd-error.log"
server.max-keep-alive-requests = 100000
server.max-keep-alive-idle = 30
server.max-connections = 1024
fastcgi.server = ("/fcgi-bin/iipsrv.fcgi" => ((
    "socket" => "{folder}/iipsrv.socket",
    "bin-path" => "{IIPSRV}",
    "check-local" => "disable",
    "max-procs" => {processes},
    "bin-environment" => (
        "LOGFILE" => "{folder}/iipsrv.log",
        "VERBOSITY" => "0",
        "FILESYSTEM_PREFIX" => "{tiff.parent}/",
        "MAX_IMAGE_CACHE_SIZE" => "64",
        "JPEG_QUALITY" => "{QUALITY}",
        "MAX_CVT" => "8192",
        "CORS" => "*"
    )
)))
""")
    process = subprocess.Popen(["lighttpd", "-D", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(port, process=process)
    running = Running("iipsrv", port, process, f"/fcgi-bin/iipsrv.fcgi?IIIF={tiff.name}")
    fetch_sequential(port, [f"{running.prefix}/info.json"], processes * 2)  # the FastCGI processes answer
    return running


# --- load -------------------------------------------------------------------------------


async def _read_response(reader) -> tuple[int, int, bool]:
    """Read one HTTP/1.1 response; return (status, body bytes, whether the server closes)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    size = 0
    if chunked:
        while True:
            chunk = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(chunk + 2)
            size += chunk
            if chunk == 0:
                break
    elif length is not None:
        size = len(await reader.readexactly(length))
    return status, size, close


async def _load(port: int, paths: list[str], concurrency: int) -> tuple[list[float], int, float]:
    """Closed loop: ``concurrency`` keep-alive connections take the next path until none is left."""
    import asyncio

    todo = iter(paths)
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in todo:
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, size, close = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            errors += status != 200 or size == 0
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def run_load(server: Running, paths: list[str], concurrency: int) -> dict:
    """Tiles/s and latency percentiles (ms) of one bounded closed-loop run."""
    import asyncio

    latencies, errors, elapsed = asyncio.run(_load(server.port, paths, concurrency))
    ms = [v * 1000 for v in latencies]
    return {
        "requests": len(latencies), "errors": errors, "elapsed_s": elapsed,
        "tiles_per_s": len(latencies) / elapsed,
        "p50": percentile(ms, 0.50), "p95": percentile(ms, 0.95), "p99": percentile(ms, 0.99),
    }


def fetch_sequential(port: int, paths: list[str], repeats: int) -> list[float]:
    """Latencies (ms) of ``repeats`` requests cycling through ``paths`` on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    timings = []
    for i in range(repeats):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or not body:
            raise RuntimeError(f"{path} answered {response.status}: {body[:200]!r}")
    connection.close()
    return timings


def check_same_tiles(vitrine: Running, iipsrv: Running, paths: list[str]) -> None:
    """Both servers answer every tile of a sample with a JPEG of the same size."""
    from io import BytesIO

    from PIL import Image

    for path in paths[:20]:
        sizes = []
        for server in (vitrine, iipsrv):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            connection.request("GET", server.prefix + path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{server.name} {path}: {response.status} {body[:200]!r}")
            sizes.append(Image.open(BytesIO(body)).size)
        if sizes[0] != sizes[1]:
            raise RuntimeError(f"{path}: Vitrine {sizes[0]} but iipsrv {sizes[1]}")


# --- main -------------------------------------------------------------------------------


def main() -> None:
    global WIDTH, HEIGHT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--iipsrv-processes", type=int, default=2)
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="slide size WxH (a smaller one for a trial run)")
    args = parser.parse_args()
    WIDTH, HEIGHT = (int(v) for v in args.size.lower().split("x"))
    if shutil.which("lighttpd") is None:
        sys.exit("lighttpd is missing: apt-get install -y iipimage-server lighttpd")
    if not IIPSRV.exists():
        sys.exit(f"{IIPSRV} is missing: apt-get install -y iipimage-server")
    if BENCH.exists():
        shutil.rmtree(BENCH)
    BENCH.mkdir(parents=True)
    try:
        _run(args)
    finally:
        if not args.keep:
            shutil.rmtree(BENCH, ignore_errors=True)


def _run(args) -> None:
    tiff = BENCH / "slide" / "slide.tif"
    tiff.parent.mkdir()
    started = time.perf_counter()
    make_slide(tiff)
    print(f"slide: {WIDTH}x{HEIGHT}, {tiff.stat().st_size / 1e6:.0f} MB TIFF in {time.perf_counter() - started:.0f} s", flush=True)
    var_dir = BENCH / "vitrine"
    var_dir.mkdir()
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], env=vitrine_env(var_dir), cwd=ROOT, check=True)
    started = time.perf_counter()
    ingested = ingest(tiff, var_dir)
    print(f"ingest: {ingested['levels']} levels as DICOM in {time.perf_counter() - started:.0f} s", flush=True)
    iip_folder = BENCH / "iipsrv"
    iip_folder.mkdir()

    def start(name: str) -> Running:
        if name.startswith("Vitrine"):
            return start_vitrine(var_dir, ingested["series_uid"], args.workers, args.threads, **VITRINE_CONFIGS[name])
        return start_iipsrv(iip_folder, tiff, args.iipsrv_processes)

    rows = []
    results: dict = {"tiles": {}, "single": {}}
    for concurrency in CONCURRENCY:
        relative = tile_paths("", TILES, seed=concurrency)  # a fresh sample per concurrency
        for name in ("iipsrv", "Vitrine"):
            server = start(name)
            try:
                if concurrency == CONCURRENCY[0] and name == "Vitrine":
                    other = start("iipsrv")
                    try:
                        check_same_tiles(server, other, tile_paths("", 20, seed=99))
                    finally:
                        other.stop()
                paths = [server.prefix + p for p in relative]
                for state in ("cold", "warm"):
                    stats = run_load(server, paths, concurrency)
                    results["tiles"][f"{name} c{concurrency} {state}"] = stats
                    rows.append((
                        name, str(concurrency), state, f"{stats['tiles_per_s']:.0f}",
                        f"{stats['p50']:.2f}", f"{stats['p95']:.2f}", f"{stats['p99']:.2f}", str(stats["errors"]),
                    ))
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    tables = [print_table(
        f"{TILES} random tiles over all levels ({WIDTH}x{HEIGHT}, {TILE} px, JPEG Q{QUALITY})",
        rows, ("server", "conc.", "state", "tiles/s", "p50 ms", "p95 ms", "p99 ms", "errors"),
    )]

    single_rows = []
    rng = random.Random(8192)
    singles = {
        "full/256,/0/default.jpg": ["/full/256,/0/default.jpg"],
        "8192 px region -> 1024 px": [
            f"/{x},{y},8192,8192/1024,/0/default.jpg"
            for x, y in ((rng.randrange(WIDTH - 8192), rng.randrange(HEIGHT - 8192)) for _ in range(8))
        ],
    }
    for name in ("iipsrv", *VITRINE_CONFIGS):
        server = start(name)
        try:
            for label, paths in singles.items():
                full = [server.prefix + p for p in paths]
                fetch_sequential(server.port, full, 20)  # warm up
                timings = fetch_sequential(server.port, full, SINGLE_REPEATS)
                results["single"][f"{name} {label}"] = timings
                single_rows.append((name, label, f"{percentile(timings, 0.5):.2f}", f"{percentile(timings, 0.95):.2f}"))
            if name.startswith("Vitrine"):
                ct = [f"/iiif/3/{ingested['ct_uid']}~bone/full/max/0/default.jpg"]
                fetch_sequential(server.port, ct, 20)
                timings = fetch_sequential(server.port, ct, SINGLE_REPEATS)
                single_rows.append((name, "CT 512x512 ~bone as JPEG", f"{percentile(timings, 0.5):.2f}", f"{percentile(timings, 0.95):.2f}"))
        finally:
            server.stop()
    tables.append(print_table(
        f"single requests, warm, sequential over keep-alive ({SINGLE_REPEATS} each)",
        single_rows, ("server", "request", "p50 ms", "p95 ms"),
    ))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "iiif.txt").write_text(
        f"Vitrine: granian WSGI, {args.workers} workers x {args.threads} threads; "
        f"iipsrv: lighttpd FastCGI, {args.iipsrv_processes} processes; CPUs: {os.cpu_count()}\n\n"
        + "\n\n".join(tables) + "\n"
    )
    print(f"\nwritten to {out / 'iiif.txt'}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_ingest":
        sys.path.insert(0, str(ROOT))
        _ingest_child(sys.argv[2], sys.argv[3])
    else:
        main()
