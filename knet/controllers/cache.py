"""The controllers' informer cache: every object the controllers read, kept
from the store's event stream, with the indexes their syncs and event
handlers look things up by.

Why in-process and fed by `Store.subscribe`: the store calls subscribers
synchronously inside each write, so the cache is never behind the store.
A controller that just created a pod sees it in the next read, which is why
no "expectations" bookkeeping (client-go's guard against a lagging cache) is
needed. Each value is decoded once per event, for every reader; before it,
each controller pass re-listed and re-decoded whole kinds.

Indexes (all kept incrementally):
- per kind, by namespace;
- per kind, by the uid of the controller ownerReference (a ReplicaSet's pods),
  and the orphans per namespace (what a controller may adopt);
- dependents by any owner uid, and every uid alive (the garbage collector);
- pods by spec.nodeName, and each node's count of pods not finished (the
  scheduler's "fewest pods" without listing), and the unbound pods;
- pods by namespace and label (`ns`, key, value), Services by namespace and
  selector item: a pod's Services are found from its own labels, and a
  Service's pods from its selector's rarest item;
- EndpointSlices by their kubernetes.io/service-name;
- per controller owner uid, how many of its pods are active (not terminating,
  not finished) and how many of those are Ready: a ReplicaSet's status and a
  Deployment's rollout arithmetic read two numbers instead of walking (and
  testing) every pod of a 1,000-replica set on each sync.

Objects in the cache are shared: readers must not change them (controllers
deep-copy before writing, as client-go's listers require).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from knet.api.objects import from_json, is_true
from knet.api.registry import Registry, event_new
from knet.store import Event

log = logging.getLogger("knet.controllers.cache")

KINDS = {"pods": "Pod", "nodes": "Node", "replicasets": "ReplicaSet", "deployments": "Deployment",
         "daemonsets": "DaemonSet", "statefulsets": "StatefulSet", "services": "Service",
         "endpointslices": "EndpointSlice", "leases": "Lease"}
SERVICE_LABEL = "kubernetes.io/service-name"

Handler = Callable[[str, "dict | None", "dict | None"], None]


def key_of(obj: dict) -> str:
    m = obj["metadata"]
    return f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]


def controller_uid(obj: dict | None) -> str | None:
    for ref in (obj or {}).get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _counted(pod: dict) -> tuple[int, int]:
    """(active, active and Ready) as 0/1: base.is_active and base.count_ready's test."""
    if pod["metadata"].get("deletionTimestamp") or _finished(pod):
        return 0, 0
    return 1, int(is_true(pod, "Ready"))


