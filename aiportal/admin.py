from django.contrib import admin

from aiportal.models import Node


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "address", "online", "last_seen", "cpus", "memory_free", "disk_free", "llama_version",
                    "p2p_port")
    search_fields = ("name", "address")
    readonly_fields = ("last_seen", "started_at")

    @admin.display(boolean=True)
    def online(self, node: Node) -> bool:
        return node.online
