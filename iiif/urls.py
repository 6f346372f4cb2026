"""IIIF routes: Image API 3 under /iiif/3/, Presentation 3 under /iiif/presentation/."""

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("3/<str:identifier>", views.image_base, name="iiif-image-base"),
    path("3/<str:identifier>/info.json", views.image_info, name="iiif-image-info"),
    path(
        "3/<str:identifier>/<str:region>/<str:size>/<str:rotation>/<str:quality_format>",
        views.image, name="iiif-image",
    ),
    path("presentation/studies/<str:study_uid>/manifest", views.study_manifest, name="iiif-study-manifest"),
    path("presentation/series/<str:series_uid>/manifest", views.series_manifest, name="iiif-series-manifest"),
    path("presentation/collections/top", views.top_collection, name="iiif-top-collection"),
    path("presentation/collections/<slug:slug>", views.collection, name="iiif-collection"),
    path("presentation/collections/<slug:slug>/page/<int:page>", views.collection, name="iiif-collection-page"),
    # Anything else under /iiif/ gets a JSON 404 with CORS, not Django's HTML page.
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
