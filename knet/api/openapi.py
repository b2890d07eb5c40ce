"""The OpenAPI documents of the served kinds: v3 per group-version, v2 whole.

kubectl reads them rather than its compiled-in types: `kubectl apply` asks
/openapi/v3 whether a kind's PATCH takes the `fieldValidation` parameter (if
it does, validation is left to the server, which knet/api/decode.py does;
if it cannot tell, kubectl falls back to validating client side against
/openapi/v2), computes its strategic merge patches from the
x-kubernetes-patch-strategy and -merge-key extensions of the v3 schemas, and
`kubectl explain` prints the v3 schemas' types and descriptions.

Everything here is derived from the Go field schema in knet/api/schema.py
(types), the list and patch semantics strategic merge patch and server-side
apply use (knet/api/patchmeta.py) and the kinds' records in resources.py
(paths, verbs, GVKs); the descriptions are upstream's (knet/api/fielddocs.py).
Definition names are upstream's (io.k8s.api.core.v1.Pod); kinds of CRD-shaped
groups (network-policy-api's policy.networking.k8s.io) are published as
kube-apiserver publishes a CRD's schema: named by their reversed group, their
fields inline, merge patches only.

Each document is built once, on first request, and kept encoded with its
ETag (SHA-512 of the bytes, as kube-openapi's handler3 computes it); the v3
index names every group-version document by a URL carrying that hash, so
clients cache documents on disk for as long as the hash stays the same.
Pure: no I/O, no server state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from email.utils import formatdate
from functools import lru_cache

from knet.api import errors, patchmeta, schema
from knet.api.discovery import SUBRESOURCES, subresources_of
from knet.api.resources import RESOURCES, Resource

# Groups whose kinds upstream serves as CustomResourceDefinitions.
CRD_GROUPS = frozenset({"policy.networking.k8s.io"})
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# Go types with a JSON form of their own: their definitions.
_SPECIAL = {
    "IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "Time": _META + "Time",
    "MicroTime": _META + "MicroTime",
}
_SPECIAL_SCHEMAS = {
    "IntOrString": {"description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON "
                    "or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows "
                    "you to have, for example, a JSON field that can accept a name or number.",
                    "format": "int-or-string"},
    "Quantity": {"description": "Quantity is a fixed-point representation of a number. It provides convenient "
                 "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\n"
                 "The serialization format is:\n\n```\n<quantity>        ::= <signedNumber><suffix>\n\n\t"
                 "(Note that <suffix> may be empty, from the \"\" case in <decimalSI>.)\n\n<digit>           "
                 "::= 0 | 1 | ... | 9 <digits>          ::= <digit> | <digit><digits> <number>          ::= "
                 "<digits> | <digits>.<digits> | <digits>. | .<digits> <sign>            ::= \"+\" | \"-\" "
                 "<signedNumber>    ::= <number> | <sign><number> <suffix>          ::= <binarySI> | "
                 "<decimalExponent> | <decimalSI> <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t"
                 "(International System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n"
                 "<decimalSI>       ::= m | \"\" | k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but "
                 "1000 = 1k; I didn't choose the capitalization.)\n\n<decimalExponent> ::= \"e\" <signedNumber> "
                 "| \"E\" <signedNumber>\n```"},
    "Time": {"description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and "
             "JSON.  Wrappers are provided for many of the factory methods that the time package offers.",
             "type": "string", "format": "date-time"},
    "MicroTime": {"description": "MicroTime is version of Time with microsecond level precision.",
                  "type": "string", "format": "date-time"},
}
_SCALARS = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "float64": {"type": "number", "format": "double"},
    "bytes": {"type": "string", "format": "byte"},
}
# A field knet keeps as it comes (volume sources it never reads, ...): any JSON.
_ANY = {"x-kubernetes-preserve-unknown-fields": True}
GENERIC_DESCRIPTION = "(no description: a field knet accepts as Kubernetes declares it)"


# =============================================================================
# Definitions: the Go structs as JSON schemas
# =============================================================================


def _closure(roots: Iterable[str]) -> list[str]:
    """The structs reachable from `roots`, in the order first met."""
    seen: dict[str, None] = {}
    stack = list(roots)[::-1]
    while stack:
        name = stack.pop()
        if name in seen or name not in schema.STRUCTS:
            continue
        seen[name] = None
        for t in reversed(list(schema.STRUCTS[name].values())):
            stack.append(_element(t))
    return list(seen)


def _element(t: str) -> str:
    """The struct or scalar at the bottom of a type expression."""
    while True:
        t = schema.ALIASES.get(t, t)
        if t.startswith("[]"):
            t = t[2:]
        elif t.startswith("map[string]"):
            t = t[len("map[string]"):]
        else:
            return t


def _group_prefix(group: str, version: str) -> str:
    if not group or group == "core":
        return f"io.k8s.api.core.{version}."
    if group in CRD_GROUPS:
        return ".".join(reversed(group.split("."))) + f".{version}."
    return f"io.k8s.api.{group.split('.')[0]}.{version}."


@lru_cache(maxsize=4)
def definition_names(records: tuple[Resource, ...] = RESOURCES) -> dict[str, str]:
    """Each struct's definition name, as upstream names it by its Go package:
    meta/v1's own, the kind's group's for what only that group's kinds use,
    core/v1 for what kinds of several groups share (PodSpec)."""
    groups: dict[str, set[tuple[str, str]]] = {}
    for r in records:
        for s in _closure([r.kind]):
            groups.setdefault(s, set()).add((r.group, r.version))
    names = {}
    for s in schema.STRUCTS:
        found = groups.get(s, set())
        package = schema.GO_PACKAGES.get(s)
        if package == "meta/v1":
            prefix = _META
        elif package:
            prefix = _group_prefix(*package.split("/"))
        elif len(found) != 1:
            prefix = "io.k8s.api.core.v1."
        else:
            prefix = _group_prefix(*next(iter(found)))
        names[s] = prefix + s
    names.update(_SPECIAL)
    return names


class _Builder:
    """Schemas in one document's style: v3 wraps a described reference in
    allOf and refers to #/components/schemas/, v2 puts the description beside
    the $ref and refers to #/definitions/ (as kube-openapi writes each)."""

    def __init__(self, v3: bool, names: dict[str, str]):
        self.v3 = v3
        self.names = names
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"

    def ref(self, name: str) -> dict:
        return {"$ref": self.prefix + self.names[name]}

    def field(self, struct: str, name: str, t: str, inline: bool) -> dict:
        """The schema of one field of `struct`, with its description and its
        list, map and patch semantics."""
        out = self.type_schema(t, inline)
        key = (struct, name)
        description = _description(struct, name)
        if "$ref" in out and self.v3:
            out = {"allOf": [out]}
        if description:
            out["description"] = description
        enum = _enum(struct, name)
        if enum and out.get("type") == "string":
            out["enum"] = list(enum)
        if t.startswith("[]"):
            list_type = patchmeta.LIST_TYPES.get(key)
            if list_type:
                out["x-kubernetes-list-type"] = list_type[0]
                if list_type[0] == "map":
                    out["x-kubernetes-list-map-keys"] = list(list_type[1:])
        strategy = patchmeta.STRATEGIC.get(key)
        if strategy and not inline:  # CRDs take no strategic merge patch: their schemas carry no strategy
            if strategy[1]:
                out["x-kubernetes-patch-merge-key"] = strategy[1]
            out["x-kubernetes-patch-strategy"] = ",".join(strategy[0])
        if key in patchmeta.ATOMIC_MAPS:
            out["x-kubernetes-map-type"] = "atomic"
        return out

    def type_schema(self, t: str, inline: bool) -> dict:
        t = schema.ALIASES.get(t, t)
        if t.startswith("[]"):
            items = self.type_schema(t[2:], inline)
            if "$ref" in items and self.v3:
                items = {"allOf": [items], "default": {}}
            return {"type": "array", "items": items}
        if t.startswith("map[string]"):
            return {"type": "object", "additionalProperties": self.type_schema(t[len("map[string]"):], inline)}
        if t in _SCALARS:
            return dict(_SCALARS[t])
        if t in schema.NAMED_STRINGS:
            return {"type": "string"}
        if t == "any":  # v2: a schema with no type, which kubectl's validation takes as any value
            return dict(_ANY) if self.v3 else {}
        if t in _SPECIAL:
            if inline:  # a CRD's schema spells these out
                if t in ("Time", "MicroTime"):
                    return {"type": "string", "format": "date-time"}
                return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
            return self.ref(t)
        if t in schema.STRUCTS:
            if inline and t != "ObjectMeta":
                return self.struct(t, inline=True)
            return self.ref(t)
        raise AssertionError(f"schema names an unknown type {t!r}")

    def struct(self, name: str, inline: bool = False) -> dict:
        """A struct's definition (or, inline, its schema in place)."""
        fields = schema.STRUCTS[name]
        out: dict = {}
        description = _description(name, "")
        if description:
            out["description"] = description
        out["type"] = "object"
        if fields:
            out["properties"] = {f: self.field(name, f, t, inline) for f, t in sorted(fields.items())}
        required = [f for f in _required(name) if f in fields]
        if required:
            out["required"] = required
        if name in patchmeta.ATOMIC_STRUCTS:
            out["x-kubernetes-map-type"] = "atomic"
        return out

    def special(self, name: str) -> dict:
        out = dict(_SPECIAL_SCHEMAS[name])
        if name in ("IntOrString", "Quantity") and self.v3:
            out["oneOf"] = [{"type": "integer" if name == "IntOrString" else "string"},
                            {"type": "string" if name == "IntOrString" else "number"}]
        elif name in ("IntOrString", "Quantity"):
            out["type"] = "string"
        return out


