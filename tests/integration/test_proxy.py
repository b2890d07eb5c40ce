"""The proxy on a live cluster: ClusterIP from pods on the same and other
nodes (client IP kept), a pod reaching itself (masqueraded), NodePort,
LoadBalancer and ExternalIP from the ext host, pods and nodes, immediate
reject with no endpoints, an even spread, traffic policies, affinity, source
ranges, terminating endpoints, UDP conntrack clean-up, drift repair, agent
restarts, and what `apply --wait` and `knet status` say about the proxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from knet.harness.cluster import Cluster, ready

APP = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
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
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: worker-1
  containers: [{name: c, image: agnhost, command: [sleep, "600"]}]
"""

SPREAD = """
import socket, collections, sys
seen = collections.Counter()
for _ in range(900):
    s = socket.create_connection((sys.argv[1], 80), timeout=2)
    s.sendall(b"hostname\\n")
    seen[s.recv(100).decode().strip()] += 1
    s.close()
print(" ".join(f"{k}={v}" for k, v in sorted(seen.items())))
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2, proxyResyncSeconds=1)
    cluster.apply(APP)
    cluster.wait_for("3 web pods ready", lambda: len([p for p in cluster.list("Pod", "default", label_selector="app=web")
                                                      if ready(p)]) == 3)
    cluster.wait_pod("default", "client", lambda p: p["status"].get("podIP"))
    yield cluster
    cluster.down()


def cluster_ip(c, name: str) -> str:
    return c.get("Service", "default", name)["spec"]["clusterIP"]


def sh(c, pod: str, script: str) -> str:
    return c.exec_pod("default", pod, ["sh", "-c", script]).stdout.strip()


def test_cluster_ip_from_a_pod_keeps_the_client_ip(c):
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: ping}\n"
           "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n")
    client_ip = c.get("Pod", "default", "client")["status"]["podIP"]
    for _ in range(5):
        out = sh(c, "client", f"echo clientip | nc -w2 {cluster_ip(c, 'ping')} 80")
        assert out.split(":")[0] == client_ip


def test_spread_over_three_endpoints_passes_chi_square(c):
    out = c.exec_pod("default", "client", ["python3", "-c", SPREAD, cluster_ip(c, "web")], timeout=60)
    counts = [int(kv.split("=")[1]) for kv in out.stdout.split()]
    assert len(counts) == 3 and sum(counts) == 900, out.stdout + out.stderr
    chi2 = sum((n - 300) ** 2 / 300 for n in counts)
    assert chi2 < 13.8  # p = 0.001 with 2 degrees of freedom


def test_a_pod_reaching_itself_is_masqueraded(c):
    pods = [p for p in c.list("Pod", "default", label_selector="app=web")]
    me = pods[0]
    name, ip = me["metadata"]["name"], me["status"]["podIP"]
    gateway = ip.rsplit(".", 1)[0] + ".1"
    seen = set()
    for _ in range(30):
        out = c.exec_pod("default", name, ["sh", "-c", f"echo clientip | nc -w2 {cluster_ip(c, 'web')} 80"])
        seen.add(out.stdout.strip().split(":")[0])
        if gateway in seen:
            break
    assert gateway in seen  # when it picked itself, it saw the node's gateway address


def test_node_port_from_ext_on_every_node(c):
    for node in ("worker-1", "worker-2", "control-plane"):
        out = c.knet("exec", "ext", "--", "sh", "-c", f"echo hostname | nc -w2 {c.cfg.node(node).ip} 30080")
        assert out.stdout.strip().startswith("web-"), (node, out.stdout, out.stderr)


def test_no_endpoints_rejects_at_once(c):
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: empty}\n"
           "spec: {selector: {app: none}, ports: [{port: 80}]}\n")
    out = c.exec_pod("default", "client", ["sh", "-c", f"nc -v -w5 -z {cluster_ip(c, 'empty')} 80 2>&1; echo rc=$?"])
    assert "rc=1" in out.stdout
    # Rejected (an ICMP port unreachable, read by connect() as refused), not left to nc's 5 s time-out.
    assert "Connection refused" in out.stdout, out.stdout


def test_a_new_service_is_reachable_after_apply_wait(c):
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: fresh}\n"
           "spec: {selector: {app: web}, ports: [{port: 8000, targetPort: 8080}]}\n")
    out = sh(c, "client", f"echo hostname | nc -w2 {cluster_ip(c, 'fresh')} 8000")
    assert out.startswith("web-")


def test_load_balancer_ip_is_announced_by_one_node_and_reaches_the_pods(c):
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: lb}\n"
           "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 8080, targetPort: 8080}]}\n")
    svc = c.get("Service", "default", "lb")
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert ip == "192.168.56.200"
    owners = [n for n in ("control-plane", "worker-1", "worker-2")
              if f"{ip}/32" in c.exec_node(n, ["ip", "-o", "addr", "show", "eth0"]).stdout]
    assert len(owners) == 1
    for _ in range(3):
        out = c.knet("exec", "ext", "--", "sh", "-c", f"echo hostname | nc -w2 {ip} 8080")
        assert out.stdout.strip().startswith("web-"), out.stderr
    assert c.knet("get", "svc", "lb").stdout.split("\n")[1].split()[3] == ip


LOCAL = """apiVersion: v1
kind: Pod
metadata: {name: only-w1, labels: {app: local}}
spec: {nodeName: worker-1, containers: [{name: s, image: agnhost, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: keep-client}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local}
  ports: [{port: 8080, targetPort: 8080, nodePort: 30181}]
---
apiVersion: v1
kind: Service
metadata: {name: internal-local}
spec:
  internalTrafficPolicy: Local
  selector: {app: local}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-w2}
