"""Validation of the kinds that say who may do what: ConfigMap, Secret,
ServiceAccount (core/v1) and rbac.authorization.k8s.io/v1's Role,
ClusterRole, RoleBinding and ClusterRoleBinding, worded as upstream's
ValidateConfigMap, ValidateSecret, ValidateServiceAccount and
pkg/apis/rbac/validation word them.

ConfigMap and Secret live here with the identity kinds because the
ServiceAccount machinery uses them (the `kube-root-ca.crt` ConfigMap, the
tokens' secrets) and their rules are the same data-map rules.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from knet.api.validation.fields import Errors, _arr, _bool, _label_selector, _obj, _str

# IsConfigMapKey: a file name a volume may project.
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_DATA_BYTES = 1024 * 1024  # corev1.MaxSecretSize, also a ConfigMap's total
RBAC_GROUP = "rbac.authorization.k8s.io"
SECRET_TYPES_NEEDING = {
    "kubernetes.io/service-account-token": (),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/basic-auth": (),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _config_key(key: str) -> list[str]:
    msgs = []
    if len(key) > 253:
        msgs.append("must be no more than 253 characters")
    if not _KEY.fullmatch(key):
        msgs.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                    "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                    "'[-._a-zA-Z0-9]+')")
    if key == ".":
        msgs.append("must not be '.'")
    elif key == "..":
        msgs.append("must not be '..'")
    elif key.startswith(".."):
        msgs.append("must not start with '..'")
    return msgs


def _data_map(errs: Errors, value: Any, path: str, *, binary: bool) -> int:
    """Check one data map's keys (and base64 values); its size in bytes."""
    data = _obj(errs, value, path)
    size = 0
    for key, v in data.items():
        errs.each(f"{path}[{key}]", key, _config_key(key))
        if not isinstance(v, str):
            errs.invalid(f"{path}[{key}]", v, "must be a string")
            continue
        if binary:
            try:
                size += len(base64.b64decode(v, validate=True))
            except ValueError:
                errs.invalid(f"{path}[{key}]", "<value omitted>", "must be base64 encoded")
        else:
            size += len(v.encode())
    return size


def validate_configmap(errs: Errors, obj: dict) -> None:
    size = _data_map(errs, obj.get("data"), "data", binary=False)
    size += _data_map(errs, obj.get("binaryData"), "binaryData", binary=True)
    for key in set(obj.get("data") or {}) & set(obj.get("binaryData") or {}):
        errs.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
    _bool(errs, obj.get("immutable"), "immutable")
    if size > MAX_DATA_BYTES:
        errs.too_many("", size, MAX_DATA_BYTES)


def validate_immutable_data(errs: Errors, new_spec: dict, old_spec: dict, new: dict, old: dict) -> None:
    """An immutable ConfigMap or Secret keeps its data; immutable stays set."""
    if not old.get("immutable"):
        return
    if not new.get("immutable"):
        errs.forbidden("immutable", "field is immutable when `immutable` is set")
    for key in ("data", "binaryData"):
        if key in old or key in new:
            if (new.get(key) or {}) != (old.get(key) or {}):
                errs.forbidden(key, "field is immutable when `immutable` is set")