def _description(struct: str, field: str) -> str:
    from knet.api.fielddocs import DESCRIPTIONS
    text = DESCRIPTIONS.get(struct, {}).get(field, "")
    if not text and field and field not in ("kind", "apiVersion"):
        return GENERIC_DESCRIPTION
    return text


def _enum(struct: str, field: str) -> tuple[str, ...]:
    from knet.api.fielddocs import ENUMS
    return ENUMS.get(struct, {}).get(field, ())


def _required(struct: str) -> tuple[str, ...]:
    from knet.api.fielddocs import REQUIRED
    return REQUIRED.get(struct, ())


def _gvk(r: Resource, kind: str | None = None) -> dict:
    return {"group": r.group, "kind": kind or r.kind, "version": r.version}


def _definitions(b: _Builder, kinds: list[Resource], extra: Iterable[str] = ()) -> dict[str, dict]:
    """The definitions a document of `kinds` needs: each kind (with its GVK),
    its list kind, what they reach, and the meta types the paths name."""
    out: dict[str, dict] = {}
    crd = [r for r in kinds if r.group in CRD_GROUPS]
    typed = [r for r in kinds if r.group not in CRD_GROUPS]
    bodies = [SUBRESOURCES[sub][0] for r in kinds for sub in subresources_of(r)]
    roots = [r.kind for r in typed] + ["ObjectMeta", "ListMeta", "Status", "DeleteOptions", "Patch", *extra,
                                       *(b for b in bodies if b in schema.STRUCTS)]
    for name in _closure(roots):
        out[b.names[name]] = b.struct(name)
    for r in crd:  # a CRD's schema is one tree: metadata by reference, the rest inline
        out[b.names[r.kind]] = b.struct(r.kind, inline=True)
    for special in ("IntOrString", "Quantity", "Time", "MicroTime"):
        out[b.names[special]] = b.special(special)
    for r in kinds:
        out[b.names[r.kind]]["x-kubernetes-group-version-kind"] = [_gvk(r)]
        out[b.names[r.kind] + "List"] = _list_schema(b, r)
    return {k: out[k] for k in sorted(out)}


