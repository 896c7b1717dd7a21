from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import StrictBooleanField, node_field
from models_app.hub import services
from models_app.selectors import model_to_dict
from torrents_app.sharing import magnet_download_start


class DownloadApi(APIView):
    class Input(serializers.Serializer):
        url = serializers.CharField(required=False, min_length=1, max_length=2000)
        fileName = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=1000)
        createTorrent = StrictBooleanField(default=True)
        magnetUri = serializers.CharField(required=False, min_length=1, max_length=20000)
        metadata = serializers.DictField(required=False, allow_null=True)
        node = node_field("The node that downloads and keeps the file; default: the online node with the most "
                          "free disk.")

        def validate(self, data):
            if bool(data.get("url")) == bool(data.get("magnetUri")):
                raise serializers.ValidationError("Give either url (a Hugging Face model) or magnetUri.")
            return data

    @extend_schema(summary="Download a model from the Hugging Face Hub or by magnet", request=Input,
                   responses=schema.responses(202, schema.DOWNLOADED,
                                              errors=[400, 403, 404, 409, 422, 502, 503, 507]))
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        if data.get("magnetUri"):
            return Response(model_to_dict(_magnet(data)), status=status.HTTP_202_ACCEPTED)
        model = services.download_start(url=data["url"], file_name=data.get("fileName") or None, node=data.get("node"),
                                         create_torrent=data["createTorrent"], requested_by=request.user.get_username())
        body = model_to_dict(model)
        body["alternatives"] = services.repo_gguf_files(url=data["url"])
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _magnet(data: dict):
    return magnet_download_start(magnet_uri=data["magnetUri"], metadata=data.get("metadata"), node=data.get("node"))
