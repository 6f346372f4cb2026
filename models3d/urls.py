"""Meshing routes, mounted under /api/ after the archive's own API."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=False)
router.register("meshing-jobs", views.MeshJobViewSet, basename="meshing-job")
router.register("meshes", views.MeshViewSet, basename="mesh")

urlpatterns = [
    *router.urls,
    path("meshes/<int:pk>/<str:fmt>", views.mesh_file, name="mesh-file"),
    re_path(r"^meshing-preview/(?P<series_uid>[0-9]+(?:\.[0-9]+)*)$", views.preview, name="meshing-preview"),
]