def _list_schema(b: _Builder, r: Resource) -> dict:
    items = b.ref(r.kind)
    metadata = b.ref("ListMeta")
    if b.v3:
        items = {"allOf": [items], "default": {}}
        metadata = {"allOf": [metadata], "default": {}}
    metadata["description"] = ("Standard list metadata. More info: https://git.k8s.io/community/contributors/"
                               "devel/sig-architecture/api-conventions.md#types-kinds")
    return {
        "description": f"{r.list_kind} is a list of {r.kind} objects.",
        "type": "object",
        "properties": {
            "apiVersion": {"description": _description(r.kind, "apiVersion"), "type": "string"},
            "items": {"description": f"List of {r.plural}.", "type": "array", "items": items},
            "kind": {"description": _description(r.kind, "kind"), "type": "string"},
            "metadata": metadata,
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [_gvk(r, r.list_kind)],
    }


# =============================================================================
# Paths: the operations of each kind, with their parameters
# =============================================================================


def _query(name: str, kind: str, description: str) -> dict:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "string", "When present, indicates that modifications should not be persisted. An "
                  "invalid or unrecognized dryRun directive will result in an error response and no further "
                  "processing of the request. Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _query("fieldManager", "string", "fieldManager is a name associated with the actor or entity "
                        "that is making these changes. The value must be less than or 128 characters long, and "
                        "only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any "
    "unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field "
    "that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning "
    "via the standard warning response header for each unknown field that is dropped from the object, and for "
    "each duplicate field that is encountered. The request will still succeed if there are no other errors, and "
    "will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail "
    "the request with a BadRequest error if any unknown fields would be dropped from the object, or if any "
    "duplicate fields are present. The error returned from the server will contain all unknown and duplicate "
    "fields encountered.")
