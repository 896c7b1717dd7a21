from django.contrib import admin

from torrents_app.models import Torrent


@admin.register(Torrent)
class TorrentAdmin(admin.ModelAdmin):
    list_display = ("model", "node", "desired", "state", "info_hash_v1", "updated_at")
    list_filter = ("desired", "state", "node")
    search_fields = ("model__id", "info_hash_v1", "info_hash_v2")
    exclude = ("torrent_file",)
