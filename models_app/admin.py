from django.contrib import admin

from models_app.models import AIModel, ModelFile, ServedInstance


class ModelFileInline(admin.TabularInline):
    model = ModelFile
    extra = 0
    fields = ("name", "size", "sha256", "downloaded_bytes", "verified")
    readonly_fields = fields


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "source", "status", "size", "download_progress", "peers", "seeding", "node", "created_at")
    list_filter = ("status", "source", "seeding", "node", "format")
    search_fields = ("id", "name", "repo_id", "file_name", "sha256", "info_hash")
    readonly_fields = ("created_at", "updated_at")
    inlines = [ModelFileInline]


@admin.register(ModelFile)
class ModelFileAdmin(admin.ModelAdmin):
    list_display = ("model", "name", "size", "verified")
    list_filter = ("verified",)
    search_fields = ("name", "sha256", "model__id")


@admin.register(ServedInstance)
class ServedInstanceAdmin(admin.ModelAdmin):
    list_display = ("model", "node", "desired", "state", "port", "pid", "context_size", "threads", "gpu_layers", "started_at")
    list_filter = ("state", "desired", "node")
    search_fields = ("model__id",)
    exclude = ("api_key",)  # the llama-server's key stays in the database, never on a page
