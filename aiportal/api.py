"""DRF glue: the `{"ok": …}` envelope and the one exception handler."""
from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from aiportal.errors import ApplicationError


class EnvelopeRenderer(JSONRenderer):
    """Wraps successful results as {"ok": true, "result": …}; errors arrive already wrapped."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code < 400 and not getattr(response, "raw_body", False):
            data = {"ok": True, "result": data}
        return super().render(data, accepted_media_type, renderer_context)


class StrictBooleanField(serializers.BooleanField):
    """A JSON body's true or false only: DRF's own field also takes 0, 1, "yes", "off" and the like."""

    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid")


def model_id_field() -> serializers.RegexField:
    """A model id as the portal makes them (letters, digits, `.`, `_`, `-`)."""
    return serializers.RegexField(r"^[A-Za-z0-9._-]{1,200}$", max_length=200,
                                  error_messages={"invalid": "A model id has only letters, digits, '.', '_' and '-'."})


def node_field(help_text: str, *, required: bool = False) -> serializers.RegexField:
    """A node name (NODE_NAME of a node daemon, SPEC §9): any text without NUL, optional unless `required`."""
    return serializers.RegexField(r"^[^\x00]+$", required=required, allow_null=not required, max_length=200,
                                  trim_whitespace=False, help_text=help_text,
                                  error_messages={"blank": "node must be a node name (see GET /api/ai/nodes).",
                                                  "invalid": "A node name has no null characters."})


def error_body(code: str, message: str, **extra) -> dict:
    error = {"code": code, "message": message}
    error.update(extra)
    return {"ok": False, "error": error}


_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid_input",
}


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, **exc.extra), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(code, _validation_message(exc.detail), fields=exc.detail)
    else:
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        parts = [f"{field}: {_validation_message(value)}" for field, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_validation_message(item) for item in detail)
    return str(detail)


def api_not_found(request, *args, **kwargs):
    return JsonResponse(
        error_body("not_found", f"No API endpoint at {request.path}."), status=status.HTTP_404_NOT_FOUND
    )
