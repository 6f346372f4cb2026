"""Interoperability with the dcmtk command-line tools (storescu, findscu, getscu, movescu,
storescp): round trips keep the data set bytes exactly."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless
from pynetdicom import build_context

from archive.models import Instance, Modality
from archive.storage import get_storage
from tests.factories.datasets import ct_series, ct_slice, instance, jpeg_photo, uid, write_files
from tests.services import free_port

from .conftest import SCU, associate, dataset_bytes, files_under

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk is not installed"),
]

ENCAPSULATED_STL = "1.2.840.10008.5.1.4.1.1.104.3"
STL = b"solid test\nfacet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n  vertex 0 1 0\n endloop\nendfacet\nendsolid test\n"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=60, cwd=cwd)


def _peer(scp) -> list[str]:
    return ["-aet", SCU, "-aec", scp.ae_title, scp.host, str(scp.port)]


def _stl_instance() -> Dataset:
    return instance(
        ENCAPSULATED_STL, FrameOfReferenceUID=uid(), PatientID="OBJ-42", PatientName="Amphora^Attic",
        StudyDate="20240601", StudyTime="120000", Modality="M3D", MIMETypeOfEncapsulatedDocument="model/stl",
        EncapsulatedDocument=STL + (b"\0" if len(STL) % 2 else b""), EncapsulatedDocumentLength=len(STL),
    )


def _stored(sop_uid: str) -> bytes:
    return Path(get_storage().path(Instance.objects.get(sop_uid=sop_uid).path)).read_bytes()


def test_storescu_ct_series_and_encapsulated_stl(scp, tmp_path):
    files = write_files(ct_series(3) + [_stl_instance()], tmp_path / "in")
    result = _run("storescu", "-R", *_peer(scp), *map(str, files))
    assert result.returncode == 0, result.stderr
    assert Instance.objects.count() == 4
    for path in files:
        original = path.read_bytes()
        sop_uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(_stored(sop_uid)) == dataset_bytes(original)
    stl = Instance.objects.get(sop_class_uid=ENCAPSULATED_STL)
    assert stl.received_from == SCU
    assert dcmread(get_storage().path(stl.path)).EncapsulatedDocument.rstrip(b"\0") == STL


def test_storescu_bad_instance_fails_and_leaves_nothing(scp, tmp_path, archive_storage):
    ds = ct_series(1)[0]
    del ds.StudyInstanceUID
    (path,) = write_files([ds], tmp_path / "in")
    result = _run("storescu", "-v", "-R", *_peer(scp), str(path))
    assert result.returncode != 0
    assert "error: cannotunderstand" in (result.stdout + result.stderr).lower()  # 0xC000
    assert Instance.objects.count() == 0
    assert files_under(archive_storage) == []


def _store_series(scp, tmp_path, count=2, **kwargs) -> list[Path]:
    files = write_files(ct_series(count, **kwargs), tmp_path / "in")
    assert _run("storescu", "-R", *_peer(scp), *map(str, files)).returncode == 0
    return files


def test_findscu_study_and_image_levels(scp, registered, tmp_path):
    files = _store_series(scp, tmp_path, patient_id="P-77")
    first = dcmread(files[0], stop_before_pixels=True)
    out = tmp_path / "find"
    out.mkdir()
    result = _run(
        "findscu", "-S", "-X", "-od", str(out), *_peer(scp),
        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=P-77", "-k", "StudyInstanceUID",
        "-k", "PatientName", "-k", "NumberOfStudyRelatedInstances",
    )
    assert result.returncode == 0, result.stderr
    (response,) = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert response.StudyInstanceUID == first.StudyInstanceUID
    assert (str(response.PatientName), response.NumberOfStudyRelatedInstances) == ("Doe^Jane", 2)

    for p in out.glob("rsp*.dcm"):
        p.unlink()
    result = _run(
        "findscu", "-S", "-X", "-od", str(out), *_peer(scp),
        "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={first.StudyInstanceUID}",
        "-k", f"SeriesInstanceUID={first.SeriesInstanceUID}", "-k", "SOPInstanceUID",
    )
    assert result.returncode == 0, result.stderr
    found = {dcmread(p).SOPInstanceUID for p in out.glob("rsp*.dcm")}
    assert found == {dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}


def test_findscu_from_unregistered_ae_is_refused(scp, tmp_path):
    _store_series(scp, tmp_path, count=1)
    result = _run(
        "findscu", "-S", "-aet", "STRANGER", "-aec", scp.ae_title, scp.host, str(scp.port),
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
    )
    assert result.returncode != 0
    assert "no acceptable presentation contexts" in (result.stdout + result.stderr).lower()


def test_getscu_series_is_byte_identical(scp, registered, tmp_path):
    files = _store_series(scp, tmp_path, count=3)
    first = dcmread(files[0], stop_before_pixels=True)
    out = tmp_path / "get"
    out.mkdir()
    result = _run(
        "getscu", "-S", "+B", "-od", str(out), *_peer(scp),
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={first.StudyInstanceUID}",
        "-k", f"SeriesInstanceUID={first.SeriesInstanceUID}",
    )
    assert result.returncode == 0, result.stderr
    retrieved = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes() for p in files_under(out)}
    originals = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes() for p in files}
    assert retrieved.keys() == originals.keys()
    for sop_uid, data in originals.items():
        assert dataset_bytes(retrieved[sop_uid]) == dataset_bytes(data)


@contextmanager
def _storescp(out: Path, *options: str) -> Iterator[str]:
    """A dcmtk storescp writing to ``out``, registered as a C-MOVE destination; yields its AE title."""
    port = free_port()
    Modality.objects.create(ae_title="STORESCP", host="127.0.0.1", port=port)
    storescp = subprocess.Popen(
        ["storescp", *options, "-aet", "STORESCP", "-od", str(out), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port)
        yield "STORESCP"
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)


def test_movescu_to_storescp_is_byte_identical(scp, registered, tmp_path):
    files = _store_series(scp, tmp_path, count=2)
    first = dcmread(files[0], stop_before_pixels=True)
    out = tmp_path / "moved"
    out.mkdir()
    with _storescp(out, "+B") as destination:
        result = _run(
            "movescu", "-S", "-aem", destination, *_peer(scp),
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={first.StudyInstanceUID}",
        )
        assert result.returncode == 0, result.stderr
    moved = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes() for p in files_under(out)}
    assert {k: dataset_bytes(v) for k, v in moved.items()} == {
        dcmread(p, stop_before_pixels=True).SOPInstanceUID: dataset_bytes(p.read_bytes()) for p in files
    }


@pytest.mark.parametrize("tool", ["getscu", "movescu"])
def test_compressed_instances_reach_a_peer_that_takes_only_uncompressed(scp, registered, tmp_path, tool):
    """getscu and storescp accept uncompressed syntaxes unless told otherwise: they get
    decoded copies, pixel for pixel what a decoder makes of the stored data."""
    study_uid = uid()
    ct = ct_slice(size=32, study_uid=study_uid)
    ct.compress(RLELossless, generate_instance_uid=False)
    y, x = np.mgrid[0:24, 0:32]
    photo = jpeg_photo(
        np.stack([x * 7, y * 9, (x + y) * 4], axis=-1).astype(np.uint8),
        StudyInstanceUID=study_uid, PatientID=ct.PatientID, PatientName=ct.PatientName,
    )
    files = write_files([ct, photo], tmp_path / "in")
    sender = associate(scp, [build_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in (ct, photo)])
    try:
        assert [sender.send_c_store(path).Status for path in files] == [0, 0]
    finally:
        sender.release()
    out = tmp_path / "out"
    out.mkdir()
    query = ("-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}")
    if tool == "getscu":
        result = _run("getscu", "-S", "+B", "-od", str(out), *_peer(scp), *query)
    else:
        with _storescp(out) as destination:
            result = _run("movescu", "-S", "-aem", destination, *_peer(scp), *query)
    assert result.returncode == 0, result.stdout + result.stderr
    received = {ds.SOPInstanceUID: ds for ds in map(dcmread, files_under(out))}
    assert received.keys() == {ct.SOPInstanceUID, photo.SOPInstanceUID}
    for path in files:
        stored = dcmread(path)
        copy = received[stored.SOPInstanceUID]
        assert not copy.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(copy.pixel_array, stored.pixel_array)
    assert received[photo.SOPInstanceUID].PhotometricInterpretation == "RGB"


def test_movescu_to_unknown_destination_fails(scp, registered, tmp_path):
    files = _store_series(scp, tmp_path, count=1)
    result = _run(
        "movescu", "-v", "-S", "-aem", "NOWHERE", *_peer(scp),
        "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={dcmread(files[0], stop_before_pixels=True).StudyInstanceUID}",
    )
    assert "refused: movedestinationunknown" in (result.stdout + result.stderr).lower()  # 0xA801


def _wait_for_port(port: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")
