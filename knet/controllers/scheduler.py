"""The scheduler: binds pending pods to nodes (see scheduling.py for the rules)."""

from __future__ import annotations

import logging
from collections import Counter

from knet.api.errors import ApiError
from knet.api.objects import condition, deep_copy, set_condition
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers.events import make_event
from knet.controllers.scheduling import choose_node

log = logging.getLogger("knet.scheduler")
PODS, NODES, EVENTS = by_kind("Pod"), by_kind("Node"), by_kind("Event")


def active(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def schedule_pass(reg: Registry) -> int:
    """Try to bind every unbound pod once; returns how many were bound."""
    pods, _ = reg.list(PODS)
    pending = [p for p in pods if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")]
    if not pending:
        return 0
    nodes, _ = reg.list(NODES)
    placed: dict[str, list[dict]] = {}
    for p in pods:
        if p["spec"].get("nodeName") and active(p):
            placed.setdefault(p["spec"]["nodeName"], []).append(p)
    counts: Counter = Counter({name: len(there) for name, there in placed.items()})
    bound = 0
    pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    for pod in pending:
        m = pod["metadata"]
        node, message = choose_node(pod, nodes, counts, placed)
        try:
            if node:
                reg.bind(m["namespace"], m["name"], node)
                counts[node] += 1
                placed.setdefault(node, []).append(pod)  # the next replica avoids it as the pod would
                bound += 1
                reg.create(EVENTS, m["namespace"], make_event(
                    pod, "Normal", "Scheduled", f"Successfully assigned {m['namespace']}/{m['name']} to {node}",
                    "default-scheduler"))
            else:
                mark_unschedulable(reg, pod, message)
        except ApiError as e:  # the pod changed under us; the next pass sees the new version
            log.debug("scheduling %s/%s: %s", m["namespace"], m["name"], e.message)
    return bound


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
