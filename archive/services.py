"""Storing instances in the archive: the one path every receiver takes.

STOW-RS, C-STORE, the ingest jobs and the meshing jobs all hand a finished temporary
file to ``store_file``. The order of what becomes durable is fixed: the file (fsync), its
name (atomic rename, fsync of the folder), then the index rows (commit). The syncs run in
the background while the file is parsed and the rows are written. If the commit fails
the file is removed, so there is never a row without a file; a crash between the rename
and the commit can leave a file without a row, which ``manage.py verify`` reports.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from . import background
from .errors import ArchiveError, Conflict, InvalidInput
from .indexing import IndexEntry, read_index_entry, sha256_file
from .models import FixityCheck, Instance, Patient, Series, Study, Visibility
from .storage import get_storage, instance_name

log = logging.getLogger(__name__)

_SYNC_STREAMS = 4  # background fsyncs at once for one batch


@dataclass(frozen=True)
class StoreOutcome:
    instance: Instance
    created: bool  # False when the same bytes were already stored


@dataclass
class _Item:
    """One file of a batch on its way in."""

    temp_path: Path
    sha256: str | None
    entry: IndexEntry | None = None
    name: str | None = None  # its storage name once admitted
    replaces: Instance | None = None
    replaces_path: str | None = None
    same_as: "_Item | None" = None  # the same bytes earlier in the batch
    outcome: StoreOutcome | ArchiveError | None = None


def store_file(temp_path: str | Path, *, sha256: str | None = None, **options) -> StoreOutcome:
    """Admit one finished Part 10 temporary file into the archive.

    The temporary file is consumed: moved into storage on success, removed on failure.
    Options are those of ``store_files``.

    Raises
    ------
    InvalidInput
        The file is not a whole, readable DICOM instance.
    Conflict
        The SOP Instance UID is stored already with other bytes, and the duplicate
        policy is "reject".
    """
    (outcome,) = store_files([(temp_path, sha256)], **options)
    if isinstance(outcome, ArchiveError):
        raise outcome
    return outcome


class StoreSession:
    """The studies and series one receiver has met, kept across its batches.

    A DIMSE association stores its instances one C-STORE at a time, mostly into the
    same series; with a session each store looks its study and series up once per
    association instead of once per instance. A failed batch empties the session, so a
    row deleted meanwhile is looked up afresh on the next try.
    """

    def __init__(self) -> None:
        self.studies: dict[str, Study] = {}
        self.series: dict[str, tuple[Series, bool]] = {}

    def forget(self) -> None:
        self.studies.clear()
        self.series.clear()


def store_files(
    files: list[tuple[str | Path, str | None]],
    *,
    received_from: str = "",
    owner=None,
    visibility: str | None = None,
    expect_study_uid: str | None = None,
    session: StoreSession | None = None,
) -> list[StoreOutcome | ArchiveError]:
    """Admit a batch of temporary files (with their SHA-256 if known), one outcome each.

    Each file succeeds or fails on its own, but the batch shares the costly parts: one
    query for duplicates, one fsync per folder, and one database commit (a savepoint per
    file keeps a failing row from taking the others with it). Every temporary file is
    consumed. A ``session`` carries the study and series rows over to the next batch.
    """
    items = [_Item(Path(path), sha) for path, sha in files]
    storage = get_storage()
    committed = False
    waiting: list[_Item] = []
    # The disk syncs in the background while the files are parsed and their rows
    # written; the order of what becomes durable stays: file, name, then row.
    # A batch's files sync in parallel: concurrent fsyncs share the filesystem's journal
    # commits, where one after another each waits for its own.
    paths = [item.temp_path for item in items]
    synced = [
        background.start(storage.sync_files, paths[i::_SYNC_STREAMS])
        for i in range(min(_SYNC_STREAMS, len(paths)))
    ]
    durable = None
    try:
        for item in items:
            _check(item, expect_study_uid)
        _find_duplicates([i for i in items if i.outcome is None])
        waiting = [i for i in items if i.outcome is None and i.same_as is None]
        for item in waiting:
            entry = item.entry
            item.name = instance_name(entry.study_uid, entry.series_uid, entry.sop_uid, item.sha256)
        for sync in synced:
            sync.result()
        folders = storage.place([(item.name, item.temp_path) for item in waiting])
        durable = background.start(storage.sync_folders, folders)
        with transaction.atomic():
            index = _BatchIndex(received_from, owner, visibility, session or StoreSession())
            for item in waiting:
                _index_one(item, index)
            index.update_counts()
            durable.result()  # the names are on disk before the rows commit
        committed = True
    finally:
        background.settle(*synced, durable)
        if session is not None and not committed:
            session.forget()
        for item in items:
            item.temp_path.unlink(missing_ok=True)
        for item in waiting:
            stored = committed and isinstance(item.outcome, StoreOutcome) and item.outcome.created
            if not stored:
                storage.delete(item.name)
            elif item.replaces_path and item.replaces_path != item.name:
                storage.delete(item.replaces_path)
    for item in items:
        if item.same_as is not None:
            first = item.same_as.outcome
            item.outcome = StoreOutcome(first.instance, created=False) if isinstance(first, StoreOutcome) else first
    return [item.outcome for item in items]


def _fail(item: _Item, exc: ArchiveError) -> None:
    if item.entry is not None:
        # Receivers report which instance failed (STOW-RS FailedSOPSequence).
        exc.sop_uid, exc.sop_class_uid = item.entry.sop_uid, item.entry.sop_class_uid
    item.outcome = exc


def _check(item: _Item, expect_study_uid: str | None) -> None:
    try:
        item.entry = read_index_entry(item.temp_path)
        if expect_study_uid and item.entry.study_uid != expect_study_uid:
            raise InvalidInput(
                f"the instance belongs to study {item.entry.study_uid}, not to {expect_study_uid}",
                dimse_status=0xA900,
            )
        item.sha256 = item.sha256 or sha256_file(item.temp_path)
    except ArchiveError as exc:
        _fail(item, exc)


def _find_duplicates(items: list[_Item]) -> None:
    """Settle SOP Instance UIDs stored already, or sent twice in the batch."""
    uids = [i.entry.sop_uid for i in items]
    # Most instances are new: ask for bare UIDs first, whole rows only for those found.
    found = _rows.stored_uids(uids) if uids else []
    stored = Instance.objects.filter(sop_uid__in=found).select_related("series__study") if found else ()
    known = {instance.sop_uid: instance for instance in stored}
    first_in_batch: dict[str, _Item] = {}
    for item in items:
        entry = item.entry
        earlier = first_in_batch.setdefault(entry.sop_uid, item)
        if earlier is not item:
            if earlier.sha256 != item.sha256:
                _fail(item, Conflict(f"SOP Instance UID {entry.sop_uid} is sent twice with different bytes"))
            else:
                item.same_as = earlier
            continue
        existing = known.get(entry.sop_uid)
        if existing is None:
            continue
        if existing.sha256 == item.sha256:
            item.outcome = StoreOutcome(existing, created=False)
        elif settings.VITRINE_DUPLICATE_POLICY != "replace":
            _fail(item, Conflict(f"SOP Instance UID {entry.sop_uid} is stored already with different bytes"))
        elif (existing.series.series_uid, existing.series.study.study_uid) != (entry.series_uid, entry.study_uid):
            _fail(item, Conflict(f"SOP Instance UID {entry.sop_uid} is stored already under another study or series"))
        else:
            item.replaces, item.replaces_path = existing, existing.path


class _BatchIndex:
    """Patients, studies and series met in one batch, and the counts to add to them."""

    def __init__(self, received_from: str, owner, visibility: str | None, session: StoreSession) -> None:
        self.received_from, self.owner, self.visibility = received_from[:64], owner, visibility
        self.studies = session.studies
        self.series = session.series  # uid → (row, created in this batch)
        self.added: dict[int, int] = {}  # series pk → new instances
        self.modalities: dict[int, set[str]] = {}

    def study_for(self, entry: IndexEntry) -> Study:
        study = self.studies.get(entry.study_uid)
        if study is None:
            study = Study.objects.select_related("patient").filter(study_uid=entry.study_uid).first()
        if study is None:
            patient, _ = Patient.objects.get_or_create(
                patient_id=entry.patient["patient_id"], issuer=entry.patient["issuer"],
                defaults={k: entry.patient[k] for k in ("patient_name", "birth_date", "sex")},
            )
            study, _ = Study.objects.select_related("patient").get_or_create(
                study_uid=entry.study_uid,
                defaults={**entry.study, "patient": patient, "owner": self.owner,
                          "visibility": self.visibility or Visibility.PRIVATE},
            )
        self.studies[entry.study_uid] = study
        if (study.patient.patient_id, study.patient.issuer) != (entry.patient["patient_id"], entry.patient["issuer"]):
            raise InvalidInput(
                f"study {entry.study_uid} belongs to patient {study.patient.patient_id!r}, "
                f"not {entry.patient['patient_id']!r}"
            )
        return study

    def series_for(self, entry: IndexEntry, study: Study) -> Series:
        known = self.series.get(entry.series_uid)
        if known is None:
            series, created = Series.objects.get_or_create(
                series_uid=entry.series_uid, defaults={**entry.series, "study": study}
            )
            self.series[entry.series_uid] = known = (series, created)
        series = known[0]
        if series.study_id != study.pk:
            raise InvalidInput(f"series {entry.series_uid} belongs to another study")
        return series

    def forget(self, entry: IndexEntry) -> None:
        """Drop the rows an item's rolled-back savepoint may have created."""
        self.studies.pop(entry.study_uid, None)
        self.series.pop(entry.series_uid, None)

    def update_counts(self) -> None:
        for series, created in self.series.values():
            added = self.added.get(series.pk, 0)
            if added:
                _rows.add_to_series(series.pk, added)
        for study in self.studies.values():
            series_here = [(s, c) for s, c in self.series.values() if s.study_id == study.pk]
            added = sum(self.added.get(s.pk, 0) for s, _ in series_here)
            new_series = sum(1 for s, c in series_here if c and self.added.get(s.pk))
            if not added:
                continue
            if not self.modalities.get(study.pk, set()) - set(study.modalities.split("\\")):
                _rows.add_to_study(study.pk, added, new_series)
                continue
            # A modality new to the study: merge with the row as it is now.
            current = Study.objects.select_for_update().values_list("modalities", flat=True).get(pk=study.pk)
            modalities = [m for m in current.split("\\") if m]
            study.modalities = "\\".join(modalities + sorted(self.modalities[study.pk] - set(modalities)))
            Study.objects.filter(pk=study.pk).update(
                num_instances=F("num_instances") + added, num_series=F("num_series") + new_series,
                modalities=study.modalities,
            )
        # A session's next batch must not count these series as new again.
        for uid, (series, _) in self.series.items():
            self.series[uid] = (series, False)


