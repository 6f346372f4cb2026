"""Storing instances in the archive: the one path every receiver takes.

STOW-RS, C-STORE, the ingest jobs and the meshing jobs all hand a finished temporary
file to ``store_file``. The order is fixed: check the file, move it into storage (fsync
and atomic rename), then commit the index rows. If the commit fails the file is removed,
so there is never a row without a file; a crash between the rename and the commit can
leave a file without a row, which ``manage.py verify`` reports.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .errors import ArchiveError, Conflict, InvalidInput
from .indexing import IndexEntry, read_index_entry, sha256_file
from .models import Instance, Patient, Series, Study, Visibility
from .storage import get_storage, instance_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreOutcome:
    instance: Instance
    created: bool  # False when the same bytes were already stored


def store_file(
    temp_path: str | Path,
    *,
    sha256: str | None = None,
    received_from: str = "",
    owner=None,
    visibility: str | None = None,
    expect_study_uid: str | None = None,
) -> StoreOutcome:
    """Admit one finished Part 10 temporary file into the archive.

    The temporary file is consumed: moved into storage on success, removed on failure.

    Raises
    ------
    InvalidInput
        The file is not a whole, readable DICOM instance.
    Conflict
        The SOP Instance UID is stored already with other bytes, and the duplicate
        policy is "reject".
    """
    temp_path = Path(temp_path)
    admitted: str | None = None
    entry: IndexEntry | None = None
    try:
        entry = read_index_entry(temp_path)
        if expect_study_uid and entry.study_uid != expect_study_uid:
            raise InvalidInput(
                f"the instance belongs to study {entry.study_uid}, not to {expect_study_uid}",
                dimse_status=0xA900,
            )
        digest = sha256 or sha256_file(temp_path)
        existing = Instance.objects.filter(sop_uid=entry.sop_uid).select_related("series__study").first()
        if existing is not None:
            if existing.sha256 == digest:
                return StoreOutcome(existing, created=False)
            if settings.VITRINE_DUPLICATE_POLICY != "replace":
                raise Conflict(
                    f"SOP Instance UID {entry.sop_uid} is stored already with different bytes",
                )
            _check_same_place(existing, entry)
        storage = get_storage()
        replaced = existing.path if existing is not None else None
        name = instance_name(entry.study_uid, entry.series_uid, entry.sop_uid, digest)
        storage.admit(name, temp_path)
        admitted = name
        try:
            instance = _index(entry, name, digest, received_from, owner, visibility, existing)
        except IntegrityError:
            # Another receiver stored the same SOP Instance UID a moment ago.
            storage.delete(name)
            admitted = None
            raced = Instance.objects.get(sop_uid=entry.sop_uid)
            if raced.sha256 == digest:
                return StoreOutcome(raced, created=False)
            raise Conflict(f"SOP Instance UID {entry.sop_uid} is stored already with different bytes") from None
        if replaced is not None and replaced != name:
            transaction.on_commit(lambda: storage.delete(replaced))
        admitted = None
        return StoreOutcome(instance, created=True)
    except BaseException as exc:
        if admitted is not None:
            get_storage().delete(admitted)
        if isinstance(exc, ArchiveError) and entry is not None:
            # Receivers report which instance failed (STOW-RS FailedSOPSequence).
            exc.sop_uid, exc.sop_class_uid = entry.sop_uid, entry.sop_class_uid
        raise
    finally:
        if temp_path.exists():
            temp_path.unlink()


def _check_same_place(existing: Instance, entry: IndexEntry) -> None:
    if (existing.series.series_uid, existing.series.study.study_uid) != (entry.series_uid, entry.study_uid):
        raise Conflict(
            f"SOP Instance UID {entry.sop_uid} is stored already under another study or series"
        )


def _index(
    entry: IndexEntry, name: str, digest: str, received_from: str, owner, visibility, existing
) -> Instance:
    size = os.path.getsize(get_storage().path(name))
    with transaction.atomic():
        patient, _ = Patient.objects.get_or_create(
            patient_id=entry.patient["patient_id"],
            issuer=entry.patient["issuer"],
            defaults={k: entry.patient[k] for k in ("patient_name", "birth_date", "sex")},
        )
        study, study_created = Study.objects.get_or_create(
            study_uid=entry.study_uid,
            defaults={
                **entry.study,
                "patient": patient,
                "owner": owner,
                "visibility": visibility or Visibility.PRIVATE,
            },
        )
        if not study_created and study.patient_id != patient.pk:
            raise InvalidInput(
                f"study {entry.study_uid} belongs to patient {study.patient.patient_id!r}, "
                f"not {entry.patient['patient_id']!r}"
            )
        series, series_created = Series.objects.get_or_create(
            series_uid=entry.series_uid, defaults={**entry.series, "study": study}
        )
        if not series_created and series.study_id != study.pk:
            raise InvalidInput(f"series {entry.series_uid} belongs to another study")
        fields = dict(
            sop_class_uid=entry.sop_class_uid,
            transfer_syntax_uid=entry.transfer_syntax_uid,
            size_bytes=size,
            sha256=digest,
            path=name,
            metadata=entry.metadata,
            received_from=received_from[:64],
            **entry.instance,
        )
        if existing is not None:
            Instance.objects.filter(pk=existing.pk).update(**fields)
            existing.refresh_from_db()
            return existing
        instance = Instance.objects.create(sop_uid=entry.sop_uid, series=series, **fields)
        Series.objects.filter(pk=series.pk).update(num_instances=F("num_instances") + 1)
        study_update = {"num_instances": F("num_instances") + 1}
        if series_created:
            study_update["num_series"] = F("num_series") + 1
        modality = entry.series["modality"]
        if modality and modality not in study.modalities.split("\\"):
            study_update["modalities"] = "\\".join(filter(None, [*study.modalities.split("\\"), modality]))
        Study.objects.filter(pk=study.pk).update(**study_update)
        return instance


def delete_study(study: Study) -> int:
    """Remove a study's rows, then its files once the deletion has committed."""
    names = list(Instance.objects.filter(series__study=study).values_list("path", flat=True))
    patient = study.patient
    with transaction.atomic():
        study.delete()
        if not patient.studies.exists():
            patient.delete()
        storage = get_storage()
        transaction.on_commit(lambda: [storage.delete(n) for n in names])
    return len(names)


