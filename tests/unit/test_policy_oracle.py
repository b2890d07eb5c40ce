"""knet.policy.oracle against upstream's cases and against each rule of the semantics.

The first test runs every case of knet.harness.netpol_cases (upstream's network_policy.go,
cyclonus-style extras, network-policy-api conformance) through the oracle: its matrix must be the
one upstream's reachability edits give, in every state of the case and for every probe. The rest
pin one rule each, with the reason the oracle gives, on a few hand-made pods.
"""

from __future__ import annotations

import pytest

from knet.harness import netpol_cases as nc
from knet.policy import isolation, oracle
from knet.policy.oracle import Objects, verdict

IPS = nc.default_ips()
NODES = nc.default_nodes()


def objects_of(namespaces: list[dict], pods: list[dict], policies: list[dict], nodes=()) -> Objects:
    return Objects(pods=pods, namespaces=namespaces, nodes=list(nodes),
                   netpols=[p for p in policies if p["kind"] == "NetworkPolicy"],
                   anps=[p for p in policies if p["kind"] == "AdminNetworkPolicy"],
                   banp=next((p for p in policies if p["kind"] == "BaselineAdminNetworkPolicy"), None))


def case_states(case: nc.Case):
    """Yield (state description, Objects, expected) after each state's changes."""
    m = nc.model(IPS, NODES)
    policies: list[dict] = []
    for desc, changes, expected in case.states():
        nc.apply_changes(m.namespaces, m.pods, policies, changes)
        yield desc, objects_of(m.namespaces, m.pods, policies), expected


ALL = nc.all_cases(IPS)


def test_the_cases_cover_upstream():
    names = [c.name for c in ALL]
    assert len(names) == len(set(names))
    upstream = [c for c in ALL if c.source.startswith(nc.NP_GO)]
    admin = [c for c in ALL if c.source.startswith(nc.ANP_CONF)]
    assert len(upstream) >= 40 and len(admin) >= 6
    assert sum(len(c.steps) for c in ALL) >= 15
    for c in ALL:
        assert c.probes and set(c.probes) == set(c.expected), c.name
        for _, _, expected in c.states():
            assert all(set(m.froms) == set(nc.PODS) for m in expected.values()), c.name


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_oracle_gives_every_expected_matrix(case):
    for desc, objs, expected in case_states(case):
        for (port, proto), want in expected.items():
            got = oracle.matrix(objs, port, proto)
            diffs = want.differences(got)
            reasons = [f"{d}: {verdict(objs, objs.pods[nc.PODS.index(d.src)], objs.pods[nc.PODS.index(d.dst)], port, proto).reason}"
                       for d in diffs]
            assert not diffs, f"{case.name} [{desc}] {port}/{proto}:\n" + "\n".join(reasons)


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_oracle_isolation_agrees_with_knet_policy_isolation(case):
    """Two independent readings of 'which NetworkPolicies isolate this pod' must agree."""
    for _desc, objs, _ in case_states(case):
        nss = {n["metadata"]["name"]: n for n in objs.namespaces}
        for p in objs.pods:
            theirs = isolation.isolation(p, nss[p["metadata"]["namespace"]], objs.netpols, objs.anps, objs.banp)
            for direction in ("Ingress", "Egress"):
                mine = [f"{n['metadata']['namespace']}/{n['metadata']['name']}"
                        for n in oracle.isolated_by(objs, p, direction)]
                assert sorted(mine) == sorted(theirs[direction]), (case.name, p["metadata"], direction)


# -- targeted rules ---------------------------------------------------------------------------

def world(*policies: dict, nodes=(), extra_pods=()) -> Objects:
    m = nc.model(IPS, NODES)
    return objects_of(m.namespaces, m.pods + list(extra_pods), list(policies), nodes)


def P(objs: Objects, name: str) -> dict:
    ns, _, n = name.partition("/")
    return next(p for p in objs.pods if (p["metadata"]["namespace"], p["metadata"]["name"]) == (ns, n))


def ok(objs, src, dst, port=80, proto="TCP"):
    s = P(objs, src) if isinstance(src, str) and "/" in src else src
    d = P(objs, dst) if isinstance(dst, str) and "/" in dst else dst
    return verdict(objs, s, d, port, proto)


def test_no_policy_allows_and_says_so():
    v = ok(world(), "x/a", "y/b")
    assert v.allowed
    assert v.reason == "egress allowed: no policy applies to x/a; ingress allowed: no policy applies to y/b"


