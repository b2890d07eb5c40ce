"""The policy compiler (knet.policy.rules), traced packet by packet through
the tables it makes on every node (tests/unit/policy_tracer.py over the
nftables fake), after a full sync and after partial ones; and loaded into a
real nftables in namespaces of the test's own."""

from __future__ import annotations

import copy
import json
import random
import subprocess

import policy_tracer
import pytest

from knet.harness import netpol_cases as nc
from knet.net.nftfake import FakeNft, FakeTable
from knet.policy.matrix import Matrix
from knet.policy.rules import TABLE, Compiler

NODE_IPS = {"worker": ("192.168.56.11",), "worker2": ("192.168.56.12",)}


def node(name: str, labels: dict | None = None) -> dict:
    return {"kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IPS[name][0]},
                                     {"type": "Hostname", "address": name}]}}


def pod(ns: str, name: str, ip: str, node_name: str = "worker", labels: dict | None = None,
        ports: tuple = (), host_network: bool = False) -> dict:
    spec: dict = {"nodeName": node_name, "containers": [{"name": "c", "ports": [
        {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name, "labels": labels or {}}, "spec": spec,
            "status": {"phase": "Running", "podIP": ip}}


def _model(table: FakeTable) -> tuple:
    """A table's content: rules in order, set elements as a dict (order-free, as in nftables)."""
    return ({n: (c.hook, tuple(c.rules)) for n, c in table.chains.items()},
            {n: (s.kind, s.spec, s.elements) for n, s in table.sets.items()})


class World:
    """One Compiler per node, all fed the same objects, each node's table
    kept in its own FakeNft by full() and then changes() texts."""

    def __init__(self, nodes=tuple(NODE_IPS)):
        self.compilers = {n: Compiler(n) for n in nodes}
        self.fakes = {n: FakeNft() for n in nodes}
        self.where: dict[str, tuple[str, str]] = {}  # "ns/name" -> (ip, node)
        self.ops: dict[str, int] = {}
        for n in nodes:
            self.upsert(node(n))

    def upsert(self, *objs: dict) -> World:
        for obj in objs:
            if obj["kind"] == "Pod":
                md = obj["metadata"]
                self.where[f"{md['namespace']}/{md['name']}"] = (obj["status"]["podIP"], obj["spec"]["nodeName"])
            for c in self.compilers.values():
                c.upsert(obj["kind"], copy.deepcopy(obj))
        return self

    def delete(self, *objs: dict) -> World:
        for obj in objs:
            for c in self.compilers.values():
                c.delete(obj["kind"], obj)
        return self

    def full(self) -> World:
        for n, c in self.compilers.items():
            self.fakes[n].run(c.full())
        return self

    def sync(self) -> World:
        """Apply each node's changes(); then check they left what a full sync leaves."""
        for n, c in self.compilers.items():
            text = c.changes()
            self.ops[n] = c.ops(text)
            if text:
                self.fakes[n].run(text)
            fresh = FakeNft()
            fresh.run(c.full())
            assert _model(self.fakes[n].table("inet", TABLE)) == _model(fresh.table("inet", TABLE)), n
        return self

    def tables(self) -> dict[str, FakeTable]:
        return {n: f.table("inet", TABLE) for n, f in self.fakes.items()}

    def end(self, who: str) -> tuple[str, str | None]:
        if who in self.where:
            return self.where[who]
        for n, ips in NODE_IPS.items():
            if who in ips:
                return who, n
        return who, None

    def verdict(self, src: str, dst: str, port: int = 80, proto: str = "tcp", established: bool = False) -> str:
        return policy_tracer.connect(self.tables(), self.end(src), self.end(dst), port, proto,
                                     node_ips=NODE_IPS, established=established)

    def matrix(self, pods, port: int, proto: str) -> Matrix:
        return Matrix.from_pairs(pods, [(a, b, self.verdict(a, b, port, proto) == "accept")
                                        for a in pods for b in pods])


# -- the upstream e2e cases and network-policy-api's conformance cases ------------------------------


def _model_world() -> World:
    ips, nodes = nc.default_ips(), nc.default_nodes()
    nodes = {p: {"worker": "worker", "worker2": "worker2"}[n] for p, n in nodes.items()}
    m = nc.model(ips, nodes)
    w = World()
    w.upsert(*m.namespaces, *m.pods)
    return w


def _apply(w: World, namespaces: list[dict], pods: list[dict], changes) -> None:
    """A case's changes, in order, as the API would deliver them."""
    for c in changes:
        if c.op in ("apply", "delete"):
            if c.obj["kind"] == "Pod":
                md = c.obj["metadata"]
                pods[:] = [p for p in pods if (p["metadata"]["namespace"], p["metadata"]["name"])
                           != (md["namespace"], md["name"])] + ([copy.deepcopy(c.obj)] if c.op == "apply" else [])
            w.upsert(c.obj) if c.op == "apply" else w.delete(c.obj)
        else:
            nc.apply_changes(namespaces, pods, [], [c])
            w.upsert(*[o for o in namespaces + pods
                       if f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}".lstrip("/") == c.target])


@pytest.mark.parametrize("case", nc.all_cases(nc.default_ips()), ids=lambda c: c.name)
def test_upstream_case(case):
    """Each upstream case's matrices, on both nodes' tables: the initial
    state from a full sync, every step after it from partial syncs."""
    m = nc.model(nc.default_ips(), nc.default_nodes())
    w = _model_world()
    for i, (what, changes, expected) in enumerate(case.states()):
        _apply(w, m.namespaces, m.pods, changes)
        if i == 0:
            w.full()
        else:
            w.sync()
        for (port, proto), want in expected.items():
            got = w.matrix(nc.PODS, port, proto)
            diffs = want.differences(got)
            assert not diffs, f"{case.name} / {what} / {port}/{proto}:\n" + "\n".join(map(str, diffs))


# -- the semantics, one by one ---------------------------------------------------------------------

X = [pod("x", "a", "10.244.1.2", "worker", {"app": "web"}, (("http", 8080, "TCP"),)),
     pod("x", "b", "10.244.1.3", "worker", {"app": "client"}),
     pod("x", "c", "10.244.2.4", "worker2", {"app": "client", "tier": "db"}, (("http", 9090, "TCP"),)),
     pod("y", "a", "10.244.2.5", "worker2", {"app": "client"})]
NS = [{"kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "x"}}},
      {"kind": "Namespace", "metadata": {"name": "y", "labels": {"team": "y"}}}]


def np(name: str, ns: str = "x", selector: dict | None = None, **spec) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"namespace": ns, "name": name},
            "spec": {"podSelector": selector if selector is not None else {}, **spec}}


def world(*policies) -> World:
    return World().upsert(*NS, *X, *policies).full()


def test_isolation_is_per_direction_and_policies_add_up():
    w = world(np("in", selector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"]))
    assert w.verdict("x/b", "x/a") == "drop"  # x/a is ingress-isolated
    assert w.verdict("x/a", "x/b") == "accept"  # ...not egress
    assert w.verdict("x/b", "x/c") == "accept"  # and nobody else is
    w.upsert(np("from-b", selector={"matchLabels": {"app": "web"}},
                ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])).sync()
    assert w.verdict("x/b", "x/a") == "accept"  # a second policy adds
    assert w.verdict("y/a", "x/a") == "drop"  # a podSelector peer is the policy's namespace only
    w.upsert(np("out", selector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"])).sync()
    assert w.verdict("x/b", "x/a") == "drop"  # both ends must allow: the client's egress denies
    assert w.verdict("x/a", "x/b") == "accept"  # replies aside, x/b still accepts (not ingress-isolated)
    assert w.verdict("x/b", "x/a", established=True) == "accept"  # an established connection goes on


def test_ingress_empty_denies_and_ingress_of_an_empty_rule_allows():
    assert world(np("deny", ingress=[])).verdict("x/b", "x/a") == "drop"
    missing = np("deny")  # no ingress and no policyTypes: defaulted to [Ingress], deny all
    assert world(missing).verdict("y/a", "x/a") == "drop"
    w = world(np("allow", ingress=[{}]), np("deny", ingress=[]))
    assert w.verdict("y/a", "x/a", 9999, "udp") == "accept"
    assert w.verdict("192.168.1.1", "x/c", 1, "sctp") == "accept"  # from outside too


def test_egress_without_policy_types_also_isolates_ingress():
    w = world(np("out", egress=[{"to": [{"podSelector": {}}]}]))  # defaulted: [Ingress, Egress]
    assert w.verdict("x/a", "x/b") == "drop"  # x/b: ingress-isolated, no ingress rule
    assert w.verdict("x/a", "y/a") == "drop"  # egress only to x
    egress_only = np("out", egress=[{"to": [{"podSelector": {}}]}], policyTypes=["Egress"])
    w.upsert(egress_only).sync()
    assert w.verdict("x/a", "x/b") == "accept"
    assert w.verdict("x/a", "y/a") == "drop"


def test_peers_and_or_and_match_expressions():
    and_peer = {"namespaceSelector": {"matchLabels": {"team": "y"}}, "podSelector": {"matchLabels": {"app": "client"}}}
    w = world(np("and", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [and_peer]}]))
    assert w.verdict("y/a", "x/a") == "accept"
    assert w.verdict("x/b", "x/a") == "drop"  # a client, but not in team y
    or_peers = [{"namespaceSelector": {"matchLabels": {"team": "y"}}}, {"podSelector": {"matchLabels": {"tier": "db"}}}]
    w = world(np("or", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": or_peers}]))
    assert w.verdict("y/a", "x/a") == "accept" and w.verdict("x/c", "x/a") == "accept"
    assert w.verdict("x/b", "x/a") == "drop"
    exprs = {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"},
                                  {"key": "app", "operator": "In", "values": ["client", "other"]}]}
    w = world(np("expr", selector={"matchLabels": {"app": "web"}},
                 ingress=[{"from": [{"podSelector": exprs}]}]))
    assert w.verdict("x/b", "x/a") == "accept"
    assert w.verdict("x/c", "x/a") == "drop"  # has tier
    notin = {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}
    w = world(np("notin", selector={"matchLabels": {"app": "web"}},
                 ingress=[{"from": [{"namespaceSelector": notin}]}]))
    assert w.verdict("y/a", "x/a") == "accept" and w.verdict("x/b", "x/a") == "drop"


def test_ip_block_with_except_on_pod_ips():
    egress = [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.4/32"]}}]}]
    w = world(np("cidr", selector={"matchLabels": {"app": "web"}}, egress=egress, policyTypes=["Egress"]))
    assert w.verdict("x/a", "x/b") == "accept"
    assert w.verdict("x/a", "y/a") == "accept"  # 10.244.2.5: in the block, not the except
    assert w.verdict("x/a", "x/c") == "drop"  # the except
    assert w.verdict("x/a", "8.8.8.8") == "drop"
    # Another rule allowing the excepted address still allows it: an except narrows only its own block.
    w.upsert(np("c", selector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "10.244.2.4/32"}}]}])).sync()
    assert w.verdict("x/a", "x/c") == "accept"
    ingress = [{"from": [{"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.3/32"]}}]}]
    w = world(np("in-cidr", selector={"matchLabels": {"app": "web"}}, ingress=ingress))
    assert w.verdict("x/b", "x/a") == "drop" and w.verdict("10.244.1.77", "x/a") == "accept"



