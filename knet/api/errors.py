"""API errors shaped like Kubernetes `Status` objects.

Every error the API server returns, and every error validation raises, is an
`ApiError`: the CLI prints `message`, and clients that speak Kubernetes read
`reason`, `code` and `details.causes[].field` exactly as they would from a real
API server.
"""

from __future__ import annotations

import json


class FieldError:
    """One failing field, worded as apimachinery's field.Error is. (A plain
    class: this module is on the CLI's start-up path, where dataclasses
    costs ~10 ms of imports.)"""

    __slots__ = ("field", "type", "value", "detail")

    def __init__(self, field: str, type: str, value: object = None, detail: str = ""):
        self.field = field
        self.type = type  # "Invalid value", "Required value", "Unsupported value", "Duplicate value", "Forbidden", ...
        self.value = value
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldError) and (self.field, self.type, self.value, self.detail) == (
            other.field, other.type, other.value, other.detail)

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.type!r}, {self.value!r}, {self.detail!r})"

    REASONS = {
        "Invalid value": "FieldValueInvalid",
        "Required value": "FieldValueRequired",
        "Unsupported value": "FieldValueNotSupported",
        "Duplicate value": "FieldValueDuplicate",
        "Forbidden": "FieldValueForbidden",
        "Not found": "FieldValueNotFound",
        "Too many": "FieldValueTooMany",
    }

    def __str__(self) -> str:
        if self.type in ("Required value", "Forbidden"):
            return f"{self.field}: {self.type}" + (f": {self.detail}" if self.detail else "")
        value = self.value if isinstance(self.value, (int, float)) and not isinstance(self.value, bool) else json.dumps(self.value)
        text = f"{self.field}: {self.type}: {value}"
        return text + (f": {self.detail}" if self.detail else "")

    def cause(self) -> dict:
        return {"reason": self.REASONS.get(self.type, "FieldValueInvalid"), "message": str(self), "field": self.field}


class ApiError(Exception):
    """An error with an HTTP code and a Kubernetes reason."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict:
        out: dict[str, object] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_status(cls, status: dict) -> ApiError:
        return cls(status.get("code", 500), status.get("reason", "InternalError"),
                   status.get("message", ""), status.get("details"))


class Invalid(ApiError):
    """422 Unprocessable Entity: the object failed validation; nothing was stored."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]):
        self.errors = errors
        joined = ", ".join(str(e) for e in errors)
        if len(errors) > 1:
            joined = f"[{joined}]"
        super().__init__(
            422, "Invalid", f'{kind} "{name}" is invalid: {joined}',
            {"name": name, "kind": kind, "causes": [e.cause() for e in errors]},
        )


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def already_exists(kind: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists', {"name": name, "kind": kind})


def conflict(kind: str, name: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "kind": kind},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
