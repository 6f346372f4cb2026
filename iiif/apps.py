from django.apps import AppConfig


class IiifConfig(AppConfig):
    name = "iiif"