def default_secret(obj: dict) -> None:
    """v1 -> internal conversion's part knet keeps: stringData is written
    over data (base64 encoded) and dropped; type defaults to Opaque."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    if not obj.get("type"):
        obj["type"] = "Opaque"


def validate_secret(errs: Errors, obj: dict) -> None:
    size = _data_map(errs, obj.get("data"), "data", binary=True)
    _bool(errs, obj.get("immutable"), "immutable")
    secret_type = _str(errs, obj.get("type"), "type") or "Opaque"
    data = obj.get("data") or {}
    for key in SECRET_TYPES_NEEDING.get(secret_type, ()):
        if key not in data:
            errs.required(f"data[{key}]")
    if secret_type == "kubernetes.io/service-account-token":
        if not ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name"):
            errs.required("metadata.annotations[kubernetes.io/service-account.name]")
    if size > MAX_DATA_BYTES:
        errs.too_many("data", size, MAX_DATA_BYTES)


def validate_secret_update(errs: Errors, new_spec: dict, old_spec: dict, new: dict, old: dict) -> None:
    if (new.get("type") or "Opaque") != (old.get("type") or "Opaque"):
        errs.invalid("type", new.get("type"), "field is immutable")
    validate_immutable_data(errs, new_spec, old_spec, new, old)


def validate_serviceaccount(errs: Errors, obj: dict) -> None:
    for i, ref in enumerate(_arr(errs, obj.get("secrets"), "secrets")):
        _obj(errs, ref, f"secrets[{i}]")
    for i, ref in enumerate(_arr(errs, obj.get("imagePullSecrets"), "imagePullSecrets")):
        _obj(errs, ref, f"imagePullSecrets[{i}]")
    _bool(errs, obj.get("automountServiceAccountToken"), "automountServiceAccountToken")


# -- RBAC ----------------------------------------------------------------------------------


def rbac_name(name: str) -> list[str]:
    """ValidateRBACName: any path segment name (ClusterRoles are called system:coredns)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _rules(errs: Errors, obj: dict, namespaced: bool) -> None:
    for i, rule in enumerate(_arr(errs, obj.get("rules"), "rules")):
        path = f"rules[{i}]"
        rule = _obj(errs, rule, path)
        if not rule.get("verbs"):
            errs.required(f"{path}.verbs", "verbs must contain at least one value")
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                errs.invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.invalid(f"{path}.nonResourceURLs", urls,
                             "rules cannot apply to both regular resources and non-resource URLs")
            continue
        if not rule.get("apiGroups"):
            errs.required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        if not rule.get("resources"):
            errs.required(f"{path}.resources", "resource rules must supply at least one resource")


def validate_role(errs: Errors, obj: dict) -> None:
    _rules(errs, obj, True)


def validate_clusterrole(errs: Errors, obj: dict) -> None:
    _rules(errs, obj, False)
    agg = obj.get("aggregationRule")
    if agg is not None:
        agg = _obj(errs, agg, "aggregationRule")
        selectors = _arr(errs, agg.get("clusterRoleSelectors"), "aggregationRule.clusterRoleSelectors")
        if not selectors:
            errs.required("aggregationRule.clusterRoleSelectors")
        for i, sel in enumerate(selectors):
            _label_selector(errs, sel, f"aggregationRule.clusterRoleSelectors[{i}]")


def _subjects(errs: Errors, obj: dict, namespaced: bool) -> None:
    for i, subject in enumerate(_arr(errs, obj.get("subjects"), "subjects")):
        path = f"subjects[{i}]"
        subject = _obj(errs, subject, path)
        name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
        if not name:
            errs.required(f"{path}.name")
        if kind == "ServiceAccount":
            if name:
                from knet.api.selectors import is_dns1123_subdomain
                errs.each(f"{path}.name", name, is_dns1123_subdomain(name))
            if group:
                errs.unsupported(f"{path}.apiGroup", group, [""])
            if not namespaced and not subject.get("namespace"):
                errs.required(f"{path}.namespace")
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                errs.unsupported(f"{path}.apiGroup", group, [RBAC_GROUP])
        else:
            errs.unsupported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"])


def _role_ref(errs: Errors, obj: dict, kinds: tuple[str, ...]) -> None:
    ref = _obj(errs, obj.get("roleRef"), "roleRef")
    if ref.get("apiGroup") != RBAC_GROUP:
        errs.unsupported("roleRef.apiGroup", ref.get("apiGroup") or "", [RBAC_GROUP])
    if ref.get("kind") not in kinds:
        errs.unsupported("roleRef.kind", ref.get("kind") or "", list(kinds))
    if not ref.get("name"):
        errs.required("roleRef.name")
    else:
        errs.each("roleRef.name", ref["name"], rbac_name(ref["name"]))


def validate_rolebinding(errs: Errors, obj: dict) -> None:
    _role_ref(errs, obj, ("Role", "ClusterRole"))
    _subjects(errs, obj, True)


def validate_clusterrolebinding(errs: Errors, obj: dict) -> None:
    _role_ref(errs, obj, ("ClusterRole",))
    _subjects(errs, obj, False)


def validate_binding_update(errs: Errors, new_spec: dict, old_spec: dict, new: dict, old: dict) -> None:
    if new.get("roleRef") != old.get("roleRef"):
        errs.invalid("roleRef", new.get("roleRef"), "cannot change roleRef")
