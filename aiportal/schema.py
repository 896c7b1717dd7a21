"""OpenAPI pieces for drf-spectacular (SPEC §4): the model object, the `{"ok": …}` envelope, auth schemes.

Documentation only: the views answer with `models_app.selectors.model_to_dict` and `aiportal.api`'s
renderer and exception handler; the serializers here describe those bodies and never run.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
)
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from models_app.models import COPY_STATUSES, INSTANCE_STATUSES, Source, Status

SUCCESS = {
    200: "Done.",
    202: "Accepted: the work carries on in the background; watch the model's `status`.",
}
ERRORS = {
    400: "Bad input (`invalid_input` carries per-field messages in `error.fields`).",
    401: "No or wrong credentials.",
    403: "Not allowed.",
    404: "Unknown model (`model_not_found`) or nothing there.",
    409: "The model is in the wrong state for this.",
    422: "Not a usable GGUF model.",
    501: "Not available on this portal.",
    502: "Upstream (the Hub or llama-server) failed.",
    503: "Upstream unreachable or not ready.",
    507: "No room on disk or in memory.",
}


class AutoSchema(SpectacularAutoSchema):
    """Names a view's nested serializer after its view (`DownloadApi.Input` → `DownloadInput`), so two
    views' `Input` classes never share one component."""

    def get_serializer_name(self, serializer: serializers.Serializer, direction: str) -> str:
        parts = type(serializer).__qualname__.split(".")
        if len(parts) != 2 or not parts[0].endswith("Api"):
            return super().get_serializer_name(serializer, direction)
        view, inner = parts[0].removesuffix("Api"), parts[1]
        return inner if inner.startswith(view) else f"{view}{inner}"


@extend_schema_field({"type": "boolean", "description": "Always true."})
class TrueField(serializers.BooleanField):
    pass


@extend_schema_field({"type": "boolean", "description": "Always false."})
class FalseField(serializers.BooleanField):
    pass


@extend_schema_field({
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Machine code, e.g. `model_not_found`, `invalid_input`."},
        "message": {"type": "string", "description": "What went wrong, for a person."},
    },
    "additionalProperties": True,
    "description": "Some errors add details, e.g. `fields` (invalid_input) or `alternatives` (not_gguf).",
})
class ErrorField(serializers.JSONField):
    pass


class ErrorEnvelope(serializers.Serializer):
    ok = FalseField()
    error = ErrorField()


class ModelServer(serializers.Serializer):
    node = serializers.CharField(help_text="The node it runs on (the first of several, see `instances`).")
    port = serializers.IntegerField()
    url = serializers.CharField()
    contextSize = serializers.IntegerField()
    threads = serializers.IntegerField()
    gpuLayers = serializers.IntegerField()
    startedAt = serializers.DateTimeField(allow_null=True)


class BytesFrom(serializers.Serializer):
    peers = serializers.IntegerField(help_text="Received from other BitTorrent peers.")
    webSeed = serializers.IntegerField(help_text="Received from web seeds (the Hub's URL named in the torrent).")
    http = serializers.IntegerField(help_text="Downloaded from the Hub over plain HTTP.")


class ModelCopy(serializers.Serializer):
    node = serializers.CharField()
    status = serializers.ChoiceField(choices=COPY_STATUSES, help_text="`offline` while its node is not heartbeating.")
    downloadProgress = serializers.FloatField(min_value=0, max_value=100)
    downloadRate = serializers.IntegerField(help_text="Bytes per second.")
    uploadRate = serializers.IntegerField(help_text="Bytes per second.")
    downloadedBytes = serializers.IntegerField()
    uploadedBytes = serializers.IntegerField()
    peers = serializers.IntegerField()
    seeds = serializers.IntegerField()
    bytesFrom = BytesFrom(help_text="Where this copy's downloaded bytes came from.")
    seeding = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True, help_text="Why the file could not be fetched or checked.")
    note = serializers.CharField(allow_blank=True, help_text="What a download that moves no bytes yet waits for: "
                                 "another node or portal fetching the same file from the Hub.")


class ModelInstance(serializers.Serializer):
    node = serializers.CharField()
    status = serializers.ChoiceField(choices=INSTANCE_STATUSES,
                                     help_text="`offline` while its node is not heartbeating.")
    desired = serializers.ChoiceField(choices=["serving", "stopped"])
    port = serializers.IntegerField(allow_null=True)
    contextSize = serializers.IntegerField()
    threads = serializers.IntegerField()
    gpuLayers = serializers.IntegerField()
    startedAt = serializers.DateTimeField(allow_null=True)
    restarts = serializers.IntegerField(help_text="Failed starts or crashes in a row.")
    error = serializers.CharField(allow_blank=True, help_text="Why the llama-server died or could not start.")


class NodeMemory(serializers.Serializer):
    total = serializers.IntegerField(help_text="Bytes.")
    free = serializers.IntegerField(help_text="Bytes llama-servers may still use.")


class NodeGpu(serializers.Serializer):
    name = serializers.CharField()
    memoryTotal = serializers.IntegerField(help_text="Bytes.")
    memoryFree = serializers.IntegerField(help_text="Bytes.")


class NodeLlamaServer(serializers.Serializer):
    version = serializers.CharField(allow_blank=True)
    backends = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField(allow_blank=True, help_text="Why this node cannot run llama-server, if it cannot.")


