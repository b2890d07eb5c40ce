"""NetworkPolicy and AdminNetworkPolicy on a live cluster, judged by real
packets: sockets opened inside the pods' network namespaces (a socket stays
in the namespace it was made in) connect to other pods' built-in servers,
same node and across nodes, by pod IP and through a ClusterIP.

Each change is made, then awaited the way `knet apply --wait` awaits it
(every node agent has acted on its revision, the policy engine included),
and the verdicts are checked once, at once: no polling until it works.

One cluster for the module; every test removes the policies it made and
puts back the labels it changed (the `clean` fixture), so tests are
independent of their order.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from knet.api.resources import by_kind
from knet.cli.apply import wait_synced
from knet.harness.cluster import Cluster, ready
from knet.net import ns

pytestmark = [pytest.mark.root, pytest.mark.cluster]

PODS, NAMESPACES = by_kind("Pod"), by_kind("Namespace")
NETPOLS = by_kind("NetworkPolicy")
ANPS, BANPS = by_kind("AdminNetworkPolicy"), by_kind("BaselineAdminNetworkPolicy")


def pod(namespace: str, name: str, node: str, labels: dict[str, str], probe: bool = False) -> str:
    """A pod whose built-in server answers on TCP 80, 81, 53 and UDP 53."""
    readiness = ("\n      readinessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 1, "
                 "failureThreshold: 1, timeoutSeconds: 1}") if probe else ""
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}
spec:
  nodeName: {node}
  containers:
    - name: srv
      image: agnhost
      ports: [{{containerPort: 80}}, {{containerPort: 81}}, {{containerPort: 53, protocol: UDP, name: dns}},
              {{containerPort: 53, protocol: TCP, name: dns-tcp}}]{readiness}
"""


APP = """apiVersion: v1
kind: Namespace
metadata: {name: pa, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: pb, labels: {team: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: database, labels: {name: database}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: pa}
spec: {selector: {app: server}, ports: [{port: 8080, targetPort: 80}]}
""" + "".join([
    pod("pa", "server", "worker-1", {"app": "server"}, probe=True),
    pod("pa", "near", "worker-1", {"role": "client"}),
    pod("pa", "far", "worker-2", {"role": "client"}),
    pod("pa", "other", "worker-2", {"role": "other"}),
    pod("pa", "dns", "worker-2", {"app": "dns"}),
    pod("pb", "client", "worker-2", {"role": "client"}),
    # seed 002's example: backend pods, a frontend, a bystander, a database pod
    pod("default", "backend-1", "worker-1", {"app": "backend"}),
    pod("default", "backend-2", "worker-2", {"app": "backend"}),
    pod("default", "frontend", "worker-2", {"role": "frontend"}),
    pod("default", "bystander", "worker-1", {"role": "bystander"}),
    pod("database", "db", "worker-2", {"app": "db"}),
])

LABELS = {("pa", "server"): {"app": "server"}, ("pa", "near"): {"role": "client"}, ("pa", "far"): {"role": "client"},
          ("pa", "other"): {"role": "other"}, ("pb", "client"): {"role": "client"}}
NS_LABELS = {"pa": {"team": "a"}, "pb": {"team": "b"}}


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2, proxyResyncSeconds=2)  # the policy engine resyncs whole as often
    try:
        cluster.apply(APP)
        pods = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in cluster.list("Pod")]
        for namespace, name in pods:
            cluster.wait_pod(namespace, name, ready, timeout=30)
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def clean(c):
    """Remove every policy a test made and put labels back, also when it failed."""
    yield c
    for namespace in ("pa", "pb", "default", "database"):
        for np in c.list("NetworkPolicy", namespace):
            c.client.delete(NETPOLS, namespace, np["metadata"]["name"])
    for res in (ANPS, BANPS):
        for obj in c.client.list(res)["items"]:
            c.client.delete(res, None, obj["metadata"]["name"])
    for (namespace, name), labels in LABELS.items():
        have = c.get("Pod", namespace, name)["metadata"].get("labels") or {}
        c.client.patch(PODS, namespace, name, {"metadata": {"labels": {
            **{k: None for k in have if k not in labels}, **labels}}})
    for namespace, labels in NS_LABELS.items():
        have = c.get("Namespace", None, namespace)["metadata"].get("labels") or {}
        c.client.patch(NAMESPACES, None, namespace, {"metadata": {"labels": {
            **{k: None for k in have if k not in labels and k != "kubernetes.io/metadata.name"}, **labels}}})
    settle(c)