def test_isolation_is_per_direction_and_reason_names_the_policy():
    w = world(nc.netpol("deny-in", "x", nc.labels(pod="a"), ingress=[]))
    v = ok(w, "y/a", "x/a")
    assert not v.allowed and v.reason == "ingress denied by x/deny-in (isolated, no ingress rule allows it)"
    assert ok(w, "x/a", "y/a").allowed  # its egress is untouched
    w = world(nc.netpol("deny-out", "x", nc.labels(pod="a"), egress=[]))
    assert ok(w, "y/a", "x/a").allowed
    assert ok(w, "x/a", "y/a").reason == "egress denied by x/deny-out (isolated, no egress rule allows it)"


def test_policy_types_default():
    to_x = [{"to": [{"podSelector": {}}]}]
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), egress=to_x, policy_types=[]))
    assert oracle.policy_types(w.netpols[0]) == ["Ingress", "Egress"]
    assert not ok(w, "x/b", "x/a").allowed  # Ingress defaulted in, with no rules
    assert ok(w, "x/a", "x/b").allowed and not ok(w, "x/a", "y/a").allowed
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{}], egress=[], policy_types=[]))
    assert oracle.policy_types(w.netpols[0]) == ["Ingress"]
    assert ok(w, "x/a", "y/a").allowed


def test_a_direction_missing_from_policy_types_ignores_its_rules():
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{}], egress=[], policy_types=["Ingress"]))
    assert ok(w, "x/a", "z/c").allowed


def test_rules_of_all_selecting_policies_add_up():
    w = world(nc.netpol("from-b", "x", nc.labels(pod="a"), ingress=[{"from": [{"podSelector": nc.labels(pod="b")}]}]),
              nc.netpol("from-c", "x", {}, ingress=[{"from": [{"podSelector": nc.labels(pod="c")}]}]))
    assert ok(w, "x/b", "x/a").reason.endswith("; ingress allowed by x/from-b ingress rule 0")
    assert ok(w, "x/c", "x/a").reason.endswith("ingress allowed by x/from-c ingress rule 0")
    v = ok(w, "y/a", "x/a")
    assert not v.allowed and v.reason == "ingress denied by x/from-b, x/from-c (isolated, no ingress rule allows it)"


def test_empty_versus_missing_lists():
    base = nc.netpol("p", "x", nc.labels(pod="a"), ingress=[])
    assert not ok(world(base), "y/a", "x/a").allowed  # ingress: [] denies all
    missing = nc.netpol("p", "x", nc.labels(pod="a"), policy_types=["Ingress"])
    assert "ingress" not in missing["spec"] and not ok(world(missing), "y/a", "x/a").allowed
    assert ok(world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{}])), "y/a", "x/a").allowed
    assert ok(world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"from": [], "ports": []}])), "y/a", "x/a").allowed


@pytest.mark.parametrize("peer, allowed_from", [
    ({"podSelector": nc.labels(pod="b")}, {"x/b"}),
    ({"podSelector": {}}, {"x/a", "x/b", "x/c"}),
    ({"namespaceSelector": nc.labels(ns="y")}, {"y/a", "y/b", "y/c"}),
    ({"namespaceSelector": {}}, set(nc.PODS)),
    ({"namespaceSelector": nc.labels(ns="y"), "podSelector": nc.labels(pod="b")}, {"y/b"}),
    ({"namespaceSelector": {}, "podSelector": nc.labels(pod="c")}, {"x/c", "y/c", "z/c"}),
    ({"namespaceSelector": nc.expr("ns", "NotIn", "x", "y")}, {"z/a", "z/b", "z/c"}),
    ({"podSelector": nc.expr("missing", "DoesNotExist")}, {"x/a", "x/b", "x/c"}),
    ({"podSelector": nc.expr("pod", "Exists")}, {"x/a", "x/b", "x/c"}),
    ({"podSelector": nc.expr("missing", "NotIn", "v")}, {"x/a", "x/b", "x/c"}),
    ({"podSelector": nc.expr("missing", "In", "v")}, set()),
])
def test_peer_selectors(peer, allowed_from):
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"from": [peer]}]))
    got = {s for s in nc.PODS if s != "x/a" and ok(w, s, "x/a").allowed}
    assert got == allowed_from - {"x/a"}


