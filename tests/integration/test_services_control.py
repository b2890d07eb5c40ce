"""The control-plane half of Services on a live cluster: allocation shown
by `knet get svc`, EndpointSlices following pod readiness, the kubernetes
Service, and the Service variables in a container's own environment.
(The nftables data path comes with the proxy.)"""

from __future__ import annotations

import pytest

from knet.harness.cluster import Cluster, ready

APP = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: edge}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{containerPort: 80, name: http}]
        readinessProbe:
          exec: {command: [sh, -c, "test -f /tmp/knet-svc-ready-`hostname`"]}
          periodSeconds: 1
      - name: sidecar
        image: agnhost
        command: [sleep, "600"]
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    yield cluster
    cluster.down()


def endpoints(c, svc: str) -> dict[str, dict]:
    out = {}
    for s in c.list("EndpointSlice", "default", label_selector=f"kubernetes.io/service-name={svc}"):
        for e in s.get("endpoints") or []:
            out[e["addresses"][0]] = e["conditions"]
    return out


def test_allocation_slices_and_env(c):

    c.apply(APP)
    table = c.knet("get", "svc").stdout
    assert "kubernetes   ClusterIP      10.96.0.1" in table
    assert "192.168.56.200" in table  # the LoadBalancer controller's, before apply --wait returns
    node_port = c.get("Service", "default", "edge")["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767 and f"8080:{node_port}/TCP" in table  # a random start, as upstream
    pods = c.wait_for("3 pods with IPs", lambda: [p for p in c.list("Pod", "default", label_selector="app=web")
                                                  if p["status"].get("podIP")] if len(
        [p for p in c.list("Pod", "default", label_selector="app=web") if p["status"].get("podIP")]) == 3 else None)
    ips = {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}
    c.wait_for("slices list the pods", lambda: set(endpoints(c, "web")) == set(ips))
    assert all(not cond["ready"] for cond in endpoints(c, "web").values())
    first_ip, first = sorted(ips.items())[0]
    # The flag in the web container's own /tmp (a pod's /tmp is its own, issue 15), where its exec probe looks.
    touched = c.exec_pod("default", first, ["touch", f"/tmp/knet-svc-ready-{first}"], container="web")
    assert touched.returncode == 0, touched.stderr
    c.wait_pod("default", first, ready)
    c.wait_for("one endpoint ready", lambda: endpoints(c, "web").get(first_ip, {}).get("ready"))
    assert sum(cond["ready"] for cond in endpoints(c, "web").values()) == 1
    kube = c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=kubernetes")
    assert kube[0]["endpoints"][0]["addresses"] == [c.cfg.control_plane.ip]
    # The container process itself (not just `knet exec`) has the Service variables.
    pod = c.get("Pod", "default", first)
    pid = next(s["containerID"] for s in pod["status"]["containerStatuses"] if s["name"] == "sidecar")
    environ = open(f"/proc/{pid.removeprefix('knet://')}/environ", "rb").read().split(b"\0")
    web_ip = c.get("Service", "default", "web")["spec"]["clusterIP"].encode()
    assert b"WEB_SERVICE_HOST=" + web_ip in environ
    assert b"WEB_SERVICE_PORT_HTTP=80" in environ and b"KUBERNETES_SERVICE_HOST=10.96.0.1" in environ
    c.knet("delete", "svc", "web")
    c.wait_for("slices collected", lambda: not c.list("EndpointSlice", "default",
                                                      label_selector="kubernetes.io/service-name=web"))


def test_taken_node_port_is_rejected_with_its_field(c):
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: np1}\n"
            "spec: {type: NodePort, ports: [{port: 80, nodePort: 31080}]}\n")
    out = c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: np2}\n"
                  "spec: {type: NodePort, ports: [{port: 80, nodePort: 31080}]}\n", check=False)
    assert out.returncode != 0
    assert "spec.ports[0].nodePort: Invalid value: 31080: provided port is already allocated" in out.stderr
    assert c.get("Service", "default", "np2") is None