class Cache:
    def __init__(self, reg: Registry):
        self.reg = reg
        self.objects: dict[str, dict[str, dict]] = {k: {} for k in KINDS.values()}
        self._by_ns: dict[str, dict[str, dict[str, dict]]] = {k: {} for k in KINDS.values()}
        self._owned: dict[str, dict[str, dict[str, dict]]] = {k: {} for k in KINDS.values()}
        self._orphans: dict[str, dict[str, dict[str, dict]]] = {k: {} for k in KINDS.values()}
        self._dependents: dict[str, set[tuple[str, str]]] = {}
        self.uids: dict[str, tuple[str, str]] = {}
        self._on_node: dict[str, dict[str, dict]] = {}
        self.node_counts: Counter = Counter()  # pods bound to each node and not finished
        self.unbound: dict[str, dict] = {}  # pods waiting for the scheduler
        self._pod_labels: dict[tuple[str, str, str], set[str]] = {}
        self._svc_items: dict[tuple[str, str, str], set[str]] = {}
        self._slices: dict[tuple[str, str], set[str]] = {}
        self._pod_counts: dict[str, list[int]] = {}  # owner uid -> [active pods, active and Ready]
        self.handlers: list[Handler] = []
        self.events = 0
        self.unsubscribe = reg.store.subscribe(self._on_event)
        for plural, kind in KINDS.items():
            for key, value, rev in reg.store.list(f"/registry/{plural}/")[0]:
                obj = from_json(value)
                obj["metadata"]["resourceVersion"] = str(rev)
                self._put(kind, key[len(plural) + 11:], obj)

    # -- reads ------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> dict | None:
        return self.objects[kind].get(key)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self.objects[kind].values())
        return list(self._by_ns[kind].get(namespace, {}).values())

    def owned(self, kind: str, uid: str) -> list[dict]:
        """The objects of `kind` whose controller ownerReference is `uid`."""
        return list(self._owned[kind].get(uid, {}).values())

    def orphans(self, kind: str, namespace: str) -> list[dict]:
        return list(self._orphans[kind].get(namespace, {}).values())

    def dependents(self, uid: str) -> set[tuple[str, str]]:
        return set(self._dependents.get(uid, ()))

    def pods_on(self, node: str) -> list[dict]:
        return list(self._on_node.get(node, {}).values())

    def pods_matching(self, namespace: str, selector: dict) -> list[dict]:
        """The pods of a namespace whose labels include every item of a
        Service's selector map, from the rarest item's index entry."""
        if not selector:
            return []
        sets = [self._pod_labels.get((namespace, k, str(v)), set()) for k, v in selector.items()]
        smallest = min(sets, key=len)
        pods = self.objects["Pod"]
        out = []
        for key in smallest:
            labels = pods[key]["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                out.append(pods[key])
        return out

    def services_selecting(self, pod: dict | None) -> set[str]:
        """Keys of the Services in the pod's namespace whose selector its labels match."""
        if pod is None:
            return set()
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        out = set()
        services = self.objects["Service"]
        for k, v in labels.items():
            for key in self._svc_items.get((ns, k, str(v)), ()):
                if key in out:
                    continue
                sel = services[key]["spec"].get("selector") or {}
                if all(labels.get(sk) == sv for sk, sv in sel.items()):
                    out.add(key)
        return out

    def pod_counts(self, owner_uid: str) -> tuple[int, int]:
        """(active pods, active and Ready pods) whose controller owner is `owner_uid`."""
        n = self._pod_counts.get(owner_uid)
        return (n[0], n[1]) if n else (0, 0)

    def slices_of(self, namespace: str, service: str) -> list[dict]:
        slices = self.objects["EndpointSlice"]
        return [slices[k] for k in self._slices.get((namespace, service), ())]

    # -- upkeep -----------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        parts = ev.key.split("/", 3)
        kind = KINDS.get(parts[2]) if len(parts) > 3 else None
        if kind is None:
            return
        key = ev.key[len(parts[2]) + 11:]
        old = self.objects[kind].get(key)
        new = event_new(ev)  # decoded once for the cache and every watch (shared: never mutated)
        if old is not None:
            self._drop(kind, key, old)
        if new is not None:
            self._put(kind, key, new)
        self.events += 1
        for handler in self.handlers:
            try:
                handler(kind, old, new)
            except Exception:
                log.exception("handling a %s event of %s", kind, key)

    def _put(self, kind: str, key: str, obj: dict) -> None:
        m = obj["metadata"]
        ns = m.get("namespace") or ""
        self.objects[kind][key] = obj
        self._by_ns[kind].setdefault(ns, {})[key] = obj
        owner = controller_uid(obj)
        if owner:
            self._owned[kind].setdefault(owner, {})[key] = obj
        else:
            self._orphans[kind].setdefault(ns, {})[key] = obj
        for ref in m.get("ownerReferences") or []:
            if ref.get("uid"):
                self._dependents.setdefault(ref["uid"], set()).add((kind, key))
        if m.get("uid"):
            self.uids[m["uid"]] = (kind, key)
        if kind == "Pod":
            node = obj["spec"].get("nodeName")
            if node:
                self._on_node.setdefault(node, {})[key] = obj
                if not _finished(obj):
                    self.node_counts[node] += 1
            elif not m.get("deletionTimestamp"):
                self.unbound[key] = obj
            for k, v in (m.get("labels") or {}).items():
                self._pod_labels.setdefault((ns, k, v), set()).add(key)
            if owner:
                active, ready = _counted(obj)
                if active:
                    n = self._pod_counts.setdefault(owner, [0, 0])
                    n[0] += 1
                    n[1] += ready
        elif kind == "Service":
            for k, v in (obj.get("spec", {}).get("selector") or {}).items():
                self._svc_items.setdefault((ns, k, str(v)), set()).add(key)
        elif kind == "EndpointSlice":
            svc = (m.get("labels") or {}).get(SERVICE_LABEL)
            if svc:
                self._slices.setdefault((ns, svc), set()).add(key)

    @staticmethod
    def _discard(index: dict, at, key) -> None:
        bucket = index.get(at)
        if bucket is None:
            return
        if isinstance(bucket, dict):
            bucket.pop(key, None)
        else:
            bucket.discard(key)
        if not bucket:
            del index[at]

    def _drop(self, kind: str, key: str, obj: dict) -> None:
        m = obj["metadata"]
        ns = m.get("namespace") or ""
        del self.objects[kind][key]
        self._discard(self._by_ns[kind], ns, key)
        owner = controller_uid(obj)
        if owner:
            self._discard(self._owned[kind], owner, key)
        else:
            self._discard(self._orphans[kind], ns, key)
        for ref in m.get("ownerReferences") or []:
            if ref.get("uid"):
                self._discard(self._dependents, ref["uid"], (kind, key))
        if m.get("uid") and self.uids.get(m["uid"]) == (kind, key):
            del self.uids[m["uid"]]
        if kind == "Pod":
            node = obj["spec"].get("nodeName")
            if node:
                self._discard(self._on_node, node, key)
                if not _finished(obj):
                    self.node_counts[node] -= 1
                    if self.node_counts[node] <= 0:
                        del self.node_counts[node]
            self.unbound.pop(key, None)
            for k, v in (m.get("labels") or {}).items():
                self._discard(self._pod_labels, (ns, k, v), key)
            if owner:
                active, ready = _counted(obj)
                n = self._pod_counts.get(owner)
                if active and n:
                    n[0] -= 1
                    n[1] -= ready
                    if n[0] <= 0:
                        del self._pod_counts[owner]
        elif kind == "Service":
            for k, v in (obj.get("spec", {}).get("selector") or {}).items():
                self._discard(self._svc_items, (ns, k, str(v)), key)
        elif kind == "EndpointSlice":
            svc = (m.get("labels") or {}).get(SERVICE_LABEL)
            if svc:
                self._discard(self._slices, (ns, svc), key)

    def keys(self, kind: str) -> Iterable[str]:
        return list(self.objects[kind])
