"""Object validation, worded and pathed as the Kubernetes API server words it.

`validate(obj)` collects every field error of an object and raises one
`Invalid` (422) listing them all, as kube-apiserver does; `validate_update(new,
old)` adds the rules that only make sense against the stored object
(immutable fields). The server runs `apply_defaults` first, so both accept
defaulted objects. On undefaulted input, a field that defaulting would fill
(ports' protocol, a Service's type, a Pod's restartPolicy...) is accepted when
absent and checked when present, so callers get the genuinely missing fields
(containers, ports, names) without noise.

Error paths follow Kubernetes even where Kubernetes is odd, because clients and
the shared test corpus match on them: pod-template labels are reported at
`spec.template.labels` (not `.metadata.labels`), node taints at
`metadata.taints[i]`, LoadBalancer source ranges at
`spec.LoadBalancerSourceRanges[i]`, and a Service's `clusterIP` at
`spec.clusterIPs[0]` once defaulting has mirrored it there.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from knet.api.errors import ApiError, FieldError, Invalid
from knet.api.resources import by_kind
from knet.api.selectors import (
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    regex_error,
    selector_from_label_selector,
)

# =============================================================================
# Format checks: apimachinery's util/validation. Each returns the messages for
# an invalid value, or [] when the value is fine.
# =============================================================================

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_RE = re.compile(f"^{_ENV_VAR_FMT}$")
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_RE = re.compile(f"^{_HTTP_HEADER_FMT}$")
_MAX_INT32 = 2147483647


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character",
            _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character",
            _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: what a named container port (and a named targetPort) must be."""
    errs = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_port_num(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]


