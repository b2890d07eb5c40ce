"""The real kubectl's day-to-day operations against a live cluster: expose (a
Service that then answers from a pod), cordon and uncordon, drain (through
the eviction subresource, the node's pods rescheduled elsewhere), describe of
a pod, a Deployment and a NetworkPolicy, and delete. What kubectl prints is
compared with what it prints against a real cluster; what the objects hold
afterwards is read back through the API."""

from __future__ import annotations

import ipaddress
import json

import pytest

from knet.harness.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

APP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: control-plane
  tolerations: [{operator: Exists}]
  containers: [{name: c, image: agnhost, command: [sleep, "100000"]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-http}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http}]}]
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    try:
        cluster.kubectl("apply", "-f", "-", input=APP)
        cluster.kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
        cluster.wait_pod("default", "client", lambda p: p["status"].get("podIP"), timeout=60)
        yield cluster
    finally:
        cluster.down()


def get(c: Cluster, *what: str) -> dict:
    return json.loads(c.kubectl("get", *what, "-o", "json").stdout)


def live_pods(c: Cluster, selector: str = "app=web") -> list[dict]:
    return [p for p in get(c, "pods", "-l", selector)["items"] if not p["metadata"].get("deletionTimestamp")]


def test_expose_makes_a_service_that_answers(c):
    out = c.kubectl("expose", "deployment", "web", "--port=80", "--target-port=http", "--name=web-exposed")
    assert out.stdout == "service/web-exposed exposed\n"
    svc = get(c, "service", "web-exposed")
    assert svc["spec"]["selector"] == {"app": "web"}
    port, = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, "http", "TCP")
    assert svc["spec"]["type"] == "ClusterIP"
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    names = {p["metadata"]["name"] for p in live_pods(c)}

    def answer() -> str:
        r = c.exec_pod("default", "client", ["sh", "-c", f"echo hostname | nc -w2 {svc['spec']['clusterIP']} 80"])
        return r.stdout.strip()

    c.wait_for("the exposed Service answering from a web pod", lambda: answer() in names, timeout=30)
    # The name resolves through the cluster DNS too.
    c.wait_for("web-exposed by name", lambda: c.exec_pod(
        "default", "client", ["sh", "-c", "echo hostname | nc -w2 web-exposed 80"]).stdout.strip() in names,
        timeout=30)


def test_cordon_and_uncordon(c):
    assert c.kubectl("cordon", "worker-1").stdout == "node/worker-1 cordoned\n"
    node = get(c, "node", "worker-1")
    assert node["spec"].get("unschedulable") is True
    status = next(line.split()[1] for line in c.kubectl("get", "nodes").stdout.splitlines()
                  if line.startswith("worker-1 "))
    assert status == "Ready,SchedulingDisabled"
    assert c.kubectl("cordon", "worker-1").stdout == "node/worker-1 already cordoned\n"
    assert c.kubectl("uncordon", "worker-1").stdout == "node/worker-1 uncordoned\n"
    assert not get(c, "node", "worker-1")["spec"].get("unschedulable")


def test_drain_evicts_the_pods_which_come_back_elsewhere(c):
    on = {p["spec"].get("nodeName") for p in live_pods(c)}
    target = sorted(on - {"control-plane"})[0]
    out = c.kubectl("drain", target, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s", timeout=100)
    assert f"node/{target} cordoned" in out.stdout
    assert f"node/{target} drained" in out.stdout
    assert "evicting pod default/web-" in out.stderr + out.stdout
    c.kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    pods = live_pods(c)
    assert len(pods) == 2 and all(p["spec"]["nodeName"] != target for p in pods)
    c.kubectl("uncordon", target)


def test_describe_pod_deployment_and_networkpolicy(c):
    """Compared line by line (cells split on whitespace: the label column's
    width follows the longest label present; knet has no ServiceAccounts yet)."""
    pod = live_pods(c)[0]["metadata"]["name"]
    out = c.kubectl("describe", "pod", pod).stdout
    lines = [line.split() for line in out.splitlines()]
    for want in (["Name:", pod], ["Namespace:", "default"], ["Priority:", "0"], ["Status:", "Running"],
                 ["Port:", "8080/TCP", "(http)"], ["Ready", "True"], ["QoS", "Class:", "BestEffort"]):
        assert want in lines, (want, out)
    assert any(line[:2] == ["Controlled", "By:"] and line[2].startswith("ReplicaSet/web-") for line in lines), out
    out = c.kubectl("describe", "deployment", "web").stdout
    for line in ("Name:                   web", "Selector:               app=web",
                 "StrategyType:           RollingUpdate", "NewReplicaSet:   web-"):
        assert line in out, (line, out)
    assert knet_text(c, "describe", "deployment", "web") == without_ages(out)
    out = c.kubectl("describe", "networkpolicy", "allow-http").stdout
    assert out == ("Name:         allow-http\nNamespace:    default\n"
                   f"Created on:   {out.split('Created on:   ')[1].splitlines()[0]}\n"
                   "Labels:       <none>\nAnnotations:  <none>\nSpec:\n  PodSelector:     app=web\n"
                   "  Allowing ingress traffic:\n    To Port: http/TCP\n"
                   "    From: <any> (traffic not restricted by source)\n"
                   "  Not affecting egress traffic\n  Policy Types: Ingress\n")


def without_ages(text: str) -> str:
    """Event ages tick between two commands (and widen their column): blank
    them and compare each line's cells, not its padding."""
    import re
    text = re.sub(r"(  \S+\s+\S+\s+)\d+[sm](\s+)", lambda m: m.group(1) + "?" + m.group(2), text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def knet_text(c: Cluster, *args: str) -> str:
    return without_ages(c.knet(*args).stdout)


def test_delete_removes_the_deployment_and_its_pods(c):
    c.kubectl("create", "deployment", "gone", "--image=agnhost", "--replicas=2")
    c.kubectl("rollout", "status", "deployment/gone", "--timeout=90s", timeout=100)
    out = c.kubectl("delete", "deployment", "gone", "--timeout=60s", timeout=70)
    assert out.stdout == 'deployment.apps "gone" deleted from default namespace\n'  # kubectl 1.33+
    c.wait_for("gone's pods deleted", lambda: not live_pods(c, "app=gone"), timeout=60)
    c.kubectl("create", "deployment", "gone2", "--image=agnhost")
    assert c.knet("delete", "deployment", "gone2").stdout == 'deployment.apps "gone2" deleted from default namespace\n'
    c.kubectl("create", "namespace", "scratch")
    assert c.knet("delete", "namespace", "scratch").stdout == 'namespace "scratch" deleted\n'

    out = c.kubectl("get", "deployment", "gone", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): deployments.apps "gone" not found'
