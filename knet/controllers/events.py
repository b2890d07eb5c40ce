"""Kubernetes Events: the record `knet describe` shows (Scheduled, Started, Killing...),
and the way a controller's failure on an object reaches the user.

Controllers run often (every heartbeat wakes them), so a failure that persists
would write a new Event on every pass. `Recorder` aggregates repeats as
client-go's EventCorrelator does: the same object, type, reason, message and
source make one Event whose `count` grows, rewritten at most once per
`REPEAT_WRITE_SECONDS`; past `SIMILAR_MAX` different messages for the same
object and reason within ten minutes (an error naming a generated name each
time), they go into one "(combined from similar events)" Event. So a stuck
controller cannot flood the store.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from knet.api.objects import now_rfc3339, random_suffix

# The longest message an Event carries (events.k8s.io's `note` limit): an error
# that echoes a large value must not make a large Event.
MAX_MESSAGE = 1024
REPEAT_WRITE_SECONDS = 10.0
CACHE_SIZE = 4096  # client-go's LRU size for the same bookkeeping
SIMILAR_MAX = 10  # distinct messages for one object and reason before they are combined (client-go's)
SIMILAR_WINDOW_SECONDS = 600.0

# Reasons saying a controller could not write what an object asks for: the object
# is not realized. `knet apply --wait` fails on these; other Warnings it only prints.
REALIZE_FAILURES = frozenset({
    "FailedCreate", "FailedUpdate", "FailedDelete", "FailedSync", "FailedToUpdateEndpointSlices"})


def truncate(message: str, limit: int = MAX_MESSAGE) -> str:
    if len(message) <= limit:
        return message
    suffix = "... (truncated)"
    return message[:limit - len(suffix)] + suffix


def make_event(obj: dict, etype: str, reason: str, message: str, component: str, host: str = "") -> dict:
    m = obj.get("metadata", {})
    ts = now_rfc3339()
    source = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{m.get('name', 'x')}.{random_suffix(10)}", "namespace": m.get("namespace") or "default"},
        "involvedObject": {"kind": obj.get("kind"), "name": m.get("name"), "namespace": m.get("namespace"),
                           "uid": m.get("uid"), "apiVersion": obj.get("apiVersion")},
        "reason": reason, "message": truncate(message), "type": etype, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts, "source": source,
    }


def ref_object(ref: dict, namespace: str | None) -> dict:
    """An ownerReference as the minimal object an Event can be about."""
    return {"apiVersion": ref.get("apiVersion"), "kind": ref.get("kind"),
            "metadata": {"name": ref.get("name"), "namespace": namespace, "uid": ref.get("uid")}}


class Recorder:
    """Writes Events, folding repeats into one (see the module docstring).

    `create(namespace, event)` and `bump(namespace, name, count, last, message)`
    are the store edge; bump returns False when the Event is gone (then a new
    one is made).
    """

    def __init__(self, create, bump, clock=time.monotonic):
        self._create, self._bump, self._clock = create, bump, clock
        # full key (with message) -> [namespace, event name, count, time written, object's resourceVersion]
        self._seen: OrderedDict[tuple, list] = OrderedDict()
        # key without message -> [distinct messages in the window, window start, the combined Event's entry]
        self._similar: OrderedDict[tuple, list] = OrderedDict()

    def record(self, obj: dict, etype: str, reason: str, message: str, component: str) -> bool:
        """Returns whether it wrote to the store."""
        message = truncate(message)
        m = obj.get("metadata", {})
        similar = (obj.get("kind"), m.get("namespace"), m.get("name"), m.get("uid"), etype, reason, component)
        full = (*similar, message)
        now, version = self._clock(), m.get("resourceVersion")
        if full in self._seen:
            self._seen.move_to_end(full)
            return self._repeat(self._seen[full], message, version, now, obj, etype, reason, component)
        sim = self._similar.get(similar)
        if sim is None or now - sim[1] > SIMILAR_WINDOW_SECONDS:
            sim = self._similar[similar] = [0, now, None]
        self._similar.move_to_end(similar)
        sim[0] += 1
        if sim[0] > SIMILAR_MAX:
            # Messages that keep changing (a generated name in an error): one combined Event.
            message = truncate(f"(combined from similar events): {message}")
            if sim[2] is not None:
                return self._repeat(sim[2], message, version, now, obj, etype, reason, component)
            sim[2] = self._new(obj, etype, reason, message, component, now, version)
            return sim[2] is not None
        entry = self._new(obj, etype, reason, message, component, now, version)
        if entry is None:
            return False
        self._seen[full] = entry
        for cache in (self._seen, self._similar):
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return True

    def _repeat(self, entry: list, message: str, version, now: float, obj: dict, etype: str, reason: str,
                component: str) -> bool:
        entry[2] += 1
        # A changed object (a re-apply) is told at once that it still fails.
        if now - entry[3] < REPEAT_WRITE_SECONDS and version == entry[4]:
            return False
        if not self._bump(entry[0], entry[1], entry[2], now_rfc3339(), message):
            fresh = self._new(obj, etype, reason, message, component, now, version, entry[2])
            if fresh is None:
                return False
            entry[:] = fresh
            return True
        entry[3], entry[4] = now, version
        return True

    def _new(self, obj: dict, etype: str, reason: str, message: str, component: str, now: float, version,
             count: int = 1) -> list | None:
        event = make_event(obj, etype, reason, message, component)
        event["count"] = count
        ns = event["metadata"]["namespace"]
        if not self._create(ns, event):
            return None
        return [ns, event["metadata"]["name"], count, now, version]
