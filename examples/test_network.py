"""A worked example of a network test written with knet's pytest plugin.

Run it as root (it builds real network namespaces):

    sudo .venv/bin/python -m pytest examples/

The plugin (loaded by pytest because knet is installed) gives the fixtures:
`knet_cluster` brings up the cluster of cluster.yaml for this module and takes
it down afterwards, `apply` applies manifests and waits until every node has
acted on them, `pod` and `node` hand out handles to send from and capture on.
The helpers are plain functions from knet.harness. When a test that captured
packets fails, its captures are written to pcap files named in the report.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.vxlan import VXLAN

from knet.harness import Matrix, capture, dns, probe, reachability, send, sniff, trace
from knet.harness.cluster import ready

pytestmark = pytest.mark.knet_cluster(file="cluster.yaml")

NODE_PORT = 30080

# A shop: `web` on worker-1 behind a NodePort Service that keeps the client's
# address (externalTrafficPolicy: Local), a frontend and a batch pod on
# worker-2, and a policy that lets only the frontend (and clients from the
# LAN, whose address the NodePort keeps) reach web.
SHOP = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: shop, labels: {{app: web}}}}
spec:
  nodeName: worker-1
  containers: [{{name: web, image: nginx, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: frontend, namespace: shop, labels: {{role: frontend}}}}
spec:
  nodeName: worker-2
  containers:
    - {{name: app, image: agnhost, ports: [{{containerPort: 8080}}]}}
    - {{name: tools, image: busybox, command: [sleep, "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: batch, namespace: shop, labels: {{role: batch}}}}
spec:
  nodeName: worker-2
  containers: [{{name: app, image: agnhost, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-frontend, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress]
  ingress:
    - from: [{{podSelector: {{matchLabels: {{role: frontend}}}}}}]
      ports: [{{port: 8080}}]
    - from: [{{ipBlock: {{cidr: 192.168.56.0/24}}}}]
"""


@pytest.fixture(scope="module")
def shop(apply, pod):
    apply(SHOP)
    return pod("shop/web"), pod("shop/frontend"), pod("shop/batch")


def test_the_policy_allows_the_frontend_and_blocks_the_batch_pod(shop):
    web, frontend, batch = shop
    assert frontend.exec("hostname", container="tools", check=True).stdout.strip() == "frontend"
    assert probe(frontend, web, 8080, "TCP")          # allowed by allow-frontend
    assert not probe(batch, web, 8080, "TCP")         # web is isolated for ingress: nothing allows batch

    # The same as a matrix, all pairs at once, as `knet probe` prints it.
    observed = reachability([web, frontend, batch], 8080, "TCP")
    expected = (Matrix(["shop/web", "shop/frontend", "shop/batch"])
                .expect_all_ingress("shop/web", False)
                .expect("shop/frontend", "shop/web", True))
    assert expected.differences(observed) == [], observed.format()


def test_the_trace_names_the_policy_the_service_and_the_overlay(shop):
    web, frontend, batch = shop
    blocked = trace(batch, web, 8080)                 # one real SYN, traced by the kernel hop by hop
    assert blocked.verdict == "dropped", blocked.render()
    assert blocked.reason == "pod shop/web isolated for ingress by shop/allow-frontend; no rule allowed it"
    allowed = trace(frontend, "web", 80)              # through the Service, by name, as `knet trace --to web:80`
    assert allowed.verdict == "delivered", allowed.render()
    steps = [s.text for s in allowed.steps("service") + allowed.steps("policy") + allowed.steps("out")]
    assert any(s.startswith("Service shop/web:80 -> endpoint ") for s in steps), allowed.render()
    assert "allowed by shop/allow-frontend, ingress rule 0" in steps
    assert any(s.startswith("out knet.1: VXLAN to worker-1") for s in steps)   # frontend and web are on two nodes


def test_a_syn_to_the_node_port_arrives_with_the_client_address(shop, node):
    web = shop[0]
    ext, worker = node("ext"), node(web.node)   # the outside host, and the node web runs on
    # The capture runs in web's network namespace before the SYN is sent; it waits for a SYN with our
    # sequence number (NAT rewrites addresses and ports, never that).
    cap = sniff(web, "tcp[tcpflags] & tcp-syn != 0 and tcp[4:4] = 1000", count=1, timeout=5)
    send(IP(dst=worker.ip) / TCP(sport=40123, dport=NODE_PORT, flags="S", seq=1000), ext)
    packets = cap.wait()
    assert len(packets) == 1, f"no SYN reached {web} ({web.ip}) from {ext} through {worker.ip}:{NODE_PORT}"
    syn = packets[0]
    # DNAT to the endpoint, and no SNAT: externalTrafficPolicy Local keeps the client's address.
    assert (syn[IP].src, syn[IP].dst, syn[TCP].sport, syn[TCP].dport) == (ext.ip, web.ip, 40123, 8080)
    assert syn[TCP].seq == 1000


def test_the_overlay_carries_pod_traffic_between_nodes_in_vxlan(shop, node):
    web, frontend = shop[0], shop[1]
    # `knet capture --overlay node/worker-2`: tcpdump on the node's LAN link, the VXLAN packets only.
    cap = capture(node(frontend.node), overlay=True)
    assert probe(frontend, web, 8080, "TCP")
    inner = [p[VXLAN][IP] for p in cap.stop() if VXLAN in p and IP in p[VXLAN]]
    syns = [i for i in inner if (i.src, i.dst) == (frontend.ip, web.ip) and TCP in i and i[TCP].flags.S]
    assert syns, f"no SYN from {frontend.ip} to {web.ip} inside a VXLAN packet: {[i.summary() for i in inner]}"


def test_the_cluster_dns_names_the_service(shop, knet_cluster):
    frontend = shop[1]
    knet_cluster.wait_for("the cluster DNS ready", lambda: any(
        ready(p) for p in knet_cluster.list("Pod", "kube-system", label_selector="k8s-app=kube-dns")), timeout=60)
    cluster_ip = knet_cluster.get("Service", "shop", "web")["spec"]["clusterIP"]
    answer = dns("web", "A", frontend)                 # through frontend's resolv.conf and search list
    assert answer.qname == "web.shop.svc.cluster.local."
    assert list(answer) == [cluster_ip]
    assert dns("no-such-service.shop.svc.cluster.local.", "A", frontend).rcode == "NXDOMAIN"
