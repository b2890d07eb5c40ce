"""Object validation, worded and pathed as the Kubernetes API server words it.

`validate(obj)` collects every field error of an object and raises one
`Invalid` (422) listing them all, as kube-apiserver does; `validate_update(new,
old)` adds the rules that only make sense against the stored object
(immutable fields). The server runs `apply_defaults` first, so both accept
defaulted objects. On undefaulted input, a field that defaulting would fill
(ports' protocol, a Service's type, a Pod's restartPolicy...) is accepted when
absent and checked when present, so callers get the genuinely missing fields
(containers, ports, names) without noise.

The rules live by API group, as upstream's do: core.py, apps.py, discovery.py,
networking.py and policy.py (policy.networking.k8s.io, whose upstream is a
CRD: its errors are worded as apiextensions words schema and CEL failures),
over the shared checks of fields.py. Which rules a kind has
is its record's `names`, `validate` and `validate_update` (knet/api/resources.py);
this module only runs them in Kubernetes' order.
"""

from __future__ import annotations

from typing import Any

from knet.api.errors import FieldError, Invalid
from knet.api.resources import RESOURCES, by_kind
from knet.api.validation.fields import Errors, _meta, _obj, _object_meta


def _spec(obj: Any) -> dict:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def _kind_and_name(obj: Any) -> tuple[str, str]:
    if not isinstance(obj, dict):
        return "Object", ""
    meta = _meta(obj)
    return str(obj.get("kind") or "Object"), str(meta.get("name") or meta.get("generateName") or "")


def validation_errors(obj: dict) -> list[FieldError]:
    """Every field error of `obj`, in Kubernetes' order and wording ([] if valid)."""
    errs = Errors()
    if not isinstance(obj, dict):
        errs.invalid("", obj, "must be of type object")
        return errs
    kind = obj.get("kind")
    if not kind:
        errs.required("kind")
        return errs
    resource = by_kind(kind)
    check_kind = resource.hook("validate") if resource is not None else None
    if check_kind is None:
        errs.unsupported("kind", kind, sorted(r.kind for r in RESOURCES if r.validate))
        return errs
    api_version = obj.get("apiVersion")
    if not api_version:
        errs.required("apiVersion")
    elif api_version != resource.api_version:
        errs.unsupported("apiVersion", api_version, [resource.api_version])
    _object_meta(errs, _obj(errs, obj.get("metadata"), "metadata"), resource.hook("names"), resource.namespaced)
    check_kind(errs, obj)
    return errs


def validate(obj: dict) -> None:
    """Raise Invalid (422) listing every field error of `obj`; unknown
    top-level fields are ignored, as a non-strict API server does."""
    errs = validation_errors(obj)
    if errs:
        kind, name = _kind_and_name(obj)
        raise Invalid(kind, name, errs)


def update_errors(new: dict, old: dict) -> list[FieldError]:
    """The errors only an update can have: changes to immutable fields. Run
    `validation_errors(new)` as well for the object's own validity."""
    errs = Errors()
    new_meta, old_meta = _meta(new), _meta(old)
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        # An absent new value means "unchanged": the server copies it from the stored object.
        if new_meta.get(key) and old_meta.get(key) and new_meta[key] != old_meta[key]:
            errs.invalid(f"metadata.{key}", new_meta[key], "field is immutable")
    resource = by_kind(new.get("kind", "") if isinstance(new, dict) else "")
    check = resource.hook("validate_update") if resource is not None else None
    if check:
        check(errs, _spec(new), _spec(old), new, old)
    return errs


def validate_update(new: dict, old: dict) -> None:
    """Raise Invalid if `new` changes what may not change after creation.

    The registry calls `validate(new)` first; this only adds the update rules."""
    errs = update_errors(new, old)
    if errs:
        kind, name = _kind_and_name(new)
        raise Invalid(kind, name, errs)