_FORCE = _query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire "
                "conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.")
_PRETTY = _query("pretty", "string", "If 'true', then the output is pretty printed.")
_LIST = [
    _query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". "
           "Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's "
           "discretion."),
    _query("continue", "string", "The continue option should be set when retrieving more results from the "
           "server."),
    _query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. "
           "Defaults to everything."),
    _query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. "
           "Defaults to everything."),
    _query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    _query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request "
           "may be served from. Defaults to unset"),
    _query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to "
           "list calls. Defaults to unset"),
    _query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In "
           "that case, the watch stream will begin with synthetic events to produce the current state of objects "
           "in the collection."),
    _query("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, "
           "regardless of any activity or inactivity."),
    _query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, "
           "update, and remove notifications. Specify resourceVersion."),
]
_DELETE = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted. "
           "Value must be non-negative integer. The value zero indicates delete immediately."),
    _query("propagationPolicy", "string", "Whether and how garbage collection will be performed."),
]
_LOG = [
    _query("container", "string", "The container for which to stream logs. Defaults to only container if there is "
           "one container in the pod."),
    _query("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
    _query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the "
           "log output."),
    _query("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
    _query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show "
           "logs."),
    _query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
    _query("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every "
           "line of log output. Defaults to false."),
]
_STREAMS = [
    _query("container", "string", "The container in which to execute the command. Defaults to only container if "
           "there is only one container in the pod."),
    _query("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
    _query("stdin", "boolean", "Redirect the standard input stream of the pod for this call. Defaults to false."),
    _query("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
    _query("tty", "boolean", "TTY if true indicates that a tty will be allocated for the exec call. Defaults to "
           "false."),
]
_CONNECT = {
    "exec": [_query("command", "string", "Command is the remote command to execute. argv array. Not executed "
                    "within a shell."), *_STREAMS],
    "attach": _STREAMS,
    "portforward": [_query("ports", "integer", "List of ports to forward Required when using WebSockets")],
}
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")


def _path_param(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": what,
            "schema": {"type": "string", "uniqueItems": True}}


def _gv_word(r: Resource) -> str:
    """The group-version as operation IDs spell it: CoreV1, AppsV1, PolicyNetworkingK8sIoV1alpha1."""
    if not r.group:
        return "Core" + r.version.capitalize()
    if r.group in CRD_GROUPS:
        return "".join(p.capitalize() for p in r.group.split(".")) + r.version.capitalize()
    return r.group.split(".")[0].capitalize() + r.version.capitalize()


def _ops_id(verb: str, r: Resource, namespaced: bool, suffix: str = "") -> str:
    return f"{verb}{_gv_word(r)}{'Namespaced' if namespaced else ''}{r.kind}{suffix}"


class _Paths:
    """The operations of a document in its style (v3 requestBody/content,
    v2 body parameters/consumes/produces)."""

    def __init__(self, b: _Builder):
        self.b = b

    def _op(self, r: Resource, action: str, op_id: str, description: str, params: list[dict],
            response: str, codes: tuple[str, ...], body: str | None = None, body_types: Iterable[str] = ("*/*",),
            gvk: dict | None = None) -> dict:
        b = self.b
        tag = (r.group.split(".")[0] if r.group else "core") + "_" + r.version
        op: dict = {"description": description, "operationId": op_id, "tags": [tag]}
        reasons = {"200": "OK", "201": "Created", "202": "Accepted"}
        produces = "*/*" if response == "string" else "application/json"
        if b.v3:
            op["parameters"] = list(params)
            if body:
                op["requestBody"] = {"content": {t: {"schema": b.ref(body)} for t in body_types}, "required": True}
            op["responses"] = {c: {"description": reasons[c], "content": {produces: {
                "schema": self._resp(response)}}} for c in codes}
        else:
            params = list(params)
            if body:
                params.append({"name": "body", "in": "body", "required": True, "schema": b.ref(body)})
            op["parameters"] = [self._v2_param(p) for p in params]
            op["consumes"] = list(body_types) if body else ["*/*"]
            op["produces"] = [produces]
            op["schemes"] = ["https"]
            op["responses"] = {c: {"description": reasons[c], "schema": self._resp(response)} for c in codes}
        op["responses"]["401"] = {"description": "Unauthorized"}
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk or _gvk(r)
        return op

    def _resp(self, name: str) -> dict:
        if name == "string":
            return {"type": "string"}
        if name.endswith("List") and name[:-4] in schema.STRUCTS and name not in schema.STRUCTS:
            return {"$ref": self.b.prefix + self.b.names[name[:-4]] + "List"}
        return self.b.ref(name)

    @staticmethod
    def _v2_param(p: dict) -> dict:
        if p.get("in") == "body":
            return p
        out = {k: v for k, v in p.items() if k != "schema"}
        out.update(p["schema"])
        return out

    def _subresource(self, r: Resource, sub: str, nsd: bool, patch_types: list[str]) -> dict[str, dict]:
        """The operations of one subresource, as upstream lists them: status
        and scale read, replaced and patched; binding and eviction created;
        log read; exec, attach and portforward connected (upgraded) by GET or POST."""
        kind, group, version = SUBRESOURCES[sub][:3]
        gvk = {"group": group, "kind": kind, "version": version or "v1"} if kind else None
        k, title = r.kind, sub.capitalize()
        if sub in ("status", "scale"):
            body = r.kind if sub == "status" else kind
            return {
                "get": self._op(r, "get", _ops_id("read", r, nsd, title), f"read {sub} of the specified {k}", [],
                                body, ("200",), gvk=gvk),
                "put": self._op(r, "put", _ops_id("replace", r, nsd, title), f"replace {sub} of the specified {k}",
                                [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], body, ("200", "201"), body=body,
                                gvk=gvk),
                "patch": self._op(r, "patch", _ops_id("patch", r, nsd, title),
                                  f"partially update {sub} of the specified {k}",
                                  [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE], body, ("200", "201"),
                                  body="Patch", body_types=patch_types, gvk=gvk),
            }
        if sub in ("binding", "eviction"):
            return {"post": self._op(r, "post", _ops_id("create", r, nsd, title), f"create {sub} of a {k}",
                                     [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], kind, ("200", "201", "202"),
                                     body=kind, gvk=gvk)}
        if sub == "log":
            return {"get": self._op(r, "get", _ops_id("read", r, nsd, title), f"read log of the specified {k}",
                                    _LOG, "string", ("200",), gvk=gvk)}
        params = _CONNECT.get(sub, [])
        return {m.lower(): self._op(r, "connect", f"connect{_gv_word(r)}{m}{'Namespaced' if nsd else ''}{k}{title}",
                                    f"connect {m} requests to {sub} of {k}", params, "string", ("200",), gvk=gvk)
                for m in ("Get", "Post")}

    def resource(self, r: Resource) -> dict[str, dict]:
        """Every path of one kind: its collection (namespaced and across
        namespaces), an object, and its status subresource."""
        base = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
        ns = [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
        name = [_path_param("name", f"name of the {r.kind}")]
        plural = r.plural
        patch_types = [t for t in _PATCH_TYPES if r.kind not in patchmeta.NO_STRATEGIC or "strategic" not in t]
        collection = f"{base}/namespaces/{{namespace}}/{plural}" if r.namespaced else f"{base}/{plural}"
        scope = ns if r.namespaced else []
        k, nsd = r.kind, r.namespaced
        paths = {
            collection: {
                "get": self._op(r, "list", _ops_id("list", r, nsd), f"list or watch objects of kind {k}", _LIST,
                                k + "List", ("200",)),
                "post": self._op(r, "post", _ops_id("create", r, nsd), f"create a {k}",
                                 [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], k, ("200", "201", "202"), body=k),
                "delete": self._op(r, "deletecollection", _ops_id("deleteCollection", r, nsd),
                                   f"delete collection of {k}", _LIST + _DELETE, "Status", ("200",),
                                   body="DeleteOptions"),
                "parameters": scope + [_PRETTY],
            },
            f"{collection}/{{name}}": {
                "get": self._op(r, "get", _ops_id("read", r, nsd), f"read the specified {k}", [], k, ("200",)),
                "put": self._op(r, "put", _ops_id("replace", r, nsd), f"replace the specified {k}",
                                [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION], k, ("200", "201"), body=k),
                "patch": self._op(r, "patch", _ops_id("patch", r, nsd), f"partially update the specified {k}",
                                  [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE], k, ("200", "201"),
                                  body="Patch", body_types=patch_types),
                "delete": self._op(r, "delete", _ops_id("delete", r, nsd), f"delete a {k}", _DELETE, "Status",
                                   ("200", "202"), body="DeleteOptions"),
                "parameters": name + scope + [_PRETTY],
            },
        }
        if nsd:
            paths[f"{base}/{plural}"] = {
                "get": self._op(r, "list", _ops_id("list", r, False, "ForAllNamespaces"),
                                f"list or watch objects of kind {k}", _LIST, k + "List", ("200",)),
                "parameters": [_PRETTY],
            }
        for sub in subresources_of(r):
            paths[f"{collection}/{{name}}/{sub}"] = {**self._subresource(r, sub, nsd, patch_types),
                                                     "parameters": name + scope + [_PRETTY]}
        # Only the verbs the kind serves (a Namespace has no deletecollection).
        where = {"list": [(collection, "get"), (f"{base}/{plural}", "get")], "create": [(collection, "post")],
                 "deletecollection": [(collection, "delete")], "get": [(f"{collection}/{{name}}", "get")],
                 "update": [(f"{collection}/{{name}}", "put")], "patch": [(f"{collection}/{{name}}", "patch")],
                 "delete": [(f"{collection}/{{name}}", "delete")]}
        for verb, places in where.items():
            if verb not in r.served_verbs:
                for path, method in places:
                    paths.get(path, {}).pop(method, None)
        paths = {p: item for p, item in paths.items() if set(item) - {"parameters"}}
        if not self.b.v3:
            for item in paths.values():
                item["parameters"] = [self._v2_param(p) for p in item["parameters"]]
        return paths


# =============================================================================
# Documents
# =============================================================================


def group_version_path(r: Resource) -> str:
    """The key of a kind's document in the v3 index: "api/v1", "apis/apps/v1"."""
    return f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"


def _security(doc: dict, v3: bool) -> None:
    if v3:
        doc.setdefault("components", {})["securitySchemes"] = {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                            "description": "Bearer Token authentication"}}
    else:
        doc["securityDefinitions"] = {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                                                      "description": "Bearer Token authentication"}}
    doc["security"] = [{"BearerToken": []}]


@lru_cache(maxsize=4)
def v3_documents(records: tuple[Resource, ...] = RESOURCES) -> dict[str, dict]:
    """Each group-version's OpenAPI 3.0 document, keyed as the v3 index keys them."""
    names = definition_names(records)
    by_gv: dict[str, list[Resource]] = {}
    for r in records:
        by_gv.setdefault(group_version_path(r), []).append(r)
    docs = {}
    for gv, kinds in sorted(by_gv.items()):
        b = _Builder(True, names)
        paths: dict[str, dict] = {}
        for r in kinds:
            paths.update(_Paths(b).resource(r))
        doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"},  # as upstream's
               "paths": dict(sorted(paths.items())), "components": {"schemas": _definitions(b, kinds)}}
        _security(doc, True)
        docs[gv] = doc
    return docs


