from django.apps import AppConfig


class Models3dConfig(AppConfig):
    name = "models3d"
