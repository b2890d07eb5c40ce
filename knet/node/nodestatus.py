"""When a node agent writes its Node status, as kubelet decides it since
Kubernetes 1.17 (tryUpdateNodeStatus): the status is computed every
heartbeat, but written only when it differs from the stored one in more
than its heartbeat times, or when the report frequency has passed since the
last write (kubelet's nodeStatusReportFrequency, 5 min).

Why: every agent watches every Node (routes, policy), so a status write
every 2 s from each of N nodes costs the API server N^2/2 watch deliveries a
second; at 50 nodes it fell behind and nodes never got Ready. Liveness is
the node's Lease (knet.node.lease), which only the control plane follows.

Pure: the agent passes the stored status and its clock.
"""

from __future__ import annotations

from knet.api.objects import now_rfc3339

REPORT_SECONDS = 300.0  # kubelet's nodeStatusReportFrequency default
TIMES = ("lastHeartbeatTime", "lastTransitionTime")
PRESSURE = (("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "KubeletHasSufficientPID"))


def wanted_status(node: str, node_ip: str, static: dict, now: float | None = None) -> dict:
    """The status the agent reports: Ready and the pressure conditions with
    this heartbeat's time, its addresses, and what never changes while it
    runs (capacity, allocatable, nodeInfo, daemonEndpoints: knet.node.nodeinfo)."""
    beat = now_rfc3339(now)
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": beat}
    conds = [ready] + [{"type": t, "status": "False", "reason": r, "lastHeartbeatTime": beat} for t, r in PRESSURE]
    return {
        "conditions": conds,
        "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": node}],
        **static,
    }


def _conditions(status: dict) -> dict[str, dict]:
    return {c.get("type"): {k: v for k, v in c.items() if k not in TIMES}
            for c in status.get("conditions") or []}


def changed(stored: dict | None, wanted: dict) -> bool:
    """Whether the stored status differs from the wanted one in anything the
    agent reports but the times (upstream's nodeStatusHasChanged): a condition
    the lifecycle controller set Unknown, a new address or capacity."""
    stored = stored or {}
    if _conditions(stored) != _conditions(wanted):
        return True
    return any(stored.get(k) != v for k, v in wanted.items() if k != "conditions")


def due(stored: dict | None, wanted: dict, last_report: float | None, now: float,
        report_seconds: float = REPORT_SECONDS) -> bool:
    """Write now? On a change, on the first report of this agent (a restarted
    one's heartbeat times say it is back), and once the report frequency has
    passed (so lastHeartbeatTime stays within it)."""
    return last_report is None or now - last_report >= report_seconds or changed(stored, wanted)


def with_transitions(stored: dict | None, wanted: dict) -> dict:
    """The wanted status with each condition's lastTransitionTime: the stored
    one while its status stays, else this heartbeat's time."""
    old = {c.get("type"): c for c in (stored or {}).get("conditions") or []}
    out = dict(wanted, conditions=[dict(c) for c in wanted["conditions"]])
    for c in out["conditions"]:
        prev = old.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = c["lastHeartbeatTime"]
    return out
