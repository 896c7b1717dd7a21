from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from aiportal.api import api_not_found
from aiportal.health import healthz_view
from aiportal.metrics import metrics_view
from chat.api import ChatApi

admin.site.site_header = "aiportal admin"
admin.site.site_title = "aiportal"

urlpatterns = [
    path("healthz", healthz_view, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/ai/chat", ChatApi.as_view(), name="api-chat"),
    path("api/ai/", include("models_app.urls")),
    path("api/ai/", include("torrents_app.urls")),
    path("v1/", include("chat.openai_api")),
    path("api/", include("chat.ollama_api")),
    re_path(r"^api/", api_not_found),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("chat/", include("chat.web_urls")),
    path("telegram/", include("telegram_bot.urls")),
    path("", include("models_app.web_urls")),
]
