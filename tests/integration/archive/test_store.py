"""The store path: checks, fixity, duplicates, and nothing half-written."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from django.test import override_settings

from archive.errors import Conflict, InvalidInput, OutOfResources
from archive.indexing import sha256_file
from archive.models import Instance, Patient, Series, Study
from archive.services import store_file
from archive.storage import get_storage
from tests.conftest import stored_files
from tests.factories.datasets import ct_series, ct_slice, to_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _incoming(data: bytes):
    with get_storage().incoming_file() as fp:
        fp.write(data)
    return fp.name


def test_store_indexes_and_keeps_bytes(archive_storage):
    datasets = ct_series(3)
    for ds in datasets:
        store_file(_incoming(to_bytes(ds)), received_from="test")
    study = Study.objects.get()
    assert (study.num_series, study.num_instances, study.modalities) == (1, 3, "CT")
    assert Series.objects.get().num_instances == 3
    for ds in datasets:
        instance = Instance.objects.get(sop_uid=ds.SOPInstanceUID)
        path = get_storage().path(instance.path)
        assert open(path, "rb").read() == to_bytes(ds)
        assert instance.sha256 == sha256_file(path)
        assert instance.size_bytes == len(to_bytes(ds))
        assert instance.metadata["00100020"] == {"vr": "LO", "Value": ["P-001"]}
        assert "BulkDataURI" in instance.metadata["7FE00010"]
    assert stored_files(archive_storage / ".incoming") == []


def test_same_bytes_twice_is_a_noop():
    data = to_bytes(ct_slice())
    first = store_file(_incoming(data))
    second = store_file(_incoming(data))
    assert first.created and not second.created
    assert Instance.objects.count() == 1
    assert Study.objects.get().num_instances == 1


def test_different_bytes_same_uid_is_refused(archive_storage):
    ds = ct_slice()
    store_file(_incoming(to_bytes(ds)))
    ds.StudyDescription = "changed"
    with pytest.raises(Conflict):
        store_file(_incoming(to_bytes(ds)))
    assert Instance.objects.get().metadata["00081030"]["Value"] == ["Synthetic CT"]
    assert len([f for f in stored_files(archive_storage) if f.endswith(".dcm")]) == 1


@override_settings(VITRINE_DUPLICATE_POLICY="replace")
def test_replace_policy_swaps_the_file(archive_storage, django_capture_on_commit_callbacks):
    ds = ct_slice()
    store_file(_incoming(to_bytes(ds)))
    ds.StudyDescription = "changed"
    with django_capture_on_commit_callbacks(execute=True):
        store_file(_incoming(to_bytes(ds)))
    instance = Instance.objects.get()
    assert open(get_storage().path(instance.path), "rb").read() == to_bytes(ds)
    assert stored_files(archive_storage) == [instance.path]


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda b: b[:-100], "truncated"),
        (lambda b: b"\0" * 128 + b"NOPE" + b[132:], "DICM"),
        (lambda b: b"not dicom at all", "DICM"),
    ],
)
def test_bad_files_leave_nothing(archive_storage, mangle, reason):
    with pytest.raises(InvalidInput, match=reason):
        store_file(_incoming(mangle(to_bytes(ct_slice(size=32)))))
    assert Instance.objects.count() == Study.objects.count() == Patient.objects.count() == 0
    assert stored_files(archive_storage) == []


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uid_is_refused(archive_storage, keyword):
    ds = ct_slice()
    delattr(ds, keyword)
    with pytest.raises(InvalidInput, match=keyword):
        store_file(_incoming(to_bytes(ds)))
    assert Instance.objects.count() == 0
    assert stored_files(archive_storage) == []


def test_a_batch_succeeds_or_fails_per_file(archive_storage):
    from archive.services import store_files

    good, other = ct_series(2)
    changed = ct_slice(sop_uid=other.SOPInstanceUID, study_uid=other.StudyInstanceUID, series_uid=other.SeriesInstanceUID)
    outcomes = store_files([
        (_incoming(to_bytes(good)), None),
        (_incoming(to_bytes(good)), None),          # the same bytes again in the batch
        (_incoming(b"garbage"), None),
        (_incoming(to_bytes(other)), None),
        (_incoming(to_bytes(changed)), None),       # the same UID with other bytes
    ])
    assert outcomes[0].created and not outcomes[1].created
    assert outcomes[1].instance.pk == outcomes[0].instance.pk
    assert isinstance(outcomes[2], InvalidInput)
    assert outcomes[3].created
    assert isinstance(outcomes[4], Conflict) and outcomes[4].sop_uid == other.SOPInstanceUID
    assert Instance.objects.count() == 2
    assert Study.objects.get().num_instances == 2 and Series.objects.get().num_instances == 2
    assert sorted(stored_files(archive_storage)) == sorted(Instance.objects.values_list("path", flat=True))


def test_a_study_cannot_change_patient(archive_storage):
    first = ct_slice(patient_id="A")
    store_file(_incoming(to_bytes(first)))
    intruder = ct_slice(patient_id="B", study_uid=first.StudyInstanceUID)
    with pytest.raises(InvalidInput, match="belongs to patient 'A'"):
        store_file(_incoming(to_bytes(intruder)))
    assert Instance.objects.count() == 1
    assert len(stored_files(archive_storage)) == 1


def test_a_session_counts_each_series_once_across_stores(archive_storage):
    from archive.services import StoreSession

    session = StoreSession()
    first, second = ct_series(3), ct_series(2, study_uid=None)
    second = ct_series(2, study_uid=first[0].StudyInstanceUID, patient_id=first[0].PatientID)
    for ds in first + second:
        store_file(_incoming(to_bytes(ds)), session=session)
    study = Study.objects.get()
    assert (study.num_series, study.num_instances) == (2, 5)
    assert sorted(Series.objects.values_list("num_instances", flat=True)) == [2, 3]


@pytest.mark.django_db(transaction=True)  # real commits: foreign keys are checked there
def test_a_session_survives_its_study_being_deleted(archive_storage):
    from django.db import IntegrityError

    from archive.services import StoreSession, delete_study

    session = StoreSession()
    first, again = ct_series(2)
    store_file(_incoming(to_bytes(first)), session=session)
    delete_study(Study.objects.get())
    # The session still holds the deleted rows: the store fails at its commit, leaves
    # nothing behind, and the next one succeeds with fresh rows.
    with pytest.raises(IntegrityError):
        store_file(_incoming(to_bytes(again)), session=session)
    assert Instance.objects.count() == 0 and stored_files(archive_storage) == []
    store_file(_incoming(to_bytes(again)), session=session)
    study = Study.objects.get()
    assert (study.num_series, study.num_instances) == (1, 1)
    assert Instance.objects.get().sop_uid == again.SOPInstanceUID
    assert sorted(stored_files(archive_storage)) == [Instance.objects.get().path]


def test_a_failed_store_in_a_session_keeps_no_new_rows(archive_storage):
    from archive.services import StoreSession

    session = StoreSession()
    first = ct_slice(patient_id="A")
    intruder_study = ct_slice(patient_id="B")  # a new study, refused below for its series
    store_file(_incoming(to_bytes(first)), session=session)
    clash = ct_slice(patient_id="B", study_uid=intruder_study.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
    with pytest.raises(InvalidInput, match="belongs to another study"):
        store_file(_incoming(to_bytes(clash)), session=session)
    assert Study.objects.count() == 1 and Patient.objects.count() == 1
    store_file(_incoming(to_bytes(intruder_study)), session=session)
    assert Study.objects.count() == 2
    assert Study.objects.get(study_uid=intruder_study.StudyInstanceUID).num_instances == 1


@pytest.mark.parametrize("failing", ["file", "folder"])
def test_a_full_disk_refuses_the_store_and_leaves_nothing(archive_storage, monkeypatch, failing):
    """The disk syncs in the background while the rows are written: a sync that fails,
    of the file before the rename or of its folder after it, still refuses the store,
    and the rows do not commit."""
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode) == (failing == "folder"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("archive.storage.os.fsync", fsync)
    with pytest.raises(OutOfResources, match="full"):
        store_file(_incoming(to_bytes(ct_slice())))
    assert (Instance.objects.count(), Series.objects.count(), Study.objects.count()) == (0, 0, 0)
    assert stored_files(archive_storage) == []