# -- helpers ----------------------------------------------------------------------------


def settle(c, rv: int | None = None) -> None:
    """Wait as `apply --wait` does: every node agent has acted on the revision."""
    if rv is None:
        rv = int(c.client.request("GET", "/knet/v1/progress")["revision"])
    wait_synced(c.client, rv, 30)


def apply(c, manifest: str) -> None:
    c.apply(manifest, wait=True)


def delete(c, manifest: str) -> None:
    c.knet("delete", "-f", "-", "--wait", input=manifest)


def patch_labels(c, res, namespace: str | None, name: str, labels: dict) -> None:
    out = c.client.patch(res, namespace, name, {"metadata": {"labels": labels}})
    settle(c, int(out["metadata"]["resourceVersion"]))


def netns_of(c, namespace: str, name: str) -> str:
    return ns.netns_path(c.cfg.pod_netns(c.get("Pod", namespace, name)["metadata"]["uid"]))


def ip_of(c, namespace: str, name: str) -> str:
    return c.get("Pod", namespace, name)["status"]["podIP"]


def socket_in(path: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    with ns.entered(net=path):
        return socket.socket(socket.AF_INET, kind)


def reaches(path: str, ip: str, port: int, proto: str = "TCP", timeout: float = 1.5) -> bool:
    """One real exchange from the namespace at `path`: a TCP connection made
    (upstream's agnhost connect), or a UDP datagram that gets an answer."""
    s = socket_in(path, socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        if proto == "TCP":
            s.connect((ip, port))
            return True
        s.sendto(b"hostname\n", (ip, port))
        return bool(s.recv(200))
    except OSError:  # dropped (time-out), refused, unreachable
        return False
    finally:
        s.close()


class Probe:
    """Who reaches whom, all at once (blocked ones each wait their time-out)."""

    def __init__(self, c):
        self.c = c
        self.paths: dict[str, str] = {}
        self.ips: dict[str, str] = {}

    def _path(self, who: str) -> str:
        if who not in self.paths:
            self.paths[who] = netns_of(self.c, *who.split("/"))
        return self.paths[who]

    def _ip(self, who: str) -> str:
        if "/" not in who:
            return who  # already an address (a ClusterIP)
        if who not in self.ips:
            self.ips[who] = ip_of(self.c, *who.split("/"))
        return self.ips[who]

    def __call__(self, *pairs: tuple) -> dict[tuple, bool]:
        """pairs: (src, dst, port[, proto]); the answer maps each pair to whether it connected."""
        resolved = [(self._path(src), self._ip(dst), port, *proto) for src, dst, port, *proto in pairs]  # one thread

        def one(args):
            return reaches(*args)

        with ThreadPoolExecutor(max_workers=max(1, len(pairs))) as pool:
            return dict(zip(pairs, pool.map(one, resolved), strict=True))

    def check(self, expected: dict[tuple, bool]) -> None:
        got = self(*expected)
        wrong = {k: v for k, v in got.items() if v != expected[k]}
        assert not wrong, "connected when it should not, or the other way round: " + ", ".join(
            f"{s} -> {d}:{p}{'/' + q[0] if q else ''} {'connected' if v else 'blocked'}"
            for (s, d, p, *q), v in wrong.items())


@pytest.fixture
def probe(c):
    return Probe(c)


def netpol(name: str, namespace: str, spec: str) -> str:
    return f"""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""


DENY_INGRESS_PA = netpol("deny-ingress", "pa", "{podSelector: {}, policyTypes: [Ingress]}")
ALLOW_CLIENTS = netpol("allow-clients", "pa", """
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 80}]}]""")


# -- NetworkPolicy ----------------------------------------------------------------------


def test_deny_all_ingress_isolates_every_pod_of_the_namespace_and_delete_restores(clean, probe):
    c = clean
    before = {("pa/near", "pa/server", 80): True, ("pa/far", "pa/server", 80): True,
              ("pb/client", "pa/server", 80): True, ("pa/server", "pb/client", 80): True,
              ("pa/far", "pa/dns", 53, "UDP"): True}
    probe.check(before)
    apply(c, DENY_INGRESS_PA)
    probe.check({("pa/near", "pa/server", 80): False,  # same node
                 ("pa/far", "pa/server", 80): False,  # across nodes
                 ("pb/client", "pa/server", 80): False, ("pb/client", "pa/far", 81): False,
                 ("pa/far", "pa/dns", 53, "UDP"): False,
                 ("pa/server", "pb/client", 80): True,  # egress is not isolated, pb is not isolated
                 ("pa/server", "pa/server", 80): True})  # a pod reaching itself is never judged
    delete(c, DENY_INGRESS_PA)
    probe.check(before)


def test_allow_by_pod_label_same_node_and_across_nodes_on_the_allowed_port_only(clean, probe):
    c = clean
    apply(c, DENY_INGRESS_PA + ALLOW_CLIENTS)
    probe.check({("pa/near", "pa/server", 80): True, ("pa/far", "pa/server", 80): True,
                 ("pa/near", "pa/server", 81): False, ("pa/far", "pa/server", 81): False,
                 ("pa/other", "pa/server", 80): False,
                 ("pb/client", "pa/server", 80): False,  # a podSelector alone means the policy's namespace
                 ("pa/near", "pa/far", 80): False})  # deny-ingress still isolates the clients


def test_namespace_selector_admits_every_pod_of_matching_namespaces(clean, probe):
    c = clean
    apply(c, netpol("from-team-b", "pa", """
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]"""))
    probe.check({("pb/client", "pa/server", 80): True, ("pb/client", "pa/server", 81): True,
                 ("pa/near", "pa/server", 80): False, ("pa/far", "pa/server", 80): False,
                 ("pa/near", "pa/far", 80): True})  # far is not selected: not isolated


def test_policy_sees_the_endpoint_behind_a_cluster_ip(clean, probe):
    c = clean
    vip = c.get("Service", "pa", "server")["spec"]["clusterIP"]
    probe.check({("pa/other", vip, 8080): True})
    apply(c, ALLOW_CLIENTS)  # port 80 is the endpoint's port: the Service's 8080 is translated before policy
    probe.check({("pa/near", vip, 8080): True, ("pa/far", vip, 8080): True, ("pa/other", vip, 8080): False,
                 ("pb/client", vip, 8080): False})


def test_egress_deny_all_blocks_dns_and_allowing_53_restores_it(clean, probe):
    c = clean
    probe.check({("pb/client", "pa/dns", 53, "UDP"): True})
    apply(c, netpol("deny-egress", "pb", "{podSelector: {}, policyTypes: [Egress]}"))
    probe.check({("pb/client", "pa/dns", 53, "UDP"): False, ("pb/client", "pa/dns", 53, "TCP"): False,
                 ("pb/client", "pa/server", 80): False,
                 ("pa/far", "pa/dns", 53, "UDP"): True})  # other namespaces unaffected
    apply(c, netpol("allow-dns", "pb", """
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]"""))
    probe.check({("pb/client", "pa/dns", 53, "UDP"): True, ("pb/client", "pa/dns", 53, "TCP"): True,
                 ("pb/client", "pa/server", 80): False})  # only DNS came back


def test_a_pod_isolated_by_deny_all_still_passes_its_readiness_probe(clean, probe):
    c = clean
    before = c.get("Pod", "pa", "server")
    cond = next(x for x in before["status"]["conditions"] if x["type"] == "Ready")
    apply(c, netpol("deny-all", "pa", "{podSelector: {matchLabels: {app: server}}, policyTypes: [Ingress, Egress]}"))
    probe.check({("pa/near", "pa/server", 80): False, ("pa/server", "pa/near", 80): False})
    time.sleep(4)  # four probe periods with a failure threshold of one
    after = c.get("Pod", "pa", "server")
    now = next(x for x in after["status"]["conditions"] if x["type"] == "Ready")
    assert now["status"] == "True" and now.get("lastTransitionTime") == cond.get("lastTransitionTime"), now
    slices = c.list("EndpointSlice", "pa", label_selector="kubernetes.io/service-name=server")
    assert [e["addresses"] for s in slices for e in s.get("endpoints") or []
            if e.get("conditions", {}).get("ready")] == [[after["status"]["podIP"]]]


def test_an_established_connection_survives_policy_changes(clean, probe):
    """A connection to a listener of the test's own inside the server pod
    keeps flowing through an unrelated policy change, a policy that isolates
    its server (new connections are refused, the established one goes on:
    conntrack carries it) and the engine's periodic full resyncs."""
    c = clean
    server_ip = ip_of(c, "pa", "server")
    listener = socket_in(netns_of(c, "pa", "server"))
    listener.bind((server_ip, 7000))
    listener.listen(4)
    accepted: list[socket.socket] = []

    def serve():
        try:
            conn, _ = listener.accept()
            accepted.append(conn)
            while data := conn.recv(100):
                conn.sendall(data.upper())
        except OSError:  # the test closed the sockets under us (it ended, or failed)
            return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = socket_in(netns_of(c, "pa", "far"))  # across nodes: both ends' tables are crossed
    client.settimeout(3)
    try:
        client.connect((server_ip, 7000))

        def exchange(word: bytes) -> bytes:
            client.sendall(word)
            return client.recv(100)

        assert exchange(b"one") == b"ONE"
        apply(c, netpol("unrelated", "pb", "{podSelector: {}, policyTypes: [Ingress, Egress]}"))
        assert exchange(b"two") == b"TWO"
        apply(c, netpol("isolate-server", "pa", "{podSelector: {matchLabels: {app: server}}, "
                                                "policyTypes: [Ingress]}"))
        assert exchange(b"three") == b"THREE"
        probe.check({("pa/near", "pa/server", 7000): False, ("pa/far", "pa/server", 80): False})
        time.sleep(2.5)  # a full resync rewrites the table meanwhile
        assert exchange(b"four") == b"FOUR"
    finally:
        client.close()
        t.join(timeout=3)  # the server sees the close and ends before its socket goes
        listener.close()
        for conn in accepted:
            conn.close()