spec: {nodeName: worker-2, containers: [{name: c, image: agnhost, command: [sleep, "600"]}]}
"""


def test_external_traffic_policy_local_keeps_the_client_ip_and_uses_local_endpoints(c):
    c.apply(LOCAL)
    c.wait_pod("default", "only-w1", ready)
    c.wait_pod("default", "client-w2", lambda p: p["status"].get("podIP"))
    c.knet("apply", "-f", "-", "--wait", input=LOCAL)
    w1, w2 = c.cfg.node("worker-1").ip, c.cfg.node("worker-2").ip
    out = c.knet("exec", "ext", "--", "sh", "-c", f"echo clientip | nc -w2 {w1} 30181")
    assert out.stdout.strip().split(":")[0] == c.cfg.ext_ip  # no masquerade
    far = c.knet("exec", "ext", "--", "sh", "-c", f"echo clientip | nc -w1 {w2} 30181; echo rc=$?")
    assert "rc=1" in far.stdout and "192.168" not in far.stdout.split("rc=")[0]  # no local endpoint: dropped
    hc = c.get("Service", "default", "keep-client")["spec"]["healthCheckNodePort"]
    for node, code in ((w1, "200"), (w2, "503")):
        probe = c.knet("exec", "ext", "--", "sh", "-c",
                       f"printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w2 {node} {hc} | head -1")
        assert code in probe.stdout, (node, probe.stdout)
    # Pods still reach it through the cluster chain.
    out = c.exec_pod("default", "client-w2", ["sh", "-c", f"echo hostname | nc -w2 {w1} 30181"])
    assert out.stdout.strip() == "only-w1"


def test_internal_traffic_policy_local_uses_only_this_nodes_endpoints(c):
    c.wait_pod("default", "client-w2", lambda p: p["status"].get("podIP"))
    ip = c.get("Service", "default", "internal-local")["spec"]["clusterIP"]
    far = c.exec_pod("default", "client-w2", ["sh", "-c", f"echo hostname | nc -w1 {ip} 80; echo rc=$?"])
    assert "only-w1" not in far.stdout  # the only endpoint is on worker-1
    near = c.exec_pod("default", "client", ["sh", "-c", f"echo hostname | nc -w2 {ip} 80"])
    assert near.stdout.strip() == "only-w1"


def test_session_affinity_pins_a_client(c):
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\n"
           "spec: {selector: {app: web}, sessionAffinity: ClientIP, ports: [{port: 80, targetPort: 8080}]}\n")
    ip = cluster_ip(c, "sticky")
    out = sh(c, "client", f"for i in $(seq 20); do echo hostname | nc -w2 {ip} 80; done")
    assert len(set(out.split())) == 1 and len(out.split()) == 20


def test_load_balancer_source_ranges(c):
    c.knet("apply", "-f", "-", "--wait", input="""apiVersion: v1
