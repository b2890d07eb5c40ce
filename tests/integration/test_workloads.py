"""Workloads on a real cluster: controllers, scheduling rules, cordon and
drain, kubectl-like output, and a control plane killed mid-way that converges
without duplicate or orphaned pods."""

from __future__ import annotations

import os
import signal
import time

import pytest

from knet.cluster import component_pid, start_component
from knet.harness.cluster import Cluster, ready


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=3)
    yield cluster
    cluster.down()


def deployment(name: str, replicas: int, version: str = "1", extra: str = "") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
{extra}      containers:
      - name: web
        image: agnhost
        ports: [{{containerPort: 80}}]
        env: [{{name: VERSION, value: "{version}"}}]
        readinessProbe: {{tcpSocket: {{port: 80}}, periodSeconds: 1}}
"""


def live_pods(c, app: str) -> list[dict]:
    return [p for p in c.list("Pod", "default", label_selector=f"app={app}")
            if not p["metadata"].get("deletionTimestamp")]


def converged(c, name: str, replicas: int) -> bool:
    d = c.get("Deployment", "default", name)
    st = d.get("status", {})
    pods = live_pods(c, name)
    return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas and len(pods) == replicas and all(map(ready, pods)))


def assert_owned_once(c, app: str, replicas: int) -> None:
    """Exactly `replicas` pods, each owned by a ReplicaSet that exists; no orphans."""
    pods = live_pods(c, app)
    sets = {rs["metadata"]["uid"]: rs for rs in c.list("ReplicaSet", "default")}
    assert len(pods) == replicas, [p["metadata"]["name"] for p in pods]
    for p in pods:
        refs = p["metadata"]["ownerReferences"]
        assert len(refs) == 1 and refs[0]["uid"] in sets
    everything = c.list("Pod", "default")
    assert all(p["metadata"].get("ownerReferences") for p in everything if p["metadata"]["name"].startswith(app + "-"))


def test_deployment_create_scale_update_delete(c):
    c.apply(deployment("web", 3))
    c.wait_for("web ready", lambda: converged(c, "web", 3))
    rs = c.list("ReplicaSet", "default", label_selector="app=web")
    assert len(rs) == 1 and rs[0]["metadata"]["name"].startswith("web-")
    for p in live_pods(c, "web"):
        assert p["metadata"]["name"].startswith(rs[0]["metadata"]["name"] + "-")
    out = c.knet("get", "deploy,rs").stdout
    assert "deployment.apps/web   3/3     3            3" in out
    assert "READY   UP-TO-DATE   AVAILABLE" in out and "DESIRED   CURRENT   READY" in out
    c.knet("scale", "deploy/web", "--replicas", "5")
    c.wait_for("web scaled", lambda: converged(c, "web", 5))
    c.apply(deployment("web", 5, version="2"))
    rollout = c.knet("rollout", "status", "deploy/web", "--timeout", "30")
    assert 'deployment "web" successfully rolled out' in rollout.stdout
    c.wait_for("web updated", lambda: converged(c, "web", 5))
    assert {p["spec"]["containers"][0]["env"][0]["value"] for p in live_pods(c, "web")} == {"2"}
    events = c.knet("describe", "deploy", "web").stdout
    assert "ScalingReplicaSet" in events and "Scaled up replica set" in events
    c.knet("delete", "deploy", "web")
    c.wait_for("cascade", lambda: not c.list("Pod", "default", label_selector="app=web")
               and not c.list("ReplicaSet", "default", label_selector="app=web"))


def test_daemonset_with_tainted_node_and_tolerating_daemonset(c):
    assert c.knet("taint", "worker-3", "dedicated=db:NoSchedule").stdout == "node/worker-3 tainted\n"
    ds = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: NAME}
spec:
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      TOLERATIONS
      containers: [{name: a, image: agnhost}]
"""
    c.apply(ds.replace("NAME", "plain").replace("TOLERATIONS", ""))
    c.apply(ds.replace("NAME", "tolerant").replace(
        "TOLERATIONS", "tolerations: [{key: dedicated, operator: Exists}, "
                       "{key: node-role.kubernetes.io/control-plane, operator: Exists}]"))
    nodes = lambda app: sorted(p["spec"].get("nodeName", "") for p in live_pods(c, app))  # noqa: E731
    c.wait_for("plain placed", lambda: nodes("plain") == ["worker-1", "worker-2"])
    c.wait_for("tolerant placed", lambda: nodes("tolerant") == ["control-plane", "worker-1", "worker-2", "worker-3"])
    c.wait_for("ds status", lambda: c.get("DaemonSet", "default", "plain")["status"].get("numberReady") == 2)
    assert "daemonset.apps/plain" in c.knet("get", "ds", "-o", "name").stdout
    c.knet("taint", "worker-3", "dedicated:NoSchedule-")
    c.wait_for("plain reaches worker-3", lambda: nodes("plain") == ["worker-1", "worker-2", "worker-3"])
    c.knet("delete", "ds", "plain", "tolerant")