def test_separate_peers_or():
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"from": [
        {"namespaceSelector": nc.labels(ns="y")}, {"podSelector": nc.labels(pod="b")}]}]))
    assert {s for s in nc.PODS if ok(w, s, "x/a").allowed} == {"x/b", "y/a", "y/b", "y/c"}


def test_ip_block_with_except_on_pod_ips_and_outside_hosts():
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"from": [
        {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{IPS['y/b']}/32"]}},
        {"ipBlock": {"cidr": "192.0.2.0/24"}}]}]))
    assert ok(w, "y/a", "x/a").allowed
    assert not ok(w, "y/b", "x/a").allowed
    assert ok(w, "192.0.2.7", P(w, "x/a")).allowed
    assert not ok(w, "198.51.100.1", P(w, "x/a")).allowed
    # An IP string that is a pod's IP is that pod.
    assert not ok(w, IPS["y/b"], P(w, "x/a")).allowed


def test_selectors_never_match_an_outside_ip_but_empty_from_does():
    sel = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"from": [{"namespaceSelector": {}}]}]))
    assert not ok(sel, "198.51.100.1", P(sel, "x/a")).allowed
    every = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"ports": [nc.port(80)]}]))
    assert ok(every, "198.51.100.1", P(every, "x/a")).allowed
    out = world(nc.netpol("p", "x", nc.labels(pod="a"), egress=[{"to": [{"podSelector": {}}]}]))
    assert not ok(out, P(out, "x/a"), "198.51.100.1").allowed


def test_ports_number_protocol_default_and_range():
    def one(entry, port, proto):
        w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"ports": [entry]}]))
        return ok(w, "y/a", "x/a", port, proto).allowed
    assert one(nc.port(80), 80, "TCP") and not one(nc.port(80), 80, "UDP") and not one(nc.port(80), 81, "TCP")
    assert one(nc.port(None, "UDP"), 81, "UDP") and not one(nc.port(None, "UDP"), 81, "TCP")
    assert one(nc.port(53, "TCP", 80), 53, "TCP") and one(nc.port(53, "TCP", 80), 80, "TCP")
    assert not one(nc.port(53, "TCP", 80), 81, "TCP") and not one(nc.port(53, "TCP", 80), 52, "TCP")
    assert not one(nc.port(80, "SCTP"), 80, "TCP") and not one(nc.port(80, "SCTP"), 80, "UDP")
    assert one(nc.port(80, "SCTP"), 80, "SCTP")


