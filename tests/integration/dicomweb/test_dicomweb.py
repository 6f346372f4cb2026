"""DICOMweb through the Django test client: STOW-RS, QIDO-RS, WADO-RS and their errors."""

from __future__ import annotations

import email.parser
import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import RLELossless

from archive import multipart
from archive.models import Instance, Study
from tests.conftest import stored_files
from tests.factories.datasets import ct_series, ct_slice, jpeg_photo, to_bytes

from .conftest import basic

pytestmark = [pytest.mark.django_db, pytest.mark.integration]
DICOM_MULTIPART = 'multipart/related; type="application/dicom"; boundary=XbX'
DICOM_ACCEPT = 'multipart/related; type="application/dicom"'


def _stow_body(payloads: list[bytes]) -> bytes:
    return b"".join(multipart.write_parts("XbX", [("application/dicom", p) for p in payloads]))


def _parts(response) -> list[tuple[str, bytes]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    raw = b"Content-Type: " + response["Content-Type"].encode() + b"\r\n\r\n" + body
    message = email.parser.BytesParser().parsebytes(raw)
    return [(part.get_content_type(), part.get_payload(decode=True)) for part in message.get_payload()]


def test_stow_then_retrieve_is_byte_identical(client, curator_auth):
    datasets = ct_series(3)
    payloads = [to_bytes(ds) for ds in datasets]
    response = client.post("/dicomweb/studies", _stow_body(payloads), content_type=DICOM_MULTIPART, **curator_auth)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert len(answer["00081199"]["Value"]) == 3
    study = datasets[0].StudyInstanceUID
    response = client.get(f"/dicomweb/studies/{study}", **curator_auth)
    assert response.status_code == 200
    assert sorted(p for _, p in _parts(response)) == sorted(payloads)


def test_stow_reports_failures_per_instance(client, curator_auth, archive_storage):
    good = to_bytes(ct_slice())
    broken = to_bytes(ct_slice(size=32))[:-50]
    response = client.post("/dicomweb/studies", _stow_body([good, broken]), content_type=DICOM_MULTIPART, **curator_auth)
    assert response.status_code == 202
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xC000]
    assert "truncated" in failed[0]["0040A160"]["Value"][0]
    assert "truncated" in response["Warning"]
    assert Instance.objects.count() == 1


def test_stow_to_a_study_refuses_other_studies(client, curator_auth):
    ds = ct_slice()
    response = client.post(
        "/dicomweb/studies/1.2.3", _stow_body([to_bytes(ds)]), content_type=DICOM_MULTIPART, **curator_auth
    )
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"--XbX\r\nContent-Type: application/dicom\r\n\r\nabc", DICOM_MULTIPART, 400),
        (b"garbage", DICOM_MULTIPART, 400),
        (b"{}", "application/json", 415),
        (b"", 'multipart/related; type="application/dicom+xml"; boundary=XbX', 415),
    ],
)
def test_stow_bad_bodies_store_nothing(client, curator_auth, archive_storage, body, content_type, status):
    response = client.post("/dicomweb/studies", body, content_type=content_type, **curator_auth)
    assert response.status_code == status
    assert response.json()["detail"]
    assert Instance.objects.count() == 0
    assert stored_files(archive_storage) == []


def test_stow_non_dicom_part_stores_nothing(client, curator_auth, archive_storage):
    response = client.post("/dicomweb/studies", _stow_body([b"not dicom"]), content_type=DICOM_MULTIPART, **curator_auth)
    assert response.status_code == 409
    assert Instance.objects.count() == 0 and stored_files(archive_storage) == []


def test_stow_over_the_limit_is_413(client, curator_auth, settings, archive_storage):
    settings.VITRINE_MAX_UPLOAD_BYTES = 1000
    response = client.post("/dicomweb/studies", _stow_body([to_bytes(ct_slice(size=64))]), content_type=DICOM_MULTIPART, **curator_auth)
    assert response.status_code == 413
    assert stored_files(archive_storage) == []


