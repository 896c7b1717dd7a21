from django.urls import path

from torrents_app import api

urlpatterns = [
    path("models/<str:model_id>/seeding", api.ModelSeedingApi.as_view(), name="api-model-seeding"),
    path("models/<str:model_id>/torrent", api.ModelTorrentFileApi.as_view(), name="api-model-torrent"),
    path("models/<str:model_id>/copies", api.ModelCopiesApi.as_view(), name="api-model-copies"),
    path("models/<str:model_id>/copies/<str:node>", api.ModelCopyApi.as_view(), name="api-model-copy"),
]