def test_ip_blocks_several_excepts_and_odd_ones():
    """Blocks are matched inline (cidr, then each except as `!=`), so every
    edge of the except rules shows in the trace."""
    blocks = [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24", "10.244.2.5/32", "10.9.0.0/16",
                                                                "fd00::/64"]}},
              {"ipBlock": {"cidr": "10.244.2.0/24", "except": ["10.244.0.0/16"]}},  # its except covers it: nothing
              {"ipBlock": {"cidr": "fd00::/8"}}]  # IPv6: no pod or node address is in it
    w = world(np("odd", selector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                 egress=[{"to": blocks, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]))
    assert w.verdict("x/a", "x/c") == "accept"  # 10.244.2.4: in the first block, in no except
    assert w.verdict("x/a", "x/c", 53, "udp") == "accept" and w.verdict("x/a", "x/c", 81) == "drop"
    assert w.verdict("x/a", "x/b") == "drop"  # 10.244.1.3: the first except
    assert w.verdict("x/a", "y/a") == "drop"  # 10.244.2.5: the second except; the second block matches nothing
    assert w.verdict("x/a", "10.9.0.1") == "drop"  # an except outside its cidr is not a block
    rules = w.tables()["worker"].chains
    assert any("ip daddr 10.244.0.0/16 ip daddr != 10.244.1.0/24 ip daddr != 10.244.2.5/32 " in r
               for c in rules.values() for r in c.rules)


def test_no_address_interval_set_whatever_the_policies():
    """nft 1.0.6 reads every element of every non-concatenated interval set
    in the table before any element change (the benchmark note in
    knet.policy.rules): the table must hold none, so that the cost of a pod
    event follows the event, not the ipBlocks of every policy."""
    ports = [{"port": p} for p in range(80, 92, 2)]  # past INLINE_PORTS: a concatenated set
    w = world(np("blocks", ingress=[{"from": [{"ipBlock": {"cidr": f"10.{i}.0.0/16", "except": [f"10.{i}.1.0/24"]}}
                                              for i in range(5)], "ports": ports}]),
              anp("nets", 5, X_NS, egress=[rule("Deny", [{"networks": ["8.8.8.0/24", "1.1.0.0/16"]}],
                                               direction="egress")]))
    sets = w.tables()["worker"].sets
    assert any("interval" in s.spec for s in sets.values())
    for name, s in sets.items():
        if "interval" in s.spec:
            assert " . " in s.spec.split(";")[0], (name, s.spec)
    assert w.verdict("10.3.2.1", "x/a", 90) == "accept" and w.verdict("10.3.1.1", "x/a", 90) == "drop"
    assert w.verdict("10.3.2.1", "x/a", 89) == "drop"
    assert w.verdict("x/a", "1.1.3.3") == "drop" and w.verdict("x/a", "1.2.3.3") == "accept"

def test_named_ports_resolve_per_destination_pod():
    # x/a serves "http" on 8080, x/c on 9090: one rule, each pod its own number.
    w = world(np("named", selector={}, ingress=[{"ports": [{"port": "http"}]}]))
    assert w.verdict("y/a", "x/a", 8080) == "accept" and w.verdict("y/a", "x/a", 9090) == "drop"
    assert w.verdict("y/a", "x/c", 9090) == "accept" and w.verdict("y/a", "x/c", 8080) == "drop"
    assert w.verdict("y/a", "x/b", 8080) == "drop"  # x/b has no port named http
    assert w.verdict("y/a", "x/a", 8080, "udp") == "drop"  # name and protocol must both match
    udp = world(np("named-udp", ingress=[{"ports": [{"port": "http", "protocol": "UDP"}]}]))
    assert udp.verdict("y/a", "x/a", 8080) == "drop" and udp.verdict("y/a", "x/a", 8080, "udp") == "drop"
    # Egress: resolved against the peer (the destination), here on the other node.
    w = world(np("out", selector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                 egress=[{"ports": [{"port": "http"}]}]))
    assert w.verdict("x/a", "x/c", 9090) == "accept" and w.verdict("x/a", "x/c", 8080) == "drop"
    assert w.verdict("x/a", "8.8.8.8", 8080) == "drop"  # a named port never matches a non-pod


def test_end_port_and_protocols():
    w = world(np("range", ingress=[{"ports": [{"port": 80, "endPort": 84}, {"port": 82, "protocol": "UDP"}]}]))
    assert [w.verdict("y/a", "x/a", p) for p in (79, 80, 84, 85)] == ["drop", "accept", "accept", "drop"]
    assert w.verdict("y/a", "x/a", 82, "udp") == "accept" and w.verdict("y/a", "x/a", 83, "udp") == "drop"
    udp_only = world(np("udp", ingress=[{"ports": [{"protocol": "UDP"}]}]))
    assert udp_only.verdict("y/a", "x/a", 53, "udp") == "accept"
    assert udp_only.verdict("y/a", "x/a", 53, "tcp") == "drop"  # a UDP-only allow isolates TCP
    sctp = world(np("sctp", ingress=[{"ports": [{"protocol": "SCTP", "port": 80}]}]))
    assert sctp.verdict("y/a", "x/a", 80, "sctp") == "accept"  # SCTP rules are generated
    assert sctp.verdict("y/a", "x/a", 80, "tcp") == "drop"  # and open no TCP
    rules = [r for c in sctp.tables()["worker"].chains.values() for r in c.rules if "sctp" in r.split(" comment ")[0]]
    assert rules == ['sctp dport 80 accept comment "x/sctp ingress rule 0"']


def test_stateful_replies_pass_under_deny_all():
    w = world(np("deny-all", policyTypes=["Ingress", "Egress"]))
    assert w.verdict("x/a", "x/b") == "drop" and w.verdict("x/a", "x/b", 53, "udp") == "drop"
    assert w.verdict("x/b", "x/a", established=True) == "accept"
    assert w.verdict("x/b", "x/a", 53, "udp", established=True) == "accept"


def test_host_network_pods_are_never_selected():
    hostnet = pod("x", "h", "192.168.56.11", "worker", {"app": "web"}, host_network=True)
    w = world(np("web", selector={"matchLabels": {"app": "web"}}, ingress=[]),
              np("b", selector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"],
                 egress=[{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]))
    w.upsert(hostnet).sync()
    assert "192.168.56.11" not in json.dumps(_model(w.tables()["worker"])[1]).replace('"192.168.56.11": ""', "")
    assert w.verdict("x/b", "x/a") == "drop"  # x/a: selected, no ingress rule
    assert w.verdict("x/b", "192.168.56.12") == "drop"  # the node address is not a web pod


def test_node_traffic():
    w = world(np("deny-all", policyTypes=["Ingress", "Egress"]))
    assert w.verdict("192.168.56.11", "x/a") == "accept"  # a pod's own node: kubelet probes
    assert w.verdict("192.168.56.12", "x/a") == "drop"  # another node is judged like any address
    assert w.verdict("x/a", "192.168.56.11") == "drop"  # a pod to its node: egress, judged in input
    w.upsert(np("to-nodes", policyTypes=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "192.168.56.0/24"}}]}])).sync()
    assert w.verdict("x/a", "192.168.56.11") == "accept"
    open_world = world()
    assert open_world.verdict("x/a", "192.168.56.11") == "accept"


