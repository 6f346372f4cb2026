"""The curator upload page: drop files, describe the object, watch upload and conversion.

The page speaks tus to ``/api/ingest/uploads`` (static/frontend/upload.js, no
framework), then POSTs an ingest request to ``/api/ingest/jobs`` and polls the job
until it links to the stored study. Sessions authenticate it; the CSRF token travels
in the page's JSON config and goes back in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from archive.models import is_curator
from ingest import uploads
from ingest.models import Collection


@require_GET
@login_required
def upload_page(request):
    if not is_curator(request.user):
        return render(request, "frontend/upload.html", {"forbidden": True}, status=403)
    config = {
        "uploads_url": reverse("ingest-uploads"),
        "jobs_url": "/api/ingest/jobs",
        "csrf_token": get_token(request),
        "max_bytes": uploads.max_upload_bytes(),
        "chunk_bytes": 8 * 1024 * 1024,
    }
    collections = list(Collection.objects.values_list("name", flat=True))
    return render(request, "frontend/upload.html", {"config": config, "collections": collections})
