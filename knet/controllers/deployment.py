"""The Deployment controller: ReplicaSets per pod template, rolled over as
RollingUpdate (maxSurge / maxUnavailable) or Recreate says.

ReplicaSets are named `<deployment>-<pod-template-hash>` and their pods
`<deployment>-<hash>-<5 chars>`, as upstream names them. Each pass
recomputes from the pods that exist, so a rollout interrupted by a control
plane restart carries on from where the pods are.
"""

from __future__ import annotations

from knet.api.objects import deep_copy, now_rfc3339
from knet.api.selectors import selector_from_label_selector
from knet.controllers.base import (
    View,
    claim,
    controller_ref,
    is_ready,
    owner_key,
    owner_ref,
    resolve_int_or_percent,
    template_hash,
)

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
WATCHES = ("Deployment", "ReplicaSet", "Pod")


def sync(view: View) -> None:
    for d in view.list("Deployment"):
        sync_key(view, f"{d['metadata']['namespace']}/{d['metadata']['name']}")


def sync_key(view: View, key: str) -> None:
    d = view.get("Deployment", key)
    if d is None or d["metadata"].get("deletionTimestamp"):
        return
    with view.guard(d, COMPONENT):
        sync_one(view, d)


def _pod_state(pod: dict | None) -> tuple | None:
    """What of a pod a Deployment's status and Recreate follow."""
    if pod is None:
        return None
    return (pod["metadata"].get("deletionTimestamp"), (pod.get("status") or {}).get("phase"), is_ready(pod),
            controller_ref(pod) and controller_ref(pod).get("uid"))


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """Its own events; a ReplicaSet's, for its owner (or, an orphan, the
    Deployments that could adopt it); a pod's, for its ReplicaSet's owner."""
    obj = new or old
    ns = obj["metadata"].get("namespace")
    if kind == "Deployment":
        return {f"{ns}/{obj['metadata']['name']}"}
    if kind == "ReplicaSet":
        keys = {k for k in (owner_key(old, "Deployment"), owner_key(new, "Deployment")) if k}
        if new is not None and controller_ref(new) is None:
            labels = new["metadata"].get("labels") or {}
            for d in cache.list("Deployment", ns):
                if selector_from_label_selector(d["spec"].get("selector")).matches(labels):
                    keys.add(f"{ns}/{d['metadata']['name']}")
        return keys
    if _pod_state(old) == _pod_state(new):
        return set()
    keys = set()
    for rs_key in {owner_key(old, "ReplicaSet"), owner_key(new, "ReplicaSet")} - {None}:
        key = owner_key(cache.get("ReplicaSet", rs_key), "Deployment")
        if key:
            keys.add(key)
    return keys


