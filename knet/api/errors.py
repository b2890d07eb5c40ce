"""API errors shaped like Kubernetes `Status` objects.

Every error the API server returns, and every error validation raises, is an
`ApiError`: the CLI prints `message`, and clients that speak Kubernetes read
`reason`, `code` and `details.causes[].field` exactly as they would from a real
API server.
"""

from __future__ import annotations

import json

# How much of a rejected value an error repeats back. A Status echoing an 8 MB
# value costs the server and the client as much again as the request did, and
# no reader needs more than its start to recognise it.
MAX_VALUE_CHARS = 256
# The longest message a Status carries; beyond it the message is cut (every
# cause is still listed in details, each with its value already cut).
MAX_MESSAGE_CHARS = 32 * 1024
MAX_CAUSES = 1000
TRUNCATED = "...(truncated)"


def truncate(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text` cut to `limit` characters, marked so that no reader mistakes the
    cut value for what was sent."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"{TRUNCATED[:-1]}: {len(text)} characters)"


def render_value(value: object) -> str:
    """A rejected value as apimachinery's field.Error prints it (numbers and
    booleans bare, everything else as JSON), cut when long."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return truncate(str(value))
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return truncate(text)


class FieldError:
    """One failing field, worded as apimachinery's field.Error is. (A plain
    class: this module is on the CLI's start-up path, where dataclasses
    costs ~10 ms of imports.)"""

    __slots__ = ("field", "type", "value", "detail")

    # field.TooLong never repeats the value, as apimachinery's prints "<value omitted>".
    OMITTED = "<value omitted>"

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
        "Too long": "FieldValueTooLong",
    }

    def __str__(self) -> str:
        return f"{truncate(self.field)}: {self.body()}"

    def body(self) -> str:
        """The error without its field (apimachinery's ErrorBody), as a Status cause carries it:
        kubectl prints each cause as `field: body`."""
        detail = f": {truncate(self.detail, MAX_VALUE_CHARS * 4)}" if self.detail else ""
        if self.type in ("Required value", "Forbidden", "Too long") or self.value is self.OMITTED:
            return f"{self.type}{detail}"
        return f"{self.type}: {render_value(self.value)}{detail}"

    def cause(self) -> dict:
        return {"reason": self.REASONS.get(self.type, "FieldValueInvalid"), "message": self.body(),
                "field": truncate(self.field)}


class ApiError(Exception):
    """An error with an HTTP code and a Kubernetes reason."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        # Every error path passes through here, so a message that quotes the
        # request (a name, a kind, a decoder's complaint) is bounded once for all.
        message = truncate(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = _bounded_details(details) if details else {}

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


def _bounded_details(details: dict) -> dict:
    out = dict(details)
    for key in ("name", "kind", "group"):
        if isinstance(out.get(key), str):
            out[key] = truncate(out[key])
    causes = out.get("causes")
    if isinstance(causes, list) and len(causes) > MAX_CAUSES:
        out["causes"] = causes[:MAX_CAUSES] + [{
            "reason": "TooManyCauses", "message": f"{len(causes) - MAX_CAUSES} more errors not listed"}]
    return out


class Invalid(ApiError):
    """422 Unprocessable Entity: the object failed validation; nothing was stored."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]):
        self.errors = errors
        joined = ", ".join(str(e) for e in errors)
        if len(errors) > 1:
            joined = f"[{joined}]"
        super().__init__(
            422, "Invalid", f'{kind} "{truncate(name)}" is invalid: {joined}',
            {"name": name, "kind": kind, "causes": [e.cause() for e in errors]},
        )


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{truncate(name)}" not found', {"name": name, "kind": kind})


def already_exists(kind: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind} "{truncate(name)}" already exists', {"name": name, "kind": kind})


def conflict(kind: str, name: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {kind} "{truncate(name)}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "kind": kind},
    )


def request_too_large(limit: int) -> ApiError:
    """apimachinery's NewRequestEntityTooLargeError, as the API server words a
    body over its limit (3 MiB: twice etcd's 1.5 MiB, for JSON's overhead)."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def object_too_large(size: int, limit: int) -> ApiError:
    """An object over the store's limit (etcd's --max-request-bytes). Upstream
    passes etcd's "etcdserver: request is too large" through as a 500
    (kubernetes/kubernetes#112152); knet answers 413 with the same words, since
    it is the client's object that is too large, and says by how much."""
    return ApiError(413, "RequestEntityTooLarge",
                    f"etcdserver: request is too large: the object is {size} bytes, the limit is {limit}")


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """storage.NewTooLargeResourceVersionError: a watch or list from a revision
    the store has not reached yet, after waiting for it (a 504 Timeout)."""
    return ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
