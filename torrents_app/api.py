from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import StrictBooleanField
from models_app.selectors import model_to_dict
from torrents_app import sharing


class ModelSeedingApi(APIView):
    class Input(serializers.Serializer):
        enabled = StrictBooleanField()

    @extend_schema(summary="Pause or resume seeding of a model", request=Input,
                   responses=schema.responses(200, schema.MODEL, errors=[400, 404]))
    def post(self, request, model_id: str):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = sharing.torrent_set_seeding(model_id=model_id, enabled=data.validated_data["enabled"])
        return Response(model_to_dict(model))


class ModelTorrentFileApi(APIView):
    @extend_schema(summary="The model's .torrent file", responses=schema.responses(
        200, OpenApiTypes.BINARY, errors=[404], media_type="application/x-bittorrent"))
    def get(self, request, model_id: str):
        name, data = sharing.torrent_file_get(model_id=model_id)
        response = HttpResponse(data, content_type="application/x-bittorrent")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