def test_pod_label_changes_take_effect_both_ways(clean, probe):
    c = clean
    apply(c, ALLOW_CLIENTS)
    probe.check({("pa/other", "pa/server", 80): False, ("pa/near", "pa/server", 80): True})
    patch_labels(c, PODS, "pa", "other", {"role": "client"})  # the peer gains the label
    probe.check({("pa/other", "pa/server", 80): True})
    patch_labels(c, PODS, "pa", "near", {"role": "gone"})  # and one loses it
    probe.check({("pa/near", "pa/server", 80): False, ("pa/other", "pa/server", 80): True})
    patch_labels(c, PODS, "pa", "server", {"app": None})  # the policy no longer selects the server
    probe.check({("pa/near", "pa/server", 80): True})


def test_namespace_label_changes_take_effect(clean, probe):
    c = clean
    apply(c, netpol("from-team-b", "pa", """
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]"""))
    probe.check({("pb/client", "pa/server", 80): True})
    patch_labels(c, NAMESPACES, None, "pb", {"team": "c"})
    probe.check({("pb/client", "pa/server", 80): False})
    patch_labels(c, NAMESPACES, None, "pa", {"team": "b"})  # now pa's own pods match
    probe.check({("pa/near", "pa/server", 80): True, ("pb/client", "pa/server", 80): False})


