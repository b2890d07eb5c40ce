"""Admission and storage: what the API server does between a request and the store.

Every write goes through the same steps a Kubernetes API server takes:
defaulting, validation (all field errors at once), allocation (ClusterIPs,
NodePorts), then one compare-and-swap write. A step that fails raises an
`ApiError` before anything is written, so a rejected object changes nothing.
The HTTP server and the in-process controllers both call this class, which
keeps one set of rules for both. What a step does for a kind (its defaulting,
validation, status subresource, update preparation) is the kind's strategy
record in knet/api/resources.py; the allocators are configuration of the
cluster (its ranges), so they are given to the Registry by kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from knet.api import errors
from knet.api.errors import ApiError
from knet.api.objects import (
    deep_copy,
    from_json,
    merge_patch,
    new_uid,
    now_rfc3339,
    random_suffix,
    to_json,
)
from knet.api.resources import RESOURCES, Resource, by_kind
from knet.store import Compacted, Event, KeyExists, KeyNotFound, RevisionMismatch, Store

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def key_for(res: Resource, namespace: str | None, name: str) -> str:
    if res.namespaced:
        return f"/registry/{res.plural}/{namespace}/{name}"
    return f"/registry/{res.plural}/{name}"


def prefix_for(res: Resource, namespace: str | None) -> str:
    if res.namespaced and namespace:
        return f"/registry/{res.plural}/{namespace}/"
    return f"/registry/{res.plural}/"


def _decode(value: str, rev: int) -> dict:
    obj = from_json(value)
    obj["metadata"]["resourceVersion"] = str(rev)
    return obj


def _encode(obj: dict) -> str:
    body = deep_copy(obj)
    body["metadata"].pop("resourceVersion", None)
    return to_json(body, sort_keys=True).decode()


class Registry:
    """The API's rules over a `Store`.

    `allocators` maps a kind to a callable that fills in allocated fields
    (ClusterIP, NodePort) on create and update and raises ApiError when a range
    is exhausted or a value taken; it runs after validation and before the write.
    """

    def __init__(self, store: Store, allocators: dict[str, Callable[[Registry, dict, dict | None], None]] | None = None,
                 pod_netns: Callable[[str], str] | None = None):
        self.store = store
        self.allocators = allocators or {}
        self.pod_netns = pod_netns
        # The ServiceAccount admission (knet/api/serviceaccounts.py): the control plane turns it on.
        self.service_accounts = False

    # -- reads -----------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        found = self.store.get(key_for(res, namespace, name))
        if found is None:
            raise errors.not_found(f"{res.plural}" if res.group == "" else f"{res.plural}.{res.group}", name)
        return _decode(*found)

    def find(self, res: Resource, namespace: str | None, name: str) -> dict | None:
        found = self.store.get(key_for(res, namespace, name))
        return _decode(*found) if found else None

    def list(self, res: Resource, namespace: str | None = None,
             match: Callable[[dict], bool] | None = None) -> tuple[list[dict], int]:
        rows, rev = self.store.list(prefix_for(res, namespace))
        items = [_decode(v, r) for _, v, r in rows]
        if match is not None:
            items = [o for o in items if match(o)]
        return items, rev

    def history(self, res: Resource, namespace: str | None, after: int) -> list[Event]:
        try:
            return self.store.history(prefix_for(res, namespace), after)
        except Compacted as e:
            raise errors.gone(f"too old resource version: {after} ({e.oldest})") from None

    # -- writes ----------------------------------------------------------------

    def _fits(self, value: str) -> str:
        """Refuse an object the store would refuse, also on a dry run, so that
        `apply`'s dry-run pass catches it: etcd's "request is too large" (1.5 MiB),
        as a 413 rather than the 500 an upstream API server still answers for it."""
        limit = getattr(self.store, "max_value_bytes", None)
        if limit is not None and len(value) > limit:
            raise errors.object_too_large(len(value), limit)
        return value

    def _check_kind(self, res: Resource, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be a JSON object")
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise errors.bad_request(f"the kind {errors.render_value(kind)} in the body does not match "
                                     f"the path's kind {res.kind!r}")
        obj["kind"] = res.kind
        api_version = obj.setdefault("apiVersion", res.api_version)
        if api_version != res.api_version:
            raise errors.bad_request(
                f"the API version {errors.render_value(api_version)} in the body does not match "
                f"{res.api_version!r} for {res.kind}")
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")

    def _namespace_open(self, res: Resource, namespace: str | None) -> None:
        if not res.namespaced:
            return
        ns = self.find(by_kind("Namespace"), None, namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f"unable to create new content in namespace {namespace} because it is being terminated")

    def _admit(self, obj: dict, old: dict | None) -> None:
        """The kind's strategy (its record's defaults and validation), then its allocator."""
        from knet.api.defaults import apply_defaults
        from knet.api.validation import validate, validate_update

        apply_defaults(obj)
        validate(obj)
        if old is not None:
            validate_update(obj, old)
        allocate = self.allocators.get(obj["kind"])
        if allocate:
            allocate(self, obj, old)

    def create(self, res: Resource, namespace: str | None, obj: dict, dry_run: bool = False,
               manager: str | None = None) -> dict:
        obj = deep_copy(obj)
        self._check_kind(res, obj)
        m = obj["metadata"]
        if res.namespaced:
            body_ns = m.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request(
                    f"the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})")
            m["namespace"] = namespace = namespace or body_ns or "default"
        else:
            m.pop("namespace", None)
        if not m.get("name") and m.get("generateName"):
            m["name"] = m["generateName"] + random_suffix()
        for field in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            m.pop(field, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = now_rfc3339()
        m["generation"] = 1
        if res.kind == "Pod":
            obj["status"] = {"phase": "Pending"}
            if self.pod_netns:
                m.setdefault("annotations", {})["knet.dev/netns"] = self.pod_netns(m["uid"])
            if self.service_accounts:
                from knet.api.serviceaccounts import admit_pod
                admit_pod(self, obj)
        self._admit(obj, None)
        self._record(res, None, obj, manager, None)
        self._namespace_open(res, namespace)
        value = self._fits(_encode(obj))
        if dry_run:
            if self.find(res, namespace, m["name"]) is not None:
                raise errors.already_exists(res.plural, m["name"])
            return obj
        try:
            rev = self.store.create(key_for(res, namespace, m["name"]), value)
        except KeyExists:
            raise errors.already_exists(res.plural if not res.group else f"{res.plural}.{res.group}", m["name"]) from None
        m["resourceVersion"] = str(rev)
        return obj

    def update(self, res: Resource, namespace: str | None, name: str, obj: dict,
               subresource: str | None = None, dry_run: bool = False, manager: str | None = None) -> dict:
        """PUT: replace the object, or only its status with subresource="status".

        A stale metadata.resourceVersion is a 409 Conflict, as in Kubernetes; an
        update that changes nothing writes nothing and returns the stored object.
        """
        obj = deep_copy(obj)
        self._check_kind(res, obj)
        old = self.get(res, namespace, name)
        m = obj["metadata"]
        if m.get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})")
        expected = m.get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name)
        return self._replace(res, old, obj, subresource, dry_run, manager=manager)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: dict,
              subresource: str | None = None, dry_run: bool = False) -> dict:
        """An RFC 7386 merge patch given as a dict: the in-process callers'
        (controllers) PATCH. Requests go through patch_body."""
        if not isinstance(patch, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        old = self.get(res, namespace, name)
        new = merge_patch(old, patch)
        self._check_kind(res, new)
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name)
        return self._replace(res, old, new, subresource, dry_run)

    def patch_body(self, res: Resource, namespace: str | None, name: str, body: bytes, ptype: str,
                   subresource: str | None = None, *, dry_run: bool = False, manager: str = "",
                   force: bool = False, field_validation: str | None = None) -> tuple[int, dict, list[str]]:
        """PATCH of any type (knet/api/patch.py): (HTTP code, object, warnings).
        A server-side apply to an absent object creates it (201)."""
        from knet.api import patch as patching

        if ptype == patching.APPLY_PATCH:
            return self._apply(res, namespace, name, body, subresource, dry_run=dry_run, manager=manager,
                               force=force, field_validation=field_validation)
        old = self.get(res, namespace, name)
        new, warnings = patching.patched(res, old, body, ptype, field_validation, name)
        self._check_kind(res, new)
        m = new["metadata"]
        if m.get("name") != name:
            raise errors.bad_request(f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})")
        if res.namespaced and m.get("namespace") != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        expected = new["metadata"].get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name)
        return 200, self._replace(res, old, new, subresource, dry_run, manager=manager), warnings

    def _apply(self, res: Resource, namespace: str | None, name: str, body: bytes, subresource: str | None, *,
               dry_run: bool, manager: str, force: bool, field_validation: str | None) -> tuple[int, dict, list[str]]:
        from knet.api import decode, fieldmanager
        from knet.api import patch as patching

        directive = decode.validation_directive("PATCH", field_validation)
        config, warnings = patching.check_apply_config(res, patching.parse_apply(body), directive)
        self._check_kind(res, config)
        m = config["metadata"]
        if m.get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})")
        if res.namespaced and m.get("namespace") and namespace and m["namespace"] != namespace:
            raise errors.bad_request(f"the namespace of the provided object ({m['namespace']}) does not match "
                                     f"the namespace sent on the request ({namespace})")
        old = self.find(res, namespace, name)
        if old is None and subresource:
            raise errors.not_found(res.plural if not res.group else f"{res.plural}.{res.group}", name)
        try:
            new = fieldmanager.apply(old, config, manager, res.kind, force=force, kind_has_status=bool(res.status),
                                     subresource=subresource, now=now_rfc3339())
        except fieldmanager.ShapeError as e:
            raise errors.bad_request(f"failed to create typed patch object ({res.group}/{res.version}, "
                                     f"Kind={res.kind}): {e}") from None
        if old is None:
            new["metadata"]["name"] = name
            return 201, self.create(res, namespace, new, dry_run=dry_run), warnings
        expected = m.get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return 200, self._replace(res, old, new, subresource, dry_run), warnings

    def _record(self, res: Resource, old: dict | None, obj: dict, manager: str | None,
                subresource: str | None) -> None:
        """The write's field manager in managedFields (knet/api/fieldmanager.py):
        only for writes that name one (the API's clients); in-process
        controllers write without, and leave the ownership as it was."""
        if not manager:
            return
        from knet.api import fieldmanager

        fieldmanager.record_update(old, obj, manager, res.kind, kind_has_status=bool(res.status),
                                   subresource=subresource, now=now_rfc3339())

    def _replace(self, res: Resource, old: dict, obj: dict, subresource: str | None, dry_run: bool = False,
                 manager: str | None = None) -> dict:
        om, m = old["metadata"], obj["metadata"]
        # Fields the server owns: what the client sent is ignored, as Kubernetes does.
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation",
                      "deletionTimestamp", "deletionGracePeriodSeconds"):
            if field in om:
                m[field] = om[field]
            else:
                m.pop(field, None)
        if subresource == "status":
            new = deep_copy(old)
            new["status"] = obj.get("status", {})
            obj = new
        elif subresource:
            raise errors.not_found("subresource", subresource)
        elif res.status:  # the main resource's writes keep the stored status
            if "status" in old:
                obj["status"] = deep_copy(old["status"])
            else:
                obj.pop("status", None)
        if subresource != "status":
            prepare = res.hook("prepare_update")
            if prepare:
                prepare(obj, old)
            self._admit(obj, old)
            if obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = om.get("generation", 1) + 1
        self._record(res, old, obj, manager, subresource)
        obj["metadata"]["resourceVersion"] = om["resourceVersion"]
        if obj == old:
            return obj
        value = self._fits(_encode(obj))
        if dry_run:
            return obj
        try:
            rev = self.store.update(key_for(res, om.get("namespace"), om["name"]), value,
                                    int(om["resourceVersion"]))
        except RevisionMismatch:
            raise errors.conflict(res.plural, om["name"]) from None
        obj["metadata"]["resourceVersion"] = str(rev)
        self._after_write(res, obj)
        return obj

    def delete(self, res: Resource, namespace: str | None, name: str,
               grace: int | None = None, expected: str | None = None) -> dict:
        """DELETE. A pod bound to a node is first marked with deletionTimestamp so
        its node agent can stop it gracefully (SIGTERM, then SIGKILL after the grace
        period); the agent then deletes it with grace 0. A namespace is emptied first."""
        old = self.get(res, namespace, name)
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name)
        if res.kind == "Pod" and old.get("spec", {}).get("nodeName") and grace != 0:
            return self._mark_deleting(res, old, grace)
        if res.kind == "Namespace":
            return self._delete_namespace(old)
        try:
            self.store.delete(key_for(res, namespace, name))
        except KeyNotFound:
            raise errors.not_found(res.plural, name) from None
        self._after_delete(res, old)
        return old

    def _mark_deleting(self, res: Resource, old: dict, grace: int | None) -> dict:
        phase = old.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            grace = 0
        if grace is None:
            grace = old["spec"].get("terminationGracePeriodSeconds", 30)
        m = old["metadata"]
        if m.get("deletionTimestamp") and m.get("deletionGracePeriodSeconds", 0) <= grace:
            return old
        new = deep_copy(old)
        new["metadata"]["deletionTimestamp"] = now_rfc3339(time.time() + grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        rev = self.store.update(key_for(res, m["namespace"], m["name"]), _encode(new), int(m["resourceVersion"]))
        new["metadata"]["resourceVersion"] = str(rev)
        return new

    def _delete_namespace(self, ns: dict) -> dict:
        name = ns["metadata"]["name"]
        if name in SYSTEM_NAMESPACES:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        if not ns["metadata"].get("deletionTimestamp"):
            new = deep_copy(ns)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new.setdefault("status", {})["phase"] = "Terminating"
            rev = self.store.update(key_for(by_kind("Namespace"), None, name), _encode(new),
                                    int(ns["metadata"]["resourceVersion"]))
            new["metadata"]["resourceVersion"] = str(rev)
            ns = new
        for res in RESOURCES:
            if not res.namespaced:
                continue
            for obj in self.list(res, name)[0]:
                try:
                    self.delete(res, name, obj["metadata"]["name"])
                except ApiError as e:
                    if e.code != 404:
                        raise
        self._finish_namespace(name)
        return ns

    def _finish_namespace(self, name: str) -> None:
        """Remove a terminating namespace once nothing is left in it."""
        ns = self.find(by_kind("Namespace"), None, name)
        if not ns or not ns["metadata"].get("deletionTimestamp"):
            return
        for res in RESOURCES:
            if res.namespaced and self.store.list(prefix_for(res, name))[0]:
                return
        try:
            self.store.delete(key_for(by_kind("Namespace"), None, name))
        except KeyNotFound:
            pass

    def _after_write(self, res: Resource, obj: dict) -> None:
        pass

    def _after_delete(self, res: Resource, old: dict) -> None:
        if res.namespaced:
            self._finish_namespace(old["metadata"]["namespace"])

    def bind(self, namespace: str, name: str, node: str) -> dict:
        """POST pods/NAME/binding: set spec.nodeName once, as the scheduler does."""
        res = by_kind("Pod")
        pod = self.get(res, namespace, name)
        if pod["spec"].get("nodeName"):
            raise errors.ApiError(409, "Conflict", f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(409, "Conflict", f"pod {name} is being deleted, cannot be assigned to a host")
        new = deep_copy(pod)
        new["spec"]["nodeName"] = node
        from knet.api.objects import set_condition
        set_condition(new.setdefault("status", {}), "PodScheduled", True)
        m = pod["metadata"]
        try:
            rev = self.store.update(key_for(res, namespace, name), _encode(new), int(m["resourceVersion"]))
        except RevisionMismatch:
            raise errors.conflict("pods", name) from None
        new["metadata"]["resourceVersion"] = str(rev)
        return new

    def bootstrap(self) -> None:
        """The objects every cluster starts with: the system namespaces."""
        ns_res = by_kind("Namespace")
        for name in SYSTEM_NAMESPACES:
            if self.find(ns_res, None, name) is None:
                self.create(ns_res, None, {"metadata": {"name": name}, "status": {"phase": "Active"}})


def decode_event(event: Event) -> tuple[dict | None, dict | None]:
    """The new and previous object of a store event, with resourceVersion set."""
    return event_new(event), event_prev(event)


# One store event reaches every watch of its kind (each node agent's, kubectl's) and the
# controllers' cache: decoding it once, not once per reader, was a third of the API
# server's JSON work during a rollout. The objects are shared: readers must not mutate
# them (a controller copies before it changes anything, as client-go's cache demands).
def event_new(event: Event) -> dict | None:
    memo = event.__dict__
    if "_new" not in memo:
        memo["_new"] = _decode(event.value, event.revision) if event.value else None
    return memo["_new"]


def event_prev(event: Event) -> dict | None:
    memo = event.__dict__
    if "_prev" not in memo:
        prev = from_json(event.prev) if event.prev else None
        if prev is not None and not event.value:
            prev["metadata"]["resourceVersion"] = str(event.revision)
        memo["_prev"] = prev
    return memo["_prev"]


def filter_event(event: Event, match: Callable[[dict], bool] | None) -> tuple[str, dict] | None:
    """Turn a store event into what a filtered watch sends: an object that starts
    matching arrives as ADDED, one that stops matching as DELETED (as the
    Kubernetes watch cache does), one that never matched not at all."""
    if match is None:  # the previous value is needed only to see a filter's transitions
        return event.type, (event_new(event) if event.value else event_prev(event))
    new, prev = decode_event(event)
    now_in = new is not None and match(new)
    was_in = prev is not None and match(prev)
    if now_in and was_in:
        return "MODIFIED", new
    if now_in:
        return "ADDED", new
    if was_in:
        out = new if new is not None else prev
        return "DELETED", out
    return None


def object_key(obj: dict[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata", {})
    return m.get("namespace", ""), m.get("name", "")
