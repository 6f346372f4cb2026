"""Every DIMSE service, driven by a pynetdicom peer."""

from __future__ import annotations

import socket
from io import BytesIO

import numpy as np
import pytest
from django.test import override_settings
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from archive.models import Instance, Modality, Study
from archive.storage import get_storage
from tests.conftest import stored_files
from tests.factories.datasets import ct_series, ct_slice, to_bytes

from .conftest import SCU, associate, dataset_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _store(scp, datasets, syntax: str | None = None, **kwargs):
    assoc = associate(scp, [build_context(CTImageStorage, syntax) if syntax else CTImageStorage], **kwargs)
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def _stored_bytes(sop_uid: str) -> bytes:
    return open(get_storage().path(Instance.objects.get(sop_uid=sop_uid).path), "rb").read()


def _find(scp, identifier: Dataset, model=StudyRootQueryRetrieveInformationModelFind, **kwargs):
    assoc = associate(scp, [model], **kwargs)
    try:
        responses = list(assoc.send_c_find(identifier, model))
    finally:
        assoc.release()
    return [(status.Status, found) for status, found in responses]


def test_echo(scp):
    assoc = associate(scp, [Verification], ae_title="ANYONE")
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_sockets_have_tcp_nodelay(scp):
    assoc = associate(scp, [Verification])
    try:
        (server_side,) = scp.server.active_associations
        sock = server_side.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


def test_store_keeps_the_data_set_bytes(scp, archive_storage):
    datasets = ct_series(3)
    assert _store(scp, datasets, ae_title="ANY-MODALITY") == [0x0000] * 3
    for ds in datasets:
        stored = _stored_bytes(ds.SOPInstanceUID)
        assert dataset_bytes(stored) == dataset_bytes(to_bytes(ds))
    instance = Instance.objects.get(sop_uid=datasets[0].SOPInstanceUID)
    assert instance.received_from == "ANY-MODALITY"
    assert Study.objects.get().num_instances == 3
    assert stored_files(archive_storage / ".incoming") == []


def test_store_in_implicit_vr_keeps_that_syntax(scp):
    ds = ct_slice(transfer_syntax="1.2.840.10008.1.2")
    assoc = associate(scp, [build_context(CTImageStorage, ["1.2.840.10008.1.2"])])
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert Instance.objects.get().transfer_syntax_uid == "1.2.840.10008.1.2"
    assert dataset_bytes(_stored_bytes(ds.SOPInstanceUID)) == dataset_bytes(to_bytes(ds))


def test_same_instance_twice_succeeds_other_bytes_conflict(scp):
    ds = ct_slice()
    assert _store(scp, [ds, ds]) == [0x0000, 0x0000]
    ds.StudyDescription = "changed"
    assert _store(scp, [ds]) == [0x0111]
    assert Instance.objects.count() == 1


def test_store_without_study_uid_fails_and_leaves_nothing(scp, archive_storage):
    ds = ct_slice()
    del ds.StudyInstanceUID
    assert _store(scp, [ds]) == [0xC000]
    assert Instance.objects.count() == 0 and Study.objects.count() == 0
    assert stored_files(archive_storage) == []


@override_settings(VITRINE_STORE_FROM="registered")
def test_store_from_unregistered_ae_is_not_offered(scp):
    assoc = associate(scp, [CTImageStorage, Verification], ae_title="STRANGER")
    try:
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [Verification]
        with pytest.raises(ValueError):
            assoc.send_c_store(ct_slice())
    finally:
        assoc.release()
    assert Instance.objects.count() == 0


