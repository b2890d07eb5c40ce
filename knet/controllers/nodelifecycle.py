"""Node lifecycle: what the control plane does when a node's agent goes quiet,
as kube-controller-manager's node lifecycle controller does.

- `check_nodes` (time-driven): a node not heard from for the grace period gets
  Ready (and the pressure conditions) Unknown, reason NodeStatusUnknown,
  "Kubelet stopped posting node status." (NodeStatusNeverUpdated for a node
  that never posted one), and a NodeNotReady event. Heard from means a new
  Ready lastHeartbeatTime or a new renewTime on its Lease in kube-node-lease,
  as upstream's nodeHealth probeTimestamp since 1.17: agents renew the small
  Lease every heartbeat and write the large Node status only when it changes
  (or every few minutes), since every agent watches every Node.
- `sync` (a controller pass): while a node is not Ready, every pod on it has its
  Ready condition set False (upstream's MarkPodsNotReady, with a Warning
  NodeNotReady "Node is not ready" event on the pod), so the EndpointSlice
  controller, which follows pod readiness, drops them from the ready endpoints
  in the same pass. The node's taints follow its conditions: Ready Unknown ->
  node.kubernetes.io/unreachable, Ready False -> node.kubernetes.io/not-ready,
  each NoExecute (the taint manager in taints.py evicts after the pods'
  tolerationSeconds) and NoSchedule (taint-based scheduling), pressure
  conditions -> their NoSchedule taints; all removed once the node is Ready.

The decisions are pure functions (stale_status, wanted_taints, reconcile_taints,
pods_to_mark) so they can be tested without a store; `sync` and `check_nodes`
only read and write.
"""

from __future__ import annotations

import logging
import time
import weakref

from knet.api.errors import ApiError
from knet.api.objects import condition, deep_copy, now_rfc3339, parse_rfc3339
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers.base import View, recorder_for

log = logging.getLogger("knet.controllers.nodelifecycle")

NODES = by_kind("Node")
LEASES = by_kind("Lease")
LEASE_NAMESPACE = "kube-node-lease"  # the agents' Leases, one per node, named after it
COMPONENT = "node-controller"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
# (condition type, status) -> the taint key it calls for (upstream's nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
MANAGED_KEYS = frozenset(CONDITION_TAINTS.values())
HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


# -- pure decisions -------------------------------------------------------------------


def ready_status(node: dict) -> str:
    c = condition(node, "Ready")
    return c.get("status", "Unknown") if c else "Unknown"


def stale_status(node: dict, grace: float, now: float, seen: float | None = None) -> dict | None:
    """The status to write if the node's agent has not been heard from within
    `grace` seconds, else None. `seen` is when this controller last saw a new
    heartbeat of it, in its status or its Lease (upstream's probeTimestamp: its
    own clock, and finer than the heartbeat's one-second timestamp); without
    it, the Ready heartbeat's time, or for a node that never posted one its
    creation (a start-up grace). Only conditions not already Unknown change,
    so their lastTransitionTime says when the node went quiet."""
    if seen is None:
        beat = (condition(node, "Ready") or {}).get("lastHeartbeatTime")
        created = node.get("metadata", {}).get("creationTimestamp")
        seen = parse_rfc3339(beat or created) if (beat or created) else None
    if seen is not None and now - seen <= grace:
        return None
    status = deep_copy(node.get("status") or {})
    conds = status.setdefault("conditions", [])
    ts = now_rfc3339(now)
    changed = False
    for ctype in HEALTH_CONDITIONS:
        c = next((c for c in conds if c.get("type") == ctype), None)
        if c is None:
            conds.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                          "message": "Kubelet never posted node status.",
                          "lastHeartbeatTime": node.get("metadata", {}).get("creationTimestamp") or ts,
                          "lastTransitionTime": ts})
            changed = True
        elif c.get("status") != "Unknown":
            c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                     lastTransitionTime=ts)
            changed = True
    return status if changed else None