kind: Service
metadata: {name: fenced}
spec:
  type: LoadBalancer
  selector: {app: web}
  loadBalancerSourceRanges: [10.0.0.0/8]
  ports: [{port: 9090, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: open}
spec:
  type: LoadBalancer
  selector: {app: web}
  loadBalancerSourceRanges: [192.168.56.0/28]
  ports: [{port: 9091, targetPort: 8080}]
""")
    fenced = c.get("Service", "default", "fenced")["status"]["loadBalancer"]["ingress"][0]["ip"]
    opened = c.get("Service", "default", "open")["status"]["loadBalancer"]["ingress"][0]["ip"]
    blocked = c.knet("exec", "ext", "--", "sh", "-c", f"echo hostname | nc -w1 {fenced} 9090; echo rc=$?")
    assert "web-" not in blocked.stdout
    allowed = c.knet("exec", "ext", "--", "sh", "-c", f"echo hostname | nc -w2 {opened} 9091")
    assert allowed.stdout.strip().startswith("web-")


def test_periodic_sync_repairs_a_table_deleted_by_hand(c):
    # Deleted and listed in one command: the cluster resyncs every second, and two `knet exec`s
    # apart (about 0.1 s) the resync could already have put it back.
    out = c.exec_node("worker-2", ["sh", "-c", "nft delete table ip knet-proxy && nft list tables"])
    assert out.returncode == 0 and "knet-proxy" not in out.stdout, out.stdout + out.stderr
    c.wait_for("table back", lambda: "knet-proxy" in c.exec_node("worker-2", ["nft", "list", "tables"]).stdout,
               timeout=10)


def test_a_service_whose_endpoints_go_away_rejects_and_comes_back(c):
    import time

    c.knet("apply", "-f", "-", "--wait", input="""apiVersion: v1
kind: Service
metadata: {name: flip}
spec: {selector: {app: flip}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: flip}
spec:
  replicas: 1
  selector: {matchLabels: {app: flip}}
  template:
    metadata: {labels: {app: flip}}
    spec: {containers: [{name: s, image: agnhost, ports: [{containerPort: 8080}]}]}
""")
    ip = cluster_ip(c, "flip")
    c.wait_for("flip answers", lambda: sh(c, "client", f"echo hostname | nc -w1 {ip} 80").startswith("flip-"))
    c.knet("scale", "deploy/flip", "--replicas", "0")
    c.wait_for("flip has no pods", lambda: not c.list("Pod", "default", label_selector="app=flip"))
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n")
    t0 = time.monotonic()
    out = sh(c, "client", f"nc -w5 -z {ip} 80; echo rc=$?")
    assert out.endswith("rc=1") and time.monotonic() - t0 < 2
    c.knet("scale", "deploy/flip", "--replicas", "1")
    c.wait_for("flip back", lambda: sh(c, "client", f"echo hostname | nc -w1 {ip} 80").startswith("flip-"))


UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40404))  # a fixed source port: the same conntrack entry every time
s.settimeout(0.3)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    s.sendto(b"hostname", (sys.argv[1], 53))
    try:
        print(s.recvfrom(100)[0].decode().strip(), flush=True)
    except socket.timeout:
        print("-", flush=True)
    time.sleep(0.1)
"""


def test_udp_conntrack_entries_of_a_gone_endpoint_are_removed(c):
    c.knet("apply", "-f", "-", "--wait", input="""apiVersion: v1
kind: Service
metadata: {name: dns}
spec: {selector: {app: dns}, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-a, labels: {app: dns}}
spec: {nodeName: worker-1, containers: [{name: s, image: agnhost, ports: [{containerPort: 53, protocol: UDP}]}]}
""")
    c.wait_pod("default", "dns-a", ready)
    ip = cluster_ip(c, "dns")
    first = c.exec_pod("default", "client", ["python3", "-c", UDP_CLIENT, ip, "1"]).stdout.split()
    assert "dns-a" in first
    c.knet("apply", "-f", "-", "--wait", input="""apiVersion: v1
kind: Pod
metadata: {name: dns-b, labels: {app: dns}}
spec: {nodeName: worker-2, containers: [{name: s, image: agnhost, ports: [{containerPort: 53, protocol: UDP}]}]}
""")
    c.wait_pod("default", "dns-b", ready)
    import subprocess
    import sys
    client = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "exec", "client", "--",
                               "python3", "-c", UDP_CLIENT, ip, "6"], stdout=subprocess.PIPE, text=True)
    import time
    time.sleep(1.5)
    c.knet("delete", "pod", "dns-a", "--grace-period", "0")
    replies = client.communicate(timeout=20)[0].split()
    assert "dns-a" in replies[:10]  # stuck to dns-a while it lived (same source port)
    assert replies[-5:] == ["dns-b"] * 5, replies[-12:]


