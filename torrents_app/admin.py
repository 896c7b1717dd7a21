from django.contrib import admin, messages

from aiportal.errors import ApplicationError
from torrents_app.models import Torrent
from torrents_app.sharing import torrent_set_seeding


@admin.register(Torrent)
class TorrentAdmin(admin.ModelAdmin):
    list_display = ("copy", "desired", "state", "info_hash_v1", "failed_bytes", "updated_at")
    list_filter = ("desired", "state", "copy__node")
    search_fields = ("copy__model__id", "info_hash_v1", "info_hash_v2")
    exclude = ("torrent_file",)
    actions = ["pause_seeding", "resume_seeding"]

    @admin.action(description="Pause seeding of the selected models")
    def pause_seeding(self, request, queryset):
        self._set_seeding(request, queryset, enabled=False)

    @admin.action(description="Resume seeding of the selected models")
    def resume_seeding(self, request, queryset):
        self._set_seeding(request, queryset, enabled=True)

    def _set_seeding(self, request, queryset, *, enabled: bool) -> None:
        done = 0
        for model_id, node in queryset.values_list("copy__model_id", "copy__node"):
            try:
                torrent_set_seeding(model_id=model_id, enabled=enabled, node=node)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{model_id}: {exc.message}", messages.ERROR)
        verb = "Resumed" if enabled else "Paused"
        self.message_user(request, f"{verb} seeding of {done} model(s).", messages.SUCCESS)