class NodeObject(serializers.Serializer):
    name = serializers.CharField()
    address = serializers.CharField()
    online = serializers.BooleanField(help_text="Its last heartbeat is under 15 s old.")
    lastSeen = serializers.DateTimeField(allow_null=True)
    startedAt = serializers.DateTimeField(allow_null=True)
    cpus = serializers.IntegerField()
    memory = NodeMemory()
    gpus = NodeGpu(many=True)
    diskFree = serializers.IntegerField(help_text="Free bytes under its AI_MODEL_DIR.")
    llamaServer = NodeLlamaServer()
    p2pPort = serializers.IntegerField(allow_null=True)
    copies = serializers.ListField(child=serializers.CharField(), help_text="Ids of the models whose file it holds.")
    serving = serializers.ListField(child=serializers.CharField(), help_text="Ids of the models it serves.")


class ModelGguf(serializers.Serializer):
    architecture = serializers.CharField(allow_null=True)
    parameters = serializers.IntegerField(allow_null=True)
    quantization = serializers.CharField(allow_null=True)
    contextLength = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    sizeLabel = serializers.CharField(allow_null=True)


@extend_schema_serializer(component_name="Model")
class ModelObject(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    source = serializers.ChoiceField(choices=Source.choices)
    repoId = serializers.CharField(allow_blank=True)
    revision = serializers.CharField(allow_blank=True)
    fileName = serializers.CharField(allow_blank=True)
    format = serializers.CharField()
    size = serializers.IntegerField(help_text="Total bytes of all files.")
    sha256 = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Status.choices)
    downloadProgress = serializers.FloatField(min_value=0, max_value=100)
    downloadRate = serializers.IntegerField(help_text="Bytes per second.")
    uploadRate = serializers.IntegerField(help_text="Bytes per second.")
    downloadedBytes = serializers.IntegerField()
    uploadedBytes = serializers.IntegerField()
    peers = serializers.IntegerField()
    seeds = serializers.IntegerField()
    bytesFrom = BytesFrom(help_text="Where the downloaded bytes came from, summed over the copies.")
    shareRatio = serializers.FloatField()
    magnetUri = serializers.CharField(allow_blank=True)
    infoHash = serializers.CharField(allow_blank=True)
    seeding = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True, help_text="The most advanced copy's `note`.")
    server = ModelServer(allow_null=True, help_text="The llama-server while starting or serving, else null.")
    copies = ModelCopy(many=True, help_text="The model's file on each node that holds it.")
    instances = ModelInstance(many=True, help_text="The model's llama-server on each node asked to serve it.")
    gguf = ModelGguf(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()


class ModelAlternative(serializers.Serializer):
    fileName = serializers.CharField()
    size = serializers.IntegerField()
    parts = serializers.IntegerField()
    quantization = serializers.CharField(allow_blank=True)


class DownloadedModel(serializers.Serializer):
    """The model object plus `alternatives`; mapped to `allOf` by `DownloadedModelScheme`."""


class DownloadedModelScheme(OpenApiSerializerExtension):
    target_class = DownloadedModel

    def map_serializer(self, auto_schema, direction):
        model = auto_schema.resolve_serializer(ModelObject(), direction).ref
        alternative = auto_schema.resolve_serializer(ModelAlternative(), direction).ref
        alternatives = {"type": "array", "items": alternative,
                        "description": "Hugging Face downloads only: the repository's GGUF files."}
        return {"allOf": [model, {"type": "object", "properties": {"alternatives": alternatives}}]}


def envelope(name: str, result: serializers.Field) -> serializers.Serializer:
    """`{"ok": true, "result": <result>}` as the component `name`; build each once (module level)."""
    ok = TrueField()
    return inline_serializer(name=name, fields={"ok": ok, "result": copy.deepcopy(result)})  # copy: ok comes first


def responses(status: int, body, *, errors: Iterable[int] = (), media_type: str | None = None) -> dict:
    """A view's documented answers: `body` for `status`, the error envelope for 401, 403 and `errors`."""
    documented = {(status, media_type) if media_type else status: OpenApiResponse(body, description=SUCCESS[status])}
    for code in sorted({401, 403, *errors}):
        documented[code] = OpenApiResponse(ErrorEnvelope, description=ERRORS[code])
    return documented


MODEL = envelope("ModelEnvelope", ModelObject())
MODEL_LIST = envelope("ModelListEnvelope", ModelObject(many=True))
NODE_LIST = envelope("NodeListEnvelope", NodeObject(many=True))
TRANSFERS = envelope("TransferHistoryEnvelope", inline_serializer(name="TransferSample", many=True, fields={
    "at": serializers.DateTimeField(), "downloadRate": serializers.IntegerField(help_text="Bytes per second."),
    "uploadRate": serializers.IntegerField(help_text="Bytes per second."), "peers": serializers.IntegerField()}))
DOWNLOADED = envelope("DownloadedModelEnvelope", DownloadedModel())
DELETED = envelope("DeletedModelEnvelope", inline_serializer(
    name="DeletedModel", fields={"id": serializers.CharField(), "deleted": TrueField()}))


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "aiportal.auth.TokenAuthentication"
    name = "tokenAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Authorization: Token <key>` with an API token."}


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "aiportal.auth.BearerAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>` with an API token."}
