"""The rows of each kind's table, as kubectl prints them: the cells under the
columns its record in knet/api/resources.py declares (`columns`, `printer`).

They live with the API rather than the CLI so that the server can later answer
`as=Table` from the same functions; knet/printers.py lays them out for
`knet get` and reuses the helpers here in `knet describe`. Cells follow
kubernetes/pkg/printers/internalversion/printers.go: the same placeholders
(`<none>`, `<pending>`, `<unset>`, `<unknown>`) and the same pod status derivation.

Each row function is (object, wide, now) -> cells, one per column shown
(`wide` adds the priority-1 columns). This module runs on every `knet get`,
so it imports only cheap stdlib modules.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

TYPE_CHECKING = False  # not typing's: importing typing is 4 ms of every `knet get`
if TYPE_CHECKING:
    from typing import Any

    Obj = dict[str, Any]
else:
    Obj = dict


def human_age(seconds: float) -> str:
    """An age as kubectl prints it (apimachinery duration.HumanDuration).

    Precision shrinks as the age grows so a column stays two or three
    characters wide; a clock skew of up to a second reads as "0s", anything
    more negative as "<invalid>".
    """
    s = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:?\d\d)?"
)


def parse_timestamp(value: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp, None when unset.

    Go's zero time (0001-01-01T00:00:00Z) also counts as unset, because that is
    what a Go client serialises for a time it never filled in.
    """
    if not isinstance(value, str) or not value:
        return None
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if (year, month, day, hour, minute, second) == (1, 1, 1, 0, 0, 0):
        return None
    try:
        stamp = datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        return None
    if m.group(7):
        stamp += float(m.group(7))
    zone = m.group(8)
    if zone and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        stamp -= offset if zone[0] == "+" else -offset
    return stamp


def since(value: object, now: float) -> str:
    stamp = parse_timestamp(value)
    return "<unknown>" if stamp is None else human_age(now - stamp)


def dig(obj: object, *path: str) -> Any:
    """Walk nested dicts; any missing or non-dict step yields None."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def to_int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def name_of(obj: Obj) -> str:
    return dig(obj, "metadata", "name") or ""


def format_labels(labels: object) -> str:
    """labels.FormatLabels: sorted k=v pairs, `<none>` when empty."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: object) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key."""
    if not isinstance(selector, dict):
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        values = ",".join(sorted(set(expr.get("values") or [])))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return "<error>"
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_selector(selector: object) -> str:
    """metav1.FormatLabelSelector: `<none>` for a missing or empty selector."""
    return selector_string(selector) or "<none>"


def containers_of(spec: object) -> list[Obj]:
    return [c for c in (dig(spec, "containers") or []) if isinstance(c, dict)]


