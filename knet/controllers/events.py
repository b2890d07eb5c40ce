"""Kubernetes Events: the record `knet describe` shows (Scheduled, Started, Killing...),
and the way a controller's failure on an object reaches the user.

Controllers run often (every heartbeat wakes them), so a failure that persists
would write a new Event on every pass. `Recorder` aggregates repeats as
client-go's EventCorrelator does: the same object, type, reason and source make
one Event whose `count` grows and whose message is the latest (the correlator
combines similar events whose messages differ, e.g. by a generated name, the
same way), rewritten at most once per `REPEAT_WRITE_SECONDS` so a stuck
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
        # key -> [namespace, event name, count, count written, time written, object's resourceVersion]
        self._seen: OrderedDict[tuple, list] = OrderedDict()

    def record(self, obj: dict, etype: str, reason: str, message: str, component: str) -> bool:
        """Returns whether it wrote to the store."""
        message = truncate(message)
        m = obj.get("metadata", {})
        key = (obj.get("kind"), m.get("namespace"), m.get("name"), m.get("uid"), etype, reason, component)
        now = self._clock()
        version = m.get("resourceVersion")
        seen = self._seen.get(key)
        if seen is not None:
            self._seen.move_to_end(key)
            seen[2] += 1
            # A changed object (a re-apply) is told at once that it still fails.
            if now - seen[4] < REPEAT_WRITE_SECONDS and version == seen[5]:
                return False
            if self._bump(seen[0], seen[1], seen[2], now_rfc3339(), message):
                seen[3], seen[4], seen[5] = seen[2], now, version
                return True
        event = make_event(obj, etype, reason, message, component)
        if seen is not None:
            event["count"] = seen[2]
        ns = event["metadata"]["namespace"]
        if not self._create(ns, event):
            return False
        self._seen[key] = [ns, event["metadata"]["name"], event["count"], event["count"], now, version]
        while len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)
        return True
