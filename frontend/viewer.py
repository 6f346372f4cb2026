"""The IIIF viewer page: Mirador 4, served from Vitrine's own static files (no CDN).

``/viewer/?manifest=URL`` opens a manifest, ``/viewer/?collection=URL`` a collection
(Mirador shows its collection dialog). The URLs go to the page as JSON through
``json_script``, never into markup.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib.staticfiles import finders
from django.shortcuts import render
from django.views.decorators.http import require_GET

from archive.errors import InvalidInput

MIRADOR_JS = "vendor/mirador/mirador.min.js"


def _checked_url(request, name: str) -> str | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    if value.startswith("/"):
        value = request.build_absolute_uri(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{name} must be an http(s) URL of a IIIF document, got {value[:200]!r}")
    return value


@require_GET
def viewer(request):
    manifest = _checked_url(request, "manifest")
    collection = _checked_url(request, "collection")
    windows = []
    if manifest:
        windows.append({"manifestId": manifest})
    if collection:
        windows.append({"manifestId": collection})
    catalog = [{"manifestId": url} for url in (collection, manifest) if url]
    config = {
        "id": "mirador",
        "windows": windows,
        "catalog": catalog,
        "window": {"allowClose": False, "defaultSideBarPanel": "info", "sideBarOpenByDefault": False},
        "workspaceControlPanel": {"enabled": False},
    }
    installed = finders.find(MIRADOR_JS) is not None
    status = 200 if installed else 503
    return render(
        request, "frontend/viewer.html",
        {"config": config, "mirador_js": MIRADOR_JS, "installed": installed}, status=status,
    )
