from django.contrib import admin

from models_app.models import AIModel, ModelCopy, ModelFile, ServedInstance


class ModelFileInline(admin.TabularInline):
    model = ModelFile
    extra = 0
    fields = ("name", "size", "sha256", "downloaded_bytes", "verified")
    readonly_fields = fields


class ModelCopyInline(admin.TabularInline):
    model = ModelCopy
    extra = 0
    fields = ("node", "status", "path", "download_progress", "downloaded_bytes", "uploaded_bytes", "peers", "seeding",
              "error")
    readonly_fields = fields


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "source", "status", "size", "download_progress", "peers", "seeding", "nodes",
                    "created_at")
    list_filter = ("source", "copies__status", "copies__seeding", "copies__node", "format")
    search_fields = ("id", "name", "repo_id", "file_name", "sha256", "info_hash")
    readonly_fields = ("created_at", "updated_at")
    inlines = [ModelCopyInline, ModelFileInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("copies", "instances")

    @admin.display(description="nodes")
    def nodes(self, model: AIModel) -> str:
        return ", ".join(copy.node for copy in model.copy_list())


@admin.register(ModelCopy)
class ModelCopyAdmin(admin.ModelAdmin):
    list_display = ("model", "node", "status", "download_progress", "peers", "seeding", "updated_at")
    list_filter = ("status", "seeding", "node")
    search_fields = ("model__id", "node")


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
