from __future__ import annotations

from django.urls import path

from models_app import views

urlpatterns = [
    path("", views.model_list_view, name="home"),
    path("models/add/", views.model_add_view, name="model-add"),
    path("models/<str:model_id>/", views.model_detail_view, name="model-page"),
    path("models/<str:model_id>/row/", views.model_row_view, name="model-row"),
    path("models/<str:model_id>/serve/", views.model_serve_view, name="model-serve"),
    path("models/<str:model_id>/stop/", views.model_stop_view, name="model-stop"),
    path("models/<str:model_id>/seeding/", views.model_seeding_view, name="model-seeding"),
    path("models/<str:model_id>/delete/", views.model_delete_view, name="model-delete"),
    path("models/<str:model_id>/copies/", views.model_copy_view, name="model-copy"),
    path("models/<str:model_id>/copies/<str:node>/remove/", views.model_copy_remove_view, name="model-copy-remove"),
    path("models/<str:model_id>/torrent/", views.model_torrent_view, name="model-torrent"),
]
