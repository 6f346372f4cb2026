"""The official IIIF Image API validator (``iiif-validate.py``) against a live server.

The unit suite runs the validator's tests in-process against the pure functions;
here the command-line validator talks HTTP to Django (pytest-django's live server),
so the tests that need real connections (JSON-LD media type, base URI redirect,
CORS) run as well, on an image stored as a DICOM VL Photographic Image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

VALIDATOR = Path(sys.executable).with_name("iiif-validate.py")
# Level 3 tests for the features we offer beyond level 2.  Not ``size_up``: it expects
# ``^max`` to give the image's own size, but §4.2 scales ``^max`` up to the published
# maxArea, which we publish (tests/integration/iiif/test_image_api.py checks that).
BEYOND_LEVEL_2 = ["rot_mirror", "rot_mirror_180", "linkheader_canonical", "linkheader_profile"]


def run_validator(live_server, identifier: str, *extra: str) -> subprocess.CompletedProcess:
    if not VALIDATOR.exists():
        pytest.skip(f"iiif-validator is not installed next to {sys.executable}")
    server = urlsplit(live_server.url).netloc
    return subprocess.run(
        [sys.executable, str(VALIDATOR), "-s", server, "-p", "iiif/3", "-i", identifier, "--version=3.0", *extra],
        check=False, capture_output=True, text=True, timeout=300,
    )


def test_level_2_passes_in_full(live_server, validator_image):
    result = run_validator(live_server, validator_image.SOPInstanceUID, "--level=2")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " 0 failures)" in output
    for name in ("jsonld", "baseurl_redirect", "cors", "id_error_random", "size_wh", "rot_full_basic"):
        assert f"test {name} PASS" in output, name


def test_supported_level_3_features_pass(live_server, validator_image):
    tests = [arg for name in BEYOND_LEVEL_2 for arg in ("--test", name)]
    result = run_validator(live_server, validator_image.SOPInstanceUID, *tests)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Done ({len(BEYOND_LEVEL_2)} tests, 0 failures)" in output
