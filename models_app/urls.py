from django.urls import path

from models_app import api

urlpatterns = [
    path("list", api.ModelListApi.as_view(), name="model-list"),
    path("models/<str:model_id>", api.ModelDetailApi.as_view(), name="model-detail"),
]
