"""The DaemonSet controller: one pod on every eligible node.

Eligible means the pod template's nodeSelector and node affinity match and
every NoSchedule/NoExecute taint is tolerated, counting the tolerations the
DaemonSet controller adds to its pods upstream (not-ready, unreachable,
pressure and unschedulable), so a cordoned node keeps its DaemonSet pod.
Each pod is pinned with node affinity on metadata.name and bound by the
scheduler, as upstream does since 1.12.
"""

from __future__ import annotations

from knet.api.objects import deep_copy
from knet.controllers.base import (
    View,
    is_active,
    is_ready,
    owner_key,
    pod_from_template,
    template_hash,
)
from knet.controllers.scheduling import node_ready, why_not

COMPONENT = "daemonset-controller"
HASH_LABEL = "controller-revision-hash"
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
NOT_BLOCKING = (None, "node(s) were not ready", "node(s) were unschedulable")


def daemon_pod_spec(template: dict, node: str) -> dict:
    spec = deep_copy(template.get("spec") or {})
    tolerations = list(spec.get("tolerations") or [])
    for t in DAEMON_TOLERATIONS:
        if t not in tolerations:
            tolerations.append(dict(t))
    spec["tolerations"] = tolerations
    affinity = spec.setdefault("affinity", {})
    affinity.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return spec


def eligible(template: dict, node: dict) -> bool:
    probe = {"metadata": {}, "spec": daemon_pod_spec(template, node["metadata"]["name"])}
    return why_not(probe, node) in NOT_BLOCKING


def pinned_node(pod: dict) -> str | None:
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = ((((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return None


WATCHES = ("DaemonSet", "Pod", "Node")


def sync(view: View) -> None:
    for ds in view.list("DaemonSet"):
        sync_key(view, f"{ds['metadata']['namespace']}/{ds['metadata']['name']}")


def sync_key(view: View, key: str) -> None:
    ds = view.get("DaemonSet", key)
    if ds is not None and not ds["metadata"].get("deletionTimestamp"):
        with view.guard(ds, COMPONENT):
            sync_one(view, ds, view.list("Node"))


def _node_state(node: dict | None) -> tuple | None:
    """What of a node decides eligibility (not its heartbeats)."""
    if node is None:
        return None
    return node["metadata"].get("labels"), node.get("spec"), node_ready(node)


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """Its own events; a pod's, for its owner; a node's that changes what may
    run there (labels, taints, readiness), for every DaemonSet."""
    obj = new or old
    if kind == "DaemonSet":
        return {f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"}
    if kind == "Pod":
        return {k for k in (owner_key(old, "DaemonSet"), owner_key(new, "DaemonSet")) if k}
    if _node_state(old) == _node_state(new):
        return set()
    return {f"{ds['metadata']['namespace']}/{ds['metadata']['name']}" for ds in cache.list("DaemonSet")}


def sync_one(view: View, ds: dict, nodes: list[dict]) -> None:
    template = ds["spec"]["template"]
    revision = template_hash(template)
    pods = view.cache.owned("Pod", ds["metadata"]["uid"])
    by_node: dict[str, list[dict]] = {}
    for p in pods:
        if is_active(p) or p["metadata"].get("deletionTimestamp"):
            by_node.setdefault(pinned_node(p) or "", []).append(p)
    strategy = ds["spec"].get("updateStrategy") or {}
    max_unavailable = 1
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        v = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
        max_unavailable = v if isinstance(v, int) else max(1, int(str(v).rstrip("%")) * len(nodes) // 100)
    wanted = {n["metadata"]["name"] for n in nodes if eligible(template, n)}
    desired = scheduled = ready = updated = available = misscheduled = 0
    unavailable_now = 0
    for node in sorted(wanted):
        here = by_node.get(node, [])
        live = [p for p in here if is_active(p)]
        if not live or not any(is_ready(p) for p in live):
            unavailable_now += 1
    for node in sorted(set(wanted) | set(by_node)):
        here = by_node.get(node, [])
        live = [p for p in here if is_active(p)]
        if node not in wanted:
            misscheduled += bool(live)
            for p in live:
                view.delete("Pod", p)
            continue
        desired += 1
        if not here:
            spec = daemon_pod_spec(template, node)
            pod = pod_from_template({"metadata": template.get("metadata"), "spec": spec}, ds,
                                    generate_name=f"{ds['metadata']['name']}-", labels={HASH_LABEL: revision})
            out = view.create("Pod", ds["metadata"]["namespace"], pod)
            if out:
                view.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {out['metadata']['name']}", COMPONENT)
            continue
        for extra in live[1:]:
            view.delete("Pod", extra)
        if not live:
            continue  # the old one is still terminating
        pod = live[0]
        scheduled += 1
        ready += is_ready(pod)
        current = (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == revision
        updated += current
        available += is_ready(pod)
        if not current and strategy.get("type", "RollingUpdate") == "RollingUpdate":
            # Replace old pods, keeping at most maxUnavailable nodes without a ready pod.
            if not is_ready(pod) or unavailable_now < max_unavailable:
                if is_ready(pod):
                    unavailable_now += 1
                if view.delete("Pod", pod):
                    view.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", COMPONENT)
    status = {"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled, "numberReady": ready,
              "updatedNumberScheduled": updated, "numberAvailable": available,
              "numberUnavailable": max(0, desired - available), "numberMisscheduled": misscheduled,
              "observedGeneration": ds["metadata"].get("generation", 1)}
    view.update_status("DaemonSet", ds, status)

