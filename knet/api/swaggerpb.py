"""The Swagger 2.0 document in gnostic's protobuf form (openapi_v2.Document),
which is the only form client-go asks /openapi/v2 for
(`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).

kubectl reads it when the v3 documents cannot answer: client-side
validation of a `kind: List` manifest (apply -f of `kubectl get -o yaml`'s
output), `kubectl explain --output=plaintext-openapiv2`, and its fallback
paths. Only the parts of gnostic-models' OpenAPIv2.proto that knet's
document uses are written, by their field numbers; vendor extensions and
enum values are carried as Any{yaml}, where JSON text is valid YAML (client-go
reads them with a YAML decoder).

Pure: a JSON-shaped document in, bytes out.
"""

from __future__ import annotations

import json


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(field: int, data: bytes) -> bytes:
    """A length-delimited field (a string or an embedded message); proto3
    leaves empty strings out, but an empty message that was set is written."""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field: int, value: str | None) -> bytes:
    return _bytes(field, value.encode()) if value else b""


def _strs(field: int, values) -> bytes:
    return b"".join(_bytes(field, v.encode()) for v in values or ())


def _bool(field: int, value: bool | None) -> bytes:
    return _varint(field << 3) + b"\x01" if value else b""


def _any(value: object) -> bytes:
    """Any{yaml = 2}."""
    return _str(2, json.dumps(value, separators=(",", ":")))


def _extensions(field: int, node: dict) -> bytes:
    """NamedAny{name = 1, value = 2} for each x- key."""
    return b"".join(_bytes(field, _str(1, k) + _bytes(2, _any(v))) for k, v in node.items() if k.startswith("x-"))


def schema(s: dict) -> bytes:
    """openapi_v2.Schema."""
    out = [_str(1, s.get("$ref")), _str(2, s.get("format")), _str(4, s.get("description"))]
    if "default" in s:
        out.append(_bytes(5, _any(s["default"])))
    out.append(_bool(16, s.get("uniqueItems")))
    out.append(_strs(19, s.get("required")))
    out += [_bytes(20, _any(v)) for v in s.get("enum", ())]
    additional = s.get("additionalProperties")
    if isinstance(additional, dict):
        out.append(_bytes(21, _bytes(1, schema(additional))))  # AdditionalPropertiesItem{schema = 1}
    elif isinstance(additional, bool):
        out.append(_bytes(21, _varint(2 << 3) + (b"\x01" if additional else b"\x00")))
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out.append(_bytes(22, _strs(1, types)))  # TypeItem{value = 1}
    if "items" in s:
        items = s["items"] if isinstance(s["items"], list) else [s["items"]]
        out.append(_bytes(23, b"".join(_bytes(1, schema(i)) for i in items)))  # ItemsItem{schema = 1}
    out += [_bytes(24, schema(a)) for a in s.get("allOf", ())]
    if "properties" in s:  # Properties{additional_properties = 1: NamedSchema{name = 1, value = 2}}
        out.append(_bytes(25, b"".join(_bytes(1, _str(1, k) + _bytes(2, schema(v)))
                                       for k, v in s["properties"].items())))
    out.append(_extensions(31, s))
    return b"".join(out)


def _parameter(p: dict) -> bytes:
    """ParametersItem{parameter = 1: Parameter{body = 1 | non_body = 2}}."""
    if p["in"] == "body":
        body = (_str(1, p.get("description")) + _str(2, p["name"]) + _str(3, "body") + _bool(4, p.get("required"))
                + _bytes(5, schema(p["schema"])))
        return _bytes(1, _bytes(1, body))
    if p["in"] == "query":  # NonBodyParameter{query_parameter_sub_schema = 3}
        sub = (_bool(1, p.get("required")) + _str(2, "query") + _str(3, p.get("description")) + _str(4, p["name"])
               + _str(6, p.get("type")) + _bool(20, p.get("uniqueItems")))
        return _bytes(1, _bytes(2, _bytes(3, sub)))
    if p["in"] == "path":  # NonBodyParameter{path_parameter_sub_schema = 4}
        sub = (_bool(1, p.get("required")) + _str(2, "path") + _str(3, p.get("description")) + _str(4, p["name"])
               + _str(5, p.get("type")) + _bool(19, p.get("uniqueItems")))
        return _bytes(1, _bytes(2, _bytes(4, sub)))
    raise ValueError(f"a parameter in {p['in']!r} is not written")


def _operation(op: dict) -> bytes:
    responses = b"".join(
        # Responses{response_code = 1: NamedResponseValue{name, ResponseValue{response = 1: Response}}}
        _bytes(1, _str(1, code) + _bytes(2, _bytes(1, _str(1, r.get("description"))
                                                    + (_bytes(2, _bytes(1, schema(r["schema"])))
                                                       if "schema" in r else b""))))
        for code, r in op.get("responses", {}).items())
    return b"".join([
        _strs(1, op.get("tags")), _str(3, op.get("description")), _str(5, op.get("operationId")),
        _strs(6, op.get("produces")), _strs(7, op.get("consumes")),
        b"".join(_bytes(8, _parameter(p)) for p in op.get("parameters", ())),
        _bytes(9, responses), _strs(10, op.get("schemes")), _extensions(13, op),
    ])


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: dict) -> bytes:
    out = [_bytes(n, _operation(item[m])) for m, n in _METHODS.items() if m in item]
    out += [_bytes(9, _parameter(p)) for p in item.get("parameters", ())]
    return b"".join(out)


def document(doc: dict) -> bytes:
    """openapi_v2.Document of a Swagger 2.0 document as openapi.v2_document builds it."""
    info = doc.get("info", {})
    paths = b"".join(_bytes(2, _str(1, p) + _bytes(2, _path_item(item))) for p, item in doc["paths"].items())
    definitions = b"".join(_bytes(1, _str(1, k) + _bytes(2, schema(v))) for k, v in doc["definitions"].items())
    security = b"".join(
        # SecurityRequirement{NamedStringArray{name, StringArray{value}}}
        _bytes(12, b"".join(_bytes(1, _str(1, k) + _bytes(2, _strs(1, v))) for k, v in req.items()))
        for req in doc.get("security", ()))
    schemes = b"".join(
        # SecurityDefinitions{NamedSecurityDefinitionsItem{name, SecurityDefinitionsItem{api_key_security = 2}}}
        _bytes(1, _str(1, k) + _bytes(2, _bytes(2, _str(1, v.get("type")) + _str(2, v.get("name"))
                                                + _str(3, v.get("in")) + _str(4, v.get("description")))))
        for k, v in doc.get("securityDefinitions", {}).items())
    return b"".join([
        _str(1, doc["swagger"]), _bytes(2, _str(1, info.get("title")) + _str(2, info.get("version"))),
        _bytes(8, paths), _bytes(9, definitions), security, _bytes(13, schemes) if schemes else b"",
    ])
