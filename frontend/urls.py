"""Portal pages."""

from django.urls import path

from . import viewer

urlpatterns = [
    path("viewer/", viewer.viewer, name="viewer"),
]
