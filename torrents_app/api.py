from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import StrictBooleanField, node_field
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


class ModelCopiesApi(APIView):
    class Input(serializers.Serializer):
        node = node_field("The node that gets a copy of the model's files.", required=True)

    @extend_schema(summary="Copy the model's files to another node, over BitTorrent from the nodes that seed them",
                   request=Input, responses=schema.responses(202, schema.MODEL, errors=[400, 404, 409, 507]))
    def post(self, request, model_id: str):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = sharing.copy_start(model_id=model_id, node=data.validated_data["node"])
        return Response(model_to_dict(model), status=status.HTTP_202_ACCEPTED)


class ModelCopyApi(APIView):
    @extend_schema(summary="Remove the model's copy on one node (not while it serves there, nor the last one)",
                   responses=schema.responses(200, schema.MODEL, errors=[404, 409]))
    def delete(self, request, model_id: str, node: str):
        return Response(model_to_dict(sharing.copy_remove(model_id=model_id, node=node)))
