"""What every workload controller shares: a view of the API objects through
the informer cache (knet/controllers/cache.py), owner references, pod
readiness, template hashes, and pods made from templates.

Controllers are level-triggered per key, as in kube-controller-manager: a
sync reads what exists now for one object and writes the difference to what
should exist, so a control plane killed in the middle of anything simply
finishes the job on the next sync. The cache is updated inside each store
write (never stale in this process), which is why no "expectations"
bookkeeping is needed to avoid duplicate pods.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from knet.api.errors import ApiError
from knet.api.objects import deep_copy, is_true
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers.events import Recorder, ref_object

log = logging.getLogger("knet.controllers")

PODS, EVENTS = by_kind("Pod"), by_kind("Event")
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


FAILED_REASON = {"create": "FailedCreate", "update": "FailedUpdate", "delete": "FailedDelete"}
_recorders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def recorder_for(reg: Registry) -> Recorder:
    """One Recorder per registry for the life of the process, so repeats fold
    into one Event across passes (a View lives for one pass only)."""
    rec = _recorders.get(reg)
    if rec is None:
        def create(namespace: str, event: dict) -> bool:
            try:
                reg.create(EVENTS, namespace, event)
                return True
            except ApiError as e:
                log.warning("event %s on %s dropped: %s", event["reason"], event["involvedObject"].get("name"),
                            e.message)
                return False

        def bump(namespace: str, name: str, count: int, last: str, message: str) -> bool:
            try:
                reg.patch(EVENTS, namespace, name, {"count": count, "lastTimestamp": last, "message": message})
                return True
            except ApiError:
                return False

        rec = _recorders[reg] = Recorder(create, bump)
    return rec


_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_for(reg: Registry):
    """One informer cache per registry for the life of the process (it
    subscribes to the store once; every View and the controllers read it)."""
    from knet.controllers.cache import Cache

    cache = _caches.get(reg)
    if cache is None:
        cache = _caches[reg] = Cache(reg)
    return cache


class View:
    """One sync's reads (from the informer cache) and writes (through the registry).

    Its writes never raise: a write the API refuses is a failure on an object,
    logged at warning level and recorded as a Warning Event, on the object the
    controller is `acting_for` or else on the written object's controller owner
    (a ReplicaSet whose pod cannot be created gets FailedCreate, as upstream).
    Conflicts and vanished objects are the normal races of level-triggered
    controllers and stay at debug level; either way `retry` is set, so the
    controller's queue brings the key back after its backoff."""

    def __init__(self, reg: Registry, cache=None):
        self.reg = reg
        self.cache = cache if cache is not None else cache_for(reg)
        self.writes = 0
        self.retry = False
        self.recorder = recorder_for(reg)
        self._acting: list[tuple[dict, str, str, str, bool]] = []

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return self.cache.list(kind, namespace)

    def get(self, kind: str, key: str) -> dict | None:
        return self.cache.get(kind, key)

    def wrote(self) -> None:
        self.writes += 1

    # -- failures --------------------------------------------------------------------

    @contextmanager
    def acting_for(self, obj: dict, reason: str, what: str, component: str,
                   claim_writes: bool = True) -> Iterator[None]:
        """Within it, a refused write (if `claim_writes`) or an exception is a
        failure of `what` on `obj` (upstream's per-object sync error: one Warning
        Event with `reason`). An exception is contained, so the controller goes on
        with its next object."""
        self._acting.append((obj, reason, what, component, claim_writes))
        try:
            yield
        except Exception as e:
            self.retry = True
            log.exception("%s", what)
            self.failed(obj, reason, f"{what}: {type(e).__name__}: {e}", component)
        finally:
            self._acting.pop()

    def guard(self, obj: dict, component: str) -> AbstractContextManager[None]:
        """A bug while syncing one object becomes FailedSync on it, not a lost pass
        for every object; refused writes keep their own attribution."""
        m = obj["metadata"]
        key = f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]
        return self.acting_for(obj, "FailedSync", f"error syncing {obj.get('kind')} {key}", component,
                               claim_writes=False)

    def failed(self, obj: dict, reason: str, message: str, component: str) -> None:
        m = obj.get("metadata", {})
        log.warning("%s %s/%s: %s: %s", obj.get("kind"), m.get("namespace") or "", m.get("name"), reason, message)
        self.event(obj, "Warning", reason, message, component)

    def _refused(self, verb: str, kind: str, obj: dict, e: ApiError) -> None:
        m = obj.get("metadata", {})
        name = m.get("name") or m.get("generateName") or ""
        if e.code == 409 or e.code == 404 or (e.code == 403 and "being terminated" in e.message):
            self.retry = self.retry or e.code == 409
            log.debug("%s %s %s: %s", verb, kind, name, e.message)
            return
        self.retry = True
        claimed = [a for a in self._acting if a[4]]
        if claimed:
            target, reason, what, component, _ = claimed[-1]
            self.failed(target, reason, f"{what}: {e.message}", component)
            return
        ref = controller_ref(obj)
        target = ref_object(ref, m.get("namespace")) if ref else (obj if m.get("uid") else None)
        message = f"Error {verb[:-1]}ing {kind} {name}: {e.message}"
        if target is None:
            log.warning("%s", message)
            return
        self.failed(target, FAILED_REASON[verb], message, "controller-manager")

    # -- writes --------------------------------

    def create(self, kind: str, namespace: str | None, obj: dict) -> dict | None:
        try:
            out = self.reg.create(by_kind(kind), namespace, obj)
        except ApiError as e:
            self._refused("create", kind, {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}, e)
            return None
        self.wrote()
        return out

    def update(self, kind: str, obj: dict, subresource: str | None = None) -> dict | None:
        m = obj["metadata"]
        try:
            out = self.reg.update(by_kind(kind), m.get("namespace"), m["name"], obj, subresource)
        except ApiError as e:
            self._refused("update", kind, obj, e)
            return None
        if out["metadata"]["resourceVersion"] != m.get("resourceVersion"):
            self.wrote()
        return out

    def update_status(self, kind: str, obj: dict, status: dict) -> None:
        """Write status only when it differs (controllers run often)."""
        if obj.get("status") == status:
            return
        new = deep_copy(obj)
        new["status"] = status
        self.update(kind, new, "status")

    def delete(self, kind: str, obj: dict, grace: int | None = None) -> bool:
        m = obj["metadata"]
        try:
            self.reg.delete(by_kind(kind), m.get("namespace"), m["name"], grace)
        except ApiError as e:
            self._refused("delete", kind, obj, e)
            return False
        self.wrote()
        return True

    def event(self, obj: dict, etype: str, reason: str, message: str, component: str) -> None:
        if self.recorder.record(obj, etype, reason, message, component):
            self.wrote()


