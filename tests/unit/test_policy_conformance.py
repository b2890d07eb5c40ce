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
