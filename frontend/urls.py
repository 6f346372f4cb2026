"""Portal pages."""

from django.urls import path

from . import upload, viewer

urlpatterns = [
    path("viewer/", viewer.viewer, name="viewer"),
    path("upload/", upload.upload_page, name="upload"),
]
