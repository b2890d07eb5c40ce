"""The compiled nftables policy gives upstream's expected matrices.

Every case of knet.harness.netpol_cases (kubernetes network_policy.go, cyclonus-style extras,
network-policy-api conformance), in every state (initial, then each update or label change),
on TCP and UDP 80 and 81: the pods are spread over two nodes, each node's table is compiled by
its own knet.policy.rules.Compiler and loaded into the nftables fake, and a pair counts as
connected iff the packet is accepted by the source node's table (egress) and by the destination
node's table (ingress) -- on one node, the same table twice, as the kernel runs both chains in
one pass. The expected matrices come from upstream's reachability edits, not from the oracle.

Each state is checked twice: on a table built incrementally (the first state from full(), the
next ones by applying changes() to what was loaded, as the sync loop does) and on a table made
from nothing by full() for the same objects, so a stale set element in a partial sync shows.
"""

from __future__ import annotations

import copy

import policy_tracer
import pytest

from knet.harness import netpol_cases as nc
from knet.net.nftfake import FakeNft
from knet.policy.rules import TABLE, Compiler

IPS = nc.default_ips()
POD_NODE = nc.default_nodes()
NODE_IPS = {nc.NODES[0]: "172.30.0.11", nc.NODES[1]: "172.30.0.12"}
NODE_CIDRS = {nc.NODES[0]: "10.244.1.0/24", nc.NODES[1]: "10.244.2.0/24"}
ALL = nc.all_cases(IPS)


def node_obj(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": NODE_CIDRS[name], "podCIDRs": [NODE_CIDRS[name]]},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IPS[name]}]}}


class Node:
    """One node: its Compiler and the nftables (fake) it loaded."""

    def __init__(self, name: str):
        self.name = name
        self.compiler = Compiler(name)
        self.nft = FakeNft()
        self.loaded = False

    def feed(self, kind: str, obj: dict, delete: bool = False) -> None:
        obj = copy.deepcopy(obj)  # the Compiler may keep what it is given; our dicts change later
        if delete:
            self.compiler.delete(kind, obj)
        else:
            self.compiler.upsert(kind, obj)

    def sync(self) -> None:
        text = self.compiler.changes() if self.loaded else self.compiler.full()
        if text:
            self.nft.run(text)
        self.loaded = True

    def table(self):
        return self.nft.table("inet", TABLE)


def fresh_nodes(namespaces: list[dict], pods: list[dict], policies: list[dict]) -> dict[str, Node]:
    nodes = {n: Node(n) for n in nc.NODES}
    for node in nodes.values():
        for n in nc.NODES:
            node.feed("Node", node_obj(n))
        for ns in namespaces:
            node.feed("Namespace", ns)
        for p in pods:
            node.feed("Pod", p)
        for pol in policies:
            node.feed(pol["kind"], pol)
        node.sync()
    return nodes


def apply(nodes: dict[str, Node], change: nc.Change, namespaces: list[dict], pods: list[dict]) -> None:
    for node in nodes.values():
        if change.op in ("apply", "delete"):
            node.feed(change.obj["kind"], change.obj, delete=change.op == "delete")
        elif "/" in change.target:
            ns, _, name = change.target.partition("/")
            node.feed("Pod", next(p for p in pods if (p["metadata"]["namespace"], p["metadata"]["name"]) == (ns, name)))
        else:
            node.feed("Namespace", next(n for n in namespaces if n["metadata"]["name"] == change.target))


def placement(pods: list[dict]) -> dict[str, tuple[str, str]]:
    """"x/a" -> (pod IP, node name), as the pods are now (a case may move one)."""
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": (p["status"]["podIP"], p["spec"]["nodeName"])
            for p in pods}


def connected(nodes: dict[str, Node], at: dict[str, tuple[str, str]], src: str, dst: str, port: int,
              proto: str) -> bool:
    (sip, snode), (dip, dnode) = at[src], at[dst]
    for n in (snode, dnode):
        verdict = policy_tracer.trace(nodes[n].table(), sip, dip, port, proto.lower(), local_node_ips=(NODE_IPS[n],))
        if verdict != "accept":
            return False
    return True


def observed(nodes: dict[str, Node], at: dict[str, tuple[str, str]], port: int, proto: str) -> nc.Matrix:
    m = nc.Matrix(nc.PODS, None, None)
    for src in nc.PODS:
        for dst in nc.PODS:
            if src != dst:  # loopback is undefined upstream and ignored by the comparison
                m.expect(src, dst, connected(nodes, at, src, dst, port, proto))
    return m


