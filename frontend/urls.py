"""Portal pages."""

from django.urls import path

from . import home, meshing, upload, viewer

urlpatterns = [
    path("", home.home, name="home"),
    path("viewer/", viewer.viewer, name="viewer"),
    path("upload/", upload.upload_page, name="upload"),
    path("series/<str:series_uid>/mesh", meshing.meshing_page, name="meshing"),
]
