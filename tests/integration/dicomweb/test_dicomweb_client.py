"""The unmodified dicomweb-client package against a live Vitrine server."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import RLELossless

from tests.factories.datasets import ct_series, ct_slice, to_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture
def client_for(live_server, curator, settings):
    # dicomweb-client sends "Host: localhost" without the port, so the absolute URLs
    # Vitrine writes (BulkDataURI, RetrieveURL) come from the configured public URL.
    settings.VITRINE_PUBLIC_URL = live_server.url

    def make(user: str | None = "curator", password: str = "curator-pass-1") -> DICOMwebClient:
        session = requests.Session()
        if user:
            session.auth = (user, password)
        return DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)

    return make


def test_dicomweb_client_round_trip(client_for):
    client = client_for()
    datasets = ct_series(3, patient_id="DWC-1")
    client.store_instances(datasets)
    study, series = datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID
    assert [s["0020000D"]["Value"][0] for s in client.search_for_studies(search_filters={"PatientID": "DWC-1"})] == [study]
    assert len(client.search_for_series(study_instance_uid=study)) == 1
    assert len(client.search_for_instances(study_instance_uid=study, series_instance_uid=series)) == 3
    assert len(client.search_for_instances(search_filters={"PatientID": "DWC-1"})) == 3
    retrieved = client.retrieve_study(study)
    assert sorted(to_bytes(d) for d in retrieved) == sorted(to_bytes(d) for d in datasets)
    one = client.retrieve_instance(study, series, datasets[1].SOPInstanceUID)
    assert to_bytes(one) == to_bytes(datasets[1])
    assert len(client.retrieve_series(study, series)) == 3
    metadata = client.retrieve_series_metadata(study, series)
    assert {m["00080018"]["Value"][0] for m in metadata} == {d.SOPInstanceUID for d in datasets}
    assert client.retrieve_instance_metadata(study, series, datasets[0].SOPInstanceUID)["00100020"]["Value"] == ["DWC-1"]
    assert client.retrieve_study_metadata(study)
    (frame,) = client.retrieve_instance_frames(study, series, datasets[0].SOPInstanceUID, frame_numbers=[1])
    assert frame == datasets[0].PixelData
    rendered = client.retrieve_instance_rendered(study, series, datasets[0].SOPInstanceUID, media_types=("image/png",))
    assert rendered.startswith(b"\x89PNG")
    bulk_uri = client.retrieve_instance_metadata(study, series, datasets[0].SOPInstanceUID)["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(bulk_uri) == [datasets[0].PixelData]


def test_anonymous_client_sees_nothing_private(client_for):
    client_for().store_instances(ct_series(1, patient_id="SECRET"))
    anonymous = client_for(user=None)
    assert anonymous.search_for_studies() == []
    assert anonymous.search_for_instances(search_filters={"PatientID": "SECRET"}) == []


def test_dicomweb_client_gets_compressed_data_as_stored_or_decoded(client_for):
    client = client_for()
    ct = ct_slice(size=32, patient_id="DWC-2")
    pixels = ct.pixel_array.copy()
    ct.compress(RLELossless, generate_instance_uid=False)
    client.store_instances([ct])
    uids = ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
    (frame,) = client.retrieve_instance_frames(*uids, frame_numbers=[1], media_types=("application/octet-stream",))
    assert frame == pixels.astype("<i2").tobytes()
    # Its default Accept for frames is */*: the stored RLE frame, which starts with its
    # segment count (2 for 16-bit samples).
    (stored,) = client.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert stored[:4] == b"\x02\x00\x00\x00"
    as_is = client.retrieve_instance(*uids)
    assert as_is.file_meta.TransferSyntaxUID == RLELossless
    decoded = client.retrieve_instance(*uids, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (decoded.pixel_array == pixels).all()
