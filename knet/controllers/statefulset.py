"""The StatefulSet controller: pods `<name>-0 .. <name>-(N-1)` with stable
names and hostnames.

With OrderedReady (the default) pod N+1 is created only once pods 0..N are
Running and Ready, scale-down removes the highest ordinal first and waits for
it to be gone, and a rolling update replaces pods from the highest ordinal
down, one at a time. Parallel creates and deletes without waiting.
"""

from __future__ import annotations

from knet.controllers.base import (
    View,
    is_active,
    is_ready,
    owner_key,
    pod_from_template,
    template_hash,
)

COMPONENT = "statefulset-controller"
REVISION_LABEL = "controller-revision-hash"


def ordinal(sts: dict, pod: dict) -> int | None:
    prefix = sts["metadata"]["name"] + "-"
    name = pod["metadata"]["name"]
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


def running_and_ready(pod: dict) -> bool:
    return is_active(pod) and pod.get("status", {}).get("phase") == "Running" and is_ready(pod)


def new_pod(sts: dict, i: int, revision: str) -> dict:
    name = f"{sts['metadata']['name']}-{i}"
    pod = pod_from_template(sts["spec"]["template"], sts, name=name, labels={
        REVISION_LABEL: revision, "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": str(i)})
    pod["spec"]["hostname"] = name
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    return pod


WATCHES = ("StatefulSet", "Pod")


def sync(view: View) -> None:
    for sts in view.list("StatefulSet"):
        sync_key(view, f"{sts['metadata']['namespace']}/{sts['metadata']['name']}")


def sync_key(view: View, key: str) -> None:
    sts = view.get("StatefulSet", key)
    if sts is not None and not sts["metadata"].get("deletionTimestamp"):
        with view.guard(sts, COMPONENT):
            sync_one(view, sts)


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """Its own events; a pod's, for its owner."""
    obj = new or old
    if kind == "StatefulSet":
        return {f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"}
    return {k for k in (owner_key(old, "StatefulSet"), owner_key(new, "StatefulSet")) if k}


def sync_one(view: View, sts: dict) -> None:
    ns = sts["metadata"]["namespace"]
    revision = template_hash(sts["spec"]["template"])
    replicas = int(sts["spec"].get("replicas", 1))
    parallel = sts["spec"].get("podManagementPolicy") == "Parallel"
    pods: dict[int, dict] = {}
    for p in view.cache.owned("Pod", sts["metadata"]["uid"]):
        i = ordinal(sts, p)
        if i is not None:
            pods[i] = p
    # Failed or finished pods are replaced, as upstream does.
    for i, p in list(pods.items()):
        if not is_active(p) and not p["metadata"].get("deletionTimestamp"):
            view.delete("Pod", p, grace=0)
            del pods[i]
    blocked = False
    for i in range(replicas):
        pod = pods.get(i)
        if pod is None:
            out = view.create("Pod", ns, new_pod(sts, i, revision))
            if out:
                pods[i] = out
                view.event(sts, "Normal", "SuccessfulCreate",
                           f"create Pod {out['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful",
                           COMPONENT)
            if not parallel:
                blocked = True
                break
        elif not parallel and not running_and_ready(pod):
            blocked = True
            break
    extra = sorted((i for i in pods if i >= replicas), reverse=True)
    if extra and not blocked:
        if parallel:
            for i in extra:
                _delete(view, sts, pods[i])
        else:
            top = pods[extra[0]]
            others_ok = all(running_and_ready(pods[i]) for i in range(replicas) if i in pods)
            if not top["metadata"].get("deletionTimestamp") and others_ok:
                _delete(view, sts, top)
    strategy = sts["spec"].get("updateStrategy") or {}
    if not blocked and not extra and strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        if all(running_and_ready(pods[i]) for i in range(replicas) if i in pods) or parallel:
            for i in sorted(range(partition, replicas), reverse=True):
                pod = pods.get(i)
                if pod and (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                    if not pod["metadata"].get("deletionTimestamp"):
                        _delete(view, sts, pod)
                    break
    live = [p for p in pods.values() if is_active(p)]
    updated = [p for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision]
    status = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(live),
              "readyReplicas": sum(1 for p in live if is_ready(p)),
              "availableReplicas": sum(1 for p in live if is_ready(p)),
              "currentReplicas": len(updated), "updatedReplicas": len(updated),
              "currentRevision": revision if len(updated) == len(live) else (sts.get("status", {}).get(
                  "currentRevision") or revision),
              "updateRevision": revision}
    view.update_status("StatefulSet", sts, status)


def _delete(view: View, sts: dict, pod: dict) -> None:
    if view.delete("Pod", pod):
        view.event(sts, "Normal", "SuccessfulDelete",
                   f"delete Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful",
                   COMPONENT)
