from django.apps import AppConfig


class TorrentsAppConfig(AppConfig):
    name = "torrents_app"
    verbose_name = "Torrents"

    def ready(self) -> None:
        from models_app.signals import model_ready

        model_ready.connect(_share_ready_model, dispatch_uid="torrents-share-ready-model")


def _share_ready_model(sender, model_id: str, node: str, **kwargs) -> None:
    """Every copy whose files are complete gets its deterministic torrent (and is seeded when wanted)."""
    from torrents_app.services import torrent_create_for_model

    torrent_create_for_model(model_id=model_id, node=node)