# -- AdminNetworkPolicy and BaselineAdminNetworkPolicy ------------------------------------------------


def anp(name: str, priority: int, subject: dict, ingress=None, egress=None) -> dict:
    spec = {"priority": priority, "subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"kind": "AdminNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def banp(subject: dict, ingress=None, egress=None) -> dict:
    b = anp("default", 0, subject, ingress, egress)
    b["kind"] = "BaselineAdminNetworkPolicy"
    del b["spec"]["priority"]
    return b


def rule(action: str, peers: list, ports=None, direction: str = "ingress", name: str = "r") -> dict:
    r = {"name": name, "action": action, "from" if direction == "ingress" else "to": peers}
    if ports is not None:
        r["ports"] = ports
    return r


X_NS = {"namespaces": {"matchLabels": {"team": "x"}}}
FROM_Y = [{"namespaces": {"matchLabels": {"team": "y"}}}]


def test_admin_priority_deny_allow_and_pass():
    allow_np = np("allow-all", ingress=[{}])
    w = world(allow_np, anp("deny-y", 20, X_NS, ingress=[rule("Deny", FROM_Y)]))
    assert w.verdict("y/a", "x/a") == "drop"  # Deny over a NetworkPolicy that allows
    assert w.verdict("x/b", "x/a") == "accept"
    w.upsert(anp("allow-y", 10, X_NS, ingress=[rule("Allow", FROM_Y)])).sync()
    assert w.verdict("y/a", "x/a") == "accept"  # the lower number goes first
    w.upsert(anp("allow-y", 30, X_NS, ingress=[rule("Allow", FROM_Y)])).sync()
    assert w.verdict("y/a", "x/a") == "drop"  # priority changed: Deny first again
    w.upsert(anp("pass-y", 5, X_NS, ingress=[rule("Pass", FROM_Y)])).sync()
    assert w.verdict("y/a", "x/a") == "accept"  # Pass skips the other ANPs: the NetworkPolicy allows
    w.upsert(np("allow-all", ingress=[])).sync()
    assert w.verdict("y/a", "x/a") == "drop"  # ...and now denies
    # Allow is final: a NetworkPolicy cannot deny it.
    w.delete(anp("pass-y", 5, X_NS)).upsert(anp("allow-y", 1, X_NS, ingress=[rule("Allow", FROM_Y)])).sync()
    assert w.verdict("y/a", "x/a") == "accept"
    assert w.verdict("x/b", "x/a") == "drop"  # not matched by the ANP: the NetworkPolicy decides


def test_admin_ports_nodes_and_networks():
    ports = [{"portNumber": {"protocol": "TCP", "port": 80}}, {"portRange": {"protocol": "UDP", "start": 50,
                                                                              "end": 60}},
             {"namedPort": "http"}]
    w = world(anp("deny", 10, {"namespaces": {}}, ingress=[rule("Deny", [{"namespaces": {}}], ports)]))
    assert w.verdict("y/a", "x/b", 80) == "drop" and w.verdict("y/a", "x/b", 81) == "accept"
    assert w.verdict("y/a", "x/b", 55, "udp") == "drop" and w.verdict("y/a", "x/b", 61, "udp") == "accept"
    assert w.verdict("y/a", "x/a", 8080) == "drop" and w.verdict("y/a", "x/c", 8080) == "accept"
    egress = [rule("Deny", [{"nodes": {"matchLabels": {"kubernetes.io/hostname": "worker2"}}}], direction="egress"),
              rule("Deny", [{"networks": ["8.8.8.0/24"]}], direction="egress", name="dns")]
    w = world(anp("nodes", 10, {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}},
                  egress=egress))
    assert w.verdict("x/a", "192.168.56.12") == "drop" and w.verdict("x/a", "192.168.56.11") == "accept"
    assert w.verdict("x/a", "8.8.8.8") == "drop" and w.verdict("x/a", "8.8.4.4") == "accept"
    assert w.verdict("x/b", "8.8.8.8") == "accept"  # not a subject



