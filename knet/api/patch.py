"""PATCH as kube-apiserver serves it: the Content-Type names the patch.

  application/merge-patch+json            RFC 7386: maps merge, null deletes, lists replace
  application/json-patch+json             RFC 6902 operations (the jsonpatch library):
                                          add, remove, replace, move, copy, test
  application/strategic-merge-patch+json  lists merged on their Go merge keys, with
                                          directives (knet/api/strategic.py); what
                                          `kubectl apply` and `kubectl patch` send
  application/apply-patch+yaml            server-side apply (knet/api/fieldmanager.py):
                                          creates the object when it is absent

Whatever the type, the patched object is then decoded against the kind's
schema as a created object is (knet/api/decode.py): a wrong type is a 422 at
`patch`, an unknown field is refused, warned about or dropped as the
fieldValidation parameter says, and nothing is written on any error. Each
write records its field manager in metadata.managedFields. Errors carry
upstream's wording and codes: a malformed patch 400, one that cannot apply
(a failed `test`, a missing path) 422, an unknown patch type 415.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from knet.api import decode, errors, strategic
from knet.api.errors import ApiError, FieldError, Invalid
from knet.api.objects import merge_patch
from knet.api.patchmeta import NO_STRATEGIC
from knet.api.resources import Resource

if TYPE_CHECKING:
    from knet.api.registry import Registry

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# upstream's maximum operations in one JSON patch
MAX_JSON_PATCH_OPERATIONS = 10000


def accepted(res: Resource) -> list[str]:
    """The patch types a kind takes, in upstream's order (no strategic merge
    for a kind without Go struct info, as for custom resources)."""
    if res.kind in NO_STRATEGIC:
        return [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    return [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]


def patch_type(content_type: str | None, res: Resource) -> str:
    """The patch type a Content-Type names, or upstream's 415."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    kinds = accepted(res)
    if base not in kinds:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                       "accepted media types include: " + ", ".join(kinds))
    return base


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """upstream's managerOrUserAgent: the fieldManager parameter, else the
    user agent up to its first "/" (printable, at most 128 characters)."""
    if field_manager:
        return field_manager
    head = (user_agent or "").split("/", 1)[0]
    return "".join(c for c in head if c.isprintable())[:128]


def check_options(ptype: str, query: dict[str, str]) -> tuple[str | None, bool]:
    """PatchOptions as upstream's ValidatePatchOptions checks them:
    (fieldManager, force)."""
    manager = query.get("fieldManager")
    force_text = query.get("force")
    errs = []
    if force_text not in (None, "", "true", "false", "1", "0"):
        raise errors.bad_request(f"force: invalid value {force_text!r}: must be true or false")
    force = force_text in ("true", "1")
    if ptype == APPLY_PATCH:
        if not manager:
            errs.append(FieldError("fieldManager", "Required value", detail="is required for apply patch"))
    elif force_text not in (None, ""):
        errs.append(FieldError("force", "Forbidden", detail="may not be specified for non-apply patch"))
    if manager is not None and len(manager) > 128:
        errs.append(FieldError("fieldManager", "Too long", FieldError.OMITTED, "may not be more than 128 bytes"))
    if errs:
        raise Invalid("PatchOptions.meta.k8s.io", "", errs)
    return manager, force


# -- JSON, merge and strategic patches ------------------------------------------------------


def patched(res: Resource, old: dict, body: bytes, ptype: str, field_validation: str | None,
            name: str) -> tuple[dict, list[str]]:
    """`old` with the patch applied and decoded as the kind's object:
    (object to admit, warnings for unknown fields)."""
    directive = decode.validation_directive("PATCH", field_validation)
    if ptype == MERGE_PATCH:
        # The patch itself is decoded (its nulls kept: they delete), so an error
        # points into what the client sent, as before.
        patch, warnings = decode.decode_body(res, body, "PATCH", field_validation, name)
        return merge_patch(old, patch), warnings
    value = decode.parse_json(body)
    if ptype == JSON_PATCH:
        new = apply_json_patch(old, value)
    else:
        if not isinstance(value, dict):
            raise errors.bad_request(f"json: cannot unmarshal {_json_kind(value)} into Go value of type "
                                     "map[string]interface {}")
        try:
            new = strategic.apply(old, value, res.kind)
        except strategic.PatchError as e:
            raise _strategic_error(e) from None
    return decode_patched(res, new, body, directive, name)


def decode_patched(res: Resource, new: Any, body: bytes, directive: str, name: str) -> tuple[dict, list[str]]:
    try:
        obj, strict = decode.decode_typed(new, res.kind)
    except decode.DecodeError as e:
        raise _invalid(res, name, body, str(e)) from None
    if not strict or directive == decode.IGNORE:
        return obj, []
    if directive == decode.WARN:
        return obj, strict
    raise _invalid(res, name, body, "strict decoding error: " + ", ".join(strict))


def _invalid(res: Resource, name: str, body: bytes, detail: str) -> Invalid:
    return Invalid(res.kind, name, [FieldError("patch", "Invalid value", body.decode("utf-8", "replace"), detail)])


def _strategic_error(e: strategic.PatchError) -> ApiError:
    if e.code == 422:
        return _unprocessable(str(e))
    return errors.bad_request(str(e))


