"""The meshing page of a series: threshold preview, start a job, watch it, view the mesh.

``/series/<uid>/mesh`` shows one slice with the threshold's mask tinted (rendered by
``/api/meshing-preview``), starts a job through ``/api/meshing-jobs`` and polls it,
then shows the stored STL in a three.js viewer (Vitrine's own static copy of the npm
package, no CDN; see docs/meshing-jobs.md). Everything the script needs travels in
the page's JSON config; the CSRF token goes back in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

import json

from django.contrib.staticfiles import finders
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.templatetags.static import static
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from archive.auth import request_user
from archive.models import is_curator
from models3d import pipeline, services

THREE_JS = "vendor/three/three.module.js"
THREE_ADDONS = ("vendor/three/addons/STLLoader.js", "vendor/three/addons/OrbitControls.js")


def three_installed() -> bool:
    return all(finders.find(name) is not None for name in (THREE_JS, *THREE_ADDONS))


def _json_for_script(value) -> str:
    """JSON safe inside a <script> element (an import map cannot come from json_script)."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return mark_safe(text)


@require_GET
def meshing_page(request, series_uid: str):
    user = request_user(request)
    series = services.visible_series(series_uid, user)
    presets = [{"name": name, "levels": list(levels), "label": services.describe_params({"preset": name})}
               for name, levels in pipeline.HU_PRESETS.items()]
    presets.append({"name": "micro_ct", "levels": [], "label": services.describe_params({"preset": "micro_ct"})})
    config = {
        "series_uid": series.series_uid,
        "study_uid": series.study.study_uid,
        "slices": series.num_instances,
        "jobs_url": "/api/meshing-jobs",
        "preview_url": f"/api/meshing-preview/{series.series_uid}",
        "can_start": is_curator(user),
        "csrf_token": get_token(request),
        "presets": presets,
        "default_preset": "bone",
        "smooth_iterations": services.DEFAULTS["smooth_iterations"],
        "smooth_passband": services.DEFAULTS["smooth_passband"],
    }
    installed = three_installed()
    context = {
        "series": series, "config": config, "installed": installed,
        "import_map": _json_for_script({"imports": {"three": static(THREE_JS),
                                                    "three/addons/": static("vendor/three/addons/")}}),
    }
    return render(request, "frontend/meshing.html", context, status=200 if installed else 503)