def test_a_namespace_label_change_moves_its_pods_under_an_admin_subject():
    w = world(anp("deny", 10, X_NS, ingress=[rule("Deny", FROM_Y)]))
    assert w.verdict("x/b", "y/a") == "accept"  # y is not a subject
    y_as_x = {"kind": "Namespace", "metadata": {"name": "y", "labels": {"team": "x"}}}
    w.upsert(y_as_x).sync()
    assert w.verdict("x/b", "y/a") == "accept"  # y/a is a subject now, but x is not team y
    w.upsert(NS[0] | {"metadata": {"name": "x", "labels": {"team": "y"}}}).sync()
    assert w.verdict("x/b", "y/a") == "drop"  # from team y to a subject: denied
    assert w.verdict("y/a", "x/b") == "accept"  # x/b is no subject any more
    w.upsert(NS[1]).sync()
    assert w.verdict("x/b", "y/a") == "accept"

def test_baseline_applies_after_network_policy():
    w = world(banp(X_NS, ingress=[rule("Deny", FROM_Y)]))
    assert w.verdict("y/a", "x/a") == "drop" and w.verdict("x/b", "x/a") == "accept"
    w.upsert(np("allow-y", selector={"matchLabels": {"app": "web"}},
                ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "y"}}}]}])).sync()
    assert w.verdict("y/a", "x/a") == "accept"  # a NetworkPolicy selects x/a: the baseline is not consulted
    assert w.verdict("y/a", "x/b") == "drop"  # x/b is not selected by it
    w.upsert(anp("deny", 1, X_NS, ingress=[rule("Deny", FROM_Y)])).sync()
    assert w.verdict("y/a", "x/a") == "drop"
    w.delete(banp(X_NS)).sync()
    assert w.verdict("y/a", "x/b") == "drop"  # the ANP still denies
    w.delete(anp("deny", 1, X_NS)).sync()
    assert w.verdict("y/a", "x/b") == "accept"


