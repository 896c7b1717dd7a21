from django.contrib import admin

from telegram_bot.models import ProcessedUpdate


@admin.register(ProcessedUpdate)
class ProcessedUpdateAdmin(admin.ModelAdmin):
    list_display = ("update_id", "kind", "chat_id", "user_id", "received_at")
    list_filter = ("kind",)
    search_fields = ("update_id", "chat_id", "user_id")
