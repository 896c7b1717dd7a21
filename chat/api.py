"""POST /api/ai/chat (SPEC §4): one chat completion from a served model, through the chat stream every door shares."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aiportal import schema
from aiportal.api import model_id_field
from chat import llm


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