def explain(nodes: dict[str, Node], at: dict[str, tuple[str, str]], d, port: int, proto: str) -> str:
    (sip, snode), (dip, dnode) = at[d.src], at[d.dst]
    parts = []
    for n in dict.fromkeys((snode, dnode)):
        v, why = policy_tracer.explain(nodes[n].table(), sip, dip, port, proto.lower(), local_node_ips=(NODE_IPS[n],))
        parts.append(f"{n}: {v} ({why or 'fell through'})")
    return f"{d}  [{'; '.join(parts)}]"


def check(nodes: dict[str, Node], pods: list[dict], expected: dict, where: str) -> list[str]:
    at = placement(pods)
    failures = []
    for (port, proto), want in expected.items():
        got = observed(nodes, at, port, proto)
        for d in want.differences(got):
            failures.append(f"{where} {port}/{proto}: {explain(nodes, at, d, port, proto)}")
    return failures


def test_the_model_spreads_pods_over_both_nodes():
    same = [(s, d) for s in nc.PODS for d in nc.PODS if s != d and POD_NODE[s] == POD_NODE[d]]
    cross = [(s, d) for s in nc.PODS for d in nc.PODS if POD_NODE[s] != POD_NODE[d]]
    assert same and cross
    for p in nc.PODS:
        assert IPS[p].startswith(NODE_CIDRS[POD_NODE[p]].rsplit(".", 2)[0])


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_compiled_tables_give_the_expected_matrices(case):
    m = nc.model(IPS, POD_NODE)
    namespaces, pods = m.namespaces, m.pods
    policies: list[dict] = []
    incremental: dict[str, Node] | None = None
    failures: list[str] = []
    for desc, changes, expected in case.states():
        nc.apply_changes(namespaces, pods, policies, changes)
        if incremental is None:  # the first state is loaded by full(): one check covers both
            incremental = fresh_nodes(namespaces, pods, policies)
            failures += check(incremental, pods, expected, f"[{desc}]")
            continue
        for change in changes:
            apply(incremental, change, namespaces, pods)
        for node in incremental.values():
            node.sync()
        failures += check(incremental, pods, expected, f"[{desc}, incremental]")
        failures += check(fresh_nodes(namespaces, pods, policies), pods, expected, f"[{desc}, full]")
    assert not failures, f"{case.name} ({case.source}):\n" + "\n".join(failures)


def test_no_change_means_no_text():
    m = nc.model(IPS, POD_NODE)
    nodes = fresh_nodes(m.namespaces, m.pods, nc.case("default-deny-all").policies)
    for node in nodes.values():
        assert node.compiler.changes() == ""


# -- beyond the matrices: the compiled tables against the oracle ---------------------------------

OUTSIDE = "192.0.2.10"
EXTRA_PROBES = [(82, "TCP"), (80, "SCTP"), (53, "UDP")]
BRIDGE = {n: c.rsplit(".", 1)[0] + ".1" for n, c in NODE_CIDRS.items()}

# Policies whose effect shows only on traffic to or from nodes and outside hosts.
X_NS = {"namespaces": nc.labels(ns="x")}
ORACLE_SCENARIOS: list[tuple[str, list[dict]]] = [
    ("anp-nodes-and-networks", [nc.anp("nodes", 3, X_NS, egress=[
        nc.admin_rule("no-worker2", "Deny", [{"nodes": nc.labels(**{"kubernetes.io/hostname": nc.NODES[1]})}],
                      direction="egress"),
        nc.admin_rule("doc-net", "Allow", [{"networks": ["192.0.2.0/24"]}], direction="egress"),
        nc.admin_rule("rest", "Deny", [{"networks": ["0.0.0.0/0"]}], direction="egress", ports=[
            {"portNumber": {"protocol": "TCP", "port": 80}}, {"portRange": {"protocol": "UDP", "start": 53, "end": 81}}])])]),
    ("banp-default-deny-with-np-override", [
        nc.banp({"namespaces": {}}, ingress=[nc.admin_rule("deny", "Deny", [{"namespaces": {}}], direction="ingress")],
                egress=[nc.admin_rule("no-outside", "Deny", [{"networks": ["192.0.2.0/24"]}], direction="egress")]),
        nc.netpol("open-y", "y", {}, ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["192.0.2.0/25"]}}]}],
                  egress=[{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [nc.port(None, "SCTP")]}])]),
    ("np-node-cidrs", [nc.netpol("to-nodes", "z", {}, egress=[{"to": [{"ipBlock": {"cidr": "172.30.0.0/24",
                                                                                    "except": ["172.30.0.12/32"]}}]}],
                                 ingress=[{"from": [{"ipBlock": {"cidr": "172.30.0.12/32"}}]}])]),
]


