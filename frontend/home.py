"""The portal's front page: the studies the visitor may see, with ways into each."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import render
from django.views.decorators.http import require_GET

from archive.models import Series, Study, is_curator

PAGE_SIZE = 50


@require_GET
def home(request):
    studies = (
        Study.objects.visible_to(request.user)
        .select_related("patient")
        .prefetch_related(Prefetch("series", queryset=Series.objects.order_by("series_number", "pk")))
        .order_by("-created")
    )
    page = Paginator(studies, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "frontend/home.html", {"page": page, "curator": is_curator(request.user)})
