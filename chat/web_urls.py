from __future__ import annotations

from django.urls import path

from chat import views

urlpatterns = [
    path("", views.chat_view, name="chat"),
    path("send/", views.chat_send_view, name="chat-send"),
    path("<int:session_id>/", views.chat_session_view, name="chat-session"),
    path("<int:session_id>/clear/", views.chat_clear_view, name="chat-clear"),
]