@lru_cache(maxsize=4)
def v2_document(records: tuple[Resource, ...] = RESOURCES) -> dict:
    """The Swagger 2.0 document of every served kind."""
    from knet.api.server import VERSION

    b = _Builder(False, definition_names(records))
    paths: dict[str, dict] = {}
    for r in records:
        paths.update(_Paths(b).resource(r))
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
           "paths": dict(sorted(paths.items())), "definitions": _definitions(b, list(records))}
    _security(doc, False)
    return doc


# =============================================================================
# Serving: encoded once, with ETags, as kube-openapi's handlers serve them
# =============================================================================


class Encoded:
    __slots__ = ("data", "etag", "modified")

    def __init__(self, doc: dict | None = None, data: bytes | None = None):
        self.data = data if data is not None else json.dumps(doc, separators=(",", ":")).encode()
        self.etag = hashlib.sha512(self.data).hexdigest().upper()
        self.modified = formatdate(time.time(), usegmt=True)


@lru_cache(maxsize=64)
def _encoded_v3(gv: str, records: tuple[Resource, ...] = RESOURCES) -> Encoded | None:
    doc = v3_documents(records).get(gv)
    return Encoded(doc) if doc is not None else None


@lru_cache(maxsize=4)
def _encoded_v2(records: tuple[Resource, ...] = RESOURCES) -> Encoded:
    return Encoded(v2_document(records))


