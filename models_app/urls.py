from django.urls import path

from models_app import api
from models_app.hub import api as hub_api
from models_app.inference import api as inference_api

urlpatterns = [
    path("list", api.ModelListApi.as_view(), name="model-list"),
    path("download", hub_api.DownloadApi.as_view(), name="model-download"),
    path("models/<str:model_id>", api.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<str:model_id>/transfers", api.TransferHistoryApi.as_view(), name="model-transfers"),
    path("serve", inference_api.ServeApi.as_view(), name="serve"),
    path("nodes", api.NodeListApi.as_view(), name="node-list"),
]