@dataclass
class VerifyReport:
    """What a fixity check found. Names are storage names."""

    checked: int = 0
    missing: list[str] | None = None
    mismatched: list[str] | None = None
    orphans: list[str] | None = None

    def __post_init__(self) -> None:
        self.missing = self.missing or []
        self.mismatched = self.mismatched or []
        self.orphans = self.orphans or []

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.orphans)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok, "checked": self.checked, "missing": self.missing,
            "mismatched": self.mismatched, "orphans": self.orphans,
        }


def verify(study_uid: str | None = None, on_progress=None) -> VerifyReport:
    """Recompute the SHA-256 of every stored file (or one study's) and compare.

    Checking the whole archive also lists orphans: files in storage that no row names,
    which a crash between the rename and the commit can leave behind.
    """
    storage = get_storage()
    instances = Instance.objects.order_by("pk")
    if study_uid:
        instances = instances.filter(series__study__study_uid=study_uid)
    rows = list(instances.values_list("path", "sha256"))
    report = VerifyReport()
    for index, (name, expected) in enumerate(rows):
        path = storage.path(name)
        if not os.path.exists(path):
            report.missing.append(name)
        elif sha256_file(path) != expected:
            report.mismatched.append(name)
        report.checked += 1
        if on_progress:
            on_progress(index + 1, len(rows))
    if not study_uid:
        known = set(Instance.objects.values_list("path", flat=True))
        report.orphans = sorted(name for name in storage.walk_names() if name not in known)
    return report


def run_fixity_check(check_id: int) -> "FixityCheck":
    """Run a queued fixity check and record its report (the Celery task's body)."""
    from django.utils import timezone

    from .models import FixityCheck

    check = FixityCheck.objects.get(pk=check_id)
    FixityCheck.objects.filter(pk=check_id).update(state=FixityCheck.State.RUNNING)

    def on_progress(done: int, total: int) -> None:
        if total and done % max(1, total // 100) == 0:
            FixityCheck.objects.filter(pk=check_id).update(percent=int(100 * done / total))

    try:
        report = verify(check.study_uid or None, on_progress=on_progress)
    except Exception as exc:
        log.exception("fixity check %s failed", check_id)
        FixityCheck.objects.filter(pk=check_id).update(
            state=FixityCheck.State.FAILED, error=str(exc), finished=timezone.now()
        )
        raise
    FixityCheck.objects.filter(pk=check_id).update(
        state=FixityCheck.State.DONE, percent=100, report=report.as_dict(), finished=timezone.now()
    )
    check.refresh_from_db()
    return check