def test_status_names_the_policy_engine(clean):
    c = clean
    apply(c, DENY_INGRESS_PA)
    out = c.knet("status").stdout
    assert "policy: 1 policies" in out, out


# -- seed 002 ---------------------------------------------------------------------------

# As written in /work/shared/seeds/002 (the last matchLabels is empty: every pod of the namespace).
SEED_002 = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: backend-networkpolicy
  namespace: default
spec:
  podSelector:
    matchLabels:
      app: backend
  policyTypes:
  - Ingress
  - Egress

  # Ingress: allow traffic from frontend Pods only
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 80

  # Egress: allow traffic only to database Pods in the "database" namespace
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          name: database
      podSelector:
        matchLabels:
"""


def test_seed_002_network_policy_as_written(clean, probe):
    c = clean
    apply(c, SEED_002)
    probe.check({
        ("default/frontend", "default/backend-1", 80): True,  # across nodes
        ("default/frontend", "default/backend-2", 80): True,  # same node
        ("default/frontend", "default/backend-1", 81): False,  # only TCP 80
        ("default/frontend", "default/backend-2", 53, "UDP"): False,
        ("default/bystander", "default/backend-1", 80): False,  # same node, not a frontend
        ("pb/client", "default/backend-2", 80): False,
        ("default/backend-1", "database/db", 80): True,  # egress to the database namespace, any port
        ("default/backend-2", "database/db", 53, "UDP"): True,
        ("default/backend-1", "default/frontend", 80): False,  # nowhere else
        ("default/backend-2", "pa/dns", 53, "UDP"): False,
        ("default/backend-1", "default/backend-2", 80): False,  # not even each other
        ("default/frontend", "default/bystander", 80): True})  # unselected pods are untouched


# -- AdminNetworkPolicy and BaselineAdminNetworkPolicy ------------------------------------


def anp(name: str, priority: int, rules: str, subject: str = "{pods: {namespaceSelector: {matchLabels: "
        "{team: a}}, podSelector: {matchLabels: {app: server}}}}") -> str:
    return f"""---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: {name}}}
