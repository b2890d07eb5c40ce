"""Request bodies decoded as kube-apiserver decodes them into its Go structs.

Kubernetes never coerces: a string or a float where an int32 is, an object
where a list is, is a 400 BadRequest worded by Go's encoding/json
(`Service in version "v1" cannot be handled as a Service: json: cannot
unmarshal string into Go struct field ServicePort.spec.ports.port of type
int32`). Fields the type does not have are pruned from what is stored, and
reported according to the `fieldValidation` query parameter (KEP-2885): Strict
refuses them (and duplicate keys) with a 400, Warn (the default) accepts and
returns each as a `Warning: 299 - "..."` header, Ignore drops them silently.

The field types come from knet/api/schema.py. Nesting is bounded (MAX_DEPTH):
a deeper body is a 400 naming the limit, never a RecursionError further on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from knet.api import schema
from knet.api.errors import ApiError, FieldError, Invalid, bad_request
from knet.api.resources import Resource

MAX_DEPTH = 100  # levels of objects and arrays; real manifests nest ~15 deep
MAX_STRICT_ERRORS = 100  # as sigs.k8s.io/json stops collecting
STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}
_INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")
_QUANTITY = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)\Z")
_QUANTITY_SUFFIXES = {"", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
_QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


# =============================================================================
# Parsing: JSON text to Python values, with what Go's decoder would notice
# =============================================================================


class _Float(float):
    """A JSON number with a fraction or exponent, keeping its text: Go names
    the literal (`number 80.5`) when it cannot go into an integer field."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> _Float:
        out = super().__new__(cls, text)
        out.text = text
        return out


class _Object(dict):
    """A JSON object whose keys repeat: `order` lists every key as it came, so
    duplicates are reported where Go's decoder meets them (the last value wins)."""

    __slots__ = ("order",)


