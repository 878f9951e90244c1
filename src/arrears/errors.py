"""One error family for the whole product.

Every error has a machine code, an HTTP status and a message for people. The API renders them as JSON, the
web pages as a readable message, the CLI as one line and a non-zero exit.
"""

from __future__ import annotations

from typing import Any


class ArrearsError(Exception):
    """Base of every error a user may see."""

    status = 400
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class ValidationFailed(ArrearsError):
    status = 422
    default_code = "validation_failed"


class NotFound(ArrearsError):
    status = 404
    default_code = "not_found"


class Conflict(ArrearsError):
    status = 409
    default_code = "conflict"


class Unauthorized(ArrearsError):
    """No credentials, or credentials that are unknown, revoked or expired."""

    status = 401
    default_code = "unauthorized"


class Forbidden(ArrearsError):
    status = 403
    default_code = "forbidden"


class ComplianceBlocked(ArrearsError):
    status = 409
    default_code = "compliance_blocked"


class ConfigurationError(ArrearsError):
    status = 500
    default_code = "configuration_error"