def test_comments_name_the_policy_and_rule():
    w = world(np("web", selector={"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": 80}]}]),
              anp("pass", 3, X_NS, ingress=[rule("Pass", FROM_Y, name="to-np")]))
    assert policy_tracer.explain(w.tables()["worker"], "10.244.2.5", "10.244.1.2", 80) == (
        "accept", "x/web ingress rule 0")
    assert policy_tracer.explain(w.tables()["worker"], "10.244.2.5", "10.244.1.2", 81) == (
        "drop", "x/a ingress isolated")
    text = w.compilers["worker"].full()
    assert 'goto ingress-policy comment "anp/pass ingress rule 0 to-np"' in text


# -- partial syncs: cost and correctness ----------------------------------------------------------------


def test_an_address_given_again_belongs_to_the_new_pod():
    """x/b's deletion arrives after its address went to x/n: x/n keeps its place in the peer set."""
    w = world(np("web", selector={"matchLabels": {"app": "web"}},
                 ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]))
    w.upsert(pod("x", "n", "10.244.1.3", "worker", {"app": "client"})).sync()
    w.delete(X[1]).sync()
    assert w.verdict("x/n", "x/a") == "accept"
    w.upsert(pod("x", "n", "10.244.1.3", "worker", {"app": "other"})).sync()
    assert w.verdict("x/n", "x/a") == "drop"