def _layout_containers(template_spec: object) -> tuple[str, str]:
    containers = containers_of(template_spec)
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def pod_row(pod: Obj, wide: bool, now: float) -> list[str]:
    """printPod, line for line: the STATUS column is a derived reason, not the phase."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    restarts = 0
    restartable_restarts = 0
    total = len(containers_of(spec))
    ready = 0
    last_restart: float | None = None
    last_restartable_restart: float | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_list = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    init_specs = {c.get("name"): c for c in init_list}

    def restartable(name: object) -> bool:
        c = init_specs.get(name)
        return bool(c) and c.get("restartPolicy") == "Always"

    for c in init_list:
        if c.get("restartPolicy") == "Always":
            total += 1

    def later(current: float | None, cstatus: Obj) -> float | None:
        finished = parse_timestamp(dig(cstatus, "lastState", "terminated", "finishedAt"))
        if finished is not None and (current is None or current < finished):
            return finished
        return current

    init_statuses = [c for c in status.get("initContainerStatuses") or [] if isinstance(c, dict)]
    initializing = False
    for i, cs in enumerate(init_statuses):
        restarts += to_int(cs.get("restartCount"))
        last_restart = later(last_restart, cs)
        if restartable(cs.get("name")):
            restartable_restarts += to_int(cs.get("restartCount"))
            last_restartable_restart = later(last_restartable_restart, cs)
        terminated = dig(cs, "state", "terminated")
        waiting = dig(cs, "state", "waiting")
        if isinstance(terminated, dict) and to_int(terminated.get("exitCode")) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if isinstance(terminated, dict):
            if not terminated.get("reason"):
                if to_int(terminated.get("signal")):
                    reason = f"Init:Signal:{to_int(terminated.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{to_int(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + terminated["reason"]
        elif isinstance(waiting, dict) and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_list)}"
        initializing = True
        break

    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for cs in reversed([c for c in status.get("containerStatuses") or [] if isinstance(c, dict)]):
            restarts += to_int(cs.get("restartCount"))
            last_restart = later(last_restart, cs)
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = waiting["reason"]
            elif isinstance(terminated, dict) and terminated.get("reason"):
                reason = terminated["reason"]
            elif isinstance(terminated, dict):
                if to_int(terminated.get("signal")):
                    reason = f"Signal:{to_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{to_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            reason = "Running" if pod_ready else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_age(now - last_restart)} ago)"

    row = [name_of(pod), f"{ready}/{total}", reason, restarts_text, since(meta.get("creationTimestamp"), now)]
    if wide:
        ips = status.get("podIPs") or []
        ip = (ips[0].get("ip") if ips and isinstance(ips[0], dict) else None) or status.get("podIP")
        gates = spec.get("readinessGates") or []
        gates_text = "<none>"
        if gates:
            true = 0
            for gate in gates:
                for cond in status.get("conditions") or []:
                    if cond.get("type") == gate.get("conditionType"):
                        true += cond.get("status") == "True"
                        break
            gates_text = f"{true}/{len(gates)}"
        row += [
            ip or "<none>",
            spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            gates_text,
        ]
    return row


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in (dig(node, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Obj, kind: str) -> str:
    for addr in dig(node, "status", "addresses") or []:
        if addr.get("type") == kind:
            return addr.get("address", "")
    return "<none>"


def node_row(node: Obj, wide: bool, now: float) -> list[str]:
    states = []
    for cond in dig(node, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            states = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if dig(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    info = dig(node, "status", "nodeInfo") or {}
    row = [
        name_of(node),
        ",".join(states),
        ",".join(node_roles(node)) or "<none>",
        since(dig(node, "metadata", "creationTimestamp"), now),
        info.get("kubeletVersion", ""),
    ]
    if wide:
        row += [
            _node_address(node, "InternalIP"),
            _node_address(node, "ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]
    return row


def service_type(svc: Obj) -> str:
    return dig(svc, "spec", "type") or "ClusterIP"


def _service_external_ip(svc: Obj, wide: bool) -> str:
    spec = svc.get("spec") or {}
    external = [ip for ip in spec.get("externalIPs") or [] if ip]
    kind = service_type(svc)
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        found = set()
        for ing in dig(svc, "status", "loadBalancer", "ingress") or []:
            if ing.get("ip"):
                found.add(ing["ip"])
            elif ing.get("hostname"):
                found.add(ing["hostname"])
        lb = ",".join(sorted(found))
        if not wide and len(lb) > 16:
            lb = lb[:13] + "..."
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(svc: Obj) -> str:
    pieces = []
    for port in dig(svc, "spec", "ports") or []:
        proto = port.get("protocol") or "TCP"
        if to_int(port.get("nodePort")) > 0:
            pieces.append(f"{to_int(port.get('port'))}:{to_int(port.get('nodePort'))}/{proto}")
        else:
            pieces.append(f"{to_int(port.get('port'))}/{proto}")
    return ",".join(pieces) or "<none>"


def service_row(svc: Obj, wide: bool, now: float) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or []
    cluster_ip = ips[0] if ips else (spec.get("clusterIP") or "<none>")
    row = [
        name_of(svc),
        service_type(svc),
        cluster_ip,
        _service_external_ip(svc, wide),
        _service_ports(svc),
        since(dig(svc, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        row.append(format_labels(spec.get("selector")))
    return row


def namespace_row(ns: Obj, wide: bool, now: float) -> list[str]:
    return [name_of(ns), dig(ns, "status", "phase") or "", since(dig(ns, "metadata", "creationTimestamp"), now)]


def replicas_of(obj: Obj) -> int:
    # The API server defaults spec.replicas to 1; mirror that for objects that omit it.
    value = dig(obj, "spec", "replicas")
    return 1 if value is None else to_int(value)


def deployment_row(d: Obj, wide: bool, now: float) -> list[str]:
    st = d.get("status") or {}
    row = [
        name_of(d),
        f"{to_int(st.get('readyReplicas'))}/{replicas_of(d)}",
        str(to_int(st.get("updatedReplicas"))),
        str(to_int(st.get("availableReplicas"))),
        since(dig(d, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        names, images = _layout_containers(dig(d, "spec", "template", "spec"))
        row += [names, images, selector_string(dig(d, "spec", "selector"))]
    return row


def replicaset_row(rs: Obj, wide: bool, now: float) -> list[str]:
    st = rs.get("status") or {}
    row = [
        name_of(rs),
        str(replicas_of(rs)),
        str(to_int(st.get("replicas"))),
        str(to_int(st.get("readyReplicas"))),
        since(dig(rs, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        names, images = _layout_containers(dig(rs, "spec", "template", "spec"))
        row += [names, images, format_selector(dig(rs, "spec", "selector"))]
    return row


def daemonset_row(ds: Obj, wide: bool, now: float) -> list[str]:
    st = ds.get("status") or {}
    row = [
        name_of(ds),
        str(to_int(st.get("desiredNumberScheduled"))),
        str(to_int(st.get("currentNumberScheduled"))),
        str(to_int(st.get("numberReady"))),
        str(to_int(st.get("updatedNumberScheduled"))),
        str(to_int(st.get("numberAvailable"))),
        format_labels(dig(ds, "spec", "template", "spec", "nodeSelector")),
        since(dig(ds, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        names, images = _layout_containers(dig(ds, "spec", "template", "spec"))
        row += [names, images, format_selector(dig(ds, "spec", "selector"))]
    return row


def statefulset_row(sts: Obj, wide: bool, now: float) -> list[str]:
    row = [
        name_of(sts),
        f"{to_int(dig(sts, 'status', 'readyReplicas'))}/{replicas_of(sts)}",
        since(dig(sts, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        row += list(_layout_containers(dig(sts, "spec", "template", "spec")))
    return row


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    text = ",".join(items)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def endpointslice_row(eps: Obj, wide: bool, now: float) -> list[str]:
    limit = 3
    ports: list[str] = []
    more = False
    count = 0
    for port in eps.get("ports") or []:
        if len(ports) < limit:
            if port.get("port") is not None:
                ports.append(str(to_int(port.get("port"))))
            elif port.get("name") is not None:
                ports.append(port["name"])
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    port_text = _list_with_more(ports, more, count, limit)

    addrs: list[str] = []
    more = False
    count = 0
    for endpoint in eps.get("endpoints") or []:
        for address in endpoint.get("addresses") or []:
            if len(addrs) < limit:
                addrs.append(address)
            elif len(addrs) == limit:
                more = True
            count += 1
    return [
        name_of(eps),
        eps.get("addressType", ""),
        port_text,
        _list_with_more(addrs, more, count, limit),
        since(dig(eps, "metadata", "creationTimestamp"), now),
    ]


def networkpolicy_row(np: Obj, wide: bool, now: float) -> list[str]:
    return [
        name_of(np),
        format_selector(dig(np, "spec", "podSelector")),
        since(dig(np, "metadata", "creationTimestamp"), now),
    ]


def adminnetworkpolicy_row(anp: Obj, wide: bool, now: float) -> list[str]:
    """The CRD's additionalPrinterColumns: Priority (.spec.priority, type string) and Age."""
    priority = dig(anp, "spec", "priority")
    return [
        name_of(anp),
        "<none>" if priority is None else str(priority),
        since(dig(anp, "metadata", "creationTimestamp"), now),
    ]


