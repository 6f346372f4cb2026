"""An OBJ group comes back as one zip that a 3D viewer opens: OBJ, MTL, texture, unchanged."""

from __future__ import annotations

import io
import json
import zipfile
from io import StringIO

import pytest
from django.core.management import call_command

from archive.models import Instance
from tests.factories.files import obj_group
from tests.integration.dicomweb.conftest import basic
from tests.integration.ingest.conftest import META

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
OBJ_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"


def test_obj_group_comes_back_as_a_zip(client, curator, reader, tmp_path):
    obj = obj_group(tmp_path / "model")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    call_command("ingest", str(obj.parent), "--recursive", "--metadata", str(meta), "--json", stdout=StringIO(), stderr=StringIO())
    sop_uid = Instance.objects.get(sop_class_uid=OBJ_CLASS).sop_uid
    url = f"/api/ingest/models/{sop_uid}.zip"
    assert client.get(url).status_code == 404  # private: anonymous sees nothing
    assert client.get(url, **basic("someone", "someone-pass-1")).status_code == 404
    response = client.get(url, **basic("curator", "curator-pass-1"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert sorted(zf.namelist()) == ["model.mtl", "model.obj", "skin.jpg"]
        for name in zf.namelist():
            assert zf.read(name) == (obj.parent / name).read_bytes(), name
    assert client.get("/api/ingest/models/1.2.3.zip", **basic("curator", "curator-pass-1")).status_code == 404
