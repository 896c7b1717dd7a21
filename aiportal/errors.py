"""The one error type that services raise; interfaces turn it into the envelope or a message."""
from __future__ import annotations


class ApplicationError(Exception):
    """An error a person can act on: a machine code, a sentence, and the HTTP status that fits."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.extra = extra or {}


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class NoRoom(ApplicationError):
    status = 507
    code = "insufficient_storage"


class Upstream(ApplicationError):
    status = 502
    code = "upstream_error"


class Unavailable(ApplicationError):
    status = 503
    code = "unavailable"