def test_changes_are_proportional_and_empty_when_nothing_changed():
    w = world(np("web", selector={"matchLabels": {"app": "web"}},
                 ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]))
    c = w.compilers["worker"]
    assert c.changes() == ""
    w.upsert(X[1]).sync()  # the same pod again
    assert w.ops == {"worker": 0, "worker2": 0}
    w.upsert(pod("x", "b", "10.244.1.3", "worker", {"app": "other"})).sync()  # x/b leaves the peer set
    assert w.ops == {"worker": 1, "worker2": 1}
    assert w.verdict("x/b", "x/a") == "drop"



def test_a_node_holds_a_policys_chains_only_while_it_selects_a_pod_there():
    """x/a (on worker) is selected, x/c (on worker2) joins and leaves: worker2
    gets the policy's chains with its first selected pod and loses them with
    its last; a policy that selects nothing on a node costs that node only
    the peer sets it shares."""
    web = np("web", selector={"matchLabels": {"app": "web"}},
             ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                       "ports": [{"port": p} for p in range(80, 92, 2)]}])  # a set of ports too
    w = world(web)

    def chains(n):
        return {c for c in w.tables()[n].chains if c.startswith("np-")}

    def sets(n):
        return {s for s in w.tables()[n].sets if s.endswith("-ports")}

    assert chains("worker") and sets("worker") and not chains("worker2") and not sets("worker2")
    assert w.verdict("y/a", "x/c", 80) == "accept"  # x/c is not isolated
    w.upsert(pod("x", "c", "10.244.2.4", "worker2", {"app": "web", "tier": "db"}, (("http", 9090, "TCP"),))).sync()
    assert chains("worker2") == chains("worker") and sets("worker2") == sets("worker")
    assert w.verdict("y/a", "x/c", 80) == "drop" and w.verdict("x/b", "x/c", 90) == "accept"
    assert w.verdict("x/b", "x/c", 89) == "drop"
    w.upsert(X[2]).sync()
    assert not chains("worker2") and not sets("worker2") and chains("worker")
    assert w.verdict("y/a", "x/c", 80) == "accept" and w.verdict("y/a", "x/a", 80) == "drop"
    before = chains("worker")
    w.upsert(np("elsewhere", ns="y", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])).sync()
    assert chains("worker") == before and w.ops["worker"] == 2  # its peer set and y/a in it; y/a is on worker2
    assert len(chains("worker2")) == 1 and w.verdict("x/b", "y/a") == "drop"

