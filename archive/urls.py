"""Root URLs."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dicomweb/", include("archive.dicomweb.urls")),
    path("api/", include("archive.api.urls")),
    path("api/", include("models3d.urls")),
    path("api/ingest/", include("ingest.urls")),
    path("iiif/", include("iiif.urls")),
    path("", include("frontend.urls")),
]
