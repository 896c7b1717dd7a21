from django.apps import AppConfig


class TorrentsAppConfig(AppConfig):
    name = "torrents_app"
    verbose_name = "Torrents"
