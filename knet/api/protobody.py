"""The few request bodies kubectl's typed clients send only as protobuf,
turned into the JSON the rest of the server decodes.

kubectl's typed clientset (`auth can-i`, `auth whoami`, `drain`'s evictions
and deletes) sends `Content-Type: application/vnd.kubernetes.protobuf` and,
unlike a CBOR body, does not fall back to JSON on a 415. knet serves JSON; it
reads these bodies only: the apimachinery envelope (`k8s\\x00` + runtime.Unknown)
and the messages of a handful of kinds, each field by its number from
k8s.io/api's generated.proto. Any other protobuf body is left alone, for the
server's 415.
"""

from __future__ import annotations

import json
import struct

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

# A message is {field number: (JSON name, type)}; a type is "string", "int64",
# "bool", "[]string", "map" (map<string,string>), "skip", or a message name.
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   5: ("uid", "string"), 6: ("resourceVersion", "string"), 11: ("labels", "map"),
                   12: ("annotations", "map"), 14: ("finalizers", "[]string")},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                    2: ("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                           4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"),
                           7: ("name", "string"), 8: ("fieldSelector", "skip"), 9: ("labelSelector", "skip")},
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int64"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"),
                      5: ("dryRun", "[]string"),
                      6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "bool")},
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
}

# The kinds read here, by the (apiVersion, kind) of their envelope.
KINDS = {("authorization.k8s.io/v1", "SelfSubjectAccessReview"), ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
         ("authentication.k8s.io/v1", "SelfSubjectReview"), ("policy/v1", "Eviction"), ("v1", "DeleteOptions"),
         ("meta.k8s.io/v1", "DeleteOptions")}


class WireError(ValueError):
    pass


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise WireError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A message's (field number, value) pairs in order: an int for varint and
    fixed-width fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            if i + 8 > len(data):
                raise WireError("truncated fixed64")
            value, i = struct.unpack_from("<Q", data, i)[0], i + 8
        elif wire == 5:
            if i + 4 > len(data):
                raise WireError("truncated fixed32")
            value, i = struct.unpack_from("<I", data, i)[0], i + 4
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise WireError("truncated field")
            value, i = data[i:i + size], i + size
        else:
            raise WireError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise WireError("a string field is not length-delimited")
    return value.decode("utf-8")


def decode(message: str, data: bytes) -> dict:
    """A message as its JSON form; empty strings and unset fields left out, as
    Go's omitempty leaves them out of the JSON."""
    schema = MESSAGES[message]
    out: dict = {}
    for number, value in fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "skip":
            continue
        if kind == "string":
            text = _text(value)
            if text:
                out[name] = text
            else:
                out.pop(name, None)
        elif kind == "bytes":
            out[name] = value if isinstance(value, bytes) else b""
        elif kind == "int64":
            if not isinstance(value, int):
                raise WireError(f"{name} is not a varint")
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "bool":
            out[name] = bool(value)
        elif kind == "[]string":
            out.setdefault(name, []).append(_text(value))
        elif kind == "map":
            entry = dict(fields(value if isinstance(value, bytes) else b""))
            out.setdefault(name, {})[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
        else:
            if not isinstance(value, bytes):
                raise WireError(f"{name} is not a message")
            out[name] = decode(kind, value)
    return out


def to_json(body: bytes) -> bytes | None:
    """The JSON of a protobuf body of a kind read here; None for anything else."""
    if not body.startswith(MAGIC):
        return None
    try:
        envelope = decode("Unknown", body[len(MAGIC):])
        meta = envelope.get("typeMeta") or {}
        api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
        if (api_version, kind) not in KINDS or envelope.get("contentEncoding"):
            return None
        obj = {"kind": kind, "apiVersion": api_version, **decode(kind, envelope.get("raw", b""))}
    except (WireError, UnicodeDecodeError, KeyError):
        return None
    return json.dumps(obj, separators=(",", ":")).encode()


def transcode(req: object) -> None:
    """Replace a protobuf request body of a kind read here by its JSON, so the
    request goes on as if the client had sent JSON."""
    headers = req.headers
    if headers.get("content-type", "").split(";")[0].strip().lower() != PROTOBUF or not req.body:
        return
    converted = to_json(req.body)
    if converted is not None:
        req.body = converted
        headers["content-type"] = "application/json"