def _unprocessable(detail: str, field: str = "") -> ApiError:
    """upstream's NewGenericServerResponse(422): its fixed message; the cause
    (which upstream drops) is kept in details so the failing path is named."""
    cause = {"reason": "FieldValueInvalid", "message": detail}
    if field:
        cause["field"] = field
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                    {"causes": [cause]})


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    return "number" if v is not None else "null"


def apply_json_patch(doc: dict, ops: Any) -> Any:
    """RFC 6902 through the jsonpatch library: a malformed patch is 400 (as
    DecodePatch fails), one that does not apply 422."""
    import jsonpatch
    import jsonpointer

    if not isinstance(ops, list):
        raise errors.bad_request(f"json: cannot unmarshal {_json_kind(ops)} into Go value of type jsonpatch.Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: The allowed maximum operations "
                       f"in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise errors.bad_request(f"json: cannot unmarshal {_json_kind(op)} into Go value of type "
                                     "jsonpatch.Operation")
        if op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            raise _unprocessable(f"Unexpected kind: {op.get('op')}", f"[{i}].op")
        if not isinstance(op.get("path"), str):
            raise _unprocessable(f"operation {i} has no path: {json.dumps(op)}", f"[{i}].path")
    out = copy.deepcopy(doc)
    for op in ops:  # one at a time, so that an error names the operation's path
        try:
            out = jsonpatch.JsonPatch([op]).apply(out, in_place=True)
        except jsonpatch.JsonPatchTestFailed as e:
            raise _unprocessable(str(e), op["path"]) from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError,
                TypeError) as e:
            raise _unprocessable(str(e) or type(e).__name__, op["path"]) from None
    return out


# -- server-side apply ---------------------------------------------------------------------


def parse_apply(body: bytes) -> dict:
    """The applied configuration: YAML or JSON (JSON is YAML), a mapping."""
    from knet.api.manifests import ManifestError, _loader, check_yaml_bounds

    if not body:
        raise errors.bad_request("error decoding YAML: the request has no body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.bad_request(f"error decoding YAML: invalid UTF-8 at byte {e.start}") from None
    if text.lstrip().startswith("{"):
        try:
            value = decode.parse_json(body)
        except ApiError:
            value = None
        if isinstance(value, dict):
            return value
    import yaml

    try:
        check_yaml_bounds(text, "the request body", _loader())
        value = yaml.load(text, Loader=_loader())
    except ManifestError as e:
        raise errors.bad_request(f"error decoding YAML: {e}") from None
    except yaml.YAMLError as e:
        raise errors.bad_request(f"error decoding YAML: {e}") from None
    if not isinstance(value, dict):
        raise errors.bad_request(f"error decoding YAML: cannot unmarshal {_json_kind(value)} into an object")
    return value


def check_apply_config(res: Resource, config: dict, directive: str) -> tuple[dict, list[str]]:
    """The configuration typed against the kind, refused as structured-merge-diff
    refuses it ("failed to create typed patch object"): a wrong type, and an
    unknown field whatever fieldValidation says (the schema has no place for it)."""
    gvk = f"{res.group}/{res.version}, Kind={res.kind}"
    kind, api_version = config.get("kind"), config.get("apiVersion")
    if not kind or not api_version:
        raise errors.bad_request(f"failed to create typed patch object ({gvk}): the applied configuration "
                                 "must set apiVersion and kind")
    if api_version != res.api_version:
        raise errors.bad_request("Incorrect version specified in apply patch. Specified patch version: "
                                 f"{api_version}, expected: {res.api_version}")
    if isinstance(config.get("metadata"), dict) and config["metadata"].get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    try:
        obj, strict = decode.decode_typed(config, res.kind, patch=True)
    except decode.DecodeError as e:
        raise errors.bad_request(f"failed to create typed patch object ({gvk}): {e}") from None
    unknown = [s for s in strict if s.startswith("unknown field")]
    if unknown:
        fields = [s.split('"')[1] for s in unknown]
        raise errors.bad_request(f"failed to create typed patch object ({gvk}): "
                                 + ", ".join(f".{f}: field not declared in schema" for f in fields))
    dups = [s for s in strict if s.startswith("duplicate field")]
    if dups and directive == decode.STRICT:
        raise errors.bad_request("error strict decoding YAML: " + ", ".join(dups))
    return obj, dups if directive == decode.WARN else []


# -- the request --------------------------------------------------------------------------------


def serve(reg: Registry, req: Any, res: Resource, namespace: str | None, name: str,
          subresource: str | None) -> tuple[int, dict]:
    """PATCH <object>[/status]: the server's one call, returning (code, body);
    warnings for `Warning` headers go onto req.warnings."""
    q = req.query
    ptype = patch_type(req.headers.get("content-type"), res)
    manager, force = check_options(ptype, q)
    code, out, warnings = reg.patch_body(
        res, namespace, name, req.body, ptype, subresource,
        dry_run=q.get("dryRun") == "All", manager=manager_name(manager, req.headers.get("user-agent")),
        force=force, field_validation=q.get("fieldValidation"))
    req.warnings += warnings
    return code, out