# -- owners -------------------------------------------------------------------------


def owner_ref(owner: dict) -> dict:
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_ref(obj: dict) -> dict | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def claim(view: View, kind: str, owner: dict, eligible=lambda obj: True) -> list[dict]:
    """The objects of `kind` this owner controls, adopting orphans its
    selector matches (upstream's ControllerRefManager), from the cache's
    owner and orphan indexes: the work follows the owner's objects, not the
    namespace's."""
    from knet.api.selectors import selector_from_label_selector

    mine = view.cache.owned(kind, owner["metadata"]["uid"])
    orphans = view.cache.orphans(kind, owner["metadata"]["namespace"])
    if not orphans:
        return mine
    selector = selector_from_label_selector(owner["spec"].get("selector"))
    for obj in orphans:
        if controller_ref(obj) is None and eligible(obj) and selector.matches(obj["metadata"].get("labels")):
            adopted = deep_copy(obj)
            adopted["metadata"]["ownerReferences"] = [*(obj["metadata"].get("ownerReferences") or []),
                                                      owner_ref(owner)]
            out = view.update(kind, adopted)
            if out:
                mine.append(out)
    return mine


def owned_by(objs: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [o for o in objs if (controller_ref(o) or {}).get("uid") == uid]


def owner_key(obj: dict | None, kind: str) -> str | None:
    """"namespace/name" of the object's controller owner if it is of `kind`."""
    ref = controller_ref(obj) if obj else None
    if ref and ref.get("kind") == kind:
        return f"{obj['metadata']['namespace']}/{ref['name']}"
    return None


# -- pods ---------------------------------------------------------------------------


def is_terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: dict) -> bool:
    """Counts toward replicas: not terminating, not finished (upstream's filter)."""
    return not is_terminating(pod) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def is_ready(pod: dict) -> bool:
    return is_true(pod, "Ready")


def template_hash(template: dict, collisions: int = 0) -> str:
    """A stable short hash of a pod template, spelled like pod-template-hash."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")) + str(collisions)
    digest = int.from_bytes(hashlib.sha256(data.encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, rem = divmod(digest, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[rem])
    return "".join(out)


def pod_from_template(template: dict, owner: dict, *, name: str | None = None,
                      generate_name: str | None = None, labels: dict | None = None) -> dict:
    tm = template.get("metadata") or {}
    meta: dict = {"namespace": owner["metadata"]["namespace"], "labels": {**(tm.get("labels") or {}), **(labels or {})},
                  "ownerReferences": [owner_ref(owner)]}
    if tm.get("annotations"):
        meta["annotations"] = dict(tm["annotations"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": deep_copy(template.get("spec") or {})}


def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool, default: str) -> int:
    """maxSurge/maxUnavailable: an int, or a percentage of total (surge rounds up,
    unavailable down, as the deployment controller does)."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    pct = int(str(value).rstrip("%"))
    scaled = pct * total
    return -(-scaled // 100) if round_up else scaled // 100


def count_ready(pods: list[dict]) -> int:
    return sum(1 for p in pods if is_active(p) and is_ready(p))
