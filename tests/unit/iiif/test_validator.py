"""The official IIIF Image API validator (PyPI ``iiif-validator``), run in-process.

The validator's tests fetch URLs through ``ImageAPI.fetch``; here that method is
replaced by a tiny in-process server made of the pure functions the Django views
call, so every image test of level 2 (and the level 3 ones we support) runs against
the real renderer without a network.  Tests that open their own connection
(``jsonld``, ``baseurl_redirect``) and ``cors`` check HTTP headers set by the Django
view; run them against the live server (see docs/iiif.md).
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import unquote

import pytest

validator = pytest.importorskip("iiif_validator.validator")

from archive.errors import ArchiveError
from iiif.errors import ImageNotFound
from iiif.imageapi import (
    INFO_MEDIA_TYPE,
    ArraySource,
    build_image_link_header,
    build_info,
    parse_identifier,
    parse_image_request,
    render_image,
    resolve,
)
from tests.factories.images import build_validator_test_image

SERVER = "iiif.test"
PREFIX = "iiif/3"
IDENTIFIER = "1.2.826.0.1.3680043.10.511.1"

# Not run in-process: they open their own connections or only check view headers.
LIVE_ONLY = {"jsonld", "baseurl_redirect", "cors"}
# Level 3 features we do support (run them too).
LEVEL_3_SUPPORTED = {
    "linkheader_canonical",
    "linkheader_profile",
    "rot_mirror",
    "rot_mirror_180",
    "size_up",
}


class InProcessImageAPI(validator.ImageAPI):
    """The validator's client, answering from the pure IIIF functions."""

    def __init__(self, sources: dict[str, Any]) -> None:
        super().__init__(IDENTIFIER, SERVER, PREFIX, "http", "", "3.0", debug=False)
        self.sources = sources

    def fetch(self, url: str) -> bytes:
        status, headers, body = self._serve(url)
        self.last_status, self.last_headers, self.last_url = status, headers, url
        self.urls.append(url)
        return body

    def _serve(self, url: str) -> tuple[int, dict[str, str], bytes]:
        base = f"http://{SERVER}/{PREFIX}/"
        assert url.startswith(base)
        segments = [unquote(part) for part in url[len(base) :].split("/")]
        try:
            ident = parse_identifier(segments[0])
            source = self.sources.get(ident.uid)
            if source is None:
                raise ImageNotFound(f"no image {ident.uid}")
            id_url = f"{base}{segments[0]}"
            if segments[1:] == ["info.json"]:
                info = build_info(id_url, source)
                return 200, {"content-type": INFO_MEDIA_TYPE}, json.dumps(info).encode()
            if len(segments) != 5:
                raise ImageNotFound(f"no route for {url}")
            resolved = resolve(parse_image_request(*segments[1:]), source.width, source.height)
            body, media_type = render_image(source, resolved)
            headers = {
                "content-type": media_type,
                "link": build_image_link_header(id_url, resolved),
            }
            return 200, headers, body
        except ArchiveError as error:
            return (
                error.http_status,
                {"content-type": "application/json"},
                json.dumps(error.as_dict()).encode(),
            )


def _validator_tests() -> list[str]:
    suite = validator.TestSuite(validator.ValidationInfo())
    names = []
    for name, info in sorted(suite.list_tests("3.0").items()):
        if name in LIVE_ONLY:
            continue
        if info["level"] <= 2 or name in LEVEL_3_SUPPORTED:
            names.append(name)
    return names


@pytest.fixture(scope="module")
def sources() -> dict[str, Any]:
    return {IDENTIFIER: ArraySource(build_validator_test_image(), tile_size=512)}


def test_level_2_tests_are_collected() -> None:
    names = _validator_tests()
    assert {"id_squares", "info_json", "region_percent", "size_noup", "quality_bitonal"} <= set(
        names
    )
    assert len(names) >= 25


@pytest.mark.parametrize("name", _validator_tests())
@pytest.mark.parametrize("seed", [0, 1])
def test_validator(name: str, seed: int, sources: dict[str, Any]) -> None:
    random.seed(seed)  # the validator draws its squares and sizes at random
    suite = validator.TestSuite(validator.ValidationInfo())
    result = InProcessImageAPI(sources)
    suite.run_test(name, result)
    assert result.exception is None, f"{name}: {result.exception} at {result.last_url}"


def test_validator_catches_a_wrong_image(sources: dict[str, Any]) -> None:
    # The harness can fail: a mirrored image does not pass the squares test.
    flipped = build_validator_test_image()[:, ::-1].copy()
    random.seed(0)
    result = InProcessImageAPI({IDENTIFIER: ArraySource(flipped)})
    validator.TestSuite(validator.ValidationInfo()).run_test("id_squares", result)
    assert result.exception is not None