def _object(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    dup = _Object(out)
    dup.order = [k for k, _ in pairs]
    return dup


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def too_deep() -> ApiError:
    return bad_request(f"the request body is nested too deeply: more than {MAX_DEPTH} levels of objects and arrays")


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a clean 400: not UTF-8, not JSON (NaN and Infinity
    are not JSON), or nested deeper than MAX_DEPTH."""
    if not body:
        raise bad_request("the request has no body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad_request(f"the request body is not valid UTF-8: {e.reason} at byte {e.start}") from None
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_float=_Float, parse_constant=_no_constant)
    except RecursionError:
        raise too_deep() from None
    except ValueError as e:  # JSONDecodeError is a ValueError
        raise bad_request(f"the request body is not valid JSON: {e}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise too_deep()
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Without recursion: the body may be as deep as the parser allowed."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


# =============================================================================
# Decoding against the schema
# =============================================================================


class DecodeError(Exception):
    """The first error Go's decoder would return; the text is Go's."""


class _Decoder:
    def __init__(self, patch: bool, strict: bool):
        self.patch = patch  # a merge patch: null means "delete", so it is kept
        self.strict = strict  # collect unknown and duplicate fields
        self.strict_errors: list[str] = []

    def _strict(self, kind: str, path: str) -> None:
        text = f"{kind} field {json.dumps(path)}"
        if self.strict and len(self.strict_errors) < MAX_STRICT_ERRORS and text not in self.strict_errors:
            self.strict_errors.append(text)

    @staticmethod
    def _type_error(value: Any, t: str, ctx: tuple[str, str], literal: str = "") -> DecodeError:
        """Go's UnmarshalTypeError; a number that does not fit is named with its text."""
        struct, fld = ctx
        what = f"Go struct field {struct}.{fld}" if struct or fld else "Go value"
        found = f"number {literal}" if literal else _json_kind(value)
        return DecodeError(f"json: cannot unmarshal {found} into {what} of type {schema.go_name(t)}")

    # ctx is Go's error context (innermost struct, dotted field path without
    # indices); path is sigs.k8s.io/json's strict path (indices and map keys).
    def value(self, v: Any, t: str, path: str, ctx: tuple[str, str]) -> Any:
        if t in schema.ALIASES:
            return self._map_or_list(v, schema.ALIASES[t], path, ctx, go_type=t)
        if t.startswith("[]") or t.startswith("map[string]"):
            return self._map_or_list(v, t, path, ctx, go_type=t)
        if t in schema.STRUCTS:
            if not isinstance(v, dict):
                raise self._type_error(v, t, ctx)
            return self.struct(v, t, path, ctx)
        if t == "string" or t in schema.NAMED_STRINGS:
            if not isinstance(v, str):
                raise self._type_error(v, t, ctx)
            return v
        if t in _INT_RANGES:
            return self._int(v, t, ctx)
        if t == "bytes":  # []byte: base64 in JSON, as encoding/json decodes it
            if not isinstance(v, str):
                raise self._type_error(v, "[]uint8", ctx)
            _base64(v)
            return v
        if t == "bool":
            if not isinstance(v, bool):
                raise self._type_error(v, t, ctx)
            return v
        if t == "float64":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self._type_error(v, t, ctx)
            return float(v)
        if t == "IntOrString":  # its UnmarshalJSON decodes a string, or else an int32
            return v if isinstance(v, str) else self._int(v, "int32", ctx)
        if t == "Quantity":
            return _quantity(v)
        if t in ("Time", "MicroTime"):
            if not isinstance(v, str):
                raise self._type_error(v, "string", ctx)
            if not _RFC3339.match(v):
                raise DecodeError(f'parsing time {json.dumps(v)} as "2006-01-02T15:04:05Z07:00": '
                                  "cannot parse it as RFC 3339")
            return v
        if t == "any":
            return self.free(v, path)
        raise AssertionError(f"schema names an unknown type {t!r}")  # caught by test_schema_is_closed

    def _int(self, v: Any, t: str, ctx: tuple[str, str]) -> int:
        lo, hi = _INT_RANGES[t]
        if isinstance(v, int) and not isinstance(v, bool):
            if lo <= v <= hi:
                return v
            raise self._type_error(v, t, ctx, literal=str(v))
        if isinstance(v, _Float):
            raise self._type_error(v, t, ctx, literal=v.text)
        raise self._type_error(v, t, ctx)

    def _map_or_list(self, v: Any, t: str, path: str, ctx: tuple[str, str], go_type: str) -> Any:
        if t.startswith("[]"):
            if not isinstance(v, list):
                raise self._type_error(v, go_type, ctx)
            elem = t[2:]
            return [self.value(x, elem, f"{path}[{i}]", ctx) if x is not None else _zero(elem)
                    for i, x in enumerate(v)]
        if not isinstance(v, dict):
            raise self._type_error(v, go_type, ctx)
        elem = t[len("map[string]"):]
        out = {}
        for key in self._keys(v, path):
            x = v[key]
            if x is None:
                out[key] = None if self.patch else _zero(elem)
            else:
                out[key] = self.value(x, elem, _join(path, key), ctx)
        return out

    def struct(self, v: dict, t: str, path: str, ctx: tuple[str, str]) -> dict:
        fields = schema.STRUCTS[t]
        out = {}
        for key in self._keys(v, path, fields):
            if key not in fields:
                self._strict("unknown", _join(path, key))
                continue
            x = v[key]
            if x is None:
                if self.patch:
                    out[key] = None
                continue
            out[key] = self.value(x, fields[key], _join(path, key), (t, _join(ctx[1], key)))
        return out

    def _keys(self, v: dict, path: str, known: dict | None = None) -> Iterator[str]:
        """Each key once, where its last value came, reporting a repeated key
        where Go's decoder meets it (in a struct, only fields it has: an
        unknown one is reported as unknown)."""
        order = getattr(v, "order", None)
        if order is None:
            yield from list(v)
            return
        last = {k: i for i, k in enumerate(order)}
        seen: set[str] = set()
        for i, key in enumerate(order):
            if key in seen and (known is None or key in known):
                self._strict("duplicate", _join(path, key))
            seen.add(key)
            if last[key] == i:
                yield key

    def free(self, v: Any, path: str) -> Any:
        """Free-form JSON (RawExtension, FieldsV1): kept as sent, duplicates noticed."""
        if isinstance(v, dict):
            return {k: self.free(v[k], _join(path, k)) for k in self._keys(v, path)}
        if isinstance(v, list):
            return [self.free(x, f"{path}[{i}]") for i, x in enumerate(v)]
        return float(v) if isinstance(v, _Float) else v


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _zero(t: str) -> Any:
    """Go's zero value, which a JSON null inside a list (or map) decodes to."""
    t = schema.ALIASES.get(t, t)
    if t in schema.STRUCTS:
        return {}
    if t in _INT_RANGES:
        return 0
    if t == "bool":
        return False
    if t == "string" or t in schema.NAMED_STRINGS:
        return ""
    return None


def _base64(v: str) -> None:
    """encoding/json's []byte: standard base64 with padding, or its error."""
    import base64
    import binascii

    try:
        base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(v) if not (c.isalnum() or c in "+/=")), len(v))
        raise DecodeError(f"illegal base64 data at input byte {bad}") from None


