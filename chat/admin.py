from django.contrib import admin

from chat.models import ChatMessage, ChatSession


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    extra = 0
    fields = ("role", "content", "tokens", "created_at")
    readonly_fields = ("created_at",)


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "telegram_chat_id", "telegram_user_id", "model", "active", "last_activity")
    list_filter = ("active", "model")
    search_fields = ("user__username", "telegram_chat_id", "telegram_user_id", "title")
    inlines = [ChatMessageInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ("session", "role", "short", "tokens", "created_at")
    list_filter = ("role",)
    search_fields = ("content",)

    @admin.display(description="content")
    def short(self, obj):
        return obj.content[:80]