STS = """apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: agnhost
        ports: [{containerPort: 5432}]
        readinessProbe: {tcpSocket: {port: 5432}, periodSeconds: 1, initialDelaySeconds: 1}
"""


def test_statefulset_orders_pods(c):
    c.apply(STS)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pods = {p["metadata"]["name"]: p for p in live_pods(c, "db")}
        for i in range(3):
            name = f"db-{i}"
            if name in pods and name not in seen:
                seen.append(name)
                if i > 0:  # its predecessor was Ready before it existed
                    prev = c.get("Pod", "default", f"db-{i - 1}")
                    assert ready(prev), f"db-{i} created before db-{i - 1} was Ready"
        if len(pods) == 3 and all(map(ready, pods.values())):
            break
        time.sleep(0.05)
    assert seen == ["db-0", "db-1", "db-2"]
    out = c.exec_pod("default", "db-1", ["hostname"])
    assert out.stdout.strip() == "db-1"
    c.knet("scale", "sts/db", "--replicas", "1")
    c.wait_for("scaled down", lambda: [p["metadata"]["name"] for p in c.list("Pod", "default",
                                                                              label_selector="app=db")] == ["db-0"])
    c.knet("delete", "sts", "db")
    c.wait_for("sts gone", lambda: not c.list("Pod", "default", label_selector="app=db"))


def test_drain_moves_pods_and_keeps_daemonset_pods(c):
    c.apply(deployment("spread", 6))
    c.apply("""apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logger}
spec:
  selector: {matchLabels: {app: logger}}
  template:
    metadata: {labels: {app: logger}}
    spec: {containers: [{name: a, image: agnhost}]}
""")
    c.wait_for("spread ready", lambda: converged(c, "spread", 6))
    c.wait_for("logger", lambda: len(live_pods(c, "logger")) == 3)
    on = lambda app, node: [p for p in live_pods(c, app) if p["spec"].get("nodeName") == node]  # noqa: E731
    assert on("spread", "worker-1")
    out = c.knet("drain", "worker-1", "--timeout", "30")
    assert "node/worker-1 cordoned" in out.stdout and "node/worker-1 drained" in out.stdout
    assert "ignoring DaemonSet-managed Pods" in out.stdout
    assert on("spread", "worker-1") == []
    c.wait_for("spread back to 6", lambda: converged(c, "spread", 6))
    assert len(on("logger", "worker-1")) == 1
    assert "SchedulingDisabled" in c.knet("get", "node", "worker-1").stdout
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec: {nodeName: worker-2, containers: [{name: c, image: agnhost}]}\n")
    refused = c.knet("drain", "worker-2", check=False)
    assert refused.returncode != 0 and "declare no controller" in refused.stderr
    c.knet("uncordon", "worker-1", "worker-2")
    assert "SchedulingDisabled" not in c.knet("get", "nodes").stdout
    c.knet("delete", "deploy", "spread")
    c.knet("delete", "ds", "logger")
    c.knet("delete", "pod", "bare")