def _big(n_policies: int, n_pods: int = 200, n_ns: int = 20, nodes=("w1", "w2", "w3", "w4")) -> Compiler:
    c = Compiler("w1")
    for i in range(n_ns):
        c.upsert("Namespace", {"metadata": {"name": f"ns{i}", "labels": {"team": f"t{i % 5}"}}})
    for i in range(n_pods):
        c.upsert("Pod", pod(f"ns{i % n_ns}", f"p{i}", f"10.244.{i % len(nodes)}.{2 + i // len(nodes)}",
                            nodes[i % len(nodes)], {"app": f"a{i % 10}", "role": f"r{i % 3}"},
                            (("http", 8000 + i % 7, "TCP"),)))
    for i in range(n_policies):
        c.upsert("NetworkPolicy", _policy(i, n_ns))
    return c


def _policy(i: int, n_ns: int = 20) -> dict:
    return np(f"p{i}", f"ns{i % n_ns}", {"matchLabels": {"app": f"a{i % 10}"}},
              ingress=[{"from": [{"podSelector": {"matchLabels": {"role": f"r{i % 3}"}}},
                                 {"namespaceSelector": {"matchLabels": {"team": f"t{i % 5}"}},
                                  "podSelector": {"matchLabels": {"app": f"a{(i + 1) % 10}"}}}],
                        "ports": [{"port": 80 + i % 50}, {"port": "http"}]}],
              egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.244.{i % 4}.0/24"]}}]}],
              policyTypes=["Ingress", "Egress"])


def _counts(c: Compiler, n_ns: int = 20) -> dict[str, int]:
    c.full()
    out = {"none": c.ops(c.changes())}
    c.upsert("NetworkPolicy", _policy(100000, n_ns) | {"metadata": {"namespace": "ns0", "name": "new"}})
    out["new policy"] = c.ops(c.changes())
    c.upsert("Pod", pod("ns5", "p5", "10.244.1.3", "w2", {"app": "a9", "role": "r0"}, (("http", 8005, "TCP"),)))
    out["pod label"] = c.ops(c.changes())
    c.upsert("Pod", pod("ns4", "p4", "10.244.0.3", "w1", {"app": "a9", "role": "r0"}, (("http", 8004, "TCP"),)))
    out["local pod label"] = c.ops(c.changes())
    return out


def test_op_counts_do_not_grow_with_policies():
    """One new policy, one pod label change (a remote pod: peer sets only;
    a local pod: also its chains), nothing: the same operations with 100 or
    1,000 policies present."""
    small, large = _counts(_big(100)), _counts(_big(1000))
    assert small["none"] == large["none"] == 0
    assert small == large
    assert large["new policy"] > 0 and large["pod label"] > 0


