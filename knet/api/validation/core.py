"""Validation of the core group (v1): Pod (and the pod spec templates
reuse), Namespace, Node, Service, Event, and their update rules.

Error paths follow Kubernetes even where Kubernetes is odd, because clients and
the shared test corpus match on them: pod-template labels are reported at
`spec.template.labels` (not `.metadata.labels`), node taints at
`metadata.taints[i]`, LoadBalancer source ranges at
`spec.LoadBalancerSourceRanges[i]`, and a Service's `clusterIP` at
`spec.clusterIPs[0]` once defaulting has mirrored it there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any

from knet.api.selectors import (
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    regex_error,
)
from knet.api.validation.fields import (
    _HTTP_HEADER_FMT,
    _HTTP_HEADER_RE,
    _MAX_INT32,
    _PROTOCOLS,
    Errors,
    _arr,
    _bool,
    _enum,
    _in_range,
    _int,
    _is_int,
    _label_selector,
    _labels,
    _list,
    _meta,
    _name_check,
    _nonnegative,
    _obj,
    _port_num_or_name,
    _selector_requirement,
    _special_ip_errors,
    _str,
    _strings,
    is_cidr,
    is_dns1123_label,
    is_env_var_name,
    is_ip,
    is_port_name,
    is_port_num,
    parse_cidr,
    parse_ip,
)

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
    _dns_config(errs, spec.get("dnsConfig"), spec.get("dnsPolicy"), f"{path}.dnsConfig")
    _host_aliases(errs, spec.get("hostAliases"), f"{path}.hostAliases")
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


def _dns_config(errs: Errors, config: Any, policy: Any, path: str) -> None:
    """validatePodDNSConfig, with the limits kubelet applies (ExpandedDNSConfig:
    32 search paths, 2048 characters)."""
    if policy == "None":
        if config is None:
            errs.required(path, "must provide `dnsConfig` when `dnsPolicy` is None")
            return
        if isinstance(config, dict) and not config.get("nameservers"):
            errs.required(f"{path}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None")
            return
    if config is None:
        return
    config = _obj(errs, config, path)
    nameservers = _strings(errs, config.get("nameservers"), f"{path}.nameservers")
    if len(nameservers) > 3:
        errs.invalid(f"{path}.nameservers", nameservers, "must not have more than 3 nameservers")
    for i, ns in enumerate(nameservers):
        errs.each(f"{path}.nameservers[{i}]", ns, is_ip(ns))
    searches = _strings(errs, config.get("searches"), f"{path}.searches")
    if len(searches) > 32:
        errs.invalid(f"{path}.searches", searches, "must not have more than 32 search paths")
    if len(" ".join(searches)) > 2048:
        errs.invalid(f"{path}.searches", searches,
                     "must not have more than 2048 characters (including spaces) in the search list")
    for i, search in enumerate(searches):
        trimmed = search[:-1] if search.endswith(".") else search  # a trailing dot is fine
        errs.each(f"{path}.searches[{i}]", trimmed, is_dns1123_subdomain(trimmed))
    for i, option in enumerate(_arr(errs, config.get("options"), f"{path}.options")):
        option = _obj(errs, option, f"{path}.options[{i}]")
        if not option.get("name"):
            errs.required(f"{path}.options[{i}]", "must not be empty")


def _host_aliases(errs: Errors, aliases: Any, path: str) -> None:
    """validateHostAliases: each ip an IP address, each hostname a DNS subdomain."""
    for i, alias in enumerate(_arr(errs, aliases, path)):
        alias = _obj(errs, alias, f"{path}[{i}]")
        ip = _str(errs, alias.get("ip"), f"{path}[{i}].ip")
        errs.each(f"{path}[{i}].ip", ip, is_ip(ip or ""))
        for j, host in enumerate(_strings(errs, alias.get("hostnames"), f"{path}[{i}].hostnames")):
            errs.each(f"{path}[{i}].hostnames[{j}]", host, is_dns1123_subdomain(host))


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


def validate_pod(errs: Errors, obj: dict) -> None:
    _pod_spec(errs, obj.get("spec"), "spec", in_pod=True)


def validate_namespace(errs: Errors, obj: dict) -> None:
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


def validate_node(errs: Errors, obj: dict) -> None:
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


def validate_service(errs: Errors, obj: dict) -> None:
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


def validate_event(errs: Errors, obj: dict) -> None:
    """Light, as core/v1 Events are: the involved object's namespace must be the event's."""
    involved = _obj(errs, obj.get("involvedObject"), "involvedObject")
    namespace = _meta(obj).get("namespace")
    if namespace is None or obj.get("eventTime"):
        return
    theirs = involved.get("namespace") or ""
    if (not theirs and namespace not in ("", "default")) or (theirs and theirs != namespace):
        errs.invalid("involvedObject.namespace", theirs, "does not match event.namespace")


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


def validate_pod_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
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


def validate_service_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
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


def validate_node_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    old_cidrs = node_pod_cidrs(old)
    if old_cidrs and old_cidrs != node_pod_cidrs(new):
        errs.forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
    if old.get("providerID") and old.get("providerID") != new.get("providerID"):
        errs.forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')