@lru_cache(maxsize=4)
def _encoded_v2_protobuf(records: tuple[Resource, ...] = RESOURCES) -> Encoded:
    from knet.api import swaggerpb
    return Encoded(data=swaggerpb.document(v2_document(records)))


@lru_cache(maxsize=4)
def _encoded_index(records: tuple[Resource, ...] = RESOURCES) -> Encoded:
    """/openapi/v3: each document's URL with its hash (handler3's OpenAPIV3Discovery)."""
    paths = {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_encoded_v3(gv, records).etag}"}
             for gv in v3_documents(records)}
    return Encoded({"paths": paths})


_JSON = ("application/json", "application/*", "*/*", "*")
V2_PROTOBUF = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")


def _negotiate(accept: str, offered: tuple[str, ...]) -> str | None:
    """The first of "json" and `offered` media types the Accept header
    admits, in its order of preference (q, then as listed); no header admits JSON."""
    if not accept.strip():
        return "json"
    clauses = []
    for i, clause in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in clause.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        clauses.append((-q, i, media.lower()))
    for q, _, media in sorted(clauses):
        if q < 0 and media in _JSON:
            return "json"
        if q < 0 and media in offered:
            return media
    return None


def _accepts_json(accept: str) -> bool:
    return _negotiate(accept, ()) == "json"