def test_stow_needs_a_curator(client, reader):
    body = _stow_body([to_bytes(ct_slice())])
    assert client.post("/dicomweb/studies", body, content_type=DICOM_MULTIPART).status_code == 401
    response = client.post("/dicomweb/studies", body, content_type=DICOM_MULTIPART, **basic("someone", "someone-pass-1"))
    assert response.status_code == 403
    assert Instance.objects.count() == 0


def test_qido_levels_and_matching(client, public_series):
    study = public_series[0].StudyInstanceUID
    series = public_series[0].SeriesInstanceUID
    studies = client.get("/dicomweb/studies", {"PatientID": "PUB-1"}).json()
    assert [s["0020000D"]["Value"][0] for s in studies] == [study]
    assert studies[0]["00201208"]["Value"] == [3]
    assert studies[0]["00100010"]["Value"] == [{"Alphabetic": "Public^Object"}]
    assert client.get("/dicomweb/studies", {"PatientName": "pub*"}).json()
    assert client.get("/dicomweb/studies", {"PatientID": "PUB-?"}).json()
    assert client.get("/dicomweb/studies", {"PatientID": "PUB"}).json() == []
    assert client.get("/dicomweb/studies", {"StudyDate": "20240101-20241231"}).json()
    assert client.get("/dicomweb/studies", {"StudyDate": "-20231231"}).json() == []
    assert client.get("/dicomweb/studies", {"00100020": "PUB-1"}).json()
    assert len(client.get(f"/dicomweb/studies/{study}/series").json()) == 1
    instances = client.get(f"/dicomweb/studies/{study}/series/{series}/instances").json()
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2, 3]
    assert len(client.get("/dicomweb/instances", {"SOPInstanceUID": f"{public_series[0].SOPInstanceUID},{public_series[1].SOPInstanceUID}"}).json()) == 2


def test_qido_limit_offset_and_warning(client, public_series):
    study = public_series[0].StudyInstanceUID
    response = client.get(f"/dicomweb/studies/{study}/instances", {"limit": 2})
    assert len(response.json()) == 2 and "offset=2" in response["Warning"]
    response = client.get(f"/dicomweb/studies/{study}/instances", {"limit": 2, "offset": 2})
    assert len(response.json()) == 1 and "Warning" not in response
    assert "Warning" not in client.get(f"/dicomweb/studies/{study}/instances")


def test_qido_includefield(client, public_series):
    study = public_series[0].StudyInstanceUID
    item = client.get(f"/dicomweb/studies/{study}/instances", {"includefield": "ImagePositionPatient,00280030"}).json()[0]
    assert item["00200032"]["Value"] == [0.0, 0.0, 0.0]
    assert item["00280030"]["Value"] == [0.5, 0.5]
    everything = client.get(f"/dicomweb/studies/{study}/instances", {"includefield": "all"}).json()[0]
    assert "00280030" in everything and "7FE00010" not in everything


@pytest.mark.parametrize(
    "params",
    [{"StudyDate": "2024-01-01"}, {"StudyDate": "20241340"}, {"limit": "-1"}, {"offset": "x"}, {"Nonsense": "1"},
     {"StudyInstanceUID": "1.2.abc"}, {"SeriesNumber": "one"}],
)
def test_qido_bad_parameters_are_400(client, public_series, params):
    response = client.get("/dicomweb/studies", params)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_accept_headers_that_cannot_be_served_are_406(client, public_series):
    study = public_series[0].StudyInstanceUID
    assert client.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+xml").status_code == 406
    assert client.get(f"/dicomweb/studies/{study}", HTTP_ACCEPT="image/png").status_code == 406
    assert client.get(
        f"/dicomweb/studies/{study}", HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    ).status_code == 406
    assert client.get(f"/dicomweb/studies/{study}/metadata", HTTP_ACCEPT="text/html").status_code == 406


