"""The garbage collector: an object whose owners are all gone is deleted
(background cascading deletion), so deleting a Deployment removes its
ReplicaSets and then their pods."""

from __future__ import annotations

from knet.controllers.base import View

OWNED_KINDS = ("ReplicaSet", "Pod", "EndpointSlice", "Lease")  # a node's Lease goes with its Node
OWNER_KINDS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Service", "Node")


def sync(view: View) -> None:
    alive = {o["metadata"]["uid"] for kind in OWNER_KINDS for o in view.list(kind)}
    for kind in OWNED_KINDS:
        for obj in view.list(kind):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in alive for r in refs):
                if not obj["metadata"].get("deletionTimestamp"):
                    view.delete(kind, obj)