Response = tuple[int, list[tuple[str, str]], bytes]


def _answer(doc: Encoded, headers: dict[str, str], extra: list[tuple[str, str]] = (),
            content_type: str = "application/json") -> Response:
    out = [("Content-Type", content_type), ("Etag", f'"{doc.etag}"'), ("Last-Modified", doc.modified),
           ("Vary", "Accept"), *extra]
    match = headers.get("if-none-match", "")
    if match and (match.strip() == "*" or f'"{doc.etag}"' in [m.strip() for m in match.split(",")]):
        return 304, out, b""
    return 200, out + [("Content-Length", str(len(doc.data)))], doc.data


def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str],
          records: tuple[Resource, ...] = RESOURCES) -> Response:
    """Answer a request under /openapi/: (status, headers, body). The v2
    document is served as JSON or in gnostic's protobuf form (what client-go
    asks for), the v3 ones as JSON; an Accept header that admits none of
    those is 406 Not Acceptable, as kube-openapi answers it."""
    if method not in ("GET", "HEAD"):
        raise errors.ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
    code, out, body = _serve(path, query, headers, records)
    return code, out, b"" if method == "HEAD" else body


def _serve(path: str, query: dict[str, str], headers: dict[str, str], records: tuple[Resource, ...]) -> Response:
    accept = headers.get("accept", "")
    path = path.rstrip("/")
    if path == "/openapi/v2":
        wanted = _negotiate(accept, V2_PROTOBUF)
        if wanted is None:
            return _not_acceptable()
        if wanted == "json":
            return _answer(_encoded_v2(records), headers)
        return _answer(_encoded_v2_protobuf(records), headers, content_type=V2_PROTOBUF[1])
    if path == "/openapi/v3":
        return _answer(_encoded_index(records), headers)
    if path.startswith("/openapi/v3/"):
        gv = path[len("/openapi/v3/"):]
        doc = _encoded_v3(gv, records)
        if doc is None:
            raise errors.not_found("path", path)
        if not _accepts_json(accept):
            return _not_acceptable()
        wanted = query.get("hash")
        if wanted and wanted != doc.etag:  # an old hash: where the current document is
            location = f"/openapi/v3/{gv}?hash={doc.etag}"
            return 301, [("Location", location), ("Content-Length", "0")], b""
        extra = []
        if wanted:
            expires = formatdate(time.time() + 365 * 24 * 3600, usegmt=True)
            extra = [("Cache-Control", "public, immutable"), ("Expires", expires)]
        return _answer(doc, headers, extra)
    raise errors.not_found("path", path)


def _not_acceptable() -> Response:
    body = b"only application/json is served here"
    return 406, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))], body
