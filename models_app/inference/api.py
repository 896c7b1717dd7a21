from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import model_id_field, node_field
from chat import llm
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


class ChatUsageOutput(serializers.Serializer):
    promptTokens = serializers.IntegerField()
    completionTokens = serializers.IntegerField()
    totalTokens = serializers.IntegerField()


class ChatOutput(serializers.Serializer):
    content = serializers.CharField()
    usage = ChatUsageOutput()


class ChatMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.RegexField(r"^[^\x00]*$", allow_blank=True, trim_whitespace=False,
                                     error_messages={"invalid": "Null characters are not allowed."})


class ChatApi(APIView):
    class ChatInput(serializers.Serializer):
        modelId = model_id_field()
        messages = serializers.ListField(child=ChatMessage(), min_length=1)
        maxTokens = serializers.IntegerField(default=512, min_value=1, max_value=32768)
        temperature = serializers.FloatField(default=0.7, min_value=0.0, max_value=2.0)

    @extend_schema(summary="One chat completion from a serving model", request=ChatInput,
                   responses=schema.responses(200, schema.envelope("ChatEnvelope", ChatOutput()),
                                              errors=[400, 404, 409, 502]))
    def post(self, request):
        data = self.ChatInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = llm.chat_complete(model_id=v["modelId"], messages=[dict(m) for m in v["messages"]], max_tokens=v["maxTokens"],
                                   temperature=v["temperature"])
        usage = {"promptTokens": result.prompt_tokens, "completionTokens": result.completion_tokens,
                 "totalTokens": result.total_tokens}
        return Response({"content": result.content, "usage": usage})