def test_find_from_unregistered_ae_is_refused(scp):
    _store(scp, [ct_slice()])
    assoc = associate(scp, [StudyRootQueryRetrieveInformationModelFind, Verification], ae_title="STRANGER")
    try:
        assert StudyRootQueryRetrieveInformationModelFind in [cx.abstract_syntax for cx in assoc.rejected_contexts]
        with pytest.raises(ValueError):
            next(assoc.send_c_find(_study_query(), StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()


@override_settings(VITRINE_QUERY_FROM="any")
def test_find_from_anyone_when_configured(scp):
    _store(scp, [ct_slice()])
    statuses = [status for status, _ in _find(scp, _study_query(), ae_title="STRANGER")]
    assert statuses == [0xFF00, 0x0000]


def _study_query(**keys) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    query.PatientID = ""
    query.PatientName = ""
    query.StudyDate = ""
    query.ModalitiesInStudy = ""
    query.NumberOfStudyRelatedInstances = ""
    query.StudyComments = ""  # not in the index: comes back empty
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def test_find_studies_returns_the_asked_keys(scp, registered):
    first = ct_series(2, patient_id="P-1", patient_name="Ångström^Anders", study_date="20240101")
    second = ct_series(1, patient_id="P-2", study_date="20240301")
    _store(scp, first + second)
    responses = _find(scp, _study_query(PatientID="P-1"))
    assert [status for status, _ in responses] == [0xFF00, 0x0000]
    found = responses[0][1]
    assert found.QueryRetrieveLevel == "STUDY"
    assert found.StudyInstanceUID == first[0].StudyInstanceUID
    assert str(found.PatientName) == "Ångström^Anders"
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert found.ModalitiesInStudy == "CT"
    assert found.NumberOfStudyRelatedInstances == 2
    assert "StudyComments" in found and found.StudyComments in (None, "")
    assert "SeriesInstanceUID" not in found
    ranged = _find(scp, _study_query(StudyDate="20240201-"))
    assert [f.StudyInstanceUID for _, f in ranged if f is not None] == [second[0].StudyInstanceUID]
    wildcard = _find(scp, _study_query(PatientID="P-*"))
    assert len([f for _, f in wildcard if f is not None]) == 2


def test_find_every_level_of_both_models(scp, registered):
    series = ct_series(2, patient_id="P-9")
    _store(scp, series)
    study_uid, series_uid = series[0].StudyInstanceUID, series[0].SeriesInstanceUID

    patient = Dataset()
    patient.QueryRetrieveLevel = "PATIENT"
    patient.PatientID = "P-9"
    patient.PatientName = ""
    found = _find(scp, patient, PatientRootQueryRetrieveInformationModelFind)
    assert [(s, f.PatientName if f else None) for s, f in found] == [(0xFF00, "Doe^Jane"), (0x0000, None)]

    series_query = Dataset()
    series_query.QueryRetrieveLevel = "SERIES"
    series_query.StudyInstanceUID = study_uid
    series_query.SeriesInstanceUID = ""
    series_query.Modality = ""
    series_query.NumberOfSeriesRelatedInstances = ""
    for model in (StudyRootQueryRetrieveInformationModelFind, PatientRootQueryRetrieveInformationModelFind):
        query = series_query.copy()
        if model == PatientRootQueryRetrieveInformationModelFind:
            query.PatientID = "P-9"
        found = [f for _, f in _find(scp, query, model) if f is not None]
        assert [(f.SeriesInstanceUID, f.Modality, f.NumberOfSeriesRelatedInstances) for f in found] == [
            (series_uid, "CT", 2)
        ]

    image = Dataset()
    image.QueryRetrieveLevel = "IMAGE"
    image.StudyInstanceUID = study_uid
    image.SeriesInstanceUID = series_uid
    image.SOPInstanceUID = ""
    image.InstanceNumber = ""
    found = [f for _, f in _find(scp, image) if f is not None]
    assert [(f.SOPInstanceUID, f.SOPClassUID, f.InstanceNumber) for f in found] == [
        (ds.SOPInstanceUID, CTImageStorage, ds.InstanceNumber) for ds in series
    ]


def test_find_patient_level_under_study_root_does_not_match_the_model(scp, registered):
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = ""
    assert _find(scp, query) == [(0xA900, None)]


def test_many_finds_in_one_association(scp, registered):
    _store(scp, ct_series(1, patient_id="P-5"))
    assoc = associate(scp, [StudyRootQueryRetrieveInformationModelFind])
    try:
        for _ in range(20):
            answers = [s.Status for s, _ in assoc.send_c_find(_study_query(PatientID="P-5"), StudyRootQueryRetrieveInformationModelFind)]
            assert answers == [0xFF00, 0x0000]
    finally:
        assoc.release()


def _getter(model=StudyRootQueryRetrieveInformationModelGet, storage=(CTImageStorage,), syntaxes=None):
    received: dict[str, bytes] = {}

    def on_store(event):
        received[event.request.AffectedSOPInstanceUID] = event.request.DataSet.getvalue()
        return 0x0000

    ae = AE(ae_title=SCU)
    ae.add_requested_context(model)
    roles = []
    for sop_class in storage:
        ae.add_requested_context(sop_class, syntaxes or ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        roles.append(build_role(sop_class, scp_role=True))
    return ae, roles, received, [(evt.EVT_C_STORE, on_store)]


def _get(scp, identifier, **kwargs):
    ae, roles, received, handlers = _getter(**kwargs)
    assoc = ae.associate(scp.host, scp.port, ae_title=scp.ae_title, ext_neg=roles, evt_handlers=handlers)
    assert assoc.is_established
    try:
        model = kwargs.get("model", StudyRootQueryRetrieveInformationModelGet)
        responses = list(assoc.send_c_get(identifier, model))
    finally:
        assoc.release()
    return responses, received


def test_get_series_sends_stored_bytes(scp, registered):
    series = ct_series(3)
    _store(scp, series + ct_series(1))
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = series[0].StudyInstanceUID
    query.SeriesInstanceUID = series[0].SeriesInstanceUID
    responses, received = _get(scp, query)
    final = responses[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (0, 3, 0)
    assert sorted(received) == sorted(ds.SOPInstanceUID for ds in series)
    for ds in series:
        assert received[ds.SOPInstanceUID] == dataset_bytes(to_bytes(ds))


def test_get_converts_a_native_syntax_the_peer_lacks(scp, registered):
    ds = ct_slice()
    _store(scp, [ds])
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = "P-001"
    responses, received = _get(
        scp, query, model=PatientRootQueryRetrieveInformationModelGet, syntaxes=["1.2.840.10008.1.2"]
    )
    assert responses[-1][0].NumberOfCompletedSuboperations == 1
    assert list(received) == [ds.SOPInstanceUID]
    assert received[ds.SOPInstanceUID] != dataset_bytes(to_bytes(ds))  # now implicit VR


def test_get_without_unique_key_is_refused(scp, registered):
    _store(scp, [ct_slice()])
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    responses, received = _get(scp, query)
    assert responses[-1][0].Status == 0xA900
    assert received == {}


def _move(scp, identifier, destination: str):
    assoc = associate(scp, [StudyRootQueryRetrieveInformationModelMove])
    try:
        return list(assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()


def test_move_study_to_registered_destination(scp, registered, sink):
    series = ct_series(2)
    _store(scp, series)
    Modality.objects.create(ae_title=sink.ae_title, host="127.0.0.1", port=sink.port)
    nodelay = []

    def inspect_outgoing_socket():
        # The association Vitrine requested to the destination, seen from Vitrine's end.
        (outgoing,) = [a for a in scp.server.ae.active_associations if a.is_requestor]
        nodelay.append(outgoing.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    sink.on_receive = inspect_outgoing_socket
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = series[0].StudyInstanceUID
    responses = _move(scp, query, sink.ae_title)
    final = responses[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations) == (0x0000, 2)
    assert {uid: data for uid, data in sink.received.items()} == {
        ds.SOPInstanceUID: dataset_bytes(to_bytes(ds)) for ds in series
    }
    assert len(nodelay) == 2 and all(nodelay)


def test_move_to_unknown_destination_fails(scp, registered):
    ds = ct_slice()
    _store(scp, [ds])
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ds.StudyInstanceUID
    assert [status.Status for status, _ in _move(scp, query, "NOWHERE")] == [0xA801]


def test_move_with_nothing_matching_succeeds_empty(scp, registered, sink):
    Modality.objects.create(ae_title=sink.ae_title, host="127.0.0.1", port=sink.port)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = "1.2.3.4"
    final = _move(scp, query, sink.ae_title)[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations) == (0x0000, 0)
    assert sink.received == {}


def test_storage_classes_beyond_the_first_128_negotiate(scp):
    from archive.dimse.contexts import STORAGE_SOP_CLASSES

    late = list(STORAGE_SOP_CLASSES[128:])
    assoc = associate(scp, late[:100], ae_title="ANYONE")
    try:
        assert {cx.abstract_syntax for cx in assoc.accepted_contexts} == set(late[:100])
    finally:
        assoc.release()


def test_compressed_instance_round_trips_without_transcoding(scp, registered):
    # RLE Lossless, encoded by pydicom: stored and sent back in the syntax it came in.
    ds = ct_slice()
    ds.compress("1.2.840.10008.1.2.5", encoding_plugin="pydicom")
    assoc = associate(scp, [build_context(CTImageStorage, ["1.2.840.10008.1.2.5"])])
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert Instance.objects.get().transfer_syntax_uid == "1.2.840.10008.1.2.5"
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = ds.StudyInstanceUID
    query.SeriesInstanceUID = ds.SeriesInstanceUID
    query.SOPInstanceUID = ds.SOPInstanceUID
    responses, received = _get(scp, query, syntaxes=["1.2.840.10008.1.2.5"])
    assert responses[-1][0].NumberOfCompletedSuboperations == 1
    assert received[ds.SOPInstanceUID] == dataset_bytes(_stored_bytes(ds.SOPInstanceUID))
    # A peer that takes only uncompressed data gets a decoded copy under the same UID.
    responses, received = _get(scp, query)
    assert responses[-1][0].NumberOfCompletedSuboperations == 1
    copy = dcmread(BytesIO(received[ds.SOPInstanceUID]), force=True)
    copy.file_meta = FileMetaDataset()
    copy.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # the accepted context's
    assert copy.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(copy.pixel_array, ds.pixel_array)


def test_a_copy_too_large_to_decode_fails_its_sub_operation(scp, registered, monkeypatch):
    ds = ct_slice()
    ds.compress("1.2.840.10008.1.2.5", encoding_plugin="pydicom")
    _store(scp, [ds], syntax="1.2.840.10008.1.2.5")
    monkeypatch.setattr("archive.dicom.transcode.MAX_DECODED_BYTES", 100)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ds.StudyInstanceUID
    responses, received = _get(scp, query)
    final, identifier = responses[-1]
    assert (final.Status, final.NumberOfFailedSuboperations) == (0xA702, 1)
    assert identifier.FailedSOPInstanceUIDList == ds.SOPInstanceUID
    assert received == {}


@pytest.mark.parametrize(("proposed", "accepted"), [
    (["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1"], "1.2.840.10008.1.2.5"),  # the sender's compressed data
    (["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"], "1.2.840.10008.1.2.1"),
    (["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"], "1.2.840.10008.1.2.1"),  # explicit VR among native ones
])
def test_a_compressed_syntax_listed_first_is_taken(scp, proposed, accepted):
    assoc = associate(scp, [build_context(CTImageStorage, proposed)])
    try:
        assert [cx.transfer_syntax for cx in assoc.accepted_contexts] == [[accepted]]
    finally:
        assoc.release()
