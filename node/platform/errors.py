"""The one error type of the API: status, error, hint; the middleware turns it into JSON."""
from __future__ import annotations

from typing import Any, Mapping


class ReefError(Exception):
    """An error the client caused or can act on. Subclasses only fix the status."""

    status: int = 400

    def __init__(
        self,
        error: str,
        hint: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "error": self.error, "hint": self.hint}
        body.update(self.extra)
        return body


class BadRequest(ReefError):
    status = 400


class Unauthorized(ReefError):
    status = 401


class Forbidden(ReefError):
    status = 403


class NotFound(ReefError):
    status = 404


class MethodNotAllowed(ReefError):
    status = 405


class Conflict(ReefError):
    status = 409


class Gone(ReefError):
    status = 410


class PayloadTooLarge(ReefError):
    status = 413


class UnsupportedMediaType(ReefError):
    status = 415


class Unprocessable(ReefError):
    status = 422


class RateLimited(ReefError):
    status = 429


class ServiceUnavailable(ReefError):
    status = 503