def _quantity(v: Any) -> str:
    """resource.Quantity's UnmarshalJSON: a string or a bare number in its
    grammar; stored as a string, as a Quantity always encodes."""
    if isinstance(v, _Float):
        text = v.text
    elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
        text = str(v).strip()
    else:
        raise DecodeError(_QUANTITY_FORMAT)
    m = _QUANTITY.match(text)
    if not m:
        raise DecodeError(_QUANTITY_FORMAT)
    number, suffix = m.groups()
    if number.lstrip("+-").count(".") > 1 or number.lstrip("+-") in ("", "."):
        raise DecodeError("unable to parse numeric part of quantity")
    if suffix not in _QUANTITY_SUFFIXES and not re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        raise DecodeError("unable to parse quantity's suffix")
    return text


# =============================================================================
# The request: what the server calls
# =============================================================================


def decode_typed(value: Any, kind: str, *, patch: bool = False) -> tuple[dict, list[str]]:
    """Decode a parsed body into `kind`'s fields: (pruned object, strict
    errors as Go words them). Raises DecodeError with Go's text on a type error."""
    if not isinstance(value, dict):
        raise DecodeError("couldn't get version/kind; json parse error: json: cannot unmarshal "
                          f"{_json_kind(value)} into Go value of type struct {{ APIVersion string "
                          '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    d = _Decoder(patch=patch, strict=True)
    return d.struct(value, kind, "", (kind, "")), d.strict_errors


def validation_directive(method: str, value: str | None) -> str:
    """The fieldValidation query parameter; Warn when absent, as upstream."""
    if value in (None, ""):
        return WARN
    if value not in (STRICT, WARN, IGNORE):
        raise Invalid(f"{_OPTIONS_KIND.get(method, 'CreateOptions')}.meta.k8s.io", "", [FieldError(
            "fieldValidation", "Unsupported value", value, 'supported values: "", "Ignore", "Strict", "Warn"')])
    return value


def decode_body(res: Resource, body: bytes, method: str, field_validation: str | None = None,
                name: str | None = None) -> tuple[dict, list[str]]:
    """A create (POST), update (PUT) or merge patch (PATCH) body for `res`:
    returns (object to admit, warnings for `Warning` headers) or raises the
    ApiError kube-apiserver would. A patch keeps its nulls (they delete)."""
    directive = validation_directive(method, field_validation)
    value = parse_json(body)
    patch = method == "PATCH"
    try:
        obj, strict = decode_typed(value, res.kind, patch=patch)
    except DecodeError as e:
        if patch:  # upstream decodes the patched object and reports it at `patch`
            raise _patch_invalid(res, name, body, str(e)) from None
        if str(e).startswith("couldn't get version/kind"):
            raise bad_request(str(e)) from None
        raise bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {e}') from None
    if not strict or directive == IGNORE:
        return obj, []
    if directive == WARN:
        return obj, strict
    message = "strict decoding error: " + ", ".join(strict)
    if patch:
        raise _patch_invalid(res, name, body, message)
    raise bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {message}')


def _patch_invalid(res: Resource, name: str | None, body: bytes, detail: str) -> Invalid:
    return Invalid(res.kind, name or "", [FieldError("patch", "Invalid value", body.decode("utf-8", "replace"),
                                                     detail)])


def warning_header(text: str) -> str:
    """A `Warning` header value as apiserver writes it (RFC 7234 warn-code 299,
    no agent); non-ASCII and control characters escaped so it stays one header line."""
    quoted = json.dumps(text)  # escapes " \ and control characters, ASCII-only
    return f"299 - {quoted}"