def _template_without_hash(rs: dict) -> dict:
    t = deep_copy(rs["spec"]["template"])
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def _revision(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _set_replicas(view: View, d: dict, rs: dict, replicas: int) -> dict:
    if rs["spec"].get("replicas") == replicas:
        return rs
    old = rs["spec"].get("replicas", 0)
    new = deep_copy(rs)
    new["spec"]["replicas"] = replicas
    out = view.update("ReplicaSet", new)
    if out:
        verb = "up" if replicas > old else "down"
        view.event(d, "Normal", "ScalingReplicaSet",
                   f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {replicas}", COMPONENT)
        return out
    return rs


def _new_replicaset(view: View, d: dict, sets: list[dict]) -> dict | None:
    template = d["spec"]["template"]
    for rs in sets:
        if _template_without_hash(rs) == template:
            return rs
    h = template_hash(template, d.get("status", {}).get("collisionCount", 0))
    name = f"{d['metadata']['name']}-{h}"
    t = deep_copy(template)
    t.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = deep_copy(d["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    revision = max([_revision(rs) for rs in sets] + [0]) + 1
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": name, "namespace": d["metadata"]["namespace"],
                       "labels": {**(template.get("metadata", {}).get("labels") or {}), HASH_LABEL: h},
                       "annotations": {REVISION: str(revision)}, "ownerReferences": [owner_ref(d)]},
          "spec": {"replicas": 0, "selector": selector, "template": t}}
    return view.create("ReplicaSet", d["metadata"]["namespace"], rs)


def sync_one(view: View, d: dict) -> None:
    sets = claim(view, "ReplicaSet", d)
    new_rs = _new_replicaset(view, d, sets)
    if new_rs is None:
        return
    olds = [rs for rs in sets if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
    # (active pods, Ready ones) per ReplicaSet, from the cache's per-owner counts: a sync costs
    # the number of ReplicaSets, not of pods (a 1,000-replica rollout syncs twice a second).
    counts = {rs["metadata"]["uid"]: view.cache.pod_counts(rs["metadata"]["uid"]) for rs in [new_rs, *olds]}
    replicas = int(d["spec"].get("replicas", 1))
    if d["spec"].get("paused"):
        pass
    elif (d["spec"].get("strategy") or {}).get("type") == "Recreate":
        for rs in olds:
            _set_replicas(view, d, rs, 0)
        # Recreate waits until old pods are gone, terminating ones included.
        still_running = [p for rs in olds for p in view.cache.owned("Pod", rs["metadata"]["uid"])
                         if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        if not still_running:
            new_rs = _set_replicas(view, d, new_rs, replicas)
    else:
        new_rs = _rolling(view, d, new_rs, olds, counts, replicas)
    if _revision(new_rs) <= max([_revision(rs) for rs in olds] + [0]):
        bumped = deep_copy(new_rs)
        bumped["metadata"].setdefault("annotations", {})[REVISION] = str(
            max(_revision(rs) for rs in olds) + 1)
        new_rs = view.update("ReplicaSet", bumped) or new_rs
    _cleanup_history(view, d, olds, counts)
    d = _annotate_revision(view, d, new_rs)
    _write_status(view, d, new_rs, olds, counts, replicas)


def _annotate_revision(view: View, d: dict, new_rs: dict) -> dict:
    """The Deployment carries its current ReplicaSet's revision, as upstream's
    SetDeploymentRevision does (`kubectl rollout history|undo` read them)."""
    revision = (new_rs["metadata"].get("annotations") or {}).get(REVISION)
    if not revision or (d["metadata"].get("annotations") or {}).get(REVISION) == revision:
        return d
    annotated = deep_copy(d)
    annotated["metadata"].setdefault("annotations", {})[REVISION] = revision
    return view.update("Deployment", annotated) or d


def _rolling(view: View, d: dict, new_rs: dict, olds: list[dict], counts: dict, replicas: int) -> dict:
    """One step of a rolling update, as upstream's rolloutRolling takes it: scale
    the new set up within maxSurge, then the old ones down within maxUnavailable
    (unhealthy old pods first, since removing them costs no availability)."""
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_int_or_percent(ru.get("maxSurge"), replicas, True, "25%")
    unavailable = resolve_int_or_percent(ru.get("maxUnavailable"), replicas, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    want = {rs["metadata"]["uid"]: rs["spec"].get("replicas", 0) for rs in olds}
    ready = {uid: n[1] for uid, n in counts.items()}
    new_uid = new_rs["metadata"]["uid"]
    current_new = new_rs["spec"].get("replicas", 0)
    if sum(want.values()) == 0 or current_new > replicas:
        target_new = replicas
    else:
        room = replicas + surge - (current_new + sum(want.values()))
        target_new = current_new + max(0, min(room, replicas - current_new))
    new_rs = _set_replicas(view, d, new_rs, target_new)
    if sum(want.values()) == 0:
        return new_rs
    min_available = replicas - unavailable
    all_count = target_new + sum(want.values())
    max_down = all_count - min_available - max(0, target_new - ready[new_uid])
    if max_down <= 0:
        return new_rs
    by_age = sorted(olds, key=_revision)
    cleaned = 0
    for rs in by_age:
        uid = rs["metadata"]["uid"]
        unhealthy = want[uid] - ready[uid]
        cut = min(max_down - cleaned, unhealthy)
        if cut > 0:
            want[uid] -= cut
            cleaned += cut
    available = sum(ready.values())
    budget = min(available - min_available, max_down - cleaned)
    for rs in by_age:
        uid = rs["metadata"]["uid"]
        cut = min(want[uid], max(0, budget))
        want[uid] -= cut
        budget -= cut
    for rs in olds:
        _set_replicas(view, d, rs, want[rs["metadata"]["uid"]])
    return new_rs


def _cleanup_history(view: View, d: dict, olds: list[dict], counts: dict) -> None:
    limit = int(d["spec"].get("revisionHistoryLimit", 10))
    idle = [rs for rs in olds if rs["spec"].get("replicas", 0) == 0 and not counts[rs["metadata"]["uid"]][0]]
    for rs in sorted(idle, key=_revision)[:max(0, len(idle) - limit)]:
        view.delete("ReplicaSet", rs)


def _write_status(view: View, d: dict, new_rs: dict, olds: list[dict], counts: dict, replicas: int) -> None:
    total = sum(counts[rs["metadata"]["uid"]][0] for rs in [new_rs, *olds])
    ready = sum(counts[rs["metadata"]["uid"]][1] for rs in [new_rs, *olds])
    new_active, new_ready = counts[new_rs["metadata"]["uid"]]
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    unavailable = resolve_int_or_percent(ru.get("maxUnavailable"), replicas, False, "25%")
    complete = new_active == replicas and new_ready == replicas and total == replicas
    old = d.get("status", {})
    conds = {c["type"]: c for c in old.get("conditions") or []}

    def cond(ctype: str, ok: bool, reason: str, message: str) -> dict:
        text = "True" if ok else "False"
        prev = conds.get(ctype)
        same = prev and prev.get("status") == text and prev.get("reason") == reason
        stamp = prev["lastTransitionTime"] if same else now_rfc3339()
        return {"type": ctype, "status": text, "reason": reason, "message": message,
                "lastTransitionTime": stamp, "lastUpdateTime": prev.get("lastUpdateTime", stamp) if same else stamp}

    available_ok = ready >= replicas - unavailable
    rs_name = new_rs["metadata"]["name"]
    status = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": total, "updatedReplicas": new_active, "readyReplicas": ready,
        "availableReplicas": ready, "unavailableReplicas": max(0, replicas - ready),
        "conditions": [
            cond("Available", available_ok, "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                 "Deployment has minimum availability." if available_ok else
                 "Deployment does not have minimum availability."),
            cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                 f'ReplicaSet "{rs_name}" has successfully progressed.' if complete else
                 f'ReplicaSet "{rs_name}" is progressing.'),
        ],
    }
    if not status["unavailableReplicas"]:
        del status["unavailableReplicas"]
    if old.get("collisionCount"):
        status["collisionCount"] = old["collisionCount"]
    view.update_status("Deployment", d, status)
