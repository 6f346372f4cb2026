"""Portal pages."""

from django.urls import path

from . import meshing, upload, viewer

urlpatterns = [
    path("viewer/", viewer.viewer, name="viewer"),
    path("upload/", upload.upload_page, name="upload"),
    path("series/<str:series_uid>/mesh", meshing.meshing_page, name="meshing"),
]
