"""Defaulting, as kube-apiserver applies it before validation.

`apply_defaults(obj)` fills what Kubernetes fills (SetDefaults_* plus the few
normalisations its registries do before validating, such as mirroring a
Service's `clusterIP` into `clusterIPs`), so that a stored knet object reads
back like one from a real cluster and controllers can rely on the fields being
set. It never rejects anything: a field of the wrong type is left alone for
validation to report.

Go cannot tell an empty string or a zero int32 from a missing one, so where
Kubernetes defaults a non-pointer field, "" (and, for probe counters, 0) counts
as unset here too.
"""

from __future__ import annotations

from typing import Any

from knet.api.resources import by_kind


def _unset(d: dict, key: str, *, zero: bool = False) -> bool:
    value = d.get(key)
    return value is None or value == "" or (zero and value == 0 and not isinstance(value, bool))


def _default(d: dict, key: str, value: Any, *, zero: bool = False) -> None:
    if _unset(d, key, zero=zero):
        d[key] = value


def _child(d: dict, key: str) -> dict | None:
    """d[key] as a dict, created if missing; None if it is something else."""
    if d.get(key) is None:
        d[key] = {}
    value = d[key]
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


# -- pods -----------------------------------------------------------------------------


def _http_get(action: Any) -> None:
    if isinstance(action, dict):
        _default(action, "path", "/")
        _default(action, "scheme", "HTTP")


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _default(probe, "timeoutSeconds", 1, zero=True)
    _default(probe, "periodSeconds", 10, zero=True)
    _default(probe, "successThreshold", 1, zero=True)
    _default(probe, "failureThreshold", 3, zero=True)
    _http_get(probe.get("httpGet"))


def _container(c: dict, host_network: bool) -> None:
    for port in _dicts(c.get("ports")):
        _default(port, "protocol", "TCP")
        if host_network and not port.get("hostPort") and port.get("containerPort"):
            port["hostPort"] = port["containerPort"]
    for var in _dicts(c.get("env")):
        source = var.get("valueFrom")
        ref = source.get("fieldRef") if isinstance(source, dict) else None
        if isinstance(ref, dict):
            _default(ref, "apiVersion", "v1")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in (lifecycle.get("postStart"), lifecycle.get("preStop")):
            if isinstance(hook, dict):
                _http_get(hook.get("httpGet"))


def pod_spec_defaults(spec: Any) -> None:
    """SetDefaults_PodSpec and friends, for a Pod or any pod template."""
    if not isinstance(spec, dict):
        return
    _default(spec, "restartPolicy", "Always")
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "schedulerName", "default-scheduler")
    _default(spec, "enableServiceLinks", True)
    _child(spec, "securityContext")
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            _container(c, host_network)


def default_pod(obj: dict) -> None:
    spec = _child(obj, "spec")
    pod_spec_defaults(spec)
    if spec is None:
        return
    # A negative grace period is stored as 1, never refused (kubernetes#115606):
    # templates may carry one, and their pods must still be created.
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        spec["terminationGracePeriodSeconds"] = 1
    default_toleration_seconds(spec)
    default_priority(spec)


# The Priority admission plugin's built-in classes (scheduling/v1 system classes).
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


def default_priority(spec: dict) -> None:
    """Upstream's Priority admission (Pods only): a pod with no class gets
    priority 0 and the PreemptLowerPriority policy, which `kubectl describe
    pod` prints. A class other than the two system ones is left unresolved:
    knet serves no PriorityClass kind."""
    name = spec.get("priorityClassName")
    value = 0 if not name else SYSTEM_PRIORITIES.get(name)
    if value is None or "priority" in spec:
        return
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


