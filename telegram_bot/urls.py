from django.urls import path

from telegram_bot.views import webhook

urlpatterns = [
    path("webhook/", webhook, name="telegram-webhook"),
]
