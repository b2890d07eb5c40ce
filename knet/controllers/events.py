"""Kubernetes Events: the record `knet describe` shows (Scheduled, Started, Killing...)."""

from __future__ import annotations

from knet.api.objects import now_rfc3339, random_suffix


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
        "reason": reason, "message": message, "type": etype, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts, "source": source,
    }