def test_noexecute_taint_evicts_and_controllers_replace(c):
    c.apply(deployment("evictme", 4))
    c.wait_for("evictme ready", lambda: converged(c, "evictme", 4))
    # A node that holds one of its pods (the spread depends on what else the module left running).
    node = sorted(p["spec"]["nodeName"] for p in live_pods(c, "evictme") if p["spec"]["nodeName"] != "control-plane")[0]
    c.knet("taint", node, "maintenance=now:NoExecute")
    try:
        c.wait_for(f"off {node}", lambda: converged(c, "evictme", 4) and all(
            p["spec"]["nodeName"] != node for p in live_pods(c, "evictme")), timeout=30)
        c.wait_for("the eviction's Event", lambda: "TaintManagerEviction" in c.knet("get", "events").stdout,
                   timeout=10, interval=0.2)
    finally:
        c.knet("taint", node, "maintenance-")
        c.knet("delete", "deploy", "evictme")


def test_cordon_stops_new_pods(c):
    c.knet("cordon", "worker-1", "worker-2")
    try:
        c.apply(deployment("fenced", 3))
        c.wait_for("fenced ready", lambda: converged(c, "fenced", 3))
        assert {p["spec"]["nodeName"] for p in live_pods(c, "fenced")} == {"worker-3"}
    finally:
        c.knet("uncordon", "worker-1", "worker-2")
        c.knet("delete", "deploy", "fenced")


def restart_control_plane(c) -> None:
    os.kill(component_pid(c.name, "control-plane"), signal.SIGKILL)
    start_component(c.cfg, "control-plane")
    c.wait_for("API back", lambda: _up(c), timeout=10)


def _up(c) -> bool:
    try:
        c.client.request("GET", "/version")
        return True
    except OSError:
        return False


def test_control_plane_killed_mid_scale_up_converges(c):
    c.knet("apply", "-f", "-", input=deployment("burst", 40))
    time.sleep(0.05)
    restart_control_plane(c)
    c.wait_for("burst converged", lambda: converged(c, "burst", 40), timeout=40)
    time.sleep(0.5)
    assert_owned_once(c, "burst", 40)
    assert len(c.list("ReplicaSet", "default", label_selector="app=burst")) == 1
    c.knet("delete", "deploy", "burst")
    c.wait_for("burst gone", lambda: not c.list("Pod", "default", label_selector="app=burst"))


def test_control_plane_killed_mid_rolling_update_converges(c):
    c.apply(deployment("roll", 8))
    c.wait_for("roll ready", lambda: converged(c, "roll", 8))
    c.knet("apply", "-f", "-", input=deployment("roll", 8, version="2"))
    c.wait_for("rollout started", lambda: len(c.list("ReplicaSet", "default", label_selector="app=roll")) == 2)
    restart_control_plane(c)
    c.wait_for("roll converged", lambda: converged(c, "roll", 8), timeout=40)
    time.sleep(0.5)
    assert_owned_once(c, "roll", 8)
    assert {p["spec"]["containers"][0]["env"][0]["value"] for p in live_pods(c, "roll")} == {"2"}
    sets = c.list("ReplicaSet", "default", label_selector="app=roll")
    assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, 8]
    c.knet("delete", "deploy", "roll")


def test_required_node_affinity_and_unschedulable_reason(c):
    c.apply("""apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [worker-2]}]
  containers: [{name: c, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: impossible}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [worker-1, worker-2, worker-3]}]
  containers: [{name: c, image: agnhost}]
""")
    assert c.get("Pod", "default", "picky")["spec"]["nodeName"] == "worker-2"
    c.wait_for("FailedScheduling", lambda: "FailedScheduling" in c.knet("describe", "pod", "impossible").stdout)
    c.knet("delete", "pod", "picky", "impossible")
