"""IIIF routes: Image API 3 under /iiif/3/, Presentation 3 under /iiif/presentation/."""

urlpatterns: list = []