def test_wado_metadata_frames_and_bulkdata(client, public_series):
    ds = public_series[1]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    (meta,) = client.get(f"{url}/metadata").json()
    assert meta["00080018"]["Value"] == [ds.SOPInstanceUID]
    bulk_uri = meta["7FE00010"]["BulkDataURI"]
    assert bulk_uri.endswith(f"{url}/bulkdata/7FE00010")
    assert len(client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata").json()) == 3
    ((kind, frame),) = _parts(client.get(f"{url}/frames/1"))
    assert kind == "application/octet-stream" and frame == ds.PixelData
    ((_, bulk),) = _parts(client.get(bulk_uri.split("testserver")[1]))
    assert bulk == ds.PixelData
    assert client.get(f"{url}/frames/2").status_code == 404
    assert client.get(f"{url}/frames/0").status_code == 400
    assert client.get(f"{url}/frames/a,b").status_code == 400


def test_wado_of_unknown_uid_is_404(client, public_series):
    assert client.get("/dicomweb/studies/1.2.3.4").status_code == 404
    assert client.get("/dicomweb/studies/1.2.3.4/metadata").json()["code"] == "not_found"


def test_private_study_is_invisible_on_every_read_route(client, private_series, reader, curator):
    ds = private_series[0]
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    routes = [
        f"/dicomweb/studies/{study}", f"/dicomweb/studies/{study}/metadata",
        f"/dicomweb/studies/{study}/series/{series}", f"/dicomweb/studies/{study}/series/{series}/metadata",
        instance, f"{instance}/metadata", f"{instance}/frames/1", f"{instance}/bulkdata/7FE00010",
        f"{instance}/rendered", f"{instance}/thumbnail", f"{instance}/frames/1/rendered",
        f"/dicomweb/studies/{study}/thumbnail", f"/dicomweb/studies/{study}/series/{series}/thumbnail",
    ]
    listings = ["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances", f"/dicomweb/studies/{study}/series",
                f"/dicomweb/studies/{study}/instances", f"/dicomweb/studies/{study}/series/{series}/instances"]
    for credentials in ({}, basic("someone", "someone-pass-1")):
        for route in routes:
            assert client.get(route, **credentials).status_code == 404, route
        for route in listings:
            assert client.get(route, **credentials).json() == [], route
    curator_auth = basic("curator", "curator-pass-1")
    for route in routes:
        assert client.get(route, **curator_auth).status_code == 200, route
    for route in listings:
        assert client.get(route, **curator_auth).json(), route


def test_bearer_token_and_bad_credentials(client, private_series, curator):
    from archive.models import ApiToken

    token = ApiToken.for_user(curator).key
    assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get("/dicomweb/studies", **basic("curator", "wrong")).status_code == 401
    assert Study.objects.count() == 1


def test_rendered_and_thumbnail(client, public_series):
    import io

    from PIL import Image

    ds = public_series[0]
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    response = client.get(f"{url}/rendered")
    assert response["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (16, 16)
    png = client.get(f"{url}/frames/1/rendered", {"window": "500,10"}, HTTP_ACCEPT="image/png")
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.mode == "L"
    # A narrow window around 500 HU: stored values span 0..2000, so -1024..976 HU, both sides saturate.
    assert {0, 255} <= set(np.asarray(image).ravel().tolist())
    thumb = client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail", {"viewport": "8,8"})
    assert Image.open(io.BytesIO(thumb.content)).size == (8, 8)
    assert client.get(f"{url}/rendered", {"window": "40,0"}).status_code == 400
    assert client.get(f"{url}/rendered", {"viewport": "0,10"}).status_code == 400
    assert client.get(f"{url}/rendered", HTTP_ACCEPT="image/gif").status_code == 406
    assert client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/rendered").status_code == 400


def _stow_compressed(client, curator_auth) -> list:
    """An RLE CT slice and a JPEG baseline photograph in one study."""
    ct = ct_slice(size=32)
    ct.compress(RLELossless, generate_instance_uid=False)
    y, x = np.mgrid[0:24, 0:32]
    photo = jpeg_photo(
        np.stack([x * 7, y * 9, (x + y) * 4], axis=-1).astype(np.uint8),
        StudyInstanceUID=ct.StudyInstanceUID, PatientID=ct.PatientID, PatientName=ct.PatientName,
    )
    body = _stow_body([to_bytes(ds) for ds in (ct, photo)])
    assert client.post("/dicomweb/studies", body, content_type=DICOM_MULTIPART, **curator_auth).status_code == 200
    return [ct, photo]


def test_wado_converts_compressed_instances_to_explicit_vr_little_endian_on_request(client, curator_auth):
    stored = _stow_compressed(client, curator_auth)
    url = f"/dicomweb/studies/{stored[0].StudyInstanceUID}"
    as_stored = _parts(client.get(url, HTTP_ACCEPT=f"{DICOM_ACCEPT}; transfer-syntax=*", **curator_auth))
    assert sorted(p for _, p in as_stored) == sorted(to_bytes(ds) for ds in stored)
    response = client.get(url, HTTP_ACCEPT=f"{DICOM_ACCEPT}; transfer-syntax=1.2.840.10008.1.2.1", **curator_auth)
    assert response.status_code == 200
    copies = {ds.SOPInstanceUID: ds for ds in (dcmread(io.BytesIO(p)) for _, p in _parts(response))}
    for ds in stored:
        copy = copies[ds.SOPInstanceUID]
        assert copy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert np.array_equal(copy.pixel_array, dcmread(io.BytesIO(to_bytes(ds))).pixel_array)


def test_wado_refuses_conversions_it_cannot_make_with_the_reason(client, curator_auth, monkeypatch):
    stored = _stow_compressed(client, curator_auth)
    url = f"/dicomweb/studies/{stored[0].StudyInstanceUID}"
    response = client.get(url, HTTP_ACCEPT=f"{DICOM_ACCEPT}; transfer-syntax=1.2.840.10008.1.2.4.90", **curator_auth)
    assert response.status_code == 406
    assert "Explicit VR Little Endian" in response.json()["detail"]
    monkeypatch.setattr("archive.dicom.transcode.MAX_DECODED_BYTES", 100)
    response = client.get(url, HTTP_ACCEPT=f"{DICOM_ACCEPT}; transfer-syntax=1.2.840.10008.1.2.1", **curator_auth)
    assert response.status_code == 406
    assert "over the 100-byte limit" in response.json()["detail"]


def test_compressed_frames_as_stored_or_decoded(client, curator_auth):
    ct, photo = _stow_compressed(client, curator_auth)

    def frames(ds, accept):
        url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
        return client.get(url, HTTP_ACCEPT=accept, **curator_auth)

    decoded = {ds.SOPInstanceUID: dcmread(io.BytesIO(to_bytes(ds))).pixel_array for ds in (ct, photo)}
    for ds in (ct, photo):
        ((kind, frame),) = _parts(frames(ds, 'multipart/related; type="application/octet-stream"'))
        assert kind == "application/octet-stream"
        assert frame == decoded[ds.SOPInstanceUID].astype("<" + decoded[ds.SOPInstanceUID].dtype.str[1:]).tobytes()
    ((kind, frame),) = _parts(frames(photo, 'multipart/related; type="image/jpeg"'))
    assert kind == "image/jpeg" and frame.startswith(b"\xff\xd8")
    ((kind, frame),) = _parts(frames(ct, "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"))
    assert frame == decoded[ct.SOPInstanceUID].tobytes()
    ((kind, _),) = _parts(frames(ct, "*/*"))
    assert kind == "image/dicom-rle"
    refused = frames(photo, 'multipart/related; type="image/jp2"')
    assert refused.status_code == 406
    assert "decoded as application/octet-stream" in refused.json()["detail"]


def test_frames_too_large_to_decode_are_refused_with_the_reason(client, curator_auth, monkeypatch):
    ct, _ = _stow_compressed(client, curator_auth)
    monkeypatch.setattr("archive.dicom.transcode.MAX_DECODED_BYTES", 100)
    url = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/frames/1"
    response = client.get(url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"', **curator_auth)
    assert response.status_code == 406
    assert "over the 100-byte limit" in response.json()["detail"]
    assert "1.2.840.10008.1.2.5" in response.json()["detail"]  # the stored syntax to ask for instead
