"""NoExecute taints evict the pods that do not tolerate them (the taint
manager's job), honouring tolerationSeconds."""

from __future__ import annotations

import time

from knet.api.objects import parse_rfc3339
from knet.controllers.base import View, is_terminating
from knet.controllers.scheduling import tolerates

COMPONENT = "taint-eviction-controller"


def sync(view: View, now: float | None = None) -> float | None:
    """Evict what must go now; returns seconds until the next tolerationSeconds
    deadline, if any, so the caller can come back then."""
    now = time.time() if now is None else now
    nodes = {n["metadata"]["name"]: n for n in view.list("Node")}
    soonest = None
    for pod in view.list("Pod"):
        node = nodes.get(pod["spec"].get("nodeName") or "")
        if node is None or is_terminating(pod):
            continue
        for taint in node.get("spec", {}).get("taints") or []:
            if taint.get("effect") != "NoExecute":
                continue
            matching = [t for t in pod["spec"].get("tolerations") or [] if tolerates([t], taint)]
            if not matching:
                deadline = now
            elif any(t.get("tolerationSeconds") is None for t in matching):
                continue
            else:
                since = parse_rfc3339(taint["timeAdded"]) if taint.get("timeAdded") else now
                deadline = since + min(int(t["tolerationSeconds"]) for t in matching)
            if deadline <= now:
                view.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {pod['metadata']['namespace']}/{pod['metadata']['name']}", COMPONENT)
                view.delete("Pod", pod)
                break
            soonest = deadline - now if soonest is None else min(soonest, deadline - now)
    return soonest
