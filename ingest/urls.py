"""Ingest URLs, mounted at /api/ingest/: tus uploads, ingest jobs, collections, objects."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("jobs", views.IngestJobViewSet, basename="ingest-job")
router.register("collections", views.CollectionViewSet, basename="ingest-collection")
router.register("objects", views.ObjectViewSet, basename="ingest-object")

urlpatterns = [
    path("uploads", views.uploads, name="ingest-uploads"),
    path("uploads/<str:upload_id>", views.upload, name="ingest-upload"),
    path("models/<str:sop_uid>.zip", views.model_zip, name="ingest-model-zip"),
    *router.urls,
]