def test_partial_syncs_match_full_syncs_over_random_changes():
    """Seeded random events (pods, labels, namespaces, policies of every kind);
    after each burst the fake holds what a full sync makes, on both nodes."""
    rnd = random.Random(11)
    w = World()
    w.upsert(*NS).full()
    policies = []
    for _step in range(60):
        for _ in range(rnd.randint(1, 4)):
            what = rnd.random()
            i = rnd.randint(0, 9)
            if what < 0.35:
                labels = {"app": rnd.choice(["web", "client", "db"])}
                if rnd.random() < 0.5:
                    labels["tier"] = "db"
                w.upsert(pod(rnd.choice("xy"), f"p{i}", f"10.244.{1 + i % 2}.{10 + i}",
                             ("worker", "worker2")[i % 2], labels, (("http", 8000 + i, "TCP"),)))
            elif what < 0.45:
                p = pod("x", f"p{i}", "10.244.1.1")
                w.delete(p)
                p["metadata"]["namespace"] = "y"
                w.delete(p)
            elif what < 0.55:
                w.upsert({"kind": "Namespace", "metadata": {"name": rnd.choice("xy"),
                                                            "labels": {"team": rnd.choice("xyz")}}})
            elif what < 0.85:
                p = rnd.choice([
                    np(f"n{i}", rnd.choice("xy"), {"matchLabels": {"app": rnd.choice(["web", "db"])}},
                       ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                 "ports": [{"port": "http"}, {"port": 80 + i}]}]),
                    np(f"n{i}", "x", {}, policyTypes=["Egress"],
                       egress=[{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}]}]),
                    anp(f"a{i}", i, {"namespaces": {"matchLabels": {"team": rnd.choice("xy")}}},
                        ingress=[rule(rnd.choice(["Allow", "Deny", "Pass"]), FROM_Y)]),
                    banp(X_NS, egress=[rule("Deny", FROM_Y, direction="egress")]),
                ])
                policies.append(p)
                w.upsert(p)
            elif policies:
                w.delete(policies.pop(rnd.randrange(len(policies))))
        w.sync()  # asserts partial == full on each node


# -- the kernel --------------------------------------------------------------------------------------------


def _kernel_table(name: str) -> tuple:
    """The table as the kernel lists it (JSON), handles dropped, elements order-free."""
    out = subprocess.run(["ip", "netns", "exec", name, "nft", "-j", "list", "table", "inet", TABLE],
                         capture_output=True, text=True, check=True).stdout
    chains, sets, rules = {}, {}, {}
    for item in json.loads(out)["nftables"]:
        if "chain" in item:
            c = item["chain"]
            chains[c["name"]] = (c.get("hook"), c.get("prio"))
        elif "set" in item or "map" in item:
            s = item.get("set") or item.get("map")
            sets[s["name"]] = (s["type"] if isinstance(s["type"], str) else tuple(s["type"]),
                               sorted(json.dumps(e, sort_keys=True) for e in s.get("elem", [])))
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault(r["chain"], []).append((json.dumps(r["expr"], sort_keys=True), r.get("comment")))
    return chains, sets, rules


@pytest.mark.root
def test_partial_syncs_match_full_syncs_in_the_kernel():
    """full() then a sequence of changes() in one namespace, full() of the
    same state in another: the kernel holds the same table (intervals in
    concatenations, verdict maps, inserts, comments all accepted)."""
    from knet.harness.cluster import unique_name
    from knet.net import ns
    from knet.net.nft import Nft

    ips = nc.default_ips()
    m = nc.model(ips, nc.default_nodes())
    w = World(nodes=(nc.NODES[0],))
    w.upsert(*m.namespaces, *m.pods, node("worker2"))
    c = w.compilers[nc.NODES[0]]
    a, b = unique_name("kpol"), unique_name("kpol")
    ns.create_netns(a)
    ns.create_netns(b)
    try:
        with ns.entered(net=ns.netns_path(a)):
            nft_a = Nft()
            nft_a.run(c.full())
        steps = 0
        applied: dict[tuple, dict] = {}
        for case in nc.all_cases(ips):
            for i, (_what, changes, _expected) in enumerate(case.states()):
                if i == 0:  # each case starts from its own policies
                    w.delete(*applied.values())
                    applied.clear()
                _apply(w, m.namespaces, m.pods, changes)
                for ch in changes:
                    key = (ch.obj["kind"], ch.obj["metadata"].get("namespace"), ch.obj["metadata"]["name"]) \
                        if ch.obj else None
                    if ch.op == "apply" and ch.obj["kind"] != "Pod":
                        applied[key] = ch.obj
                    elif ch.op == "delete":
                        applied.pop(key, None)
                text = c.changes()
                if text:
                    with ns.entered(net=ns.netns_path(a)):
                        nft_a.run(text)
                    steps += 1
        with ns.entered(net=ns.netns_path(b)):
            Nft().run(c.full())
        assert steps > 20
        assert _kernel_table(a) == _kernel_table(b)
        # And a full sync over a table that exists replaces it in one go.
        with ns.entered(net=ns.netns_path(a)):
            nft_a.run(c.full())
        assert _kernel_table(a) == _kernel_table(b)
    finally:
        ns.delete_netns(a)
        ns.delete_netns(b)
