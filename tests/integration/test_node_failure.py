"""kill -9 of a node agent on a live cluster: after the grace period the node
is Unknown and tainted unreachable, its pods are Ready=False and out of the
ready endpoints, ClusterIP traffic from a healthy node all reaches the pod
still serving, a pod tolerating the taint for a short time is evicted, and a
restarted agent takes the taints away. Prints the time from kill -9 to the
pods out of the EndpointSlices."""

from __future__ import annotations

import time

from knet.cluster import start_component, stop_component
from knet.harness.cluster import Cluster, ready

GRACE = 2.0


def pod(name: str, node: str, app: str | None, toleration_seconds: int) -> str:
    labels = f"labels: {{app: {app}}}, " if app else ""
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, {labels}}}
spec:
  nodeName: {node}
  tolerations:
  - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: {toleration_seconds}}}
  - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: {toleration_seconds}}}
  containers: [{{name: web, image: knet/builtin, ports: [{{containerPort: 8080}}]}}]
"""


MANIFEST = (
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
    "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n"
    + pod("web-a", "worker-1", "web", 3600) + pod("web-b", "worker-1", "web", 3600)
    + pod("web-c", "worker-2", "web", 3600) + pod("short", "worker-1", None, 2)
    + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: client}\n"
      "spec: {nodeName: worker-2, containers: [{name: c, image: busybox, command: [sleep, '600']}]}\n"
)

CONNECT = """
import socket, sys
ok = bad = 0
for _ in range(int(sys.argv[2])):
    try:
        s = socket.create_connection((sys.argv[1], 80), timeout=2)
        s.sendall(b"hostname\\n")
        ok += bool(s.recv(100))
        s.close()
    except OSError:
        bad += 1
print(ok, bad)
"""


def endpoints(c) -> dict[str, bool]:
    """pod name -> ready, over the Service's slices."""
    out = {}
    for s in c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=web"):
        for ep in s.get("endpoints") or []:
            out[ep["targetRef"]["name"]] = ep["conditions"]["ready"]
    return out


def taints(c, node: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in c.get("Node", None, node)["spec"].get("taints") or []}


def ready_condition(c, name: str) -> str:
    p = c.get("Pod", "default", name)
    return next(x["status"] for x in p["status"]["conditions"] if x["type"] == "Ready")


def proxy_caught_up(c, node: str) -> bool:
    progress = c.client.request("GET", "/knet/v1/progress")
    return progress["components"].get(f"node/{node}", {}).get("observed", 0) >= progress["revision"]


def test_a_dead_agent_s_pods_leave_the_endpoints_and_come_back():
    c = Cluster.up(workers=2, heartbeatSeconds=0.5, nodeGracePeriodSeconds=GRACE)
    try:
        c.apply(MANIFEST)
        for name in ("web-a", "web-b", "web-c", "short"):
            c.wait_pod("default", name, ready)
        c.wait_for("3 ready endpoints", lambda: endpoints(c) == {"web-a": True, "web-b": True, "web-c": True})
        ip = c.get("Service", "default", "web")["spec"]["clusterIP"]

        # kill -9, held down (as `systemctl stop`) so the supervisor does not restart it at once
        stop_component(c.cfg, "node-worker-1")
        killed = time.monotonic()
        c.wait_for("web-a and web-b out of the ready endpoints",
                   lambda: endpoints(c) == {"web-a": False, "web-b": False, "web-c": True}, timeout=GRACE + 10)
        dropped = time.monotonic() - killed
        print(f"\nkill -9 to the pods out of the EndpointSlices: {dropped:.2f}s (grace {GRACE:g}s)")

        assert c.nodes_ready()["worker-1"] == "Unknown"
        node = c.get("Node", None, "worker-1")
        cond = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
        assert (cond["reason"], cond["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        c.wait_for("worker-1 tainted", lambda: {("node.kubernetes.io/unreachable", "NoExecute"),
                                               ("node.kubernetes.io/unreachable", "NoSchedule")} <= taints(c, "worker-1"))
        assert ready_condition(c, "web-a") == ready_condition(c, "web-b") == "False"
        assert ready_condition(c, "web-c") == "True"
        reasons = {(e["involvedObject"]["name"], e["reason"]) for e in c.list("Event", "default")}
        assert {("web-a", "NodeNotReady"), ("web-b", "NodeNotReady")} <= reasons

        # Traffic from the healthy node reaches only the pod still serving.
        c.wait_for("worker-2's proxy synced", lambda: proxy_caught_up(c, "worker-2"))
        out = c.exec_pod("default", "client", ["python3", "-c", CONNECT, ip, "30"], timeout=120)
        assert out.stdout.split() == ["30", "0"], out.stdout + out.stderr

        # The pod tolerating unreachable for 2 s is evicted (it stays Terminating
        # while its node is away, as upstream); the others tolerate an hour.
        evicted = c.wait_pod("default", "short", lambda p: p["metadata"].get("deletionTimestamp"), timeout=20)
        assert any(x["type"] == "DisruptionTarget" and x["reason"] == "DeletionByTaintManager"
                   for x in evicted["status"]["conditions"])
        assert not c.get("Pod", "default", "web-a")["metadata"].get("deletionTimestamp")

        # The agent comes back: Ready, the taints go, its pods serve again.
        start_component(c.cfg, "node-worker-1")
        back = time.monotonic()
        c.wait_for("worker-1 Ready", lambda: c.nodes_ready()["worker-1"] == "True", timeout=20)
        c.wait_for("worker-1 untainted", lambda: not {t for t in taints(c, "worker-1")
                                                     if t[0].startswith("node.kubernetes.io/")}, timeout=10)
        c.wait_for("web-a and web-b ready endpoints again",
                   lambda: endpoints(c) == {"web-a": True, "web-b": True, "web-c": True}, timeout=30)
        print(f"agent restart to the pods back in the EndpointSlices: {time.monotonic() - back:.2f}s")
        c.wait_gone("Pod", "default", "short", timeout=30)
    finally:
        c.down()
