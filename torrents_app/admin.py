from django.contrib import admin, messages

from aiportal.errors import ApplicationError
from torrents_app.models import Torrent
from torrents_app.sharing import torrent_set_seeding


@admin.register(Torrent)
class TorrentAdmin(admin.ModelAdmin):
    list_display = ("model", "node", "desired", "state", "info_hash_v1", "failed_bytes", "updated_at")
    list_filter = ("desired", "state", "node")
    search_fields = ("model__id", "info_hash_v1", "info_hash_v2")
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
        for model_id in queryset.values_list("model_id", flat=True):
            try:
                torrent_set_seeding(model_id=model_id, enabled=enabled)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{model_id}: {exc.message}", messages.ERROR)
        verb = "Resumed" if enabled else "Paused"
        self.message_user(request, f"{verb} seeding of {done} model(s).", messages.SUCCESS)