def is_env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_VAR_RE.match(value):
        errs.append(regex_error(
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit",
            _ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_percent(value: str) -> list[str]:
    if _PERCENT_RE.match(value):
        return []
    return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT_FMT, "1%", "93%")]


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP as Go's net.ParseIP reads it (no zone suffix), or None."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Go's net.ParseCIDR reads it: the prefix length is required and
    host bits may be set."""
    if not isinstance(value, str) or "/" not in value or "%" in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def is_ip(value: Any) -> list[str]:
    return [] if parse_ip(value) else ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]


def is_cidr(value: Any) -> list[str]:
    return [] if parse_cidr(value) else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]


def _special_ip_errors(value: str) -> list[str]:
    """Why an address cannot be an endpoint or external IP (ValidateNonSpecialIP)."""
    ip = parse_ip(value)
    if ip is None:
        return ["must be a valid IP address"]
    errs = []
    if ip.is_unspecified:
        errs.append(f"may not be unspecified ({value})")
    if ip.is_loopback:
        errs.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:
        errs.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    packed = ip.packed
    if (ip.version == 4 and packed[:3] == b"\xe0\x00\x00") or (
            ip.version == 6 and packed[0] == 0xFF and packed[1] & 0x0F == 0x02):
        errs.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return errs


def _mask_trailing_dash(name: str) -> str:
    """What apimachinery does to a generateName before checking it (sic: it
    drops two characters, not one)."""
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


# =============================================================================
# Collecting errors
# =============================================================================


class Errors(list[FieldError]):
    """A list of FieldErrors with apimachinery's field.* constructors."""

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.append(FieldError(path, "Invalid value", value, detail))

    def each(self, path: str, value: Any, msgs: Iterable[str]) -> None:
        for msg in msgs:
            self.invalid(path, value, msg)

    def required(self, path: str, detail: str = "") -> None:
        self.append(FieldError(path, "Required value", None, detail))

    def unsupported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        choices = ", ".join(json.dumps(s) for s in supported)
        self.append(FieldError(path, "Unsupported value", value, f"supported values: {choices}"))

    def duplicate(self, path: str, value: Any, detail: str = "") -> None:
        self.append(FieldError(path, "Duplicate value", value, detail))

    def forbidden(self, path: str, detail: str) -> None:
        self.append(FieldError(path, "Forbidden", None, detail))

    def too_many(self, path: str, count: int, limit: int) -> None:
        self.append(FieldError(path, "Too many", count, f"must have at most {limit} items"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _obj(errs: Errors, value: Any, path: str) -> dict:
    """`value` if it is an object; an absent one reads as {} (Go's zero struct)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    errs.invalid(path, value, "must be of type object")
    return {}


def _arr(errs: Errors, value: Any, path: str) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    errs.invalid(path, value, "must be of type array")
    return []


def _str(errs: Errors, value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    errs.invalid(path, value, "must be of type string")
    return None


def _int(errs: Errors, value: Any, path: str) -> int | None:
    if value is None or _is_int(value):
        return value
    errs.invalid(path, value, "must be of type integer")
    return None


def _bool(errs: Errors, value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    errs.invalid(path, value, "must be of type boolean")
    return None


def _list(value: Any) -> list:
    """A list to iterate for cross-field checks; wrong types were reported already."""
    return value if isinstance(value, list) else []


def _strings(errs: Errors, value: Any, path: str) -> list[str]:
    out = []
    for i, item in enumerate(_arr(errs, value, path)):
        if isinstance(item, str):
            out.append(item)
        else:
            errs.invalid(f"{path}[{i}]", item, "must be of type string")
    return out


def _nonnegative(errs: Errors, value: Any, path: str) -> None:
    n = _int(errs, value, path)
    if n is not None and n < 0:
        errs.invalid(path, n, "must be greater than or equal to 0")


def _in_range(errs: Errors, value: Any, path: str, lo: int, hi: int) -> None:
    n = _int(errs, value, path)
    if n is not None and not lo <= n <= hi:
        errs.invalid(path, n, f"must be between {lo} and {hi}, inclusive")


def _enum(errs: Errors, value: Any, path: str, supported: Iterable[str]) -> None:
    """An enum field that defaulting fills: absent is fine, "" is missing."""
    if value is None or _str(errs, value, path) is None:
        return
    if value == "":
        errs.required(path)
    elif value not in supported:
        errs.unsupported(path, value, supported)


def _name_check(errs: Errors, value: Any, path: str, check: Callable[[str], list[str]]) -> None:
    text = _str(errs, value, path)
    if text is not None:
        errs.each(path, text, check(text))


# =============================================================================
# Shared pieces: metadata, labels, selectors, ports
# =============================================================================

NameCheck = Callable[[str], list[str]]


def _labels(errs: Errors, labels: Any, path: str) -> None:
    """metav1 ValidateLabels: every key and value is reported at the map's path."""
    for key, value in _obj(errs, labels, path).items():
        key = str(key)
        errs.each(path, key, is_qualified_name(key))
        text = _str(errs, value, path)
        if text is not None:
            errs.each(path, text, is_label_value(text))


def _annotations(errs: Errors, annotations: Any, path: str) -> None:
    for key, value in _obj(errs, annotations, path).items():
        key = str(key)
        errs.each(path, key, is_qualified_name(key.lower()))
        _str(errs, value, f"{path}[{key}]")


def _object_meta(errs: Errors, meta: dict, name_check: NameCheck, namespaced: bool) -> None:
    """ValidateObjectMeta. The server fills namespace and a generated name
    before validating, so neither is required here when it can still be filled."""
    generate = _str(errs, meta.get("generateName"), "metadata.generateName")
    if generate:
        errs.each("metadata.generateName", generate, name_check(_mask_trailing_dash(generate)))
    name = _str(errs, meta.get("name"), "metadata.name")
    if name:
        errs.each("metadata.name", name, name_check(name))
    elif not generate:
        errs.required("metadata.name", "name or generateName is required")
    namespace = _str(errs, meta.get("namespace"), "metadata.namespace")
    if namespaced and namespace:
        errs.each("metadata.namespace", namespace, is_dns1123_label(namespace))
    _labels(errs, meta.get("labels"), "metadata.labels")
    _annotations(errs, meta.get("annotations"), "metadata.annotations")


def _selector_requirement(errs: Errors, expr: Any, path: str, *, node: bool = False,
                          check_values: bool = True) -> None:
    """A matchExpressions entry (LabelSelector, or NodeSelector when `node`)."""
    expr = _obj(errs, expr, path)
    op = expr.get("operator")
    values = _strings(errs, expr.get("values"), f"{path}.values")
    if op in ("In", "NotIn"):
        if not values:
            errs.required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.forbidden(f"{path}.values",
                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    elif node and op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")
    else:
        errs.invalid(f"{path}.operator", op, "not a valid selector operator")
    key = _str(errs, expr.get("key"), f"{path}.key") or ""
    errs.each(f"{path}.key", key, is_qualified_name(key))
    if check_values:
        for i, value in enumerate(values):
            errs.each(f"{path}.values[{i}]", value, is_label_value(value))


def _label_selector(errs: Errors, sel: Any, path: str) -> None:
    sel = _obj(errs, sel, path)
    _labels(errs, sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(_arr(errs, sel.get("matchExpressions"), f"{path}.matchExpressions")):
        _selector_requirement(errs, expr, f"{path}.matchExpressions[{i}]")


def _port_num_or_name(errs: Errors, value: Any, path: str) -> None:
    """An IntOrString port: a number 1-65535 or an IANA service name. A quoted
    number ("8080") is a name to Kubernetes, and fails as one."""
    if value is None:
        errs.required(path)
    elif _is_int(value):
        errs.each(path, value, is_port_num(value))
    elif isinstance(value, str):
        errs.each(path, value, is_port_name(value))
    else:
        errs.invalid(path, value, "must be an integer or a port name")


_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _int_or_percent(errs: Errors, value: Any, path: str) -> int | None:
    """maxSurge/maxUnavailable: a non-negative int or "N%". Returns the number
    (percent or count) for the cross-field checks, or None if invalid."""
    if _is_int(value):
        if value < 0:
            errs.invalid(path, value, "must be greater than or equal to 0")
            return None
        return value
    if isinstance(value, str):
        msgs = is_percent(value)
        errs.each(path, value, msgs)
        return None if msgs else int(value[:-1])
    errs.invalid(path, value, "must be an integer or percentage (e.g '5%')")
    return None


def _not_over_100_percent(errs: Errors, value: Any, path: str) -> None:
    if isinstance(value, str) and not is_percent(value) and int(value[:-1]) > 100:
        errs.invalid(path, value, "must not be greater than 100%")


# =============================================================================
# Pod spec
# =============================================================================

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
# Downward API env: what ConvertDownwardAPIFieldLabel understands, and the
# subset an env var may use.
_DOWNWARD_CONVERTIBLE = frozenset({
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
    "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs"})
_DOWNWARD_ENV = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                 "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                 "status.podIPs")
_SUBSCRIPTED = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


class _PodContext:
    """What container validation needs from the enclosing pod spec."""

    def __init__(self, spec: dict, in_pod: bool):
        self.in_pod = in_pod  # a Pod, not a template: stricter image/hostPort rules
        self.host_network = spec.get("hostNetwork") is True
        self.names: set[str] = set()


def _pod_spec(errs: Errors, spec: Any, path: str, *, in_pod: bool) -> None:
    spec = _obj(errs, spec, path)
    ctx = _PodContext(spec, in_pod)
    _bool(errs, spec.get("hostNetwork"), f"{path}.hostNetwork")
    _bool(errs, spec.get("enableServiceLinks"), f"{path}.enableServiceLinks")

    containers = _arr(errs, spec.get("containers"), f"{path}.containers")
    if not containers:
        errs.required(f"{path}.containers")
    for i, c in enumerate(containers):
        _container(errs, c, f"{path}.containers[{i}]", ctx, init=False)
    _host_port_conflicts(errs, containers, f"{path}.containers")
    inits = _arr(errs, spec.get("initContainers"), f"{path}.initContainers")
    for i, c in enumerate(inits):
        _container(errs, c, f"{path}.initContainers[{i}]", ctx, init=True)
        _host_port_conflicts(errs, [c], f"{path}.initContainers", offset=i)

    _enum(errs, spec.get("restartPolicy"), f"{path}.restartPolicy", _RESTART_POLICIES)
    _enum(errs, spec.get("dnsPolicy"), f"{path}.dnsPolicy", _DNS_POLICIES)
    # Never refused when negative: defaulting stores a Pod's as 1 (kubernetes#115606),
    # and refusing would break workloads whose templates already carry one.
    _int(errs, spec.get("terminationGracePeriodSeconds"), f"{path}.terminationGracePeriodSeconds")
    if spec.get("activeDeadlineSeconds") is not None:
        _in_range(errs, spec["activeDeadlineSeconds"], f"{path}.activeDeadlineSeconds", 1, _MAX_INT32)
    _labels(errs, spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key, check in (("nodeName", is_dns1123_subdomain), ("serviceAccountName", is_dns1123_subdomain),
                       ("hostname", is_dns1123_label), ("subdomain", is_dns1123_label)):
        if spec.get(key):
            _name_check(errs, spec[key], f"{path}.{key}", check)
    _pod_security_context(errs, spec.get("securityContext"), f"{path}.securityContext")
    _tolerations(errs, spec.get("tolerations"), f"{path}.tolerations")
    _affinity(errs, spec.get("affinity"), f"{path}.affinity")


def _container(errs: Errors, c: Any, path: str, ctx: _PodContext, *, init: bool) -> None:
    c = _obj(errs, c, path)
    name = _str(errs, c.get("name"), f"{path}.name")
    if not name:
        errs.required(f"{path}.name")
    else:
        errs.each(f"{path}.name", name, is_dns1123_label(name))
        if name in ctx.names:
            errs.duplicate(f"{path}.name", name)
        ctx.names.add(name)
    # Required, as in Kubernetes. knet pulls nothing: any string will do, and a
    # container without a `command` runs the built-in server whatever it names.
    image = _str(errs, c.get("image"), f"{path}.image")
    if not image:
        errs.required(f"{path}.image")
    elif ctx.in_pod and image != image.strip():
        errs.invalid(f"{path}.image", image, "must not have leading or trailing whitespace")
    _enum(errs, c.get("imagePullPolicy"), f"{path}.imagePullPolicy", _PULL_POLICIES)
    _strings(errs, c.get("command"), f"{path}.command")
    _strings(errs, c.get("args"), f"{path}.args")
    _str(errs, c.get("workingDir"), f"{path}.workingDir")
    _container_ports(errs, c.get("ports"), f"{path}.ports", ctx)
    _env(errs, c.get("env"), f"{path}.env")
    _container_security_context(errs, c.get("securityContext"), f"{path}.securityContext")
    _container_probes_and_restart(errs, c, path, init)


def _container_probes_and_restart(errs: Errors, c: dict, path: str, init: bool) -> None:
    """Probes are for long-running containers: regular ones and restartable
    (sidecar) init containers."""
    restart = c.get("restartPolicy")
    if not init and restart is not None:
        errs.forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")
    if init and restart is not None and restart != "Always":
        errs.unsupported(f"{path}.restartPolicy", restart, ["Always"])
    probes = ("livenessProbe", "readinessProbe", "startupProbe")
    if init and restart != "Always":
        for key in probes + ("lifecycle",):
            if c.get(key) is not None:
                errs.forbidden(f"{path}.{key}", "may not be set for init containers without restartPolicy=Always")
        return
    for key in probes:
        if c.get(key) is not None:
            _probe(errs, c[key], f"{path}.{key}", kind=key)


def _container_ports(errs: Errors, ports: Any, path: str, ctx: _PodContext) -> None:
    """Port names are unique within one container (as in Kubernetes); the same
    name in two containers of a pod is allowed."""
    names: set[str] = set()
    for i, port in enumerate(_arr(errs, ports, path)):
        p = _obj(errs, port, f"{path}[{i}]")
        idx = f"{path}[{i}]"
        name = _str(errs, p.get("name"), f"{idx}.name")
        if name:
            msgs = is_port_name(name)
            errs.each(f"{idx}.name", name, msgs)
            if not msgs and name in names:
                errs.duplicate(f"{idx}.name", name)
            names.add(name)
        container_port = _int(errs, p.get("containerPort"), f"{idx}.containerPort")
        if not container_port:
            errs.required(f"{idx}.containerPort")
        else:
            errs.each(f"{idx}.containerPort", container_port, is_port_num(container_port))
        host_port = _int(errs, p.get("hostPort"), f"{idx}.hostPort") or 0
        if host_port:
            errs.each(f"{idx}.hostPort", host_port, is_port_num(host_port))
        _enum(errs, p.get("protocol"), f"{idx}.protocol", _PROTOCOLS)
        if ctx.host_network and (ctx.in_pod or host_port) and container_port and host_port != container_port:
            errs.invalid(f"{idx}.hostPort", host_port, "must match `containerPort` when `hostNetwork` is true")


def _host_port_conflicts(errs: Errors, containers: list, path: str, offset: int = 0) -> None:
    """Two ports may not claim the same host port, IP and protocol (init
    containers run one at a time, so they are checked one by one)."""
    seen: set[str] = set()
    for ci, c in enumerate(containers, offset):
        if not isinstance(c, dict):
            continue
        for pi, p in enumerate(_list(c.get("ports"))):
            if not isinstance(p, dict) or not _is_int(p.get("hostPort")) or not p["hostPort"]:
                continue
            key = f"{p.get('protocol') or 'TCP'}/{p.get('hostIP') or ''}/{p['hostPort']}"
            if key in seen:
                errs.duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key)
            seen.add(key)


def _env(errs: Errors, env: Any, path: str) -> None:
    for i, var in enumerate(_arr(errs, env, path)):
        idx = f"{path}[{i}]"
        var = _obj(errs, var, idx)
        name = _str(errs, var.get("name"), f"{idx}.name")
        if not name:
            errs.required(f"{idx}.name")
        else:
            errs.each(f"{idx}.name", name, is_env_var_name(name))
        value = _str(errs, var.get("value"), f"{idx}.value")
        if var.get("valueFrom") is not None:
            _env_value_from(errs, var["valueFrom"], f"{idx}.valueFrom", bool(value))


def _env_value_from(errs: Errors, source: Any, path: str, has_value: bool) -> None:
    source = _obj(errs, source, path)
    kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
             if source.get(k) is not None]
    if "fieldRef" in kinds:
        _downward_field_ref(errs, source["fieldRef"], f"{path}.fieldRef")
    if "resourceFieldRef" in kinds:
        ref = _obj(errs, source["resourceFieldRef"], f"{path}.resourceFieldRef")
        if not ref.get("resource"):
            errs.required(f"{path}.resourceFieldRef.resource")
    for key in ("configMapKeyRef", "secretKeyRef"):
        if key in kinds:
            ref = _obj(errs, source[key], f"{path}.{key}")
            _name_check(errs, ref.get("name", ""), f"{path}.{key}.name", is_dns1123_subdomain)
            if not ref.get("key"):
                errs.required(f"{path}.{key}.key")
    if not kinds:
        errs.invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                               "`configMapKeyRef` or `secretKeyRef`")
    elif has_value:
        errs.invalid(path, "", "may not be specified when `value` is not empty")
    elif len(kinds) > 1:
        errs.invalid(path, "", "may not have more than one field specified at a time")


def _downward_field_ref(errs: Errors, ref: Any, path: str) -> None:
    ref = _obj(errs, ref, path)
    if ref.get("apiVersion") == "":
        errs.required(f"{path}.apiVersion")
        return
    field_path = _str(errs, ref.get("fieldPath"), f"{path}.fieldPath")
    if not field_path:
        errs.required(f"{path}.fieldPath")
        return
    subscripted = _SUBSCRIPTED.match(field_path)
    if subscripted:
        key = subscripted.group(2)
        errs.each(path, key, is_qualified_name(key.lower() if "annotations" in field_path else key))
    elif field_path not in _DOWNWARD_CONVERTIBLE:
        errs.invalid(f"{path}.fieldPath", field_path,
                     f"error converting fieldPath: field label not supported: {field_path}")
    elif field_path not in _DOWNWARD_ENV:
        errs.unsupported(f"{path}.fieldPath", field_path, sorted(_DOWNWARD_ENV))


def _id_fields(errs: Errors, sc: dict, path: str, keys: Iterable[str]) -> None:
    """runAsUser / runAsGroup / fsGroup: 0 to MaxInt32, as IsValidUserID says."""
    for key in keys:
        if sc.get(key) is not None:
            _in_range(errs, sc[key], f"{path}.{key}", 0, _MAX_INT32)


def _pod_security_context(errs: Errors, sc: Any, path: str) -> None:
    sc = _obj(errs, sc, path)
    _id_fields(errs, sc, path, ("runAsUser", "runAsGroup", "fsGroup"))
    for i, gid in enumerate(_arr(errs, sc.get("supplementalGroups"), f"{path}.supplementalGroups")):
        _in_range(errs, gid, f"{path}.supplementalGroups[{i}]", 0, _MAX_INT32)
    _bool(errs, sc.get("runAsNonRoot"), f"{path}.runAsNonRoot")


def _container_security_context(errs: Errors, sc: Any, path: str) -> None:
    if sc is None:
        return
    sc = _obj(errs, sc, path)
    _id_fields(errs, sc, path, ("runAsUser", "runAsGroup"))
    for key in ("privileged", "allowPrivilegeEscalation", "runAsNonRoot", "readOnlyRootFilesystem"):
        _bool(errs, sc.get(key), f"{path}.{key}")
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errs.invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
        added = (sc.get("capabilities") or {}).get("add") or []
        if "CAP_SYS_ADMIN" in added:
            errs.invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN")


_PROBE_MINIMUMS = (("timeoutSeconds", 1), ("periodSeconds", 1), ("successThreshold", 1),
                   ("failureThreshold", 1))


def _probe(errs: Errors, probe: Any, path: str, *, kind: str) -> None:
    probe = _obj(errs, probe, path)
    _probe_handler(errs, probe, path)
    _nonnegative(errs, probe.get("initialDelaySeconds"), f"{path}.initialDelaySeconds")
    for key, minimum in _PROBE_MINIMUMS:
        value = _int(errs, probe.get(key), f"{path}.{key}")
        # Kubernetes says ">= 0" (its defaulting turns 0 into the default); a 0
        # that reaches us was never defaulted, so say what is really needed.
        if value is not None and value < minimum:
            errs.invalid(f"{path}.{key}", value, f"must be greater than or equal to {0 if value < 0 else minimum}")
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold", 1) not in (1, None):
        errs.invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1")
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readinessProbe":
            errs.invalid(f"{path}.terminationGracePeriodSeconds", grace, "must not be set for readinessProbes")
        elif _int(errs, grace, f"{path}.terminationGracePeriodSeconds") is not None and grace <= 0:
            errs.invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0")


def _probe_handler(errs: Errors, probe: dict, path: str) -> None:
    """Exactly one of exec, httpGet, tcpSocket, grpc; later ones are the extras."""
    found = 0
    for key, check in (("exec", _exec_action), ("httpGet", _http_get_action),
                       ("tcpSocket", _tcp_socket_action), ("grpc", _grpc_action)):
        if probe.get(key) is None:
            continue
        if found:
            errs.forbidden(f"{path}.{key}", "may not specify more than 1 handler type")
        else:
            check(errs, _obj(errs, probe[key], f"{path}.{key}"), f"{path}.{key}")
        found += 1
    if not found:
        errs.required(path, "must specify a handler type")


def _exec_action(errs: Errors, action: dict, path: str) -> None:
    if not _strings(errs, action.get("command"), f"{path}.command"):
        errs.required(f"{path}.command")


def _http_get_action(errs: Errors, action: dict, path: str) -> None:
    if action.get("path") == "":
        errs.required(f"{path}.path")
    _port_num_or_name(errs, action.get("port"), f"{path}.port")
    scheme = action.get("scheme")
    if scheme is not None and scheme not in ("HTTP", "HTTPS"):
        errs.unsupported(f"{path}.scheme", scheme, ["HTTP", "HTTPS"])
    for i, header in enumerate(_arr(errs, action.get("httpHeaders"), f"{path}.httpHeaders")):
        name = str(_obj(errs, header, f"{path}.httpHeaders[{i}]").get("name", ""))
        if not _HTTP_HEADER_RE.match(name):
            errs.invalid(f"{path}.httpHeaders", name, regex_error(
                "a valid HTTP header must consist of alphanumeric characters or '-'",
                _HTTP_HEADER_FMT, "X-Header-Name"))


def _tcp_socket_action(errs: Errors, action: dict, path: str) -> None:
    _port_num_or_name(errs, action.get("port"), f"{path}.port")


def _grpc_action(errs: Errors, action: dict, path: str) -> None:
    port = action.get("port")
    if port is None or _is_int(port):
        errs.each(f"{path}.port", port or 0, is_port_num(port or 0))
    else:
        errs.invalid(f"{path}.port", port, "must be of type integer")


def _tolerations(errs: Errors, tolerations: Any, path: str) -> None:
    for i, t in enumerate(_arr(errs, tolerations, path)):
        idx = f"{path}[{i}]"
        t = _obj(errs, t, idx)
        key, op, value, effect = (_str(errs, t.get(k), f"{idx}.{k}") or "" for k in ("key", "operator", "value", "effect"))
        if key:
            errs.each(f"{idx}.key", key, is_qualified_name(key))
        elif op != "Exists":
            errs.invalid(f"{idx}.operator", op,
                         'operator must be Exists when `key` is empty, which means "match all values and all keys"')
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.invalid(f"{idx}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set")
        if op in ("Equal", ""):
            msgs = is_label_value(value)
            if msgs:
                errs.invalid(f"{idx}.operator", value, ";".join(msgs))
        elif op == "Exists":
            if value:
                errs.invalid(f"{idx}.operator", value, "value must be empty when `operator` is 'Exists'")
        else:
            errs.unsupported(f"{idx}.operator", op, ["Equal", "Exists"])
        if effect and effect not in _TAINT_EFFECTS:
            errs.unsupported(f"{idx}.effect", effect, _TAINT_EFFECTS)


def _node_selector_term(errs: Errors, term: Any, path: str, *, check_values: bool) -> None:
    term = _obj(errs, term, path)
    for j, expr in enumerate(_arr(errs, term.get("matchExpressions"), f"{path}.matchExpressions")):
        _selector_requirement(errs, expr, f"{path}.matchExpressions[{j}]", node=True,
                              check_values=check_values)
    for j, req in enumerate(_arr(errs, term.get("matchFields"), f"{path}.matchFields")):
        idx = f"{path}.matchFields[{j}]"
        req = _obj(errs, req, idx)
        if req.get("operator") not in ("In", "NotIn"):
            errs.invalid(f"{idx}.operator", req.get("operator"), "not a valid selector operator")
        elif len(req.get("values") or []) != 1:
            errs.required(f"{idx}.values", "must be only one value when `operator` is 'In' or 'NotIn' for node field selector")
        if req.get("key") != "metadata.name":
            errs.invalid(f"{idx}.key", req.get("key"), "not a valid field selector key")


def _weight(errs: Errors, term: dict, path: str) -> None:
    weight = _int(errs, term.get("weight"), f"{path}.weight")
    if weight is None or not 1 <= weight <= 100:
        errs.invalid(f"{path}.weight", term.get("weight", 0), "must be in the range 1-100")


def _pod_affinity_term(errs: Errors, term: Any, path: str) -> None:
    term = _obj(errs, term, path)
    if term.get("labelSelector") is not None:
        _label_selector(errs, term["labelSelector"], f"{path}.labelSelector")
    if term.get("namespaceSelector") is not None:
        _label_selector(errs, term["namespaceSelector"], f"{path}.namespaceSelector")
    for ns in _strings(errs, term.get("namespaces"), f"{path}.namespaces"):
        errs.each(f"{path}.namespace", ns, is_dns1123_label(ns))
    topology = _str(errs, term.get("topologyKey"), f"{path}.topologyKey") or ""
    if not topology:
        errs.required(f"{path}.topologyKey", "can not be empty")
    errs.each(f"{path}.topologyKey", topology, is_qualified_name(topology))


def _affinity(errs: Errors, affinity: Any, path: str) -> None:
    affinity = _obj(errs, affinity, path)
    node = affinity.get("nodeAffinity")
    if node is not None:
        node = _obj(errs, node, f"{path}.nodeAffinity")
        required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is not None:
            req_path = f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            terms = _arr(errs, _obj(errs, required, req_path).get("nodeSelectorTerms"),
                         f"{req_path}.nodeSelectorTerms")
            if not terms:
                errs.required(f"{req_path}.nodeSelectorTerms", "must have at least one node selector term")
            for i, term in enumerate(terms):
                _node_selector_term(errs, term, f"{req_path}.nodeSelectorTerms[{i}]", check_values=True)
        pref_path = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
        for i, pref in enumerate(_arr(errs, node.get("preferredDuringSchedulingIgnoredDuringExecution"), pref_path)):
            pref = _obj(errs, pref, f"{pref_path}[{i}]")
            _weight(errs, pref, f"{pref_path}[{i}]")
            # Preferred terms may name label values that no node has yet.
            _node_selector_term(errs, pref.get("preference"), f"{pref_path}[{i}].preference", check_values=False)
    for kind in ("podAffinity", "podAntiAffinity"):
        if affinity.get(kind) is None:
            continue
        pa = _obj(errs, affinity[kind], f"{path}.{kind}")
        req_path = f"{path}.{kind}.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(_arr(errs, pa.get("requiredDuringSchedulingIgnoredDuringExecution"), req_path)):
            _pod_affinity_term(errs, term, f"{req_path}[{i}]")
        pref_path = f"{path}.{kind}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, wt in enumerate(_arr(errs, pa.get("preferredDuringSchedulingIgnoredDuringExecution"), pref_path)):
            wt = _obj(errs, wt, f"{pref_path}[{i}]")
            _weight(errs, wt, f"{pref_path}[{i}]")
            _pod_affinity_term(errs, wt.get("podAffinityTerm"), f"{pref_path}[{i}].podAffinityTerm")


# =============================================================================
# Kinds
# =============================================================================


def _validate_pod(errs: Errors, obj: dict) -> None:
    _pod_spec(errs, obj.get("spec"), "spec", in_pod=True)


def _validate_namespace(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    for i, f in enumerate(_strings(errs, spec.get("finalizers"), "spec.finalizers")):
        errs.each(f"spec.finalizers[{i}]", f, is_qualified_name(f))


def node_pod_cidrs(spec: dict) -> list[str]:
    """A Node's pod CIDRs as the server sees them: `podCIDRs`, or the single
    `podCIDR` before defaulting has mirrored it (Kubernetes keeps only the list
    internally, so it reports a bad podCIDR as podCIDRs[0])."""
    cidrs = spec.get("podCIDRs")
    if isinstance(cidrs, list):
        return [str(c) for c in cidrs]
    return [spec["podCIDR"]] if isinstance(spec.get("podCIDR"), str) and spec["podCIDR"] else []


def _validate_node(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    if spec.get("podCIDRs") is None:
        _name_check(errs, spec.get("podCIDR") or None, "spec.podCIDR", is_cidr)
    else:
        cidrs = _strings(errs, spec["podCIDRs"], "spec.podCIDRs")
        for i, cidr in enumerate(cidrs):
            errs.each(f"spec.podCIDRs[{i}]", cidr, is_cidr(cidr))
        networks = [parse_cidr(c) for c in cidrs]
        if len(cidrs) > 1 and all(networks):
            if len(cidrs) > 2 or len({n.version for n in networks}) != 2:
                errs.invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family")
            for i, cidr in enumerate(cidrs):
                if cidr in cidrs[:i]:
                    errs.duplicate(f"spec.podCIDRs[{i}]", cidr)
    _bool(errs, spec.get("unschedulable"), "spec.unschedulable")
    # Kubernetes reports taints under metadata (ValidateNode passes the
    # metadata path); clients match on that, so we do too.
    _taints(errs, spec.get("taints"), "metadata.taints")


def _taints(errs: Errors, taints: Any, path: str) -> None:
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(_arr(errs, taints, path)):
        idx = f"{path}[{i}]"
        taint = _obj(errs, taint, idx)
        key = _str(errs, taint.get("key"), f"{idx}.key") or ""
        errs.each(f"{idx}.key", key, is_qualified_name(key))
        value = _str(errs, taint.get("value"), f"{idx}.value") or ""
        msgs = is_label_value(value)
        if msgs:
            errs.invalid(f"{idx}.value", value, ";".join(msgs))
        effect = _str(errs, taint.get("effect"), f"{idx}.effect") or ""
        if not effect:
            errs.required(f"{idx}.effect")
        elif effect not in _TAINT_EFFECTS:
            errs.unsupported(f"{idx}.effect", effect, _TAINT_EFFECTS)
        if (key, effect) in seen:
            errs.duplicate(idx, taint, "taints must be unique by key and effect pair")
        seen.add((key, effect))


# -- Service ----------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def service_cluster_ips(spec: dict) -> list[str]:
    """A Service's cluster IPs as the server sees them: `clusterIPs`, or the
    single `clusterIP` before defaulting has mirrored it."""
    ips = spec.get("clusterIPs")
    if isinstance(ips, list):
        return [str(ip) for ip in ips]
    return [spec["clusterIP"]] if isinstance(spec.get("clusterIP"), str) and spec["clusterIP"] else []


def _externally_accessible(spec: dict, svc_type: str) -> bool:
    return svc_type in ("LoadBalancer", "NodePort") or (svc_type == "ClusterIP" and bool(spec.get("externalIPs")))


def _validate_service(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _enum(errs, spec.get("type"), "spec.type", _SERVICE_TYPES)
    svc_type = spec.get("type") or "ClusterIP"
    ips = service_cluster_ips(spec)
    headless = ips == ["None"]
    ports = _arr(errs, spec.get("ports"), "spec.ports")
    if not ports and not headless and svc_type != "ExternalName":
        errs.required("spec.ports")
    if svc_type in ("LoadBalancer", "NodePort") and headless:
        errs.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {svc_type} services")
    if svc_type == "ExternalName":
        _external_name(errs, spec)
    else:
        _cluster_ip_fields(errs, spec)
    names: set[str] = set()
    for i, port in enumerate(ports):
        _service_port(errs, port, f"spec.ports[{i}]", len(ports) > 1, names)
    _service_port_conflicts(errs, ports, svc_type)
    if spec.get("selector") is not None:
        _labels(errs, spec["selector"], "spec.selector")
    _session_affinity(errs, spec)
    for i, ip in enumerate(_strings(errs, spec.get("externalIPs"), "spec.externalIPs")):
        errs.each(f"spec.externalIPs[{i}]", ip, is_ip(ip) or _special_ip_errors(ip))
    _load_balancer_fields(errs, spec, svc_type)
    _traffic_policies(errs, spec, svc_type)


def _external_name(errs: Errors, spec: dict) -> None:
    if service_cluster_ips(spec):
        path = "spec.clusterIPs" if spec.get("clusterIPs") is not None else "spec.clusterIP"
        errs.forbidden(path, "may not be set for ExternalName services")
    for key in ("ipFamilies", "ipFamilyPolicy"):
        if spec.get(key):
            errs.forbidden(f"spec.{key}", "may not be set for ExternalName services")
    cname = (_str(errs, spec.get("externalName"), "spec.externalName") or "").removesuffix(".")
    if cname:
        errs.each("spec.externalName", cname, is_dns1123_subdomain(cname))
    else:
        errs.required("spec.externalName")


def _cluster_ip_fields(errs: Errors, spec: dict) -> None:
    """ValidateServiceClusterIPsRelatedFields: clusterIP(s), ipFamilies, ipFamilyPolicy."""
    cluster_ip = _str(errs, spec.get("clusterIP"), "spec.clusterIP") or ""
    if spec.get("clusterIPs") is None:
        # Not yet mirrored by defaulting: the single clusterIP is all there is.
        if cluster_ip and cluster_ip != "None":
            errs.each("spec.clusterIP", cluster_ip, is_ip(cluster_ip))
        ips, path = ([cluster_ip] if cluster_ip else []), "spec.clusterIP"
    else:
        ips, path = _strings(errs, spec["clusterIPs"], "spec.clusterIPs"), "spec.clusterIPs"
        if cluster_ip and not ips:
            errs.required(path)
        elif cluster_ip and ips[0] != cluster_ip:
            errs.invalid(path, ips, "first value must match `clusterIP`")
        elif not cluster_ip and ips:
            errs.invalid(path, ips, "must be empty when `clusterIP` is not specified")
    families = _strings(errs, spec.get("ipFamilies"), "spec.ipFamilies")
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            errs.unsupported(f"spec.ipFamilies[{i}]", family, ["IPv4", "IPv6"])
        if family in families[:i]:
            errs.duplicate(f"spec.ipFamilies[{i}]", family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in ("PreferDualStack", "RequireDualStack", "SingleStack"):
        errs.unsupported("spec.ipFamilyPolicy", policy, ["PreferDualStack", "RequireDualStack", "SingleStack"])
    if policy == "SingleStack" and len(families) > 1:
        errs.invalid("spec.ipFamilyPolicy", policy,
                     "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
    if path == "spec.clusterIPs":
        _cluster_ips_list(errs, ips, families)


def _cluster_ips_list(errs: Errors, ips: list[str], families: list[str]) -> None:
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.invalid("spec.clusterIPs", ips, "'None' must be the first and only value")
            continue
        msgs = is_ip(ip)
        bad = bad or bool(msgs)
        errs.each(f"spec.clusterIPs[{i}]", ip, msgs)
    if len(ips) > 2:
        errs.invalid("spec.clusterIPs", ips, "may only hold up to 2 values")
    if bad:
        return
    if len(ips) > 1 and len({parse_ip(ip).version for ip in ips}) != len(ips):
        errs.invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family")
    if ips == ["None"]:
        return
    for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
        version = parse_ip(ip).version
        if (family, version) in (("IPv4", 6), ("IPv6", 4)):
            errs.invalid(f"spec.clusterIPs[{i}]", ip, f"expected an {family} value as indicated by `ipFamilies[{i}]`")


def _service_port(errs: Errors, port: Any, path: str, require_name: bool, names: set[str]) -> None:
    port = _obj(errs, port, path)
    name = _str(errs, port.get("name"), f"{path}.name")
    if require_name and not name:
        errs.required(f"{path}.name")
    elif name:
        errs.each(f"{path}.name", name, is_dns1123_label(name))
        if name in names:
            errs.duplicate(f"{path}.name", name)
        names.add(name)
    number = _int(errs, port.get("port"), f"{path}.port")
    if number is None and "port" not in port:
        errs.required(f"{path}.port")
    elif number is not None:
        errs.each(f"{path}.port", number, is_port_num(number))
    _enum(errs, port.get("protocol"), f"{path}.protocol", _PROTOCOLS)
    if port.get("targetPort") not in (None, 0, ""):  # unset: defaulting makes it `port`
        _port_num_or_name(errs, port["targetPort"], f"{path}.targetPort")
    node_port = _int(errs, port.get("nodePort"), f"{path}.nodePort")
    if node_port:
        errs.each(f"{path}.nodePort", node_port, is_port_num(node_port))
    if port.get("appProtocol") is not None:
        _name_check(errs, port["appProtocol"], f"{path}.appProtocol", is_qualified_name)


def _service_port_conflicts(errs: Errors, ports: list, svc_type: str) -> None:
    node_ports: set[tuple[str, int]] = set()
    seen: set[tuple[str, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        protocol = str(port.get("protocol") or "TCP")
        node_port = port["nodePort"] if _is_int(port.get("nodePort")) else 0
        if node_port and svc_type in ("ClusterIP", "ExternalName"):
            errs.forbidden(f"spec.ports[{i}].nodePort", f"may not be used when `type` is '{svc_type}'")
        if node_port:
            if (protocol, node_port) in node_ports:
                errs.duplicate(f"spec.ports[{i}].nodePort", node_port)
            node_ports.add((protocol, node_port))
        key = (protocol, json.dumps(port.get("port")))
        if key in seen:
            errs.duplicate(f"spec.ports[{i}]", {"port": port.get("port"), "protocol": protocol})
        seen.add(key)


def _session_affinity(errs: Errors, spec: dict) -> None:
    _enum(errs, spec.get("sessionAffinity"), "spec.sessionAffinity", ["ClientIP", "None"])
    affinity = spec.get("sessionAffinity") or "None"
    config = spec.get("sessionAffinityConfig")
    if affinity == "None" and config is not None:
        errs.forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
    elif affinity == "ClientIP" and config is not None:
        client_ip = _obj(errs, _obj(errs, config, "spec.sessionAffinityConfig").get("clientIP"),
                         "spec.sessionAffinityConfig.clientIP")
        path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        timeout = _int(errs, client_ip.get("timeoutSeconds"), path)
        if timeout is not None and not 0 < timeout <= 86400:
            errs.invalid(path, timeout, "must be greater than 0 and less than 86400")


def _load_balancer_fields(errs: Errors, spec: dict, svc_type: str) -> None:
    ranges = _strings(errs, spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges")
    if ranges:
        path = "spec.LoadBalancerSourceRanges"  # sic: Kubernetes' own spelling of the path
        if svc_type != "LoadBalancer":
            errs.forbidden(path, "may only be used when `type` is 'LoadBalancer'")
        for i, value in enumerate(ranges):
            errs.each(f"{path}[{i}]", value.strip(), is_cidr(value.strip()))
    if spec.get("allocateLoadBalancerNodePorts") is not None and svc_type != "LoadBalancer":
        errs.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'")


def _traffic_policies(errs: Errors, spec: dict, svc_type: str) -> None:
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec, svc_type):
        if external:
            errs.invalid("spec.externalTrafficPolicy", external, "may only be set for externally-accessible services")
    else:
        _enum(errs, external, "spec.externalTrafficPolicy", ["Cluster", "Local"])
    internal = spec.get("internalTrafficPolicy")
    if internal is not None and internal not in ("Cluster", "Local"):
        errs.unsupported("spec.internalTrafficPolicy", internal, ["Cluster", "Local"])
    # Only a LoadBalancer with Local traffic has a health check port (the allocator
    # gives it one); a client may ask for a given one there and nowhere else.
    health = _int(errs, spec.get("healthCheckNodePort"), "spec.healthCheckNodePort")
    if health:
        if svc_type != "LoadBalancer" or external != "Local":
            errs.invalid("spec.healthCheckNodePort", health,
                         "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
        else:
            errs.each("spec.healthCheckNodePort", health, is_port_num(health))


# -- workloads --------------------------------------------------------------------

# The noun each workload's empty-selector message uses (ReplicaSet's says
# "deployment" in Kubernetes too).
_EMPTY_SELECTOR_NOUN = {"Deployment": "deployment", "ReplicaSet": "deployment",
                        "DaemonSet": "daemonset", "StatefulSet": "statefulset"}


def _workload_selector_and_template(errs: Errors, kind: str, spec: dict) -> None:
    selector = spec.get("selector")
    if selector is None:
        errs.required("spec.selector")
    else:
        _label_selector(errs, selector, "spec.selector")
        if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errs.invalid("spec.selector", selector, f"empty selector is invalid for {_EMPTY_SELECTOR_NOUN[kind]}")
    template = _obj(errs, spec.get("template"), "spec.template")
    tmeta = _obj(errs, template.get("metadata"), "spec.template.metadata")
    if selector is not None:
        try:
            sel = selector_from_label_selector(selector)
        except ApiError:
            sel = None  # already reported with field paths above
        labels = tmeta.get("labels") or {}
        if sel is not None and not sel.empty and isinstance(labels, dict) and not sel.matches(labels):
            errs.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    # Kubernetes validates template labels at spec.template.labels (sic).
    _labels(errs, tmeta.get("labels"), "spec.template.labels")
    _annotations(errs, tmeta.get("annotations"), "spec.template.annotations")
    _pod_spec(errs, template.get("spec"), "spec.template.spec", in_pod=False)
    tspec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    restart = tspec.get("restartPolicy")
    if restart not in (None, "Always"):
        errs.unsupported("spec.template.spec.restartPolicy", restart, ["Always"])
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.forbidden("spec.template.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported")


def _workload_counts(errs: Errors, spec: dict, keys: Iterable[str]) -> None:
    for key in keys:
        _nonnegative(errs, spec.get(key), f"spec.{key}")


def _validate_deployment(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"))
    _workload_selector_and_template(errs, "Deployment", spec)
    _deployment_strategy(errs, spec.get("strategy"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if _is_int(deadline) and _is_int(min_ready) and deadline <= min_ready:
        errs.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")


def _deployment_strategy(errs: Errors, strategy: Any) -> None:
    strategy = _obj(errs, strategy, "spec.strategy")
    kind = strategy.get("type") or "RollingUpdate"
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif kind == "RollingUpdate":
        if rolling is not None:
            _rolling_update_deployment(errs, _obj(errs, rolling, "spec.strategy.rollingUpdate"))
    else:
        errs.unsupported("spec.strategy", strategy, ["Recreate", "RollingUpdate"])


def _rolling_update_deployment(errs: Errors, rolling: dict) -> None:
    path = "spec.strategy.rollingUpdate"
    unavailable = rolling.get("maxUnavailable", "25%")
    surge = rolling.get("maxSurge", "25%")
    u = _int_or_percent(errs, unavailable, f"{path}.maxUnavailable")
    s = _int_or_percent(errs, surge, f"{path}.maxSurge")
    if u == 0 and s == 0:
        errs.invalid(f"{path}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
    _not_over_100_percent(errs, unavailable, f"{path}.maxUnavailable")


def _validate_replicaset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds"))
    _workload_selector_and_template(errs, "ReplicaSet", spec)


def _validate_daemonset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("minReadySeconds", "revisionHistoryLimit"))
    _workload_selector_and_template(errs, "DaemonSet", spec)
    strategy = _obj(errs, spec.get("updateStrategy"), "spec.updateStrategy")
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "RollingUpdate" and strategy.get("rollingUpdate") is not None:
        _rolling_update_daemonset(errs, _obj(errs, strategy["rollingUpdate"], "spec.updateStrategy.rollingUpdate"))
    elif kind not in ("RollingUpdate", "OnDelete"):
        errs.unsupported("spec.updateStrategy", strategy, ["RollingUpdate", "OnDelete"])


def _rolling_update_daemonset(errs: Errors, rolling: dict) -> None:
    """A DaemonSet rolls by surging or by taking nodes down, never both."""
    path = "spec.updateStrategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable", 1), rolling.get("maxSurge", 0)
    u = _int_or_percent(errs, unavailable, f"{path}.maxUnavailable")
    s = _int_or_percent(errs, surge, f"{path}.maxSurge")
    _not_over_100_percent(errs, unavailable, f"{path}.maxUnavailable")
    _not_over_100_percent(errs, surge, f"{path}.maxSurge")
    if u is None or s is None:
        return
    if u and s:
        errs.invalid(f"{path}.maxSurge", surge, "may not be set when maxUnavailable is non-zero")
    elif not u and not s:
        errs.required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0")


def _validate_statefulset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds", "revisionHistoryLimit"))
    policy = spec.get("podManagementPolicy")
    if policy == "":
        errs.required("spec.podManagementPolicy")
    elif policy is not None and policy not in ("OrderedReady", "Parallel"):
        errs.invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
    _statefulset_strategy(errs, spec.get("updateStrategy"))
    # Pods get DNS names <pod>.<serviceName>, so the governing service must be a label.
    if spec.get("serviceName"):
        _name_check(errs, spec["serviceName"], "spec.serviceName", is_dns1123_label)
    retention = _obj(errs, spec.get("persistentVolumeClaimRetentionPolicy"),
                     "spec.persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled"):
        if retention.get(key) is not None and retention[key] not in ("Retain", "Delete"):
            errs.unsupported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention[key], ["Retain", "Delete"])
    _workload_selector_and_template(errs, "StatefulSet", spec)


def _statefulset_strategy(errs: Errors, strategy: Any) -> None:
    strategy = _obj(errs, strategy, "spec.updateStrategy")
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "":
        errs.required("spec.updateStrategy")
    elif kind == "OnDelete":
        if rolling is not None:
            errs.invalid("spec.updateStrategy.rollingUpdate", rolling, "only allowed for updateStrategy 'RollingUpdate'")
    elif kind in (None, "RollingUpdate"):
        if rolling is not None:
            rolling = _obj(errs, rolling, "spec.updateStrategy.rollingUpdate")
            _nonnegative(errs, rolling.get("partition"), "spec.updateStrategy.rollingUpdate.partition")
            if rolling.get("maxUnavailable") is not None:
                path = "spec.updateStrategy.rollingUpdate.maxUnavailable"
                if _int_or_percent(errs, rolling["maxUnavailable"], path) == 0:
                    errs.invalid(path, rolling["maxUnavailable"], "cannot be 0")
                _not_over_100_percent(errs, rolling["maxUnavailable"], path)
    else:
        errs.invalid("spec.updateStrategy", strategy, "must be 'RollingUpdate' or 'OnDelete'")


# -- EndpointSlice, NetworkPolicy, Event --------------------------------------------


def _is_fqdn(value: str) -> list[str]:
    name = value.removesuffix(".")
    msgs = is_dns1123_subdomain(name)
    if msgs:
        return [",".join(msgs)]
    if len(name.split(".")) < 2:
        return ["should be a domain with at least two segments separated by dots"]
    return []


def _ip_of_family(version: int) -> Callable[[str], list[str]]:
    """An endpoint address check: an IP of that family that is not special."""
    def check(address: str) -> list[str]:
        ip = parse_ip(address)
        if ip is None or ip.version != version:
            return [f"must be a valid IPv{version} address"]
        return _special_ip_errors(address)
    return check


_ADDRESS_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "IPv4": _ip_of_family(4), "IPv6": _ip_of_family(6), "FQDN": _is_fqdn}


def _validate_endpointslice(errs: Errors, obj: dict) -> None:
    address_type = _str(errs, obj.get("addressType"), "addressType")
    if not address_type:
        if obj.get("addressType") in (None, ""):
            errs.required("addressType")
    elif address_type not in _ADDRESS_CHECKS:
        errs.unsupported("addressType", address_type, sorted(_ADDRESS_CHECKS))
    endpoints = _arr(errs, obj.get("endpoints"), "endpoints")
    if len(endpoints) > 1000:
        errs.too_many("endpoints", len(endpoints), 1000)
        endpoints = []
    check = _ADDRESS_CHECKS.get(address_type or "")
    for i, ep in enumerate(endpoints):
        _endpoint(errs, _obj(errs, ep, f"endpoints[{i}]"), f"endpoints[{i}]", check)
    _endpoint_ports(errs, obj.get("ports"))


def _endpoint(errs: Errors, ep: dict, path: str, check: Callable[[str], list[str]] | None) -> None:
    addresses = _strings(errs, ep.get("addresses"), f"{path}.addresses")
    if not addresses:
        errs.required(f"{path}.addresses", "must contain at least 1 address")
    elif len(addresses) > 100:
        errs.too_many(f"{path}.addresses", len(addresses), 100)
    for j, address in enumerate(addresses if check else []):
        errs.each(f"{path}.addresses[{j}]", address, check(address))
    conditions = _obj(errs, ep.get("conditions"), f"{path}.conditions")
    for key in ("ready", "serving", "terminating"):
        _bool(errs, conditions.get(key), f"{path}.conditions.{key}")
    if ep.get("hostname") is not None:
        _name_check(errs, ep["hostname"], f"{path}.hostname", is_dns1123_label)
    if ep.get("nodeName") is not None:
        _name_check(errs, ep["nodeName"], f"{path}.nodeName", is_dns1123_subdomain)


def _endpoint_ports(errs: Errors, ports: Any) -> None:
    ports = _arr(errs, ports, "ports")
    if len(ports) > 100:
        errs.too_many("ports", len(ports), 100)
        return
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        port = _obj(errs, port, path)
        name = _str(errs, port.get("name"), f"{path}.name") or ""
        if name:
            errs.each(f"{path}.name", name, is_dns1123_label(name))
        if name in names:
            errs.duplicate(f"{path}.name", name)
        names.add(name)
        _enum(errs, port.get("protocol"), f"{path}.protocol", _PROTOCOLS)
        if port.get("port") is not None:
            _in_range(errs, port["port"], f"{path}.port", 1, 65535)
        if port.get("appProtocol") is not None:
            _name_check(errs, port["appProtocol"], f"{path}.appProtocol", is_qualified_name)


def _validate_networkpolicy(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    if spec.get("podSelector") is None:
        errs.required("spec.podSelector")  # defaulting fills {} (all pods)
    else:
        _label_selector(errs, spec["podSelector"], "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(_arr(errs, spec.get(direction), f"spec.{direction}")):
            path = f"spec.{direction}[{i}]"
            rule = _obj(errs, rule, path)
            for j, port in enumerate(_arr(errs, rule.get("ports"), f"{path}.ports")):
                _policy_port(errs, _obj(errs, port, f"{path}.ports[{j}]"), f"{path}.ports[{j}]")
            for j, peer in enumerate(_arr(errs, rule.get(peers_key), f"{path}.{peers_key}")):
                _policy_peer(errs, _obj(errs, peer, f"{path}.{peers_key}[{j}]"), f"{path}.{peers_key}[{j}]")
    types = _strings(errs, spec.get("policyTypes"), "spec.policyTypes")
    if len(types) > 2:
        errs.invalid("spec.policyTypes", types, "may not specify more than two policyTypes")
        return
    for i, kind in enumerate(types):
        if kind not in ("Ingress", "Egress"):
            errs.unsupported(f"spec.policyTypes[{i}]", kind, ["Ingress", "Egress"])


def _policy_port(errs: Errors, port: dict, path: str) -> None:
    protocol = port.get("protocol")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        errs.unsupported(f"{path}.protocol", protocol, ["TCP", "UDP", "SCTP"])
    number, end = port.get("port"), port.get("endPort")
    end = _int(errs, end, f"{path}.endPort")
    if number is None:
        if end is not None:
            errs.invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
    elif _is_int(number):
        errs.each(f"{path}.port", number, is_port_num(number))
        if end is not None:
            if end < number:
                errs.invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
            errs.each(f"{path}.endPort", end, is_port_num(end))
    else:
        if end is not None:
            errs.invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric")
        _port_num_or_name(errs, number, f"{path}.port")


def _policy_peer(errs: Errors, peer: dict, path: str) -> None:
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    for key in present:
        if key == "ipBlock":
            _ip_block(errs, _obj(errs, peer[key], f"{path}.ipBlock"), f"{path}.ipBlock")
        else:
            _label_selector(errs, peer[key], f"{path}.{key}")
    if not present:
        errs.required(path, "must specify a peer")
    elif len(present) > 1 and "ipBlock" in present:
        errs.forbidden(path, "may not specify both ipBlock and another peer")


def _ip_block(errs: Errors, block: dict, path: str) -> None:
    cidr = block.get("cidr")
    if not cidr:
        errs.required(f"{path}.cidr")
        return
    errs.each(f"{path}.cidr", cidr, is_cidr(cidr))
    outer = parse_cidr(cidr)
    if outer is None:
        return
    for i, text in enumerate(_strings(errs, block.get("except"), f"{path}.except")):
        msgs = is_cidr(text)
        errs.each(f"{path}.except[{i}]", text, msgs)
        inner = parse_cidr(text)
        if inner is None:
            continue
        if inner.version != outer.version or inner.network_address not in outer \
                or outer.prefixlen >= inner.prefixlen:
            errs.invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`")


def _validate_event(errs: Errors, obj: dict) -> None:
    """Light, as core/v1 Events are: the involved object's namespace must be the event's."""
    involved = _obj(errs, obj.get("involvedObject"), "involvedObject")
    namespace = _meta(obj).get("namespace")
    if namespace is None or obj.get("eventTime"):
        return
    theirs = involved.get("namespace") or ""
    if (not theirs and namespace not in ("", "default")) or (theirs and theirs != namespace):
        errs.invalid("involvedObject.namespace", theirs, "does not match event.namespace")


_KINDS: dict[str, tuple[NameCheck, Callable[[Errors, dict], None]]] = {
    "Namespace": (is_dns1123_label, _validate_namespace),
    "Node": (is_dns1123_subdomain, _validate_node),
    "Pod": (is_dns1123_subdomain, _validate_pod),
    "Service": (is_dns1035_label, _validate_service),
    "Event": (is_dns1123_subdomain, _validate_event),
    "Deployment": (is_dns1123_subdomain, _validate_deployment),
    "ReplicaSet": (is_dns1123_subdomain, _validate_replicaset),
    "DaemonSet": (is_dns1123_subdomain, _validate_daemonset),
    "StatefulSet": (is_dns1123_label, _validate_statefulset),
    "EndpointSlice": (is_dns1123_subdomain, _validate_endpointslice),
    "NetworkPolicy": (is_dns1123_subdomain, _validate_networkpolicy),
}


# =============================================================================
# Entry points
# =============================================================================


def _meta(obj: Any) -> dict:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


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
    if kind not in _KINDS:
        errs.unsupported("kind", kind, sorted(_KINDS))
        return errs
    resource = by_kind(kind)
    api_version = obj.get("apiVersion")
    if not api_version:
        errs.required("apiVersion")
    elif api_version != resource.api_version:
        errs.unsupported("apiVersion", api_version, [resource.api_version])
    name_check, check_kind = _KINDS[kind]
    _object_meta(errs, _obj(errs, obj.get("metadata"), "metadata"), name_check, resource.namespaced)
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
    check = _UPDATE_RULES.get(new.get("kind", "") if isinstance(new, dict) else "")
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


def _diff(old: Any, new: Any, path: str) -> list[str]:
    """Leaf paths that differ, for the 'pod updates may not change' message."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in _diff(old.get(key), new.get(key), f"{path}.{key}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True)) for line in _diff(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {json.dumps(old)} -> {json.dumps(new)}"]


def _same_toleration(old: Any, new: Any) -> bool:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return old == new
    strip = {k: v for k, v in old.items() if k != "tolerationSeconds"}
    return strip == {k: v for k, v in new.items() if k != "tolerationSeconds"}


def _pod_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    """ValidatePodUpdate: only images, activeDeadlineSeconds (down), added
    tolerations and a negative grace period raised to 1 may change."""
    for key in ("containers", "initContainers"):
        if len(_list(new.get(key))) != len(_list(old.get(key))):
            errs.forbidden(f"spec.{key}", "pod updates may not add or remove containers")
            return
    deadline, old_deadline = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if _is_int(deadline) and _is_int(old_deadline) and old_deadline < deadline:
        errs.invalid("spec.activeDeadlineSeconds", deadline, "must be less than or equal to previous value")
        return
    if deadline is None and old_deadline is not None:
        errs.invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value")
    new_tolerations = _list(new.get("tolerations"))
    for tol in _list(old.get("tolerations")):
        if not any(_same_toleration(tol, t) for t in new_tolerations):
            errs.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")
            break
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        for ctr, old_ctr in zip(_list(munged.get(key)), _list(old.get(key)), strict=True):
            if isinstance(ctr, dict) and isinstance(old_ctr, dict):
                ctr.pop("image", None)
                if "image" in old_ctr:
                    ctr["image"] = old_ctr["image"]
    for key in ("activeDeadlineSeconds", "tolerations"):
        munged.pop(key, None)
        if key in old:
            munged[key] = old[key]
    old_grace = old.get("terminationGracePeriodSeconds")
    if _is_int(old_grace) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old:
        detail = "\n".join(_diff(old, munged, "spec")[:20])
        errs.forbidden("spec", "pod updates may not change fields other than "
                       + ",".join(_UPDATABLE_POD_FIELDS) + "\n" + detail)


def _selector_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    if new.get("selector") != old.get("selector"):
        errs.invalid("spec.selector", new.get("selector"), "field is immutable")


_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _statefulset_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    """Everything but a few fields (selector, serviceName, podManagementPolicy,
    volumeClaimTemplates...) is fixed for a StatefulSet's life."""
    def frozen(spec: dict) -> dict:
        return {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE}
    if frozen(new) != frozen(old):
        errs.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                       "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                       "'minReadySeconds' are forbidden")


def _service_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    """Cluster IPs never change once allocated. A new object without any keeps
    the old ones (the allocator copies them), as Kubernetes does on PUT."""
    if "ExternalName" in (new.get("type"), old.get("type")):
        return
    new_ips, old_ips = service_cluster_ips(new), service_cluster_ips(old)
    if not new_ips or (new_ips == ["None"] and old_ips == ["None"]):
        return
    for i, ip in enumerate(old_ips[:len(new_ips)]):
        if ip != new_ips[i]:
            errs.invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set")
    new_families, old_families = new.get("ipFamilies") or [], old.get("ipFamilies") or []
    if new_ips != ["None"] and new_families and len(new_families) == len(old_families) and new_families != old_families:
        errs.invalid("spec.ipFamilies[0]", new_families, "may not change once set")


def _node_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    old_cidrs = node_pod_cidrs(old)
    if old_cidrs and old_cidrs != node_pod_cidrs(new):
        errs.forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
    if old.get("providerID") and old.get("providerID") != new.get("providerID"):
        errs.forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')


def _endpointslice_update(errs: Errors, _new_spec: dict, _old_spec: dict, new: dict, old: dict) -> None:
    if new.get("addressType") != old.get("addressType"):
        errs.invalid("addressType", new.get("addressType"), "field is immutable")


_UPDATE_RULES: dict[str, Callable[[Errors, dict, dict, dict, dict], None]] = {
    "Pod": _pod_update,
    "Deployment": _selector_update,
    "ReplicaSet": _selector_update,
    "DaemonSet": _selector_update,
    "StatefulSet": _statefulset_update,
    "Service": _service_update,
    "Node": _node_update,
    "EndpointSlice": _endpointslice_update,
}
