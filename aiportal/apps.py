from django.apps import AppConfig


class AiportalConfig(AppConfig):
    name = "aiportal"
    verbose_name = "aiportal"
