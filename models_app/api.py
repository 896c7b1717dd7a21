from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from models_app import selectors, services


class ModelListApi(APIView):
    @extend_schema(summary="All models, newest first", responses=schema.responses(200, schema.MODEL_LIST))
    def get(self, request):
        return Response(selectors.models_to_dicts(selectors.model_list()))


class ModelDetailApi(APIView):
    class DeleteInput(serializers.Serializer):
        deleteFiles = serializers.BooleanField(default=False)

    @extend_schema(summary="One model", responses=schema.responses(200, schema.MODEL, errors=[404]))
    def get(self, request, model_id: str):
        return Response(selectors.model_to_dict(selectors.model_get(model_id=model_id)))

    @extend_schema(summary="Stop serving and seeding, then remove the model", parameters=[DeleteInput],
                   responses=schema.responses(200, schema.DELETED, errors=[400, 404]))
    def delete(self, request, model_id: str):
        params = self.DeleteInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        services.model_delete(model_id=model_id, delete_files=params.validated_data["deleteFiles"])
        return Response({"id": model_id, "deleted": True}, status=status.HTTP_200_OK)


class TransferHistoryApi(APIView):
    @extend_schema(summary="The model's download and upload rates and peers over the last hour",
                   responses=schema.responses(200, schema.TRANSFERS, errors=[404]))
    def get(self, request, model_id: str):
        return Response(selectors.transfer_history(model_id=model_id))


class NodeListApi(APIView):
    @extend_schema(summary="The machines of this portal (node daemons) with what they have and hold",
                   responses=schema.responses(200, schema.NODE_LIST))
    def get(self, request):
        return Response(selectors.node_list())
