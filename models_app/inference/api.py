from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import model_id_field, node_field
from models_app import selectors
from models_app.inference import services


def bounded(name: str, bounds: tuple[int, int]) -> serializers.IntegerField:
    """An optional integer option whose bounds the schema states and whose error says them."""
    low, high = bounds
    message = f"{name} must be between {low} and {high}."
    return serializers.IntegerField(required=False, allow_null=True, min_value=low, max_value=high,
                                    error_messages={"min_value": message, "max_value": message})


class ServeApi(APIView):
    class StartInput(serializers.Serializer):
        modelId = model_id_field()
        node = node_field("The node to serve on; default: an online node that holds a copy and has room (SPEC §9).")
        port = bounded("port", (1024, 65535))
        contextSize = bounded("contextSize", services.CONTEXT_RANGE)
        threads = bounded("threads", services.THREADS_RANGE)
        gpuLayers = bounded("gpuLayers", services.GPU_LAYERS_RANGE)

    class StopInput(serializers.Serializer):
        modelId = model_id_field()
        node = node_field("Stop it only on this node; default: on every node that serves it.")

    @extend_schema(summary="Serve a model with llama-server (status goes starting → serving)", request=StartInput,
                   responses=schema.responses(202, schema.MODEL, errors=[400, 404, 409, 503, 507]))
    def post(self, request):
        data = self.StartInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        model = services.serve_start(model_id=v["modelId"], node=v.get("node"), port=v.get("port"), context_size=v.get("contextSize"),
                                     threads=v.get("threads"), gpu_layers=v.get("gpuLayers"))
        return Response(selectors.model_to_dict(model), status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Stop serving a model", parameters=[StopInput],
                   responses=schema.responses(200, schema.MODEL, errors=[400, 404]))
    def delete(self, request):
        params = self.StopInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        model = services.serve_stop(model_id=params.validated_data["modelId"], node=params.validated_data.get("node"))
        return Response(selectors.model_to_dict(model))
