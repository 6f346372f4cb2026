"""``manage.py modality`` and ``manage.py dicomscp``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archive.models import Modality
from tests.services import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[3]


def _call(*args: str) -> str:
    out = StringIO()
    call_command("modality", *args, stdout=out)
    return out.getvalue()


def test_add_list_update_remove():
    assert "added PACS@10.0.0.5:104" in _call("add", "PACS", "10.0.0.5", "104", "--description", "main PACS")
    assert "updated PACS@10.0.0.6:11112" in _call("add", "PACS", "10.0.0.6", "11112")
    _call("add", "CT1", "ct1.local", "4242")
    lines = _call("list").splitlines()
    assert [line.split()[0] for line in lines] == ["CT1", "PACS"]
    assert "10.0.0.6:11112" in lines[1]
    assert "removed CT1" in _call("remove", "CT1")
    assert list(Modality.objects.values_list("ae_title", flat=True)) == ["PACS"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("add", "A-TITLE-LONGER-THAN-16", "h", "104"), "1 to 16 characters"),
        (("add", "OK", "h", "70000"), "port must be"),
        (("remove", "MISSING"), "no AE titled"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        _call(*args)


_IGNORE_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk is not installed")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dicomscp_serves_in_the_foreground_until_signalled(tmp_path, stop_signal):
    env = {**os.environ, "VITRINE_VAR": str(tmp_path), "VITRINE_DICOM_HOST": "127.0.0.1"}
    port = free_port()
    env["VITRINE_DICOM_PORT"] = str(port)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=120)
    # Started the way a background job of a non-interactive shell is (`cmd &`, as CI
    # runners and init scripts do): with SIGINT inherited as ignored, which exec keeps.
    as_in_background = [sys.executable, "-c", _IGNORE_SIGINT_THEN_EXEC]
    server = subprocess.Popen(
        [*as_in_background, *manage, "dicomscp", "--ae-title", "FOREGROUND"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        first_line = server.stdout.readline()
        assert f"DICOM SCP FOREGROUND on 127.0.0.1:{port}" in first_line
        for _ in range(100):
            echo = subprocess.run(["echoscu", "-aec", "FOREGROUND", "127.0.0.1", str(port)], check=False, timeout=30)
            if echo.returncode == 0:
                break
            time.sleep(0.1)
        assert echo.returncode == 0
        server.send_signal(stop_signal)
        assert server.wait(timeout=20) == 0, server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
