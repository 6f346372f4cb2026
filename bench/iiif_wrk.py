"""IIIF tiles measured with wrk (a C client) next to the bench's Python client.

The bench's own client (``bench_iiif.py``) is Python and shares the two cores with the
servers. This script runs ``wrk`` (one thread, ``--connections`` keep-alive
connections, ``--seconds`` per pass, random tiles over all levels) and the Python
client alternately against the same server processes, iipsrv then Vitrine, on the
data a previous ``bench_iiif.py --keep`` left in ``/tmp/vitrine-iiif-bench``. wrk stops
on time rather than after a fixed count, so its passes hold a few thousand tiles.

Needs: ``apt-get install wrk iipimage-server lighttpd``. Run from the repository root:
``.venv/bin/python bench/bench_iiif.py --keep`` once, then
``.venv/bin/python bench/iiif_wrk.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_iiif as B

# Each connection takes the next path of the file; done() prints wrk's statistics as JSON.
SCRIPT = """
local paths, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %.4f, "p50": %.3f, "p95": %.3f, "p99": %.3f, "non200": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
end
"""


def run_wrk(server: B.Running, paths: list[str], connections: int, seconds: int, folder: Path) -> dict:
    (folder / "paths.txt").write_text("\n".join(paths) + "\n")
    (folder / "tiles.lua").write_text(SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(folder / "tiles.lua"),
         f"http://127.0.0.1:{server.port}", "--", str(folder / "paths.txt")],
        capture_output=True, text=True, check=True,
    ).stdout
    stats = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON"))[8:])
    stats["tiles_per_s"] = stats["requests"] / stats["seconds"]
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    var_dir = B.BENCH / "vitrine"
    if not (var_dir / "ingest.json").exists():
        sys.exit(f"no bench data in {B.BENCH}: run bench/bench_iiif.py --keep first")
    ingested = json.loads((var_dir / "ingest.json").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for round_ in range(args.rounds):
            for name in ("iipsrv", "Vitrine"):
                if name == "Vitrine":
                    server = B.start_vitrine(var_dir, ingested["series_uid"], B.default_workers(), B.DEFAULT_THREADS)
                else:
                    (folder / "iipsrv").mkdir(exist_ok=True)
                    server = B.start_iipsrv(folder / "iipsrv", B.BENCH / "slide" / "slide.tif", 2)
                try:
                    for i, client in enumerate(("wrk", "python", "wrk", "python")):
                        seed = 1000 * round_ + i
                        if client == "wrk":
                            stats = run_wrk(server, [server.prefix + p for p in B.tile_paths("", 6000, seed)],
                                            args.connections, args.seconds, folder)
                        else:
                            paths = [server.prefix + p for p in B.tile_paths("", B.TILES, seed)]
                            stats = B.run_load(server, paths, args.connections)
                        state = "cold" if i < 2 else "warm"
                        print(f"round {round_ + 1} {name:8s} {client:6s} {state}: {stats['tiles_per_s']:.0f} tiles/s, "
                              f"p50 {stats['p50']:.2f} p95 {stats['p95']:.2f} p99 {stats['p99']:.2f} ms", flush=True)
                finally:
                    server.stop()


if __name__ == "__main__":
    main()
