"""The garbage collector: an object whose owners are all gone is deleted
(background cascading deletion), so deleting a Deployment removes its
ReplicaSets and then their pods.

Keys are (kind, "namespace/name") of dependents: an owner's deletion queues
the objects that name it (the cache's dependents index), and a dependent is
checked when it appears (its owner may be gone already)."""

from __future__ import annotations

from knet.controllers.base import View

OWNED_KINDS = ("ReplicaSet", "Pod", "EndpointSlice", "Lease")  # a node's Lease goes with its Node
OWNER_KINDS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Service", "Node")
WATCHES = tuple(sorted(set(OWNED_KINDS) | set(OWNER_KINDS)))


def sync(view: View) -> None:
    for kind in OWNED_KINDS:
        for key in list(view.cache.keys(kind)):
            sync_key(view, (kind, key))


def sync_key(view: View, key: tuple[str, str]) -> None:
    kind, name = key
    obj = view.get(kind, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return
    refs = obj["metadata"].get("ownerReferences") or []
    if refs and not any(view.cache.uids.get(r.get("uid"), ("",))[0] in OWNER_KINDS for r in refs):
        view.delete(kind, obj)


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    if new is None and old is not None and kind in OWNER_KINDS:
        keys |= cache.dependents(old["metadata"]["uid"])
    if kind in OWNED_KINDS and new is not None and (old is None or old["metadata"].get("ownerReferences")
                                                    != new["metadata"].get("ownerReferences")):
        if new["metadata"].get("ownerReferences"):
            m = new["metadata"]
            keys.add((kind, f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]))
    return {k for k in keys if k[0] in OWNED_KINDS}