# The DefaultTolerationSeconds admission plugin's tolerations: a pod stays bound
# to a NotReady or unreachable node this long before the taint manager evicts it.
DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def default_toleration_seconds(spec: dict) -> None:
    """Upstream's DefaultTolerationSeconds admission (Pods only, not templates):
    add `not-ready:NoExecute` and `unreachable:NoExecute` tolerations for 300 s
    unless the pod already tolerates that taint (a toleration with that key or
    no key, and effect NoExecute or none). The node lifecycle controller's
    evictions rely on it."""
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    elif not isinstance(tolerations, list):
        return  # validation reports it
    have = [t for t in tolerations if isinstance(t, dict)]

    def tolerated(key: str) -> bool:
        return any(t.get("key") in (key, "", None) and t.get("effect") in ("NoExecute", "", None) for t in have)

    added = [{"key": key, "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
             for key in (NOT_READY_TAINT, UNREACHABLE_TAINT) if not tolerated(key)]
    if added:
        spec["tolerations"] = tolerations + added


def _template(spec: dict) -> None:
    template = _child(spec, "template")
    if template is not None:
        pod_spec_defaults(_child(template, "spec"))


# -- services -------------------------------------------------------------------------


def default_service(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _default(spec, "type", "ClusterIP")
    _default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)  # SetDefaults_Service: no config without affinity
    elif spec["sessionAffinity"] == "ClientIP":
        config = _child(spec, "sessionAffinityConfig")
        client_ip = _child(config, "clientIP") if config is not None else None
        if client_ip is not None:
            _default(client_ip, "timeoutSeconds", 10800)
    for port in _dicts(spec.get("ports")):
        _default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    _mirror_cluster_ips(spec)
    svc_type = spec["type"]
    if svc_type == "ExternalName":
        return
    _default(spec, "internalTrafficPolicy", "Cluster")
    if svc_type in ("NodePort", "LoadBalancer") or (svc_type == "ClusterIP" and spec.get("externalIPs")):
        _default(spec, "externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
    _ip_families(spec)


def _mirror_cluster_ips(spec: dict) -> None:
    """Keep clusterIP and clusterIPs[0] in step, as the Service registry does
    before validation, so either may be written and both read back."""
    ips = spec.get("clusterIPs")
    if ips is None and isinstance(spec.get("clusterIP"), str) and spec["clusterIP"]:
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif isinstance(ips, list) and ips and not spec.get("clusterIP"):
        spec["clusterIP"] = ips[0]


def _ip_families(spec: dict) -> None:
    """SingleStack, with the family of the requested cluster IP (IPv4 when the
    allocator will choose)."""
    _default(spec, "ipFamilyPolicy", "SingleStack")
    if spec.get("ipFamilies"):
        return
    families = []
    for ip in spec.get("clusterIPs") or []:
        if isinstance(ip, str) and ip != "None":
            families.append("IPv6" if ":" in ip else "IPv4")
    spec["ipFamilies"] = families or ["IPv4"]


# -- workloads ------------------------------------------------------------------------


def default_deployment(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _default(spec, "replicas", 1)
    strategy = _child(spec, "strategy")
    if strategy is not None:
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                _default(rolling, "maxUnavailable", "25%")
                _default(rolling, "maxSurge", "25%")
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "progressDeadlineSeconds", 600)
    _template(spec)


def default_replicaset(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is not None:
        _default(spec, "replicas", 1)
        _template(spec)


def default_daemonset(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                _default(rolling, "maxUnavailable", 1)
                _default(rolling, "maxSurge", 0)
    _default(spec, "revisionHistoryLimit", 10)
    _template(spec)


def default_statefulset(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _default(spec, "replicas", 1)
    _default(spec, "podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        if _unset(strategy, "type"):
            strategy["type"] = "RollingUpdate"
            _child(strategy, "rollingUpdate")
        rolling = strategy.get("rollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
            _default(rolling, "partition", 0)
    retention = _child(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        _default(retention, "whenDeleted", "Retain")
        _default(retention, "whenScaled", "Retain")
    _default(spec, "revisionHistoryLimit", 10)
    _template(spec)


# -- the rest -------------------------------------------------------------------------


def default_networkpolicy(obj: dict) -> None:
    """SetDefaults_NetworkPolicy: no policyTypes means Ingress, plus Egress if
    there are egress rules (an empty `egress: []` adds nothing); a port without
    a protocol is TCP (the field is a pointer in Go, so only an absent one is
    filled: `protocol: ""` stays for validation to refuse).

    Empty lists are dropped, as the Go types' `omitempty` drops them on the way
    out of a real API server: `ingress: []` reads back as no `ingress`, which
    is what it means (with Ingress in policyTypes: deny all)."""
    spec = _child(obj, "spec")
    if spec is None:
        return
    _child(spec, "podSelector")  # Go's zero struct: {} selects every pod
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                if port.get("protocol") is None:
                    port["protocol"] = "TCP"
            for peer in _dicts(rule.get(peers)):
                if isinstance(peer.get("ipBlock"), dict):
                    _drop_empty(peer["ipBlock"], "except")
            _drop_empty(rule, "ports", peers)
        _drop_empty(spec, direction)


def _drop_empty(d: dict, *keys: str) -> None:
    for key in keys:
        if d.get(key) == []:
            del d[key]


def default_adminnetworkpolicy(obj: dict) -> None:
    """The CRDs' `default: TCP` on portNumber and portRange protocols
    (AdminNetworkPolicy and BaselineAdminNetworkPolicy share the port type).
    As CRD defaulting does, only an absent field is filled."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                for key in ("portNumber", "portRange"):
                    if isinstance(port.get(key), dict) and port[key].get("protocol") is None:
                        port[key]["protocol"] = "TCP"


def default_endpointslice(obj: dict) -> None:
    """SetDefaults_EndpointPort: a port's name is "" and its protocol TCP when unset."""
    for port in _dicts(obj.get("ports")):
        _default(port, "name", "")
        _default(port, "protocol", "TCP")


def default_namespace(obj: dict) -> None:
    """Every namespace carries its own name as a label, so a NetworkPolicy
    namespaceSelector can pick namespaces by name."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]:
        labels = _child(meta, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = meta["name"]


def default_node(obj: dict) -> None:
    """Keep podCIDR and podCIDRs[0] in step (Kubernetes converts between them)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    cidrs = spec.get("podCIDRs")
    if cidrs is None and isinstance(spec.get("podCIDR"), str) and spec["podCIDR"]:
        spec["podCIDRs"] = [spec["podCIDR"]]
    elif isinstance(cidrs, list) and cidrs and not spec.get("podCIDR"):
        spec["podCIDR"] = cidrs[0]


def apply_defaults(obj: dict) -> dict:
    """Fill in what Kubernetes would, in place; returns `obj` for chaining.
    Unknown kinds and non-dict input pass through untouched. Which defaulter
    a kind has is its record's `defaults` (knet/api/resources.py)."""
    if isinstance(obj, dict):
        res = by_kind(obj.get("kind", ""))
        defaulter = res.hook("defaults") if res is not None else None
        if defaulter:
            defaulter(obj)
    return obj
