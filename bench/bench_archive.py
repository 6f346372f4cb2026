"""DICOMweb side by side: Vitrine and Orthanc 1.10.1 (Debian, DICOMweb plugin), one run.

STOW-RS as 10 POSTs of 50 instances, QIDO listings, WADO-RS of a whole 500-slice
series and of its /metadata, and each server's peak RSS. The DIMSE half lives in
``bench_dimse.py``; both use the workload and servers of ``common.py``.

    .venv/bin/python bench/bench_archive.py [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from common import (
    BENCH_ROOT, PYTHON, ROOT, Server, free_port, generate_workload, manage, percentile, prepare_vitrine,
    print_table, start_orthanc, vitrine_env, wait_for_port,
)

from archive.httpserver import DEFAULT_THREADS, default_workers, http_command


class Client:
    """A keep-alive HTTP client that reads bodies in large chunks and discards them."""

    def __init__(self, port: int, prefix: str, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.prefix, self.headers = prefix, headers
        self.buffer = bytearray(4 << 20)

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, int, bytes]:
        self.connection.request(method, self.prefix + path, body=body, headers={**self.headers, **(headers or {})})
        response = self.connection.getresponse()
        total, head = 0, b""
        view = memoryview(self.buffer)
        while n := response.readinto(view):
            if total < 4096:
                head += bytes(view[: min(n, 4096)])
            total += n
        return response.status, total, head


def start_vitrine_http(var_dir: Path) -> Server:
    port = free_port()
    log_path = var_dir / "http.log"
    command = http_command(Path(PYTHON).parent, "127.0.0.1", port, default_workers(), DEFAULT_THREADS, access_log=False)
    process = subprocess.Popen(
        command, env=vitrine_env(var_dir), cwd=ROOT, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    return Server("Vitrine", "VITRINE", 0, port, var_dir, process, log_path)


def multipart_body(paths: list[Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for path in paths:
        chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), path.read_bytes(), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_server(name: str, client: Client, workload, batches: int, batch_size: int, repeat: int) -> dict[str, float]:
    study, series = workload.series_study_uid, workload.series_uid
    results: dict[str, float] = {}
    # STOW-RS: the series as `batches` POSTs of `batch_size` instances.
    files = workload.series[: batches * batch_size]
    bodies = [multipart_body(files[i: i + batch_size]) for i in range(0, len(files), batch_size)]
    start = time.perf_counter()
    for body, content_type in bodies:
        status, _, head = client.request("POST", "/studies", body, {"Content-Type": content_type, "Accept": "application/dicom+json"})
        assert status == 200, (name, status, head[:300])
    results["stow_per_s"] = len(files) / (time.perf_counter() - start)
    for study_files in workload.small:
        body, content_type = multipart_body(study_files)
        status, _, head = client.request("POST", "/studies", body, {"Content-Type": content_type, "Accept": "application/dicom+json"})
        assert status == 200, (name, status, head[:300])
    # QIDO: the instances of the big series, and studies by PatientID.
    listing = f"/studies/{study}/series/{series}/instances"
    status, size, _ = client.request("GET", listing, headers={"Accept": "application/dicom+json"})
    assert status == 200 and size > 1000, (name, status)
    results["qido_series_ms"] = 1000 * statistics.median(
        timed(lambda: client.request("GET", listing, headers={"Accept": "application/dicom+json"}), repeat)
    )
    patient_times = []
    for patient in workload.small_patient_ids * 2:
        start = time.perf_counter()
        status, size, head = client.request("GET", f"/studies?PatientID={patient}", headers={"Accept": "application/dicom+json"})
        patient_times.append(time.perf_counter() - start)
        assert status == 200 and size > 100, (name, status, head[:200])
    results["qido_patient_p50_ms"] = 1000 * percentile(patient_times, 0.5)
    # WADO-RS: the whole series, and its metadata.
    accept = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    retrieve = f"/studies/{study}/series/{series}"
    status, size, _ = client.request("GET", retrieve, headers=accept)
    assert status == 200 and size >= sum(f.stat().st_size for f in files), (name, status, size)
    results["wado_series_s"] = min(timed(lambda: client.request("GET", retrieve, headers=accept), repeat))
    results["wado_series_mb"] = size / 1e6
    results["wado_metadata_ms"] = 1000 * statistics.median(
        timed(lambda: client.request("GET", retrieve + "/metadata", headers={"Accept": "application/dicom+json"}), repeat)
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 batches of 10 and fewer repeats")
    args = parser.parse_args()
    batches, batch_size, repeat = (2, 10, 3) if args.quick else (10, 50, 7)
    workload = generate_workload()
    rows = {}
    var_dir = prepare_vitrine(BENCH_ROOT / "vitrine-web")
    manage(var_dir, "bootstrap")
    token = manage(var_dir, "token", "admin").strip()
    vitrine = start_vitrine_http(var_dir)
    try:
        client = Client(vitrine.http_port, "/dicomweb", {"Authorization": f"Bearer {token}"})
        rows["Vitrine"] = bench_server("Vitrine", client, workload, batches, batch_size, repeat)
        rows["Vitrine"]["rss_mib"] = _tree_rss_mib(vitrine.pid)
    finally:
        vitrine.stop()
    orthanc = start_orthanc(folder=BENCH_ROOT / "orthanc-web")
    try:
        client = Client(orthanc.http_port, "/dicom-web", {})
        rows["Orthanc"] = bench_server("Orthanc", client, workload, batches, batch_size, repeat)
        rows["Orthanc"]["rss_mib"] = orthanc.peak_rss_mib()
    finally:
        orthanc.stop()
    lines = [
        ("STOW-RS (instances/s)", "stow_per_s", "≥ 250", "{:.0f}"),
        ("QIDO 500 instances of a series (ms, median)", "qido_series_ms", "≤ 25", "{:.1f}"),
        ("QIDO /studies?PatientID= (ms, p50)", "qido_patient_p50_ms", "≤ 3", "{:.2f}"),
        ("WADO-RS whole series (s, best)", "wado_series_s", "≤ 0.19", "{:.3f}"),
        ("WADO-RS series /metadata (ms, median)", "wado_metadata_ms", "", "{:.1f}"),
        ("Server peak RSS (MiB)", "rss_mib", "", "{:.0f}"),
    ]
    print_table(
        f"DICOMweb, {len(workload.series)}-slice series ({rows['Vitrine']['wado_series_mb']:.0f} MB) "
        f"and {len(workload.small)} small studies",
        [(label, fmt.format(rows["Vitrine"][key]), fmt.format(rows["Orthanc"][key]), goal) for label, key, goal, fmt in lines],
        ("operation", "Vitrine", "Orthanc 1.10.1", "goal"),
    )


def _tree_rss_mib(pid: int) -> float:
    """Peak RSS of the HTTP server's main process and workers, the largest one (each is a process)."""
    from common import peak_rss_mib

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return max(peak_rss_mib(int(p)) for p in [pid, *children])


if __name__ == "__main__":
    main()
