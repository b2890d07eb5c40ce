"""The scheduler: binds pending pods to nodes (see scheduling.py for the rules)."""

from __future__ import annotations

import logging

from knet.api.errors import ApiError
from knet.api.objects import condition, deep_copy, set_condition
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers.events import make_event
from knet.controllers.scheduling import choose_node, node_ready

log = logging.getLogger("knet.scheduler")
PODS, EVENTS = by_kind("Pod"), by_kind("Event")
WATCHES = ("Pod", "Node")


def active(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def _has_anti_affinity(pod: dict) -> bool:
    return bool((((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"))


def schedule_key(view, key: str) -> bool:
    """Bind one unbound pod (its key from the scheduling queue) against the
    cache's nodes and per-node pod counts (kept by the cache as pods come and
    go); returns whether it was bound. The pods on each node are gathered only
    for a pod with anti-affinity terms."""
    cache = view.cache
    pod = cache.unbound.get(key)
    if pod is None:
        return False
    reg = view.reg
    nodes = cache.list("Node")
    placed = None
    if _has_anti_affinity(pod):
        placed = {n: [p for p in cache.pods_on(n) if active(p)] for n in cache.node_counts}
    m = pod["metadata"]
    node, message = choose_node(pod, nodes, cache.node_counts, placed)
    try:
        if node:
            reg.bind(m["namespace"], m["name"], node)
            reg.create(EVENTS, m["namespace"], make_event(
                pod, "Normal", "Scheduled", f"Successfully assigned {m['namespace']}/{m['name']} to {node}",
                "default-scheduler"))
            return True
        mark_unschedulable(reg, pod, message)
    except ApiError as e:  # the pod changed under us; its event brings it back
        log.debug("scheduling %s/%s: %s", m["namespace"], m["name"], e.message)
        if e.code == 409:
            view.retry = True
    return False


def sync_key(view, key: str) -> None:
    """The scheduler as a controller: nothing to come back for (a pod that
    fits nowhere is queued again by the node events that may change that)."""
    schedule_key(view, key)


def schedule_pass(reg: Registry) -> int:
    """Try to bind every unbound pod once, oldest first; returns how many were bound."""
    from knet.controllers.base import View

    view = View(reg)
    pending = sorted(view.cache.unbound.values(),
                     key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    return sum(schedule_key(view, f"{p['metadata']['namespace']}/{p['metadata']['name']}") for p in pending)


def _node_state(node: dict | None) -> tuple | None:
    if node is None:
        return None
    return node["metadata"].get("labels"), node.get("spec"), node_ready(node)


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """An unbound pod, for itself; a node that changes where pods may go
    (added, labels, taints, readiness), for every unbound pod (upstream moves
    its unschedulable pods back to the active queue on such events)."""
    if kind == "Pod":
        if new is not None and not new["spec"].get("nodeName") and not new["metadata"].get("deletionTimestamp"):
            return {f"{new['metadata']['namespace']}/{new['metadata']['name']}"}
        if old is not None and old["spec"].get("nodeName") and active(old) and (new is None or not active(new)):
            # a node's pod count went down: the pods that found every node full may fit now
            return {k for k, p in cache.unbound.items()
                    if (condition(p, "PodScheduled") or {}).get("status") == "False"}
        return set()
    if _node_state(old) == _node_state(new):
        return set()
    return set(cache.unbound)


def mark_unschedulable(reg: Registry, pod: dict, message: str) -> None:
    """Pending with a reason, written only when the reason changes (no event storm)."""
    c = condition(pod, "PodScheduled")
    if c and c.get("status") == "False" and c.get("message") == message:
        return
    new = deep_copy(pod)
    set_condition(new.setdefault("status", {}), "PodScheduled", False, "Unschedulable", message)
    m = pod["metadata"]
    reg.update(PODS, m["namespace"], m["name"], new, "status")
    reg.create(EVENTS, m["namespace"], make_event(pod, "Warning", "FailedScheduling", message, "default-scheduler"))