def lease_row(lease: Obj, wide: bool, now: float) -> list[str]:
    """printLease: the holder's identity ("" when none holds it) and the age."""
    return [
        name_of(lease),
        dig(lease, "spec", "holderIdentity") or "",
        since(dig(lease, "metadata", "creationTimestamp"), now),
    ]


def _event_source(ev: Obj) -> str:
    component = dig(ev, "source", "component") or ev.get("reportingController") or ""
    host = dig(ev, "source", "host") or ev.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def event_row(ev: Obj, wide: bool, now: float) -> list[str]:
    if parse_timestamp(ev.get("firstTimestamp")) is not None:
        first = since(ev.get("firstTimestamp"), now)
    else:
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now)
    if parse_timestamp(ev.get("lastTimestamp")) is None:
        last = first
    count = to_int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = to_int(series.get("count"))
    elif count == 0:
        count = 1
    involved = ev.get("involvedObject") or {}
    target = (involved.get("kind") or "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    message = (ev.get("message") or "").strip()
    if wide:
        return [
            last,
            ev.get("type", ""),
            ev.get("reason", ""),
            target,
            involved.get("fieldPath", ""),
            _event_source(ev),
            message,
            first,
            str(count),
            name_of(ev),
        ]
    return [last, ev.get("type", ""), ev.get("reason", ""), target, message]


def default_row(obj: Obj, wide: bool, now: float) -> list[str]:
    return [name_of(obj), since(dig(obj, "metadata", "creationTimestamp"), now)]


# -- configuration and identity (printConfigMap, printSecret, printServiceAccount, printRole, printRoleBinding) --


def configmap_row(cm: Obj, wide: bool, now: float) -> list[str]:
    size = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [name_of(cm), str(size), since(dig(cm, "metadata", "creationTimestamp"), now)]


def secret_row(secret: Obj, wide: bool, now: float) -> list[str]:
    return [name_of(secret), secret.get("type") or "", str(len(secret.get("data") or {})),
            since(dig(secret, "metadata", "creationTimestamp"), now)]


def serviceaccount_row(sa: Obj, wide: bool, now: float) -> list[str]:
    return [name_of(sa), str(len(sa.get("secrets") or [])), since(dig(sa, "metadata", "creationTimestamp"), now)]


def role_row(role: Obj, wide: bool, now: float) -> list[str]:
    """Name and the creation time as RFC 3339 in UTC (kubectl's CREATED AT)."""
    return [name_of(role), str(dig(role, "metadata", "creationTimestamp") or "")]


def _subjects_strings(subjects: list) -> tuple[str, str, str]:
    """rbac.SubjectsStrings: users, groups and namespace:name service accounts."""
    users, groups, sas = [], [], []
    for s in subjects or []:
        if not isinstance(s, dict):
            continue
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name") or "")
        elif kind == "Group":
            groups.append(s.get("name") or "")
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace') or ''}:{s.get('name') or ''}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def rolebinding_row(binding: Obj, wide: bool, now: float) -> list[str]:
    ref = binding.get("roleRef") or {}
    row = [name_of(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}",
           since(dig(binding, "metadata", "creationTimestamp"), now)]
    if wide:
        row += list(_subjects_strings(binding.get("subjects")))
    return row
