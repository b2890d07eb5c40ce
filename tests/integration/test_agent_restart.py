"""Pods outlive their node agent, as containers outlive a kubelet.

Built-in servers run in the node runtime (knet.node.runtime), command
containers in their own sessions; kill -9 of the agent silences neither. The
agent that comes back (started by the cluster's supervisor) adopts what runs:
same sandbox (network namespace, IP), same containers (startedAt,
restartCount, pid), and it posts the pods Ready again after the node
lifecycle controller marked them Ready=False while the node was away. A
runtime that dies takes its servers with it; the agent starts them again in
the runtime the supervisor brings back.

A prober in a pod on another node connects to every server all along
(TCP, UDP and a command container's HTTP), so "answers throughout" is
measured, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest

from knet.api.objects import is_true
from knet.cluster import component_pid, start_component, stop_component
from knet.harness.cluster import Cluster, ready
from knet.net import ns

PODS = """apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: worker-1
  containers: [{name: s, image: knet/builtin, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec:
  nodeName: worker-1
  containers:
  - name: s
    image: knet/builtin
    ports: [{containerPort: 80}]
    readinessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: cmd, labels: {app: cmd}}
spec:
  nodeName: worker-1
  containers: [{name: py, image: python, command: [python3, -m, http.server, "8080", --bind, "0.0.0.0"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: worker-2, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec: {nodeName: worker-1, restartPolicy: Never, containers: [{name: c, image: busybox, command: ["true"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec: {nodeName: worker-1, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: cmd}
spec: {selector: {app: cmd}, ports: [{port: 8080}]}
"""
SERVED = ("web-1", "web-2", "cmd")


@pytest.fixture(scope="module")
def c():
    with Cluster.up(workers=2, heartbeatSeconds=0.5, nodeGracePeriodSeconds=2) as cluster:
        cluster.apply(PODS)
        for name in (*SERVED, "client", "victim"):
            cluster.wait_pod("default", name, lambda p: ready(p) and p["status"].get("podIP"))
        cluster.wait_pod("default", "done", lambda p: p["status"].get("phase") == "Succeeded")
        yield cluster


def netns_inode(c: Cluster, pod: dict) -> int:
    return os.stat(ns.netns_path(c.cfg.pod_netns(pod["metadata"]["uid"]))).st_ino


def snapshot(c: Cluster) -> dict:
    """What must not change across an agent restart, per pod."""
    out = {}
    for name in SERVED:
        pod = c.get("Pod", "default", name)
        st = pod["status"]["containerStatuses"][0]
        out[name] = {"ip": pod["status"]["podIP"], "uid": pod["metadata"]["uid"], "netns": netns_inode(c, pod),
                     "restartCount": st["restartCount"], "startedAt": st["state"]["running"]["startedAt"],
                     "containerID": st.get("containerID")}
    return out


class Prober(threading.Thread):
    """Connects from the client pod's namespace to each server in a loop and
    counts answers and failures (with what failed, and when)."""

    def __init__(self, c: Cluster, targets: list[tuple[str, str, int, bytes, bytes]]):
        super().__init__(daemon=True)
        self.netns = ns.netns_path(c.cfg.pod_netns(c.get("Pod", "default", "client")["metadata"]["uid"]))
        self.targets = targets
        self.ok: list[float] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def _socket(self, kind: int) -> socket.socket:
        with ns.entered(net=self.netns):
            s = socket.socket(socket.AF_INET, kind)
        s.settimeout(2)
        return s

    def once(self, proto: str, ip: str, port: int, send: bytes, want: bytes) -> None:
        with self._socket(socket.SOCK_DGRAM if proto == "UDP" else socket.SOCK_STREAM) as s:
            if proto == "UDP":
                s.sendto(send, (ip, port))
                data = s.recvfrom(1500)[0]
            else:
                s.connect((ip, port))
                s.sendall(send)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        if want not in data:
            raise AssertionError(f"answer {data[:80]!r}")

    def run(self) -> None:
        while not self.done.is_set():
            for t in self.targets:
                try:
                    self.once(*t)
                    self.ok.append(time.monotonic())
                except Exception as e:
                    self.failures.append(f"{time.strftime('%X')} {t[0]} {t[1]}:{t[2]}: {e!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join(10)

    def answered_between(self, t0: float, t1: float) -> int:
        return sum(t0 <= t <= t1 for t in self.ok)


def prober_for(c: Cluster) -> Prober:
    ip = {name: c.get("Pod", "default", name)["status"]["podIP"] for name in SERVED}
    return Prober(c, [("TCP", ip["web-1"], 80, b"hostname\n", b"web-1"),
                      ("UDP", ip["web-1"], 53, b"x\n", b"default/web-1"),
                      ("TCP", ip["web-2"], 80, b"GET /hostname HTTP/1.0\r\n\r\n", b"web-2"),
                      ("TCP", ip["cmd"], 8080, b"GET / HTTP/1.0\r\n\r\n", b"200 OK")])


def runtime_call(c: Cluster, node: str, req: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(os.path.join(c.cfg.state_dir, "nodes", node, "runtime.sock"))
        s.sendall(json.dumps(req).encode() + b"\n")
        return json.loads(s.makefile("rb").readline())


def ready_endpoints(c: Cluster, service: str) -> set[str]:
    out = set()
    for s in c.list("EndpointSlice", "default", label_selector=f"kubernetes.io/service-name={service}"):
        for e in s.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready"):
                out.update(e["addresses"])
    return out


def all_ready(c: Cluster) -> bool:
    return all(ready(c.get("Pod", "default", n)) for n in SERVED)


def test_agent_kill_9_restarted_by_the_supervisor_adopts_everything(c):
    before = snapshot(c)
    old = component_pid(c.name, "node-worker-1")
    prober = prober_for(c)
    prober.start()
    try:
        c.wait_for("the prober's first answers", lambda: len(prober.ok) >= 8)
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        new = c.wait_for("the supervisor to restart the agent",
                         lambda: (p := component_pid(c.name, "node-worker-1")) not in (None, old) and p)
        # The new agent has adopted once it reports progress again; give the prober a while beyond.
        c.wait_for("the new agent's node heartbeat", lambda: c.nodes_ready()["worker-1"] == "True")
        # --wait returns once every agent, the new one too, has acted on everything up to it.
        c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: marker}\nspec: {ports: [{port: 9}]}\n")
        time.sleep(1)
        back = time.monotonic()
    finally:
        prober.stop()
    assert prober.failures == [], prober.failures[:10]
    assert prober.answered_between(killed, back) > 0
    assert new != old
    c.wait_for("all Ready", lambda: all_ready(c))
    assert snapshot(c) == before
    log = open(os.path.join(c.cfg.state_dir, "logs", "runtime-worker-1.log")).read()
    assert log.count("started ") == 2  # web-1 and web-2, once each: nothing started again


def container_status(c: Cluster, name: str) -> dict:
    return c.get("Pod", "default", name)["status"]["containerStatuses"][0]


def test_pods_marked_not_ready_while_the_agent_is_away_are_ready_again_after_adoption(c):
    before = snapshot(c)
    done = container_status(c, "done")
    victim = container_status(c, "victim")
    prober = prober_for(c)
    prober.start()
    try:
        c.wait_for("the prober's first answers", lambda: len(prober.ok) >= 8)
        killed = time.monotonic()
        stop_component(c.cfg, "node-worker-1")  # kill -9, and the supervisor holds it down
        c.wait_for("worker-1 NotReady", lambda: c.nodes_ready()["worker-1"] == "Unknown", timeout=15)
        c.wait_for("its pods Ready=False", lambda: not any(
            is_true(c.get("Pod", "default", n), "Ready") for n in SERVED), timeout=15)
        c.wait_for("endpoints dropped", lambda: not ready_endpoints(c, "web"), timeout=15)
        os.kill(int(victim["containerID"].removeprefix("knet://")), signal.SIGKILL)  # dies with no agent to see it
        away = time.monotonic()
        start_component(c.cfg, "node-worker-1")
        c.wait_for("worker-1 Ready", lambda: c.nodes_ready()["worker-1"] == "True", timeout=15)
        c.wait_for("its pods Ready again", lambda: all_ready(c), timeout=15)
        back = time.monotonic()
    finally:
        prober.stop()
    assert prober.failures == [], prober.failures[:10]
    assert prober.answered_between(killed, away) > 0  # answering while the node was NotReady
    assert snapshot(c) == before
    # A completed container is not run again; one that died unseen is found gone and restarted per its policy.
    assert c.get("Pod", "default", "done")["status"]["phase"] == "Succeeded"
    assert container_status(c, "done")["state"] == done["state"]
    pod = c.wait_pod("default", "victim", ready)
    st = pod["status"]["containerStatuses"][0]
    assert st["restartCount"] == victim["restartCount"] + 1
    assert st["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert st["containerID"] != victim["containerID"]
    ips = {before["web-1"]["ip"], before["web-2"]["ip"]}
    c.wait_for("endpoints back", lambda: ready_endpoints(c, "web") == ips, timeout=15)
    svc = c.get("Service", "default", "web")["spec"]["clusterIP"]
    out = c.exec_pod("default", "client", ["sh", "-c", f"echo | nc -w2 {svc} 80"])
    assert out.stdout.strip() in ("default/web-1", "default/web-2"), out
    assert back > away


def test_runtime_kill_9_its_servers_are_started_again(c):
    before = snapshot(c)
    old = component_pid(c.name, "runtime-worker-1")
    agent = component_pid(c.name, "node-worker-1")
    os.kill(old, signal.SIGKILL)
    c.wait_for("a new runtime", lambda: component_pid(c.name, "runtime-worker-1") not in (None, old))

    def restarted(name: str) -> bool:
        pod = c.get("Pod", "default", name)
        st = pod["status"]["containerStatuses"][0]
        return ready(pod) and st["restartCount"] == before[name]["restartCount"] + 1 and "running" in st["state"]

    c.wait_for("the built-in servers restarted", lambda: restarted("web-1") and restarted("web-2"), timeout=15)
    after = snapshot(c)
    for name in ("web-1", "web-2"):
        assert {k: after[name][k] for k in ("ip", "uid", "netns")} == {k: before[name][k] for k in ("ip", "uid", "netns")}
        last = c.get("Pod", "default", name)["status"]["containerStatuses"][0]["lastState"]["terminated"]
        assert last["reason"] == "ContainerStatusUnknown" and last["exitCode"] == 137
    assert after["cmd"] == before["cmd"]  # a command container does not live in the runtime
    assert component_pid(c.name, "node-worker-1") == agent  # the agent rode it out
    ip = after["web-1"]["ip"]
    out = c.exec_pod("default", "client", ["sh", "-c", f"echo hostname | nc -w2 {ip} 80"])
    assert out.stdout.strip() == "web-1", out


def test_deleting_adopted_pods_tears_them_down(c):
    pods = {n: c.get("Pod", "default", n) for n in ("web-1", "cmd")}
    pid = int(pods["cmd"]["status"]["containerStatuses"][0]["containerID"].removeprefix("knet://"))
    assert os.path.exists(f"/proc/{pid}")
    c.knet("delete", "pod", "web-1", "cmd", "--wait")
    for name, pod in pods.items():
        assert not os.path.exists(ns.netns_path(c.cfg.pod_netns(pod["metadata"]["uid"]))), name
        assert not os.path.exists(c.pod_sandbox_dir(pod)), name
    c.wait_for("the cmd process gone", lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
    running = runtime_call(c, "worker-1", {"op": "list"})["containers"]
    assert [r["container"] for r in running] == ["s"] and running[0]["identity"] == "default/web-2"
