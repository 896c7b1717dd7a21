"""Every request gets an id (the `X-Request-Id` header both ways); an unexpected error under /api/ or
/v1/ answers in that API's own error shape with the id, never Django's HTML 500 page, and the log
line that carries the traceback carries the same id."""
from __future__ import annotations

import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger("aiportal.errors")
INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _request_id(request: HttpRequest) -> str:
    given = request.headers.get("X-Request-Id", "")
    return given if INCOMING_ID.match(given) else uuid.uuid4().hex[:16]


class _AroundEachRequest:
    """A middleware for sync and async stacks alike: `before` each request, `after` it with its response
    and what `before` returned."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def _acall(self, request: HttpRequest):
        state = self.before(request)
        return self.after(request, await self.get_response(request), state)

    def before(self, request: HttpRequest):
        raise NotImplementedError

    def after(self, request: HttpRequest, response: HttpResponse, state) -> HttpResponse:
        raise NotImplementedError


class RequestErrors(_AroundEachRequest):
    def before(self, request: HttpRequest) -> None:
        request.request_id = _request_id(request)

    def after(self, request: HttpRequest, response: HttpResponse, state: None) -> HttpResponse:
        response["X-Request-Id"] = request.request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        request_id = getattr(request, "request_id", "-")
        log.error("unexpected error in %s %s [request %s]", request.method, request.path, request_id,
                  exc_info=exception)
        message = f"Something went wrong on the portal's side; the log has the details under request id {request_id}."
        if request.path.startswith("/api/"):
            from aiportal.api import error_body  # DRF's settings import this module's neighbours

            return JsonResponse(error_body("internal_error", message, requestId=request_id), status=500)
        if request.path.startswith("/v1/"):
            return JsonResponse({"error": {"message": message, "type": "server_error", "param": None,
                                           "code": "internal_error", "request_id": request_id}}, status=500)
        return None


METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetrics(_AroundEachRequest):
    """Counts each request and its latency under its front door, for `GET /metrics`."""

    def before(self, request: HttpRequest) -> float:
        return time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        from aiportal import metrics

        door = metrics.door(request.path)
        method = request.method if request.method in METHODS else "other"  # a made-up method is not a new series
        metrics.REQUESTS.labels(door, method, str(response.status_code)).inc()
        metrics.LATENCY.labels(door).observe(time.perf_counter() - started)
        return response


class ApiHeaders(_AroundEachRequest):
    """The headers SecurityMiddleware adds to every answer, for the doors that run without it (aiportal/doors.py)."""

    def before(self, request: HttpRequest) -> None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse, state) -> HttpResponse:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if settings.SECURE_REFERRER_POLICY:
            response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            response.headers.setdefault("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
        return response