class _Rows:
    """The statements every store runs, as plain SQL.

    A C-STORE or a STOW-RS part runs four of them (look for the UID, insert the
    instance, count it in its series and its study). Through the ORM, building each
    statement cost more than running it: about a millisecond per instance, a quarter of
    the store. The SQL here is written once per process from the models' own table and
    column names, and values are prepared by the models' fields, so the rows are exactly
    those ``Instance.objects.create`` would write, on SQLite and PostgreSQL alike.
    """

    _INSERTED = (
        "sop_uid", "series", "sop_class_uid", "instance_number", "number_of_frames", "rows", "columns",
        "transfer_syntax_uid", "size_bytes", "sha256", "path", "metadata", "received", "received_from",
    )

    @cached_property
    def _sql(self) -> dict[str, str]:
        qn = connection.ops.quote_name

        def table(model) -> str:
            return qn(model._meta.db_table)

        def column(model, name: str) -> str:
            return qn(model._meta.get_field(name).column)

        inserted = ", ".join(column(Instance, name) for name in self._INSERTED)
        marks = ", ".join(["%s"] * len(self._INSERTED))
        count = column(Series, "num_instances")
        instances, series = column(Study, "num_instances"), column(Study, "num_series")
        return {
            "insert": f"INSERT INTO {table(Instance)} ({inserted}) VALUES ({marks}) "
            f"RETURNING {column(Instance, 'id')}",
            "series": f"UPDATE {table(Series)} SET {count} = {count} + %s WHERE {column(Series, 'id')} = %s",
            "study": f"UPDATE {table(Study)} SET {instances} = {instances} + %s, {series} = {series} + %s "
            f"WHERE {column(Study, 'id')} = %s",
            "uids": f"SELECT {column(Instance, 'sop_uid')} FROM {table(Instance)} WHERE {column(Instance, 'sop_uid')} IN ",
        }

    @cached_property
    def _fields(self):
        return [Instance._meta.get_field(name) for name in self._INSERTED]

    def stored_uids(self, uids: list[str]) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(self._sql["uids"] + "(" + ", ".join(["%s"] * len(uids)) + ")", uids)
            return [row[0] for row in cursor.fetchall()]

    def insert_instance(self, **values) -> Instance:
        values["received"] = timezone.now()
        params = [
            field.get_db_prep_save(values[field.name].pk if field.name == "series" else values[field.name], connection)
            for field in self._fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(self._sql["insert"], params)
            pk = cursor.fetchone()[0]
        instance = Instance(pk=pk, **values)
        instance._state.adding, instance._state.db = False, connection.alias
        return instance

    def add_to_series(self, pk: int, instances: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self._sql["series"], [instances, pk])

    def add_to_study(self, pk: int, instances: int, series: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self._sql["study"], [instances, series, pk])


_rows = _Rows()


def _index_one(item: _Item, index: _BatchIndex) -> None:
    """Write one item's rows inside its own savepoint."""
    entry = item.entry
    size = os.path.getsize(get_storage().path(item.name))
    fields = dict(
        sop_class_uid=entry.sop_class_uid, transfer_syntax_uid=entry.transfer_syntax_uid,
        size_bytes=size, sha256=item.sha256, path=item.name, metadata=entry.metadata,
        received_from=index.received_from, **entry.instance,
    )
    try:
        with transaction.atomic():
            study = index.study_for(entry)
            series = index.series_for(entry, study)
            if item.replaces is not None:
                Instance.objects.filter(pk=item.replaces.pk).update(**fields)
                item.replaces.refresh_from_db()
                item.outcome = StoreOutcome(item.replaces, created=True)
                return
            instance = _rows.insert_instance(sop_uid=entry.sop_uid, series=series, **fields)
    except InvalidInput as exc:
        index.forget(entry)
        _fail(item, exc)
        return
    except IntegrityError:
        index.forget(entry)
        # Another receiver stored the same SOP Instance UID a moment ago.
        raced = Instance.objects.get(sop_uid=entry.sop_uid)
        if raced.sha256 == item.sha256:
            item.outcome = StoreOutcome(raced, created=False)
        else:
            _fail(item, Conflict(f"SOP Instance UID {entry.sop_uid} is stored already with different bytes"))
        return
    index.added[series.pk] = index.added.get(series.pk, 0) + 1
    if modality := entry.series["modality"]:
        index.modalities.setdefault(study.pk, set()).add(modality)
    item.outcome = StoreOutcome(instance, created=True)


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


def run_fixity_check(check_id: int) -> FixityCheck:
    """Run a queued fixity check and record its report (the Celery task's body)."""
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
