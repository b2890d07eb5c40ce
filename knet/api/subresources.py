"""The API's answers that are not a stored object's CRUD: the scale
subresource (autoscaling/v1 Scale of Deployments, ReplicaSets, StatefulSets),
the access reviews (knet/api/authz.py), and the refusal of what a kind does
not serve: an unknown subresource is 404 and a verb a subresource does not
take is 405, as upstream's router answers, instead of the object itself.

`serve` is the server's one call into this module; it answers, raises the
ApiError, or returns None for the server's own handling (the object, its
status, binding and eviction).
"""

from __future__ import annotations

from knet.api import authz, errors
from knet.api.discovery import SUBRESOURCES, subresources_of
from knet.api.errors import ApiError, FieldError
from knet.api.objects import deep_copy, merge_patch
from knet.api.resources import REVIEWS, Resource
from knet.api.tables import replicas_of, selector_string, to_int

SCALE_API_VERSION = "autoscaling/v1"
# What the server itself answers for a subresource, by method (the rest of a
# served subresource's verbs are another component's: the node agent's log, exec...).
_SERVER_METHODS = {"status": ("GET", "PUT", "PATCH"), "scale": ("GET", "PUT", "PATCH"),
                   "binding": ("POST",), "eviction": ("POST",), "token": ("POST",)}
_VERB_METHODS = {"get": "GET", "create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}


def not_found() -> ApiError:
    """The router's answer for a path it has no handler for."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def serve(server: object, req: object, route: object) -> tuple[int, dict] | None:
    res: Resource = route.res
    if res in REVIEWS:
        if route.name is not None:
            raise not_found()
        if req.method != "POST":
            raise method_not_allowed()
        answer = authz.review(res.kind, getattr(server, "authorizer", None), authz.user_of(req), req.json())
        return 201, answer
    sub = route.subresource
    if sub is None:
        return None
    if sub not in subresources_of(res):
        raise not_found()
    allowed = {_VERB_METHODS[v] for v in SUBRESOURCES[sub][3]}
    if req.method not in allowed:
        raise method_not_allowed()
    if req.method not in _SERVER_METHODS.get(sub, ()):
        # Served by a component not wired in here (a pod's log, exec, attach,
        # portforward are the node agent's): never the object in their place.
        raise not_found()
    if sub == "scale":
        return scale(server.registry, req, res, route.namespace, route.name)
    if sub == "token":  # the TokenRequest API (knet/api/serviceaccounts.py)
        return token(server, req, route.namespace, route.name)
    return None


def token(server: object, req: object, namespace: str, name: str) -> tuple[int, dict]:
    from knet.api import serviceaccounts
    from knet.api.rbac import NODE_PREFIX, NODES_GROUP

    signer = getattr(server, "signer", None)
    if signer is None:
        raise not_found()
    user = authz.user_of(req)
    node = user.name[len(NODE_PREFIX):] if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX) else None
    body = req.json() if req.body else {}
    return 201, serviceaccounts.token_request(server.registry, signer, namespace, name, body, node=node)


# -- scale ---------------------------------------------------------------------------


def scale_of(res: Resource, obj: dict) -> dict:
    """The Scale of a workload, as upstream's scaleFromDeployment & co.: the
    parent's identity, spec.replicas, status.replicas and the selector as a string."""
    m = obj.get("metadata") or {}
    meta = {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m}
    replicas = replicas_of(obj)
    status: dict = {"replicas": to_int((obj.get("status") or {}).get("replicas"))}
    selector = selector_string((obj.get("spec") or {}).get("selector"))
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": SCALE_API_VERSION, "metadata": meta,
            "spec": {"replicas": replicas} if replicas else {}, "status": status}


def _scale_body(body: dict, name: str) -> int:
    """The replicas a Scale body asks for, with upstream's errors for a wrong one."""
    if body.get("kind") not in (None, "", "Scale"):
        raise errors.bad_request(f"the kind {errors.render_value(body['kind'])} in the body does not match "
                                 "the subresource's kind 'Scale'")
    if body.get("apiVersion") not in (None, "", SCALE_API_VERSION):
        raise errors.bad_request(f"the API version {errors.render_value(body['apiVersion'])} in the body does not "
                                 f"match {SCALE_API_VERSION!r} for Scale")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("name") not in (None, "", name):
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                 f"({name})")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.bad_request("Scale.spec: must be an object")
    replicas = spec.get("replicas", 0)
    if replicas is None:
        replicas = 0
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise errors.bad_request("json: cannot unmarshal " + type(replicas).__name__.replace("str", "string")
                                 + " into Go struct field ScaleSpec.spec.replicas of type int32")
    if replicas < 0:
        raise errors.Invalid("Scale", name, [FieldError("spec.replicas", "Invalid value", replicas,
                                                        "must be greater than or equal to 0")])
    if replicas > 2**31 - 1:
        raise errors.bad_request("json: cannot unmarshal number into Go struct field ScaleSpec.spec.replicas "
                                 "of type int32")
    return replicas


def _patched(req: object, current: dict) -> dict:
    """The Scale after the request's patch, by its Content-Type (knet/api/patch.py's
    types and errors). A Scale's one field is a scalar, so a strategic merge
    patch and an apply configuration both merge into it as a merge patch does."""
    from knet.api import patch

    content_type = (req.headers.get("content-type") or patch.MERGE_PATCH).split(";")[0].strip().lower()
    if content_type == patch.JSON_PATCH:
        from knet.api.decode import parse_json
        try:
            ops = parse_json(req.body)
        except ApiError:
            raise
        except Exception as e:
            raise errors.bad_request(f"the request body is not valid JSON: {e}") from None
        return patch.apply_json_patch(current, ops)
    if content_type in (patch.MERGE_PATCH, patch.STRATEGIC_PATCH):
        return merge_patch(current, req.json())
    if content_type == patch.APPLY_PATCH:
        return merge_patch(current, patch.parse_apply(req.body))
    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media "
                   "types include: " + ", ".join((patch.JSON_PATCH, patch.MERGE_PATCH, patch.STRATEGIC_PATCH,
                                                  patch.APPLY_PATCH)))


def scale(registry: object, req: object, res: Resource, namespace: str | None, name: str) -> tuple[int, dict]:
    """GET, PUT or PATCH a workload's scale: a write changes only the parent's
    spec.replicas, through the registry (admission, validation, the
    resourceVersion precondition), so a conflicting writer gets a 409."""
    obj = registry.get(res, namespace, name)
    if req.method == "GET":
        return 200, scale_of(res, obj)
    current = scale_of(res, obj)
    body = req.json() if req.method == "PUT" else _patched(req, current)
    replicas = _scale_body(body, name)
    expected = (body.get("metadata") or {}).get("resourceVersion")
    if expected and expected != obj["metadata"]["resourceVersion"]:
        raise errors.conflict(f"{res.plural}.{res.group}" if res.group else res.plural, name)
    new = deep_copy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    updated = registry.update(res, namespace, name, new, dry_run=req.query.get("dryRun") == "All")
    return 200, scale_of(res, updated)