HOLD = """
import nftables, time
n = nftables.Nftables()  # its netlink socket owns the table while this process lives
rc, out, err = n.cmd("add table ip knet-proxy\\ndelete table ip knet-proxy\\nadd table ip knet-proxy { flags owner; }")
print("held" if rc == 0 else err, flush=True)
time.sleep(60)
"""


def test_apply_wait_names_a_node_whose_proxy_cannot_sync(c):
    """A table another process owns (nftables' owner flag) makes every sync on
    worker-2 fail: `apply --wait` says so, and the node recovers once it is gone."""
    holder = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "exec", "node/worker-2", "--",
                               "/usr/bin/python3", "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = c.knet("apply", "-f", "-", "--wait", "--timeout", "4", check=False, input="""apiVersion: v1
kind: Service
metadata: {name: blocked}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
""")
        assert out.returncode != 0
        assert "node/worker-2: proxy sync failing" in out.stderr, out.stderr
        assert "timed out" in out.stderr and "worker-2" in out.stderr.splitlines()[-1]
    finally:
        holder.kill()
        holder.wait()
    c.knet("apply", "-f", "-", "--wait", "--timeout", "20", input="""apiVersion: v1
kind: Service
metadata: {name: blocked}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
""")
    c.knet("delete", "svc", "blocked")


def test_status_shows_each_nodes_proxy(c):
    import re

    out = c.knet("status").stdout
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "node worker-1 " in line)
    m = re.search(r"proxy: (\d+) service ports, (\d+) syncs \((\d+) full\)", lines[at + 1])
    assert m, out
    want = len([s for s in c.list("Service") if s["spec"].get("clusterIP") not in (None, "None")])
    assert int(m[1]) >= 2 and int(m[1]) <= 2 * want  # default/kubernetes and web at least, one per port
    assert int(m[2]) >= int(m[3]) >= 1


def test_external_ip_from_ext_and_node_port_from_a_pod_and_a_node(c):
    c.knet("apply", "-f", "-", "--wait", input="""apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  selector: {app: web}
  externalIPs: [203.0.113.10]
  ports: [{port: 7070, targetPort: 8080}]
""")
    # An external IP is the admin's to route: the ext host sends it to worker-2.
    c.knet("exec", "ext", "--", "ip", "route", "replace", "203.0.113.10/32", "via", c.cfg.node("worker-2").ip)
    out = c.knet("exec", "ext", "--", "sh", "-c", "echo clientip | nc -w2 203.0.113.10 7070")
    # From outside the pod network it is masqueraded (kube-proxy's rule), so the pod sees a node address.
    assert out.stdout.strip().split(":")[0].startswith(("192.168.56.", "10.244.")), out.stdout + out.stderr
    out = sh(c, "client", f"echo hostname | nc -w2 {c.cfg.node('worker-2').ip} 30080")
    assert out.startswith("web-"), out
    out = c.exec_node("worker-1", ["sh", "-c", f"echo hostname | nc -w2 {c.cfg.node('worker-1').ip} 30080"])
    assert out.stdout.strip().startswith("web-"), out.stdout + out.stderr


ECHO = """
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"echo " + line)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8080), Echo).serve_forever()
"""

HOLD_OPEN = """
import os, socket, sys, time
ip, marker = sys.argv[1], sys.argv[2]
s = socket.create_connection((ip, 80), timeout=5)
s.sendall(b"one\\n"); print(s.recv(100).decode().strip(), flush=True)
deadline = time.time() + 30
while not os.path.exists(marker) and time.time() < deadline:
    time.sleep(0.05)
