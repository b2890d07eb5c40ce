"""The ReplicaSet controller: keep spec.replicas pods that match the selector.

Pods it makes carry an ownerReference (controller: true) to the ReplicaSet;
matching orphans are adopted, as upstream does. When there are too many,
the ones least far along go first: unscheduled, then pending, then not
ready, then the newest.
"""

from __future__ import annotations

from knet.controllers.base import (
    View,
    claim,
    count_ready,
    is_active,
    is_ready,
    pod_from_template,
)

COMPONENT = "replicaset-controller"


def sync(view: View) -> None:
    for rs in view.list("ReplicaSet"):
        if rs["metadata"].get("deletionTimestamp"):
            continue
        with view.guard(rs, COMPONENT):
            sync_one(view, rs)


def deletion_rank(pod: dict) -> tuple:
    status = pod.get("status", {})
    return (bool(pod["spec"].get("nodeName")), status.get("phase") == "Running", is_ready(pod),
            # newest first among equals: a later creationTimestamp sorts earlier
            [-ord(ch) for ch in pod["metadata"].get("creationTimestamp", "")])


def sync_one(view: View, rs: dict) -> None:
    name = rs["metadata"]["name"]
    pods = claim(view, "Pod", rs, is_active)
    active = [p for p in pods if is_active(p)]
    want = int(rs["spec"].get("replicas", 1))
    diff = want - len(active)
    if diff > 0:
        template = rs["spec"]["template"]
        for _ in range(diff):
            pod = view.create("Pod", rs["metadata"]["namespace"],
                              pod_from_template(template, rs, generate_name=f"{name}-"))
            if pod is None:
                break
            view.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", COMPONENT)
            active.append(pod)
    elif diff < 0:
        for pod in sorted(active, key=deletion_rank)[:-diff]:
            if view.delete("Pod", pod):
                view.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", COMPONENT)
                active.remove(pod)
    labelled = [p for p in active]
    status = {
        "replicas": len(active),
        "fullyLabeledReplicas": len(labelled),
        "readyReplicas": count_ready(active),
        "availableReplicas": count_ready(active),
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    view.update_status("ReplicaSet", rs, status)
