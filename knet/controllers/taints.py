"""NoExecute taints evict the pods that do not tolerate them (the taint
manager's job), honouring tolerationSeconds.

As upstream's taint eviction controller: a pod that does not tolerate every
NoExecute taint on its node goes at once; otherwise it stays for the smallest
tolerationSeconds among the tolerations used (one per taint, the first that
matches), forever if none of them sets one, and at once if one is <= 0. The
node lifecycle controller's not-ready/unreachable taints are what usually
trigger it; the DefaultTolerationSeconds admission gives every pod 300 s for
those two. Upstream counts from when it first saw the pod under the taint, in
memory; this level-triggered version counts from the later of the taint's
timeAdded and the pod's binding, so a restarted control plane keeps the deadline.
Before deleting, the pod gets the DisruptionTarget condition upstream sets.
"""

from __future__ import annotations

import time

from knet.api.objects import condition, deep_copy, now_rfc3339, parse_rfc3339
from knet.controllers.base import View, is_terminating
from knet.controllers.scheduling import tolerates

COMPONENT = "taint-eviction-controller"


def eviction_delay(tolerations: list[dict], taints: list[dict]) -> float | None:
    """Seconds a pod may stay on a node with these NoExecute taints: 0 = evict
    now, None = never (upstream's getMinTolerationTime over the used tolerations)."""
    used = []
    for taint in taints:
        match = next((t for t in tolerations or [] if tolerates([t], taint)), None)
        if match is None:
            return 0
        used.append(match)
    if not used:
        return None
    finite = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not finite:
        return None
    return max(0, min(finite))


def bound_since(pod: dict) -> float | None:
    c = condition(pod, "PodScheduled")
    when = (c or {}).get("lastTransitionTime") if (c or {}).get("status") == "True" else None
    when = when or pod["metadata"].get("creationTimestamp")
    return parse_rfc3339(when) if when else None


def eviction_time(pod: dict, node: dict, now: float) -> float | None:
    """When this pod is to be evicted from its node (<= now: at once), or None."""
    taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("effect") == "NoExecute"]
    delay = eviction_delay(pod["spec"].get("tolerations") or [], taints)
    if delay is None:
        return None
    if delay == 0:
        return now
    added = [parse_rfc3339(t["timeAdded"]) for t in taints if t.get("timeAdded")]
    start = min(added) if len(added) == len(taints) else now
    bound = bound_since(pod)
    if bound is not None:
        start = max(start, bound)
    return start + delay


WATCHES = ("Node", "Pod")


def sync(view: View, now: float | None = None) -> float | None:
    """Evict what must go now; returns seconds until the next tolerationSeconds
    deadline, if any, so the caller can come back then."""
    soonest = None
    for pod in view.list("Pod"):
        m = pod["metadata"]
        delay = sync_key(view, f"{m['namespace']}/{m['name']}", now)
        if delay is not None:
            soonest = delay if soonest is None else min(soonest, delay)
    return soonest


def sync_key(view: View, key: str, now: float | None = None) -> float | None:
    """One pod: evicted now, or the seconds until its deadline (the queue
    brings the key back then)."""
    now = time.time() if now is None else now
    pod = view.get("Pod", key)
    if pod is None or is_terminating(pod):
        return None
    node = view.get("Node", pod["spec"].get("nodeName") or "")
    if node is None:
        return None
    deadline = eviction_time(pod, node, now)
    if deadline is None:
        return None
    if deadline <= now:
        evict(view, pod, now)
        return None
    return deadline - now


def _no_execute(node: dict | None) -> list:
    return [t for t in (node or {}).get("spec", {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """A node whose NoExecute taints changed: the pods on it; a pod bound to
    (or changing tolerations on) a node with NoExecute taints: itself."""
    if kind == "Node":
        if new is None or _no_execute(old) == _no_execute(new):
            return set()
        return {f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in cache.pods_on(new["metadata"]["name"])}
    if new is None or not new["spec"].get("nodeName") or not _no_execute(cache.get("Node", new["spec"]["nodeName"])):
        return set()
    if old is not None and old["spec"].get("nodeName") == new["spec"]["nodeName"] and \
            old["spec"].get("tolerations") == new["spec"].get("tolerations"):
        return set()
    return {f"{new['metadata']['namespace']}/{new['metadata']['name']}"}


def evict(view: View, pod: dict, now: float) -> None:
    m = pod["metadata"]
    view.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {m['namespace']}/{m['name']}",
               COMPONENT)
    if condition(pod, "DisruptionTarget") is None:
        new = deep_copy(pod)
        new.setdefault("status", {}).setdefault("conditions", []).append({
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now_rfc3339(now)})
        view.update("Pod", new, "status")
    view.delete("Pod", pod)