def endpoints(pods: list[dict]) -> list[tuple[str, object, str | None]]:
    """(label, oracle peer, node the address lives on or None for an outside host)."""
    out: list[tuple[str, object, str | None]] = [
        (f"{p['metadata']['namespace']}/{p['metadata']['name']}", p, p["spec"]["nodeName"]) for p in pods]
    out += [(f"node {n}", ip, n) for n, ip in NODE_IPS.items()] + [("outside", OUTSIDE, None)]
    return out


def traced(nodes: dict[str, Node], src, dst, port: int, proto: str) -> bool:
    """Through every node table the packet crosses: the source's node (if it is one of ours), then
    the destination's (when it is another)."""
    (_, speer, snode), (_, dpeer, dnode) = src, dst
    sip = speer if isinstance(speer, str) else speer["status"]["podIP"]
    dip = dpeer if isinstance(dpeer, str) else dpeer["status"]["podIP"]
    for n in [x for x in dict.fromkeys((snode, dnode)) if x is not None]:
        v = policy_tracer.trace(nodes[n].table(), sip, dip, port, proto.lower(), local_node_ips=(NODE_IPS[n], BRIDGE[n]))
        if v != "accept":
            return False
    return True


def disagreements(nodes: dict[str, Node], objs, pods: list[dict], where: str) -> list[str]:
    from knet.policy import oracle

    eps = endpoints(pods)
    out = []
    for src in eps:
        for dst in eps:
            if src is dst or (isinstance(src[1], str) and isinstance(dst[1], str)):
                continue
            both_pods = not isinstance(src[1], str) and not isinstance(dst[1], str)
            for port, proto in (EXTRA_PROBES if both_pods else list(nc.PROBES) + EXTRA_PROBES):
                want = oracle.verdict(objs, src[1], dst[1], port, proto)
                if traced(nodes, src, dst, port, proto) != want.allowed:
                    out.append(f"{where} {src[0]} -> {dst[0]} {port}/{proto}: oracle says "
                               f"{'allowed' if want.allowed else 'denied'} ({want.reason})")
    return out


def oracle_objects(namespaces, pods, policies):
    from knet.policy.oracle import Objects

    return Objects(pods=pods, namespaces=namespaces, nodes=[node_obj(n) for n in nc.NODES],
                   netpols=[p for p in policies if p["kind"] == "NetworkPolicy"],
                   anps=[p for p in policies if p["kind"] == "AdminNetworkPolicy"],
                   banp=next((p for p in policies if p["kind"] == "BaselineAdminNetworkPolicy"), None))


SCENARIOS = [(c.name, c) for c in ALL] + [(name, nc.Case(name, pols, [], {})) for name, pols in ORACLE_SCENARIOS]


@pytest.mark.parametrize("case", [c for _, c in SCENARIOS], ids=[n for n, _ in SCENARIOS])
def test_compiled_tables_agree_with_the_oracle_on_other_ports_protocols_nodes_and_outside(case):
    """Ports nobody serves (82), SCTP, DNS's 53, node addresses and an outside host: no upstream
    matrix covers them, so here the oracle is the yardstick."""
    m = nc.model(IPS, POD_NODE)
    namespaces, pods = m.namespaces, m.pods
    policies: list[dict] = []
    nodes: dict[str, Node] | None = None
    failures: list[str] = []
    for desc, changes, _ in case.states():
        nc.apply_changes(namespaces, pods, policies, changes)
        if nodes is None:
            nodes = fresh_nodes(namespaces, pods, policies)
        else:
            for change in changes:
                apply(nodes, change, namespaces, pods)
            for node in nodes.values():
                node.sync()
        failures += disagreements(nodes, oracle_objects(namespaces, pods, policies), pods, f"[{desc}]")
    assert not failures, f"{case.name}:\n" + "\n".join(failures[:40])
