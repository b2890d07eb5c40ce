"""Node lifecycle: a node whose agent stops heartbeating turns NotReady.

As kube-controller-manager's node lifecycle controller does, the Ready
condition becomes Unknown ("Kubelet stopped posting node status.") once the
last heartbeat is older than the grace period the cluster file sets.
"""

from __future__ import annotations

import time

from knet.api.errors import ApiError
from knet.api.objects import condition, deep_copy, parse_rfc3339, set_condition
from knet.api.registry import Registry
from knet.api.resources import by_kind

NODES = by_kind("Node")


def check_nodes(reg: Registry, grace: float, now: float | None = None) -> list[str]:
    """Mark stale nodes Unknown; returns the names it changed."""
    now = time.time() if now is None else now
    changed = []
    for node in reg.list(NODES)[0]:
        c = condition(node, "Ready")
        if not c or c.get("status") == "Unknown":
            continue
        beat = c.get("lastHeartbeatTime")
        if beat and now - parse_rfc3339(beat) <= grace:
            continue
        new = deep_copy(node)
        for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            if condition(new, ctype):
                set_condition(new["status"], ctype, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        try:
            reg.update(NODES, None, node["metadata"]["name"], new, "status")
            changed.append(node["metadata"]["name"])
        except ApiError:
            pass  # the agent came back and wrote first
    return changed
