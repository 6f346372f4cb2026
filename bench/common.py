"""Shared pieces of Vitrine's benchmarks: the workload, and the servers compared.

``bench_dimse.py`` (C-STORE, C-FIND, C-GET, C-MOVE) and ``bench_archive.py`` (DICOMweb)
run Vitrine and Orthanc 1.10.1 (Debian's package, with its DICOMweb plugin) on the same
data in the same run. Every server gets its own folder under ``BENCH_ROOT`` and is
stopped at the end; the workload is generated once and cached.

Run from the repository root: ``.venv/bin/python bench/bench_dimse.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Not /tmp/vitrine-bench: bench_ingest.py removes that folder when it starts.
BENCH_ROOT = Path(os.environ.get("VITRINE_BENCH_ROOT", "/tmp/vitrine-archive-bench"))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
ORTHANC_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
BENCH_AE = "BENCH"  # the calling AE of every client tool
SINK_AE = "SINK"  # the C-MOVE destination

# --- workload -------------------------------------------------------------------------

SERIES_SLICES = 500
SERIES_SIZE = 512
SMALL_STUDIES = 100
SMALL_STUDY_SLICES = 5
_WORKLOAD_VERSION = 1


@dataclass(frozen=True)
class Workload:
    """Paths of the generated files: one large CT series, and many small studies."""

    folder: Path
    series: list[Path]  # 500 slices 512×512 int16, one study, one series
    series_study_uid: str
    series_uid: str
    small: list[list[Path]]  # 100 studies of 5 slices, one patient each
    small_patient_ids: list[str]

    @property
    def series_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.series)


def generate_workload(folder: Path | None = None) -> Workload:
    """Generate the workload into ``folder`` once; later calls read its manifest."""
    folder = Path(folder or BENCH_ROOT / "workload")
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == _WORKLOAD_VERSION:
            return _workload_from(folder, manifest)
    from tests.factories.datasets import ct_series, write_files  # seeded, valid CT slices

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"generating the workload in {folder} ...", flush=True)
    series = ct_series(
        SERIES_SLICES, size=SERIES_SIZE, patient_id="BENCH-SERIES", patient_name="Bench^Series",
        accession="BENCH-1",
    )
    series_files = write_files(series, folder / "series")
    small, patient_ids = [], []
    for n in range(SMALL_STUDIES):
        patient_id = f"BENCH-{n:04d}"
        study = ct_series(
            SMALL_STUDY_SLICES, size=64, patient_id=patient_id, patient_name=f"Patient^{n:04d}",
            accession=f"ACC-{n:04d}", seed=n,
        )
        small.append([p.name for p in write_files(study, folder / "small" / patient_id)])
        patient_ids.append(patient_id)
    manifest = {
        "version": _WORKLOAD_VERSION,
        "series": [p.name for p in series_files],
        "series_study_uid": series[0].StudyInstanceUID,
        "series_uid": series[0].SeriesInstanceUID,
        "small": small,
        "small_patient_ids": patient_ids,
    }
    manifest_path.write_text(json.dumps(manifest))
    return _workload_from(folder, manifest)


def _workload_from(folder: Path, manifest: dict) -> Workload:
    return Workload(
        folder=folder,
        series=[folder / "series" / name for name in manifest["series"]],
        series_study_uid=manifest["series_study_uid"],
        series_uid=manifest["series_uid"],
        small=[
            [folder / "small" / pid / name for name in names]
            for pid, names in zip(manifest["small_patient_ids"], manifest["small"])
        ],
        small_patient_ids=manifest["small_patient_ids"],
    )


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 60.0, process=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s")


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size of a running process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


@dataclass
class Server:
    """A server under test: its name, AE title, ports and process."""

    name: str
    ae_title: str
    dicom_port: int
    http_port: int | None
    folder: Path
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


# --- Orthanc --------------------------------------------------------------------------


def orthanc_plugin(name: str = "libOrthancDicomWeb.so") -> Path:
    for folder in ORTHANC_PLUGIN_DIRS:
        found = sorted(folder.glob(name + "*"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no Orthanc plugin {name} under {ORTHANC_PLUGIN_DIRS}")


def start_orthanc(
    modalities: dict[str, tuple[str, int]] | None = None,
    *, ae_title: str = "ORTHANC", folder: Path | None = None,
) -> Server:
    """Start Debian's Orthanc with its own storage, the DICOMweb plugin and the given
    DICOM modalities (AE title → (host, port)), which may query, get and move."""
    folder = _fresh(Path(folder or BENCH_ROOT / "orthanc"))
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "StorageCompression": False,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "DicomCheckCalledAet": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "Plugins": [str(orthanc_plugin())],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {
            name.lower(): [name, host, port] for name, (host, port) in (modalities or {}).items()
        },
        "UnknownSopClassAccepted": True,
    }
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = folder / "orthanc.log"
    process = subprocess.Popen(
        [ORTHANC, str(config_path)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    wait_for_port(dicom_port, process=process)
    wait_for_port(http_port, process=process)
    _wait_for_http(f"http://127.0.0.1:{http_port}/system")
    return Server("Orthanc", ae_title, dicom_port, http_port, folder, process, log_path)


def _wait_for_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- Vitrine --------------------------------------------------------------------------


def vitrine_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a Vitrine process whose data lives in ``var_dir``."""
    return {
        **os.environ,
        "VITRINE_VAR": str(var_dir),
        "VITRINE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "archive.settings",
        **extra,
    }


def manage(var_dir: Path, *args: str, **extra_env: str) -> str:
    """Run one ``manage.py`` command against the Vitrine in ``var_dir``; return stdout."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args], env=vitrine_env(var_dir, **extra_env),
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def prepare_vitrine(folder: Path | None = None, modalities: dict[str, tuple[str, int]] | None = None) -> Path:
    """A fresh Vitrine data folder: migrated, with the given modalities registered."""
    var_dir = _fresh(Path(folder or BENCH_ROOT / "vitrine"))
    manage(var_dir, "migrate", "-v", "0")
    for name, (host, port) in (modalities or {}).items():
        manage(var_dir, "modality", "add", name, host, str(port))
    return var_dir


def start_vitrine_scp(
    var_dir: Path, *, ae_title: str = "VITRINE", port: int | None = None,
) -> Server:
    """Start ``manage.py dicomscp`` in the foreground as a subprocess."""
    port = port or free_port()
    log_path = var_dir / "dicomscp.log"
    env = vitrine_env(
        var_dir, VITRINE_DICOM_PORT=str(port), VITRINE_DICOM_HOST="127.0.0.1", VITRINE_AE_TITLE=ae_title
    )
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), "dicomscp"], env=env, cwd=ROOT,
        stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    return Server("Vitrine", ae_title, port, None, var_dir, process, log_path)


# --- sinks and reporting --------------------------------------------------------------


def start_storescp(folder: Path, *, ae_title: str = SINK_AE, port: int | None = None) -> Server:
    """dcmtk's storescp writing what it receives, bit-preserving, into ``folder``."""
    folder = _fresh(folder)
    port = port or free_port()
    log_path = folder.parent / f"{folder.name}.log"
    process = subprocess.Popen(
        ["storescp", "+B", "-aet", ae_title, "-od", str(folder), str(port)],
        stdout=log_path.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "TCP_NODELAY": "1"},
    )
    wait_for_port(port, process=process)
    return Server("storescp", ae_title, port, None, folder, process, log_path)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """Print (and return) a plain-text table, columns as wide as their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
