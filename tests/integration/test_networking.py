"""Pod networking on a live cluster: an IP per pod from the node's podCIDR,
pod to pod on one node and across the VXLAN overlay without NAT, pod to node,
pod to the outside world masqueraded, MTU-sized payloads, node join/leave,
and the host-gw backend."""

from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from knet.cluster import start_component, stop_component
from knet.harness.cluster import Cluster, ready


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    cluster.apply("".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: srv
    image: agnhost
    ports: [{{containerPort: 80}}, {{containerPort: 53, protocol: UDP}}]
  - name: tools
    image: agnhost
    command: [sleep, "600"]
""" for name, node in (("a1", "worker-1"), ("a2", "worker-1"), ("b1", "worker-2"))))
    for name in ("a1", "a2", "b1"):
        cluster.wait_pod("default", name, lambda p: ready(p) and p["status"].get("podIP"))
    yield cluster
    cluster.down()


def ip_of(c, name: str) -> str:
    return c.get("Pod", "default", name)["status"]["podIP"]


def sh(c, pod: str, script: str) -> str:
    out = c.exec_pod("default", pod, ["sh", "-c", script], container="tools")
    return out.stdout.strip()


def test_each_pod_gets_an_ip_from_its_nodes_pod_cidr(c):
    nodes = {n["metadata"]["name"]: n for n in c.list("Node")}
    cidrs = [n["spec"]["podCIDR"] for n in nodes.values()]
    assert len(set(cidrs)) == len(cidrs)
    for cidr in cidrs:
        assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("10.244.0.0/16"))
    for name in ("a1", "a2", "b1"):
        pod = c.get("Pod", "default", name)
        st = pod["status"]
        node = nodes[pod["spec"]["nodeName"]]
        assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(node["spec"]["podCIDR"])
        assert st["podIPs"] == [{"ip": st["podIP"]}]
        assert st["hostIP"] == c.cfg.node(pod["spec"]["nodeName"]).ip
        assert st["podIP"] != str(ipaddress.ip_network(node["spec"]["podCIDR"]).network_address + 1)  # gateway
    wide = c.knet("get", "pods", "-o", "wide").stdout
    assert ip_of(c, "b1") in wide
    assert f"{ip_of(c, 'a1')}\ta1" in sh(c, "a1", "cat /etc/hosts")


@pytest.mark.parametrize("src,dst", [("a1", "a2"), ("a1", "b1"), ("b1", "a2")])
def test_pod_to_pod_tcp_and_udp_keep_the_source_ip(c, src, dst):
    tcp = sh(c, src, f"echo clientip | nc -w2 {ip_of(c, dst)} 80")
    assert tcp.split(":")[0] == ip_of(c, src)
    udp = sh(c, src, f"echo clientip | nc -u -w1 {ip_of(c, dst)} 53")
    assert udp.split(":")[0] == ip_of(c, src)
    http = sh(c, src, f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w2 {ip_of(c, dst)} 80 | tail -1")
    assert http == dst


def test_pod_to_node_and_node_to_pod(c):
    out = c.exec_pod("default", "a1", ["ping", "-c1", "-W1", c.cfg.node("worker-2").ip], container="tools")
    assert out.returncode == 0
    out = c.exec_node("worker-2", ["sh", "-c", f"echo hostname | nc -w2 {ip_of(c, 'a1')} 80"])
    assert out.stdout.strip() == "a1"


EXT_SERVER = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('0.0.0.0', 9000)); s.listen(1); s.settimeout(10); conn, peer = s.accept(); print(peer[0])")


def test_pod_egress_to_ext_is_masqueraded_to_the_node_ip(c):
    server = subprocess.Popen([*c_knet(c), "exec", "ext", "--", "python3", "-c", EXT_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        c.wait_for("ext listening", lambda: ":9000" in c.knet("exec", "ext", "--", "ss", "-ltn").stdout, timeout=10)
        sh(c, "b1", "echo hi | nc -w2 192.168.56.1 9000")
        seen = server.communicate(timeout=10)[0].strip()
    finally:
        server.kill()
    assert seen == c.cfg.node("worker-2").ip


def c_knet(c) -> list[str]:
    import sys
    return [sys.executable, "-m", "knet.cli", "--cluster", c.name]


def test_a_1400_byte_udp_payload_crosses_the_overlay(c):
    dst = ip_of(c, "b1")
    script = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.setsockopt(socket.IPPROTO_IP, 10, 2); s.settimeout(2); "  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
              f"s.sendto(b'x' * 1400, ('{dst}', 53)); print(s.recvfrom(100)[0].decode().strip())")
    out = c.exec_pod("default", "a1", ["python3", "-c", script], container="tools")
    assert out.stdout.strip() == "default/b1", out.stderr
    mtu = sh(c, "a1", "cat /sys/class/net/eth0/mtu")
    assert mtu == "1450"
    vxlan = c.exec_node("worker-1", ["ip", "-d", "link", "show", "knet.1"]).stdout
    assert "vxlan id 1" in vxlan and "dstport 8472" in vxlan and "nolearning" in vxlan
    # The inner flow is tracked (a Service reply needs it), the encapsulating UDP is not.
    for node in ("worker-1", "worker-2"):
        tracked = c.exec_node(node, ["conntrack", "-L"]).stdout
        assert "dport=8472" not in tracked, tracked
    assert "dport=53" in c.exec_node("worker-2", ["conntrack", "-L", "-p", "udp"]).stdout


def test_node_leaving_and_joining_updates_peer_routes(c):
    cidr2 = c.get("Node", None, "worker-2")["spec"]["podCIDR"]
    routes = lambda: c.exec_node("worker-1", ["ip", "route"]).stdout  # noqa: E731
    assert cidr2 in routes()
    stop_component(c.cfg, "node-worker-2")  # SIGKILL, held down: its supervisor would restart it at once
    c.knet("delete", "node", "worker-2")
    c.wait_for("route removed", lambda: cidr2 not in routes(), timeout=10)
    start_component(c.cfg, "node-worker-2")
    c.wait_for("worker-2 back", lambda: c.nodes_ready().get("worker-2") == "True", timeout=15)
    new_cidr = c.wait_for("podCIDR", lambda: c.get("Node", None, "worker-2")["spec"].get("podCIDR"))
    c.wait_for("route back", lambda: new_cidr in routes(), timeout=10)


def test_host_gw_backend():
    with Cluster.up({"networking": {"backend": "host-gw"}}, workers=2) as hc:
        hc.apply("""apiVersion: v1
kind: Pod
metadata: {name: x}
spec: {nodeName: worker-1, containers: [{name: s, image: agnhost, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: y}
spec: {nodeName: worker-2, containers: [{name: t, image: agnhost, command: [sleep, "300"]}]}
""")
        for n in ("x", "y"):
            hc.wait_pod("default", n, lambda p: p["status"].get("podIP") and ready(p))
        x, y = (hc.get("Pod", "default", n)["status"]["podIP"] for n in ("x", "y"))
        out = hc.exec_pod("default", "y", ["sh", "-c", f"echo clientip | nc -w2 {x} 80"])
        assert out.stdout.strip().split(":")[0] == y
        cidr1 = hc.get("Node", None, "worker-1")["spec"]["podCIDR"]
        route = hc.exec_node("worker-2", ["ip", "route", "show", cidr1]).stdout
        assert f"via {hc.cfg.node('worker-1').ip} dev eth0" in route
        assert "knet.1" not in hc.exec_node("worker-2", ["ip", "link"]).stdout


def test_deleted_pod_returns_its_address(c):
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: temp}\nspec: {nodeName: worker-1, containers: [{name: c, image: agnhost}]}\n")
    pod = c.wait_pod("default", "temp", lambda p: p["status"].get("podIP"))
    ipam = os.path.join(c.cfg.state_dir, "nodes", "worker-1", "cni", "ipam")
    assert pod["status"]["podIP"] in os.listdir(ipam)
    c.knet("delete", "pod", "temp")
    c.wait_gone("Pod", "default", "temp")
    assert pod["status"]["podIP"] not in os.listdir(ipam)