def wanted_taints(node: dict) -> list[dict]:
    """The condition taints this node should carry (key and effect only)."""
    out = []
    for c in node.get("status", {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((c.get("type"), c.get("status")))
        if key is None:
            continue
        out.append({"key": key, "effect": "NoSchedule"})
        if c.get("type") == "Ready":
            out.append({"key": key, "effect": "NoExecute"})
    return out


def reconcile_taints(current: list[dict], wanted: list[dict], now: float) -> list[dict] | None:
    """The node's new taint list, or None if it is right already. Taints this
    controller does not manage are kept as they are; a managed taint that stays
    keeps its timeAdded (the taint manager counts tolerationSeconds from it)."""
    want = {(t["key"], t["effect"]) for t in wanted}
    out, have = [], set()
    for t in current:
        k = (t.get("key"), t.get("effect"))
        if t.get("key") in MANAGED_KEYS and k not in want:
            continue
        out.append(t)
        have.add(k)
    added = [{"key": t["key"], "effect": t["effect"], "timeAdded": now_rfc3339(now)}
             for t in wanted if (t["key"], t["effect"]) not in have]
    if not added and len(out) == len(current):
        return None
    return out + added


def pods_to_mark(node: dict, pods: list[dict]) -> list[dict]:
    """The pods on a not-Ready node whose Ready condition still says otherwise
    (upstream marks only pods that have a Ready condition)."""
    if ready_status(node) == "True":
        return []
    name = node["metadata"]["name"]
    out = []
    for pod in pods:
        if pod["spec"].get("nodeName") != name:
            continue
        c = condition(pod, "Ready")
        if c is not None and c.get("status") != "False":
            out.append(pod)
    return out


def marked_not_ready(pod: dict, now: float) -> dict:
    """The pod with Ready False. As upstream, only the status flips (reason and
    message stay); the transition time is now."""
    new = deep_copy(pod)
    for c in new["status"]["conditions"]:
        if c.get("type") == "Ready":
            c["status"] = "False"
            c["lastTransitionTime"] = now_rfc3339(now)
    return new


# -- reads and writes -----------------------------------------------------------------


_probes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def heard(node: dict, lease: dict | None) -> tuple[str, str] | None:
    """What says the node's agent is alive: its Ready heartbeat time and its
    Lease's renewTime; a change of either is a new probe (None: neither yet)."""
    beat = (condition(node, "Ready") or {}).get("lastHeartbeatTime") or ""
    renewed = ((lease or {}).get("spec") or {}).get("renewTime") or ""
    return (beat, renewed) if beat or renewed else None


def check_nodes(reg: Registry, grace: float, now: float | None = None) -> list[str]:
    """Mark stale nodes Unknown; returns the names it changed. Heartbeats (a
    Node status or a Lease renewal) are timed by when this process first saw
    each one, so a restarted control plane gives every node a full grace
    period, as upstream's does."""
    now = time.time() if now is None else now
    probes = _probes.setdefault(reg, {})
    changed = []
    nodes = reg.list(NODES)[0]
    leases = {lease["metadata"]["name"]: lease for lease in reg.list(LEASES, LEASE_NAMESPACE)[0]}
    for gone in set(probes) - {n["metadata"]["name"] for n in nodes}:
        del probes[gone]
    for node in nodes:
        name = node["metadata"]["name"]
        probe = heard(node, leases.get(name))
        if probe is not None and (name not in probes or probes[name][0] != probe):
            probes[name] = (probe, now)
        status = stale_status(node, grace, now, probes[name][1] if probe is not None else None)
        if status is None:
            continue
        was_ready = ready_status(node) == "True"
        new = deep_copy(node)
        new["status"] = status
        try:
            out = reg.update(NODES, None, node["metadata"]["name"], new, "status")
        except ApiError:
            continue  # the agent came back and wrote first
        changed.append(node["metadata"]["name"])
        if was_ready:
            name = node["metadata"]["name"]
            recorder_for(reg).record(out, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady",
                                     COMPONENT)
    return changed


WATCHES = ("Node", "Pod")


def sync(view: View, now: float | None = None) -> None:
    for node in view.list("Node"):
        sync_key(view, node["metadata"]["name"], now)


def sync_key(view: View, key: str, now: float | None = None) -> None:
    """One node: its condition taints, and while it is not Ready its pods'
    readiness (the pods on it, from the cache's node index)."""
    now = time.time() if now is None else now
    node = view.get("Node", key)
    if node is None:
        return
    with view.guard(node, COMPONENT):
        taints = reconcile_taints(node.get("spec", {}).get("taints") or [], wanted_taints(node), now)
        if taints is not None:
            new = deep_copy(node)
            new.setdefault("spec", {})["taints"] = taints
            if view.update("Node", new):
                log.info("node %s: taints now %s", node["metadata"]["name"],
                         ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "none")
        if ready_status(node) == "True":
            return
        for pod in pods_to_mark(node, view.cache.pods_on(key)):
            if view.update("Pod", marked_not_ready(pod, now), "status"):
                log.info("pod %s/%s on not-Ready node %s: Ready=False", pod["metadata"]["namespace"],
                         pod["metadata"]["name"], node["metadata"]["name"])
                view.event(pod, "Warning", "NodeNotReady", "Node is not ready", COMPONENT)


def _node_state(node: dict | None) -> tuple | None:
    if node is None:
        return None
    return wanted_taints(node), node.get("spec", {}).get("taints")


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """A node's change of conditions or taints (not its heartbeats), for
    itself; a pod's on a node that is not Ready (it may have to be marked)."""
    if kind == "Node":
        if _node_state(old) == _node_state(new) or new is None:
            return set()
        return {new["metadata"]["name"]}
    name = (new or {}).get("spec", {}).get("nodeName")
    node = cache.get("Node", name) if name else None
    if node is not None and ready_status(node) != "True":
        return {name}
    return set()