spec:
  priority: {priority}
  subject: {subject}
  ingress: {rules}
"""


def test_an_admin_deny_overrides_a_network_policy_allow(clean, probe):
    c = clean
    apply(c, netpol("allow-all", "pa", "{podSelector: {matchLabels: {app: server}}, ingress: [{}]}"))
    apply(c, anp("deny-clients", 10, "[{name: deny-clients, action: Deny, from: [{pods: {namespaceSelector: {}, "
                                     "podSelector: {matchLabels: {role: client}}}}], ports: [{portNumber: "
                                     "{protocol: TCP, port: 80}}]}]"))
    probe.check({("pa/near", "pa/server", 80): False, ("pa/far", "pa/server", 80): False,
                 ("pb/client", "pa/server", 80): False,  # clients of any namespace
                 ("pa/near", "pa/server", 81): True,  # another port: NetworkPolicy's allow-all
                 ("pa/other", "pa/server", 80): True,  # another peer
                 ("pa/near", "pa/far", 80): True})  # another subject


def test_admin_pass_hands_over_to_network_policy_and_allow_wins_over_it(clean, probe):
    c = clean
    apply(c, DENY_INGRESS_PA)
    apply(c, anp("pass-clients", 5, "[{name: pass, action: Pass, from: [{namespaces: {}}]}]")
          + anp("allow-team-b", 20, "[{name: allow-b, action: Allow, from: [{namespaces: "
                                    "{matchLabels: {team: b}}}]}]"))
    # Pass comes first (priority 5): NetworkPolicy decides, and deny-ingress isolates the server.
    probe.check({("pb/client", "pa/server", 80): False, ("pa/near", "pa/server", 80): False})
    delete(c, anp("pass-clients", 5, "[]"))
    probe.check({("pb/client", "pa/server", 80): True,  # the ANP Allow is final over NetworkPolicy
                 ("pa/near", "pa/server", 80): False})


def test_baseline_applies_only_where_no_network_policy_selects_the_pod(clean, probe):
    c = clean
    apply(c, """apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress: [{name: deny-all, action: Deny, from: [{namespaces: {}}]}]
""")
    probe.check({("pb/client", "pa/server", 80): False, ("pa/near", "pa/far", 80): False})
    apply(c, ALLOW_CLIENTS)  # the server is now selected by a NetworkPolicy: the baseline steps back for it
    probe.check({("pa/near", "pa/server", 80): True, ("pb/client", "pa/server", 80): False,
                 ("pa/near", "pa/far", 80): False})
