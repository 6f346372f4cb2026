"""manage.py ingest: the same service as the web jobs, run here, with --json for scripts."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from archive.models import Instance, Series, Study
from ingest.models import Collection, IngestJob, Object
from tests.conftest import stored_files
from tests.factories.files import binary_stl, pdf_bytes
from tests.integration.ingest.conftest import META, NOTHING, leftovers

pytestmark = pytest.mark.integration


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "object"
    folder.mkdir()
    (folder / "figurine.stl").write_bytes(binary_stl(12))
    (folder / "report.pdf").write_bytes(pdf_bytes())
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    return folder, meta


@pytest.mark.django_db
def test_json_lists_the_stored_uids(files, archive_storage):
    folder, meta = files
    out, err = StringIO(), StringIO()
    call_command("ingest", str(folder / "figurine.stl"), str(folder / "report.pdf"), "--metadata", str(meta),
                 "--collection", "Bronzes", "--public", "--json", stdout=out, stderr=err)
    result = json.loads(out.getvalue())
    (study,) = result["studies"]
    stored = Study.objects.get(study_uid=study["study_uid"])
    assert stored.visibility == "public" and result["study_uid"] == stored.study_uid
    assert {s["series_uid"] for s in study["series"]} == set(Series.objects.values_list("series_uid", flat=True))
    sops = [sop for s in study["series"] for sop in s["instances"]]
    assert sorted(sops) == sorted(Instance.objects.values_list("sop_uid", flat=True)) and len(sops) == 2
    assert "100%" in err.getvalue()
    obj = Object.objects.get()
    assert obj.collection == Collection.objects.get(name="Bronzes") and list(obj.studies.all()) == [stored]
    assert IngestJob.objects.get().source == "cli"
    # The inputs are read, never moved.
    assert (folder / "figurine.stl").exists() and (folder / "report.pdf").exists()
    assert len(stored_files(archive_storage)) == 2


@pytest.mark.django_db
def test_table_and_recursive_folders(files, archive_storage):
    folder, meta = files
    with pytest.raises(CommandError, match="--recursive"):
        call_command("ingest", str(folder), "--metadata", str(meta), stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    call_command("ingest", str(folder), "--recursive", "--metadata", str(meta), stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "Series UID" in text and "stored 2 instance(s) in 2 series" in text
    assert Study.objects.get().visibility == "private"


@pytest.mark.django_db
def test_failure_stores_nothing(tmp_path, archive_storage):
    (tmp_path / "broken.stl").write_bytes(binary_stl(10)[:-3])
    (tmp_path / "meta.json").write_text(json.dumps(META))
    with pytest.raises(CommandError, match="truncated"):
        call_command("ingest", str(tmp_path / "broken.stl"), "--metadata", str(tmp_path / "meta.json"), "--json",
                     stdout=StringIO(), stderr=StringIO())
    assert leftovers(archive_storage) == NOTHING
    with pytest.raises(CommandError, match="inventory_number"):
        (tmp_path / "bad.json").write_text(json.dumps({"title": "x"}))
        call_command("ingest", str(tmp_path / "broken.stl"), "--metadata", str(tmp_path / "bad.json"),
                     stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="no such file"):
        call_command("ingest", str(tmp_path / "missing.stl"), stdout=StringIO(), stderr=StringIO())
