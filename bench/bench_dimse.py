"""DIMSE benchmark: Vitrine's SCP against Orthanc 1.10.1, same data, same run.

Measures, for each server:

- C-STORE of a 500-slice 512×512 CT series with dcmtk ``storescu``, one association
  (instances per second, wall clock of the whole storescu run);
- C-FIND latency: 200 study-level queries by PatientID over one association, from the
  blocking client in ``dimse_client.py`` (p50 and p95 per query, all responses
  received);
- C-GET of the series with dcmtk ``getscu`` (seconds, wall clock);
- C-MOVE of the series to a dcmtk ``storescp`` (seconds, wall clock of ``movescu``);
- the server's peak RSS (VmHWM) at the end.

The CPU is shared with whatever else runs on the machine; numbers are one run each.
Usage: ``.venv/bin/python bench/bench_dimse.py [--pdu 16384] [--finds 200]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import (
    BENCH_AE,
    SINK_AE,
    Server,
    Workload,
    free_port,
    generate_workload,
    percentile,
    prepare_vitrine,
    print_table,
    start_orthanc,
    start_storescp,
    start_vitrine_scp,
)
from common import (
    BENCH_ROOT as SHARED_ROOT,
)
from dimse_client import DimseClient

# Servers and sinks of this benchmark live apart from bench_archive.py's, so both can run.
BENCH_ROOT = SHARED_ROOT / "dimse"


def _tool(*args: str) -> float:
    """Run a dcmtk tool; return its wall-clock seconds."""
    start = time.perf_counter()
    # dcmtk disables Nagle's algorithm when TCP_NODELAY is set (as Orthanc is started).
    env = {**os.environ, "TCP_NODELAY": "1"}
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=600, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def _peer(server: Server) -> list[str]:
    return ["-aet", BENCH_AE, "-aec", server.ae_title, "127.0.0.1", str(server.dicom_port)]


def store_series(server: Server, workload: Workload) -> float:
    seconds = _tool("storescu", "-R", *_peer(server), *map(str, workload.series))
    return len(workload.series) / seconds


def store_small(server: Server, workload: Workload) -> None:
    files = [str(p) for study in workload.small for p in study]
    _tool("storescu", "-R", *_peer(server), *files)


def find_latencies_ms(server: Server, workload: Workload, count: int) -> list[float]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    client = DimseClient(
        "127.0.0.1", server.dicom_port, calling=BENCH_AE, called=server.ae_title, abstract_syntax=FIND
    )
    try:
        return _timed_finds(server, client, workload, count)
    finally:
        client.release()


def _timed_finds(server: Server, client: DimseClient, workload: Workload, count: int) -> list[float]:
    from pydicom.dataset import Dataset

    latencies = []
    for n in range(count):
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = workload.small_patient_ids[n % len(workload.small_patient_ids)]
        query.StudyInstanceUID = ""
        query.PatientName = ""
        query.StudyDate = ""
        query.AccessionNumber = ""
        query.NumberOfStudyRelatedInstances = ""
        start = time.perf_counter()
        responses = client.find(query)
        latencies.append((time.perf_counter() - start) * 1000)
        statuses = [status for status, _ in responses]
        if statuses != [0xFF00, 0x0000]:
            raise RuntimeError(f"{server.name} answered C-FIND #{n} for {query.PatientID} with {statuses}")
    return latencies


def get_series(server: Server, workload: Workload, folder: Path | None, pdu: int) -> float:
    """C-GET the series with getscu: into ``folder`` byte for byte (``+B``), or, with no
    folder, received and dropped (``--ignore``), which leaves the client's disk writes out
    of the figure: on this VM writing 263 MB of new files costs getscu 0.5-0.7 s of
    system time by itself."""
    where = ["--ignore"]
    if folder is not None:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        where = ["+B", "-od", str(folder)]
    seconds = _tool(
        "getscu", "-S", *where, "-pdu", str(pdu), *_peer(server),
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={workload.series_study_uid}",
        "-k", f"SeriesInstanceUID={workload.series_uid}",
    )
    if folder is not None:
        received = len(list(folder.iterdir()))
        if received != len(workload.series):
            raise RuntimeError(f"C-GET from {server.name} brought {received} of {len(workload.series)} files")
    return seconds


def move_series(server: Server, workload: Workload, sink: Server) -> float:
    for old in sink.folder.iterdir():  # storescp names files by SOP Instance UID
        old.unlink()
    seconds = _tool(
        "movescu", "-S", "-aem", SINK_AE, *_peer(server),
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={workload.series_study_uid}",
        "-k", f"SeriesInstanceUID={workload.series_uid}",
    )
    received = len(list(sink.folder.iterdir()))
    if received != len(workload.series):
        raise RuntimeError(f"C-MOVE from {server.name} delivered {received} of {len(workload.series)} files")
    return seconds


def run(server: Server, workload: Workload, sink: Server, finds: int, pdu: int) -> dict[str, float]:
    results = {"store_per_s": store_series(server, workload)}
    store_small(server, workload)
    find_latencies_ms(server, workload, 20)  # warm up caches and connections
    latencies = find_latencies_ms(server, workload, finds)
    results["find_p50_ms"] = percentile(latencies, 0.5)
    results["find_p95_ms"] = percentile(latencies, 0.95)
    results["get_s"] = get_series(server, workload, BENCH_ROOT / f"get-{server.name}", pdu)
    results["get_ignore_s"] = get_series(server, workload, None, pdu)
    results["move_s"] = move_series(server, workload, sink)
    results["rss_mib"] = server.peak_rss_mib()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finds", type=int, default=200, help="C-FIND queries per server")
    parser.add_argument("--pdu", type=int, default=16384, help="getscu's maximum receive PDU")
    parser.add_argument("--only", choices=("Vitrine", "Orthanc"), help="run one server only")
    args = parser.parse_args()

    workload = generate_workload()
    sink_port = free_port()
    sink = start_storescp(BENCH_ROOT / "sink", port=sink_port)
    modalities = {BENCH_AE: ("127.0.0.1", free_port()), SINK_AE: ("127.0.0.1", sink_port)}
    results: dict[str, dict[str, float]] = {}
    try:
        for name in ("Vitrine", "Orthanc"):
            if args.only and name != args.only:
                continue
            if name == "Vitrine":
                server = start_vitrine_scp(prepare_vitrine(BENCH_ROOT / "vitrine", modalities))
            else:
                server = start_orthanc(modalities, folder=BENCH_ROOT / "orthanc")
            try:
                print(f"{name}: running ...", flush=True)
                results[name] = run(server, workload, sink, args.finds, args.pdu)
            finally:
                server.stop()
    finally:
        sink.stop()

    names = list(results)
    rows = [
        ("C-STORE 500×512 KiB, storescu, 1 assoc (inst/s)", "store_per_s", "{:.0f}"),
        (f"C-FIND study by PatientID, p50 of {args.finds} (ms)", "find_p50_ms", "{:.2f}"),
        (f"C-FIND study by PatientID, p95 of {args.finds} (ms)", "find_p95_ms", "{:.2f}"),
        (f"C-GET series, getscu -pdu {args.pdu} (s)", "get_s", "{:.2f}"),
        ("C-GET series, getscu --ignore: no client writes (s)", "get_ignore_s", "{:.2f}"),
        ("C-MOVE series to storescp (s)", "move_s", "{:.2f}"),
        ("server peak RSS (MiB)", "rss_mib", "{:.0f}"),
    ]
    table = [(label, *(fmt.format(results[n][key]) for n in names)) for label, key, fmt in rows]
    print()
    print_table("DIMSE, one run (shared CPU)", table, ("measure", *names))


if __name__ == "__main__":
    main()
