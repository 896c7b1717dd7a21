from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "AI models"

    def ready(self) -> None:
        from models_app.hub import signals  # noqa: F401  (q2 workers resume downloads when they start)