def test_named_ports_resolve_on_the_destination_pod():
    # Ingress: the selected pod's ports; name and protocol must both match.
    def one(entry, port, proto):
        w = world(nc.netpol("p", "x", nc.labels(pod="a"), ingress=[{"ports": [entry]}]))
        return ok(w, "y/a", "x/a", port, proto).allowed
    assert one(nc.port("serve-81-udp", "UDP"), 81, "UDP")
    assert not one(nc.port("serve-81-udp", "UDP"), 80, "UDP")
    assert not one(nc.port("serve-81-udp"), 81, "UDP")  # protocol defaults to TCP: no such TCP port
    assert not one(nc.port("serve-81-udp", "TCP"), 81, "TCP")
    # Egress: the peer's ports. A pod serving 8080 as "serve-80-tcp" is reached on 8080, not 80.
    odd = nc.pod("z", "odd", ip="10.244.9.9", node=nc.NODES[0], labels={"odd": "1"})
    odd["spec"]["containers"] = [{"name": "c", "image": nc.IMAGE,
                                  "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "serve-80-tcp"}]}]
    w = world(nc.netpol("p", "x", nc.labels(pod="a"), egress=[{"ports": [nc.port("serve-80-tcp")]}]), extra_pods=[odd])
    assert ok(w, "x/a", odd, 8080).allowed and not ok(w, "x/a", odd, 80).allowed
    assert ok(w, "x/a", "y/a", 80).allowed
    assert not ok(w, P(w, "x/a"), "198.51.100.1", 80).allowed  # no pod, no named port


def test_both_ends_must_allow():
    w = world(nc.netpol("only-y-a", "x", nc.labels(pod="a"),
                        egress=[{"to": [{"namespaceSelector": nc.labels(ns="y"), "podSelector": nc.labels(pod="a")}]}]),
              nc.netpol("from-x-a", "y", {}, ingress=[{"from": [{"namespaceSelector": nc.labels(ns="x"),
                                                                  "podSelector": nc.labels(pod="a")}]}]))
    assert ok(w, "x/a", "y/a").allowed
    assert ok(w, "x/a", "y/b").reason.startswith("egress denied by x/only-y-a")
    assert ok(w, "x/b", "y/a").reason == "ingress denied by y/from-x-a (isolated, no ingress rule allows it)"


def node(name: str, ip: str, cidr: str, labels=None) -> dict:
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"podCIDR": cidr}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


NODE_OBJS = [node(nc.NODES[0], "172.30.0.11", "10.244.1.0/24", {"role": "a"}),
             node(nc.NODES[1], "172.30.0.12", "10.244.2.0/24", {"role": "b"})]


def test_own_node_is_always_allowed_other_nodes_are_judged():
    w = world(nc.netpol("deny-all", "x", {}, ingress=[], egress=[]), nodes=NODE_OBJS)
    xa = P(w, "x/a")  # on NODES[0] (10.244.1.0/24)
    assert ok(w, "172.30.0.11", xa).reason.startswith("from x/a's own node")
    assert ok(w, "10.244.1.1", xa).allowed  # the node's bridge address
    assert not ok(w, "172.30.0.12", xa).allowed
    assert not ok(w, xa, "172.30.0.11").allowed  # egress to the node is judged


def test_host_network_pods_are_never_selected_and_count_as_their_node():
    hn = nc.pod("x", "hostnet", ip="172.30.0.12", node=nc.NODES[1], labels={"pod": "a"})
    hn["spec"]["hostNetwork"] = True
    w = world(nc.netpol("deny-a", "x", nc.labels(pod="a"), ingress=[], egress=[]),
              nc.netpol("from-a", "y", {}, ingress=[{"from": [{"namespaceSelector": {}, "podSelector": nc.labels(pod="a")}]}]),
              nodes=NODE_OBJS, extra_pods=[hn])
    assert ok(w, "y/b", hn).reason == "egress allowed: no policy applies to y/b"  # hn is just an IP
    assert oracle.isolated_by(w, hn, "Ingress") == []
    assert not ok(w, hn, "y/b").allowed  # its pod=a label does not count: y/b (NODES[0]) sees a node IP
    assert ok(w, hn, "x/b").reason.startswith("from x/b's own node")  # x/b is on hn's node, NODES[1]


# -- AdminNetworkPolicy / BaselineAdminNetworkPolicy ------------------------------------------------

def rule(name, action, peers, direction="ingress", ports=None):
    return nc.admin_rule(name, action, peers, direction=direction, ports=ports)


ALL_NS = [{"namespaces": {}}]
X_NS = {"namespaces": nc.labels(ns="x")}


def test_anp_priority_lower_first_then_name():
    w = world(nc.anp("b-allow", 10, X_NS, ingress=[rule("allow", "Allow", ALL_NS)]),
              nc.anp("a-deny", 10, X_NS, ingress=[rule("deny", "Deny", ALL_NS)]),
              nc.anp("first", 5, X_NS, ingress=[rule("skip-y", "Allow", [{"namespaces": nc.labels(ns="y")}])]))
    assert ok(w, "y/a", "x/a").reason.endswith("; ingress allowed by AdminNetworkPolicy first ingress rule 0 (skip-y)")
    assert ok(w, "z/a", "x/a").reason == "ingress denied by AdminNetworkPolicy a-deny ingress rule 0 (deny)"


def test_anp_allow_and_deny_are_final_over_networkpolicy():
    w = world(nc.anp("allow-z", 1, X_NS, ingress=[rule("z", "Allow", [{"namespaces": nc.labels(ns="z")}])]),
              nc.anp("deny-y", 2, X_NS, ingress=[rule("y", "Deny", [{"namespaces": nc.labels(ns="y")}])]),
              nc.netpol("deny-all", "x", {}, ingress=[]),
              nc.netpol("allow-y", "x", {}, ingress=[{"from": [{"namespaceSelector": nc.labels(ns="y")}]}]))
    assert ok(w, "z/a", "x/a").allowed
    assert not ok(w, "y/a", "x/a").allowed
    assert ok(w, "x/b", "x/a").reason == "ingress denied by x/allow-y, x/deny-all (isolated, no ingress rule allows it)"


def test_anp_pass_skips_later_anps_and_goes_to_np_then_banp():
    anps = [nc.anp("pass", 1, X_NS, ingress=[rule("p", "Pass", ALL_NS)]),
            nc.anp("deny", 2, X_NS, ingress=[rule("d", "Deny", ALL_NS)])]
    b = nc.banp(X_NS, ingress=[rule("no-y", "Deny", [{"namespaces": nc.labels(ns="y")}])])
    v = ok(world(*anps, b), "y/a", "x/a")
    assert not v.allowed
    assert v.reason == ("ingress passed by AdminNetworkPolicy pass ingress rule 0 (p), then ingress denied by "
                        "BaselineAdminNetworkPolicy default ingress rule 0 (no-y)")
    v = ok(world(*anps, b, nc.netpol("allow-y", "x", {}, ingress=[{"from": [{"namespaceSelector": nc.labels(ns="y")}]}])),
           "y/a", "x/a")
    assert v.allowed and v.reason.endswith("then ingress allowed by x/allow-y ingress rule 0")
    assert ok(world(*anps, b), "z/a", "x/a").allowed  # passed, no NP, BANP has no match


def test_banp_only_when_no_networkpolicy_isolates_and_only_named_default():
    b = nc.banp(X_NS, ingress=[rule("deny", "Deny", ALL_NS)])
    assert not ok(world(b), "y/a", "x/a").allowed
    assert ok(world(b, nc.netpol("all", "x", {}, ingress=[{}])), "y/a", "x/a").allowed
    # An egress-only NetworkPolicy does not isolate ingress: the BANP still decides ingress.
    assert not ok(world(b, nc.netpol("out", "x", {}, egress=[{}])), "y/a", "x/a").allowed
    other = nc.banp(X_NS, ingress=[rule("deny", "Deny", ALL_NS)])
    other["metadata"]["name"] = "not-default"
    assert ok(world(other), "y/a", "x/a").allowed


def test_anp_rule_order_and_ports():
    w = world(nc.anp("ports", 1, X_NS, ingress=[
        rule("some", "Allow", ALL_NS, ports=[{"portNumber": {"protocol": "UDP", "port": 80}},
                                             {"namedPort": "serve-81-tcp"},
                                             {"portRange": {"start": 90, "end": 100}}]),
        rule("rest", "Deny", ALL_NS)]))
    assert ok(w, "y/a", "x/a", 80, "UDP").allowed and ok(w, "y/a", "x/a", 81, "TCP").allowed
    assert not ok(w, "y/a", "x/a", 80, "TCP").allowed and not ok(w, "y/a", "x/a", 81, "UDP").allowed
    assert ok(w, "y/a", "x/a", 100, "TCP").allowed and not ok(w, "y/a", "x/a", 100, "UDP").allowed


def test_anp_subject_pods_and_egress_peers_networks_and_nodes():
    sub = {"pods": {"namespaceSelector": nc.labels(ns="x"), "podSelector": nc.labels(pod="a")}}
    w = world(nc.anp("egress", 1, sub, egress=[
        rule("no-node-b", "Deny", [{"nodes": nc.labels(role="b")}], "egress"),
        rule("no-y-b", "Deny", [{"networks": [f"{IPS['y/b']}/32"]}], "egress"),
        rule("no-z", "Deny", [{"pods": {"namespaceSelector": nc.labels(ns="z"), "podSelector": {}}}], "egress")]),
        nodes=NODE_OBJS)
    xa = P(w, "x/a")
    assert ok(w, xa, "172.30.0.12").reason == "egress denied by AdminNetworkPolicy egress egress rule 0 (no-node-b)"
    assert ok(w, xa, "172.30.0.11").allowed
    assert not ok(w, "x/a", "y/b").allowed and ok(w, "x/a", "y/a").allowed
    assert not ok(w, "x/a", "z/c").allowed
    assert ok(w, "x/b", "z/c").allowed  # not a subject
    # An ANP with no rules in a direction has no effect there: no implicit isolation.
    assert ok(w, "z/c", "x/a").allowed


def test_unknown_protocol_is_an_error():
    with pytest.raises(ValueError, match="protocol"):
        ok(world(), "x/a", "x/b", 80, "ICMP")


def test_objects_of_sorts_by_kind():
    m = nc.model(IPS, NODES)
    objs = Objects.of(m.namespaces + m.pods + [nc.netpol("p", "x", {}, ingress=[]), nc.banp(X_NS)])
    assert len(objs.pods) == 9 and len(objs.namespaces) == 3 and len(objs.netpols) == 1 and objs.banp
    with pytest.raises(ValueError, match="kind"):
        Objects.of([{"kind": "Service"}])
