"""knet capture and knet graph on one live cluster (two workers): a capture in a pod sees a known
number of packets and writes a pcap that tcpdump and scapy read back, the CLI prints decoded
lines live and stops cleanly on Ctrl-C (summary printed, pcap flushed, no tcpdump left), the
overlay capture shows VXLAN with the inner headers, a refused filter is one line; the graph of
the running cluster parses in every format, shows every pod IP once and every Service edge to
its endpoints, and marks the pods a policy isolates."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from procio import read_until

from knet import capture
from knet.harness.cluster import Cluster, ready

pytestmark = [pytest.mark.root, pytest.mark.cluster]

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    try:
        pods = "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers: [{{name: srv, image: agnhost, ports: [{{containerPort: 80}}]}}]
""" for name, ns, app, node in (("a", "default", "client", "worker-1"), ("b", "default", "web", "worker-2"),
                                ("b2", "default", "web", "worker-1"), ("s", "shop", "shop", "worker-2")))
        cluster.apply("""---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
""" + pods)
        for ns, name in (("default", "a"), ("default", "b"), ("default", "b2"), ("shop", "s")):
            cluster.wait_pod(ns, name, lambda p: ready(p) and p["status"].get("podIP"))
        yield cluster
    finally:
        cluster.down()


def _ip(c: Cluster, pod: str, ns: str = "default") -> str:
    return c.get("Pod", ns, pod)["status"]["podIP"]


def _ping(c: Cluster, count: int, dst: str) -> None:
    out = c.exec_pod("default", "a", ["ping", "-c", str(count), "-i", "0.2", "-W", "2", dst])
    assert out.returncode == 0, out.stdout + out.stderr


def _tcpdumps_writing(path: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tcpdump") and path.encode() in argv:
            pids.append(int(pid))
    return pids


def test_a_capture_sees_a_known_number_of_packets_and_writes_a_pcap(c, tmp_path):
    from scapy.all import ICMP, IP, rdpcap

    pcap = str(tmp_path / "b.pcap")
    with capture.start(c.name, "b", bpf="icmp", pcap_path=pcap) as cap:
        _ping(c, 5, _ip(c, "b"))
        c.wait_for("10 packets in the pcap", lambda: len(rdpcap(pcap)) >= 10, timeout=10)
    assert cap.summary()["captured"] == 10
    assert cap.proc.returncode == 0
    read = subprocess.run(["tcpdump", "-n", "-r", pcap], capture_output=True, text=True)
    assert read.returncode == 0 and len(read.stdout.splitlines()) == 10
    pkts = rdpcap(pcap)
    requests = [p for p in pkts if ICMP in p and p[ICMP].type == 8]
    assert len(pkts) == 10 and len(requests) == 5
    assert {(p[IP].src, p[IP].dst) for p in requests} == {(_ip(c, "a"), _ip(c, "b"))}


def test_the_cli_prints_decoded_lines_and_stops_after_count(c):
    proc = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "capture", "b", "-f", "icmp",
                             "-c", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        head = read_until(proc.stderr, "listening on eth0")
        _ping(c, 2, _ip(c, "b"))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 4
    assert sum(f"IP {_ip(c, 'a')} > {_ip(c, 'b')}: ICMP echo request" in x for x in lines) == 2
    assert sum(f"IP {_ip(c, 'b')} > {_ip(c, 'a')}: ICMP echo reply" in x for x in lines) == 2
    assert "4 packets captured" in head + err


def test_ctrl_c_stops_cleanly_with_the_summary_and_a_flushed_pcap(c, tmp_path):
    from scapy.all import rdpcap

    pcap = str(tmp_path / "cli.pcap")
    proc = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "capture", "b", "-f", "icmp",
                             "-w", pcap], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        head = read_until(proc.stderr, "listening on eth0")
        _ping(c, 3, _ip(c, "b"))
        assert _tcpdumps_writing(pcap)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    err = head + err
    assert "6 packets captured" in err and "Traceback" not in err
    assert len(rdpcap(pcap)) == 6
    assert _tcpdumps_writing(pcap) == []


def test_the_overlay_capture_shows_vxlan_with_the_inner_headers(c):
    worker1 = c.cfg.node("worker-1").ip
    out = {}

    def run():
        out["r"] = c.knet("capture", "--overlay", "node/worker-2", "-f", f"host {worker1}", "-c", "2", timeout=60)
    import threading

    t = threading.Thread(target=run)
    t.start()
    try:
        # Until the capture has its two packets: ping until the thread ends (no fixed sleep).
        c.wait_for("the overlay capture", lambda: (_ping(c, 1, _ip(c, "b")), not t.is_alive())[1], timeout=30)
    finally:
        t.join(60)
    r = out["r"]
    text = r.stdout
    assert re.search(rf"IP {re.escape(worker1)}\.\d+ > {re.escape(c.cfg.node('worker-2').ip)}\.8472: VXLAN.*vni 1", text)
    assert f"IP {_ip(c, 'a')} > {_ip(c, 'b')}: ICMP echo request" in text


def test_a_filter_tcpdump_refuses_is_one_clear_line(c):
    out = c.knet("capture", "b", "-f", "tcp portx 80", check=False)
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["error: capture filter 'tcp portx 80' refused by tcpdump: "
                                       "can't parse filter expression: syntax error"]
    out = c.knet("capture", "--overlay", "b", check=False)
    assert out.returncode == 1 and "give node/NAME" in out.stderr


def _pod_ips(c: Cluster) -> list[str]:
    return [p["status"]["podIP"] for p in c.list("Pod") if p.get("status", {}).get("podIP")
            and not p["spec"].get("hostNetwork")]


def test_the_graph_of_the_running_cluster(c, tmp_path):
    model = json.loads(c.knet("graph", "-o", "json").stdout)
    assert {n["name"]: n["podCIDR"] for n in model["nodes"]} == {
        n["metadata"]["name"]: n["spec"]["podCIDR"] for n in c.list("Node")}
    assert len(model["tunnels"]) == 3
    ips = _pod_ips(c)
    assert sorted(p["ip"] for p in model["pods"] if not p["hostNetwork"] and p["ip"]) == sorted(ips)
    web = next(s for s in model["services"] if s["name"] == "web")
    (slice_,) = c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=web")
    assert sorted(e["pod"] for e in web["endpoints"]) == sorted(
        f"default/{e['targetRef']['name']}" for e in slice_["endpoints"]) == ["default/b", "default/b2"]
    shop = next(p for p in model["pods"] if p["name"] == "s")
    assert shop["isolatedBy"] == {"ingress": ["shop/deny-all"], "egress": []}
    assert all(not p["isolatedBy"]["ingress"] for p in model["pods"] if p["namespace"] != "shop")

    svg_path = str(tmp_path / "cluster.svg")
    c.knet("graph", "-w", svg_path)
    root = ET.parse(svg_path).getroot()
    texts = "\n".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for ip in ips:
        assert len(re.findall(rf"(?<![\d.]){re.escape(ip)}(?![\d])", texts)) == 1, ip
    edges = {g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}
    assert {e for e in edges if e.startswith("svc:default/web->")} == {
        "svc:default/web->pod:default/b", "svc:default/web->pod:default/b2"}

    dot = c.knet("graph", "-o", "dot").stdout
    rendered = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
    assert rendered.returncode == 0 and ET.fromstring(rendered.stdout).tag == f"{SVG}svg"
    assert c.knet("graph", "-o", "mermaid").stdout.startswith("flowchart TB\n")