s.sendall(b"two\\n"); print(s.recv(100).decode().strip(), flush=True)
"""


def hold_open(c, ip: str, marker) -> subprocess.Popen:
    """The client pod holds one TCP connection to ip:80: a line now, another once `marker` exists
    (a file in the client pod's own /tmp: `go` makes it)."""
    return subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "exec", "client", "--",
                             "python3", "-c", HOLD_OPEN, ip, str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def go(c, marker: str) -> None:
    assert c.exec_pod("default", "client", ["touch", marker]).returncode == 0


def test_an_agent_restart_keeps_established_connections(c, tmp_path):
    """kill -9 of the client's node agent and a new one in its place (a full
    sync of its table): a connection through a ClusterIP goes on."""
    import json
    import os
    import signal

    from knet.cluster import component_pid, start_component

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steady", "labels": {"app": "steady"}},
           "spec": {"nodeName": "worker-2", "containers": [{"name": "echo", "image": "agnhost", "command": ["python3", "-c", ECHO],
                                                             "ports": [{"containerPort": 8080}]}]}}
    c.knet("apply", "-f", "-", "--wait", input=json.dumps(pod))
    c.knet("apply", "-f", "-", "--wait", input="""
apiVersion: v1
kind: Service
metadata: {name: steady}
spec: {selector: {app: steady}, ports: [{port: 80, targetPort: 8080}]}
""")
    c.wait_pod("default", "steady", ready)
    marker = f"/tmp/knet-go-{tmp_path.name}"
    talk = hold_open(c, cluster_ip(c, "steady"), marker)
    try:
        assert talk.stdout.readline().strip() == "echo one"
        # A chain the new agent's first (full) sync will delete: its absence says the table was rewritten.
        c.exec_node("worker-1", ["nft", "add", "chain", "ip", "knet-proxy", "left-by-hand"])
        os.kill(component_pid(c.name, "node-worker-1"), signal.SIGKILL)
        start_component(c.cfg, "node-worker-1")
        c.wait_for("the new agent's full sync", lambda: "left-by-hand" not in c.exec_node(
            "worker-1", ["nft", "list", "chains", "ip"]).stdout, timeout=20)
        go(c, marker)
        out, err = talk.communicate(timeout=30)
        assert out.strip() == "echo two", out + err
    finally:
        talk.kill()
    c.knet("delete", "svc", "steady")
    c.knet("delete", "pod", "steady", "--force")


def test_terminating_endpoints_keep_their_connections_and_serve_only_when_none_is_ready(c):
    import json
    import secrets

    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + ECHO
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "term-a", "labels": {"app": "term"}},
           "spec": {"nodeName": "worker-2", "terminationGracePeriodSeconds": 60,
                    "containers": [{"name": "echo", "image": "agnhost", "command": ["python3", "-c", stubborn],
                                    "ports": [{"containerPort": 8080}]}]}}
    c.knet("apply", "-f", "-", "--wait", input=json.dumps(pod))
    c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Service\nmetadata: {name: term}\n"
           "spec: {selector: {app: term}, ports: [{port: 80, targetPort: 8080}]}\n")
    c.wait_pod("default", "term-a", ready)
    ip = cluster_ip(c, "term")
    marker = f"/tmp/knet-go-{secrets.token_hex(4)}"
    talk = hold_open(c, ip, marker)
    try:
        assert talk.stdout.readline().strip() == "echo one"
        c.knet("apply", "-f", "-", "--wait", input="apiVersion: v1\nkind: Pod\nmetadata: {name: term-b, labels: "
               "{app: term}}\nspec: {nodeName: worker-1, containers: [{name: s, image: agnhost, ports: [{containerPort: 8080}]}]}\n")
        c.wait_pod("default", "term-b", ready)
        c.knet("delete", "pod", "term-a")  # term-a ignores SIGTERM: it stays, terminating, for up to 60 s

        def conditions():
            sl = c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=term")
            return {e["targetRef"]["name"]: e["conditions"] for s in sl for e in s.get("endpoints") or []}
        c.wait_for("term-a terminating", lambda: conditions().get("term-a", {}).get("terminating"))
        assert conditions()["term-a"] == {"ready": False, "serving": True, "terminating": True}
        # A pod that takes its time to stop does not hold back `apply --wait` on its node.
        c.knet("apply", "-f", "-", "--wait", "--timeout", "10",
               input="apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n")
        c.wait_for("new connections: the ready endpoint only",
                   lambda: {sh(c, "client", f"echo hostname | nc -w2 {ip} 80") for _ in range(8)} == {"term-b"})
        go(c, marker)
        out, err = talk.communicate(timeout=30)
        assert out.strip() == "echo two", out + err  # the established one went on
        c.knet("delete", "pod", "term-b", "--force")
        c.wait_for("term-b gone from the slice", lambda: "term-b" not in conditions())
        # None is ready: the serving, terminating endpoint takes new connections.
        c.wait_for("term-a serves while terminating", lambda: sh(c, "client", f"echo hi | nc -w2 {ip} 80") == "echo hi")
    finally:
        talk.kill()
        c.knet("delete", "svc", "term", check=False)
        c.knet("delete", "pod", "term-a", "term-b", "--force", "--ignore-not-found", check=False)
