"""The ReplicaSet controller: keep spec.replicas pods that match the selector.

Pods it makes carry an ownerReference (controller: true) to the ReplicaSet;
matching orphans are adopted, as upstream does. When there are too many,
the ones least far along go first: unscheduled, then pending, then not
ready, then the newest.
"""

from __future__ import annotations

from knet.api.selectors import selector_from_label_selector
from knet.controllers.base import (
    View,
    claim,
    controller_ref,
    is_active,
    is_ready,
    owner_key,
    pod_from_template,
)

COMPONENT = "replicaset-controller"
KIND = "ReplicaSet"
WATCHES = ("ReplicaSet", "Pod")
# Pods created or deleted per sync, then the key goes round the queue again:
# a 1,000-replica set must not hold the API server's loop for a second
# (upstream's slow-start batches serve the same end).
BURST = 20


def sync(view: View) -> None:
    for rs in view.list("ReplicaSet"):
        sync_key(view, f"{rs['metadata']['namespace']}/{rs['metadata']['name']}")


def sync_key(view: View, key: str) -> float | None:
    rs = view.get("ReplicaSet", key)
    if rs is None or rs["metadata"].get("deletionTimestamp"):
        return None
    with view.guard(rs, COMPONENT):
        return sync_one(view, rs)
    return None


def _pod_state(pod: dict | None) -> tuple | None:
    """What of a pod the ReplicaSet acts on (its count, status and deletion order)."""
    if pod is None:
        return None
    m, st = pod["metadata"], pod.get("status") or {}
    return (m.get("labels"), m.get("deletionTimestamp"), st.get("phase"), is_ready(pod),
            bool(pod["spec"].get("nodeName")), (controller_ref(pod) or {}).get("uid"))


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """A ReplicaSet's own events; a pod's, for its owner (old and new) or, for
    an orphan, for the ReplicaSets of its namespace that could adopt it."""
    obj = new or old
    if kind == "ReplicaSet":
        return {f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"}
    if _pod_state(old) == _pod_state(new):
        return set()
    keys = {k for k in (owner_key(old, KIND), owner_key(new, KIND)) if k}
    if new is not None and controller_ref(new) is None and is_active(new):
        labels = new["metadata"].get("labels") or {}
        for rs in cache.list("ReplicaSet", new["metadata"]["namespace"]):
            if selector_from_label_selector(rs["spec"].get("selector")).matches(labels):
                keys.add(f"{rs['metadata']['namespace']}/{rs['metadata']['name']}")
    return keys


def deletion_rank(pod: dict) -> tuple:
    status = pod.get("status", {})
    return (bool(pod["spec"].get("nodeName")), status.get("phase") == "Running", is_ready(pod),
            # newest first among equals: a later creationTimestamp sorts earlier
            [-ord(ch) for ch in pod["metadata"].get("creationTimestamp", "")])


def sync_one(view: View, rs: dict) -> float | None:
    """Returns 0 when it stopped at BURST pods and has more to do.

    The counts come from the cache's per-owner index (its writes land in the
    cache before the next line runs), so a sync with nothing to create or
    delete does not walk the set's pods: a 1,000-replica set's sync during its
    rollout took several ms of the API server's loop for two numbers."""
    name, uid = rs["metadata"]["name"], rs["metadata"]["uid"]
    pods = claim(view, "Pod", rs, is_active)
    want = int(rs["spec"].get("replicas", 1))
    diff = want - view.cache.pod_counts(uid)[0]
    more = abs(diff) > BURST
    diff = max(-BURST, min(BURST, diff))
    active = [p for p in pods if is_active(p)] if diff < 0 else []
    if diff > 0:
        template = rs["spec"]["template"]
        for _ in range(diff):
            pod = view.create("Pod", rs["metadata"]["namespace"],
                              pod_from_template(template, rs, generate_name=f"{name}-"))
            if pod is None:
                break
            view.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", COMPONENT)
    elif diff < 0:
        for pod in sorted(active, key=deletion_rank)[:-diff]:
            if view.delete("Pod", pod):
                view.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", COMPONENT)
    replicas, ready = view.cache.pod_counts(uid)
    status = {
        "replicas": replicas,
        "fullyLabeledReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    view.update_status("ReplicaSet", rs, status)
    return 0 if more else None
