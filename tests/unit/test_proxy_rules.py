"""The proxy's ruleset function, traced packet by packet (as kube-proxy's
nftables tests do) over what the nftables fake received, and loaded into a
real nftables in namespaces of the test's own."""

import ipaddress
import re
from fractions import Fraction

import pytest

from knet.net.nft import NftError
from knet.net.nftfake import FakeNft, FakeTable
from knet.proxy.model import Endpoint, ServicePort, service_ports
from knet.proxy.rules import (
    LADDER_MAX,
    TABLE,
    Chain,
    Element,
    Rule,
    Table,
    base,
    desired,
    full,
    partial,
    per_service,
    ruleset,
)

SUBNET = "10.244.0.0/16"


def svc(name, ip, ports, **spec):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": ports, **spec}}


def eps(name, port, *endpoints, port_name=""):
    return {"metadata": {"namespace": "default", "name": name + "-x", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": cond} for ip, cond in endpoints]}


READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}


def loaded(objs) -> FakeTable:
    """The table as nftables would hold it after a full sync of `objs`: rendered as text and sent to the fake."""
    fake = FakeNft()
    fake.run(full(objs))
    return fake.table("ip", TABLE)


def trace(objs, saddr, daddr, dport, proto="tcp", local=(), known=()):
    """`trace_table` over the table a full sync of `objs` makes."""
    return trace_table(loaded(objs), saddr, daddr, dport, proto, local, known)


def trace_table(table: FakeTable, saddr, daddr, dport, proto="tcp", local=(), known=()):
    """Follow a new connection through the table's nat and filter hooks, as
    the kernel would; every branch numgen can take is followed with its
    probability. Returns {outcome: probability}, outcome one of
    ("dnat", "ip:port", masqueraded), ("drop",), ("reject",), ("accept",).
    `local` are this node's addresses; `known` affinity sets holding saddr."""
    chains = {name: c.rules for name, c in table.chains.items()}
    maps = {name: s.elements for name, s in table.sets.items()}
    src = ipaddress.ip_address(saddr)
    out: dict[tuple, Fraction] = {}

    def saddr_in(spec: str) -> bool:
        return any(src in ipaddress.ip_network(p.strip()) for p in spec.strip("{} ").split(","))

    def run(chain: str, p: Fraction, mark: bool) -> tuple[str, bool] | None:
        """Evaluate a chain; returns a terminal verdict text or None (fell off the end / return)."""
        for text in chains[chain]:
            text = re.sub(r' comment "[^"]*"$', "", text)  # knet trace's names, not a match
            if m := re.fullmatch(r"numgen random mod (\d+) == 0 (.*)", text):
                k = int(m[1])  # 1 in k takes this branch, the rest go on down the chain
                run_action(m[2], p / k, mark)
                p = p * (k - 1) / k
                continue
            if m := re.fullmatch(r"numgen random mod (\d+) vmap \{ (.*) \}", text):
                for entry in m[2].split(", "):
                    run_action(entry.split(" : ")[1], p / int(m[1]), mark)
                return "done", mark
            if m := re.fullmatch(r"ip saddr (!= )?(\{[^}]*\}|\S+) (.*)", text):
                hit = (m[2].startswith("@") and m[2][1:] in known) if m[2].startswith("@") else saddr_in(m[2])
                if hit == bool(m[1]):  # the match fails
                    continue
                text = m[3]
            elif m := re.fullmatch(r"fib saddr type local (.*)", text):
                if saddr not in local:
                    continue
                text = m[1]
            elif text.startswith("update @"):
                continue
            if m := re.fullmatch(r"meta mark set meta mark \| 0x4000 (.*)", text):
                mark, text = True, m[1]
            if text == "jump mark-for-masquerade":
                mark = True
                continue
            r = run_action(text, p, mark)
            if r is not None:
                return r
        return None

    def run_action(text: str, p: Fraction, mark: bool):
        if m := re.fullmatch(r"meta l4proto (\w+) dnat to (\S+)", text):
            assert m[1] == proto
            ep_ip = m[2].rsplit(":", 1)[0]
            hairpin = ep_ip == saddr and f"{saddr} . {saddr}" in maps.get("hairpin-endpoints", {})
            out[("dnat", m[2], mark or hairpin)] = out.get(("dnat", m[2], mark or hairpin), 0) + p
            return "done", mark
        if m := re.fullmatch(r"goto (\S+)", text):
            if m[1] == "reject-chain":
                out[("reject",)] = out.get(("reject",), 0) + p
                return "done", mark
            r = run(m[1], p, mark)
            return r or ("done", mark)
        if text == "drop":
            out[("drop",)] = out.get(("drop",), 0) + p
            return "done", mark
        raise AssertionError(f"the tracer does not know: {text}")

    for key, table in ((f"{daddr} . {proto} . {dport}", "service-ips"),
                       (f"{proto} . {dport}", "service-nodeports" if daddr in local else None)):
        if table and key in maps.get(table, {}):
            run_action(maps[table][key], Fraction(1), False)
            return out
    for key, table in ((f"{daddr} . {proto} . {dport}", "no-endpoint-services"),
                       (f"{proto} . {dport}", "no-endpoint-nodeports" if daddr in local else None)):
        if table and key in maps.get(table, {}):
            run_action(maps[table][key], Fraction(1), False)
            return out
    return {("accept",): Fraction(1)}


def test_ready_endpoints_win_and_terminating_serve_only_when_none_is_ready():
    ports = service_ports([svc("a", "10.96.0.5", [{"port": 80}])],
                          [eps("a", 8080, ("10.244.1.2", READY), ("10.244.1.3", TERMINATING))])
    assert ports[0].endpoints == (Endpoint("10.244.1.2", 8080),)
    ports = service_ports([svc("a", "10.96.0.5", [{"port": 80}])], [eps("a", 8080, ("10.244.1.3", TERMINATING))])
    assert ports[0].endpoints == (Endpoint("10.244.1.3", 8080),)


def test_headless_and_external_name_get_no_rules():
    ports = service_ports([svc("h", "None", [{"port": 80}]),
                           {"metadata": {"namespace": "default", "name": "x"},
                            "spec": {"type": "ExternalName", "externalName": "example.com"}}], [])
    assert ports == []


def test_one_map_lookup_per_packet_whatever_the_number_of_services():
    services = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 200)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 200)]
    objs = desired(service_ports(services, slices), SUBNET)
    assert len([o for o in objs if isinstance(o, Element) and o.map == "service-ips"]) == 199
    assert [o.text for o in objs if isinstance(o, Rule) and o.chain == "services"] == [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local meta l4proto . th dport vmap @service-nodeports"]  # no rule per Service
    assert trace(objs, "10.244.5.5", "10.96.1.77", 80) == {("dnat", "10.244.2.77:8080", False): 1}
    assert trace(objs, "10.244.5.5", "10.96.1.77", 81) == {("accept",): 1}  # not a Service port


def test_endpoints_get_an_equal_share_and_outside_clients_are_masqueraded():
    three = [("10.244.1.2", READY), ("10.244.1.3", READY), ("10.244.2.4", READY)]
    objs = desired(service_ports([svc("a", "10.96.0.5", [{"port": 80}])], [eps("a", 8080, *three)]), SUBNET)
    from_pod = trace(objs, "10.244.3.3", "10.96.0.5", 80)
    assert from_pod == {("dnat", f"{ip}:8080", False): Fraction(1, 3) for ip, _ in three}
    from_node = trace(objs, "192.168.56.11", "10.96.0.5", 80)
    assert set(from_node) == {("dnat", f"{ip}:8080", True) for ip, _ in three}
    hairpin = trace(objs, "10.244.1.3", "10.96.0.5", 80)  # a pod reaching itself is masqueraded
    assert hairpin[("dnat", "10.244.1.3:8080", True)] == Fraction(1, 3)
    assert hairpin[("dnat", "10.244.1.2:8080", False)] == Fraction(1, 3)


def test_many_endpoints_use_one_verdict_map_and_stay_uniform():
    many = [(f"10.244.1.{i}", READY) for i in range(1, LADDER_MAX + 3)]
    objs = desired(service_ports([svc("a", "10.96.0.5", [{"port": 80}])], [eps("a", 8080, *many)]), SUBNET)
    picks = [o.text for o in objs if isinstance(o, Rule) and "numgen" in o.text]
    assert len(picks) == 1 and picks[0].startswith(f"numgen random mod {LADDER_MAX + 2} vmap")
    assert set(trace(objs, "10.244.3.3", "10.96.0.5", 80).values()) == {Fraction(1, LADDER_MAX + 2)}


def test_no_endpoints_reject_and_node_ports_are_mapped():
    objs = desired(service_ports([svc("e", "10.96.0.9", [{"port": 80, "nodePort": 30001}], type="NodePort")], []),
                   SUBNET)
    assert trace(objs, "10.244.3.3", "10.96.0.9", 80) == {("reject",): 1}
    assert trace(objs, "192.168.56.1", "192.168.56.11", 30001, local=("192.168.56.11",)) == {("reject",): 1}
    assert trace(objs, "192.168.56.1", "192.168.56.12", 30001, local=("192.168.56.11",)) == {("accept",): 1}
    assert not [o for o in objs if isinstance(o, Element) and o.map == "service-ips"]


def test_external_traffic_policy_local_keeps_the_client_and_uses_local_endpoints():
    sp = ServicePort("default", "web", "", "tcp", "10.96.0.2", 80, 30080, (),
                     (Endpoint("10.244.1.2", 80, "w1"), Endpoint("10.244.2.2", 80, "w2")), ("192.168.56.200",),
                     etp_local=True)
    me = ("192.168.56.11",)
    on_w1 = desired([sp], SUBNET, "w1")
    assert trace(on_w1, "192.168.56.1", "192.168.56.11", 30080, local=me) == {("dnat", "10.244.1.2:80", False): 1}
    assert trace(on_w1, "192.168.56.1", "192.168.56.200", 80, local=me) == {("dnat", "10.244.1.2:80", False): 1}
    # From a pod, the cluster chain: every endpoint.
    assert len(trace(on_w1, "10.244.9.9", "192.168.56.200", 80)) == 2
    # From the node itself: masqueraded, and every endpoint (kube-proxy's "local traffic" rule).
    assert set(trace(on_w1, "192.168.56.11", "192.168.56.11", 30080, local=me)) == {
        ("dnat", "10.244.1.2:80", True), ("dnat", "10.244.2.2:80", True)}
    on_w3 = desired([sp], SUBNET, "w3")  # no local endpoint: external traffic is dropped
    assert trace(on_w3, "192.168.56.1", "192.168.56.13", 30080, local=("192.168.56.13",)) == {("drop",): 1}


def test_internal_traffic_policy_local_and_source_ranges():
    sp = ServicePort("default", "web", "", "tcp", "10.96.0.2", 80, None, (),
                     (Endpoint("10.244.1.2", 80, "w1"), Endpoint("10.244.2.2", 80, "w2")), ("192.168.56.201",),
                     itp_local=True, source_ranges=("10.0.0.0/8",))
    objs = desired([sp], SUBNET, "w2")
    assert trace(objs, "10.244.9.9", "10.96.0.2", 80) == {("dnat", "10.244.2.2:80", False): 1}
    assert trace(objs, "192.168.56.1", "192.168.56.201", 80) == {("drop",): 1}  # not in the source ranges
    assert set(trace(objs, "10.1.2.3", "192.168.56.201", 80)) == {("dnat", "10.244.2.2:80", True)}


def test_client_ip_affinity_goes_to_the_remembered_endpoint():
    sp = ServicePort("default", "s", "", "tcp", "10.96.0.3", 80, None, (),
                     (Endpoint("10.244.1.2", 80), Endpoint("10.244.2.2", 80)), affinity_seconds=30)
    objs = desired([sp], SUBNET)
    assert len(trace(objs, "10.244.9.9", "10.96.0.3", 80)) == 2  # a new client: either
    sets = [o.name for o in objs if getattr(o, "kind", "") == "set" and o.name.startswith("affinity-")]
    assert len(sets) == 2
    remembered = trace(objs, "10.244.9.9", "10.96.0.3", 80, known=(sets[1],))
    assert remembered == {("dnat", "10.244.2.2:80", False): 1}


def test_partial_sync_counts_and_shared_hairpin_entries():
    svcs = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 50)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 50)]
    before = per_service(service_ports(svcs, slices), SUBNET)
    assert partial(before, before) == []  # nothing changed: no operation
    added = per_service(service_ports(svcs + [svc("new", "10.96.2.1", [{"port": 80}])],
                                      slices + [eps("new", 8080, ("10.244.3.1", READY))]), SUBNET)
    assert len(partial(before, added)) <= 10
    # A second Service on the same endpoint shares its hairpin entry: deleting one keeps it.
    table = Table(before)
    twin = per_service(service_ports([svc("twin", "10.96.2.2", [{"port": 80}])],
                                     [eps("twin", 8080, ("10.244.2.1", READY))]), SUBNET)
    ops = table.update(dict(twin))
    assert not [c for c in ops if "hairpin" in c]
    ops = table.update({k: None for k in twin})
    assert not [c for c in ops if "hairpin" in c]
    s1 = next(iter(before))
    ops = table.update({s1: None})
    assert "delete element ip knet-proxy hairpin-endpoints { 10.244.2.1 . 10.244.2.1 }" in ops


@pytest.mark.root
def test_local_policies_load_into_the_kernel():
    """The generated table is accepted by nftables (a namespace of the test's own)."""
    from knet.harness.cluster import unique_name
    from knet.net import ns
    from knet.net.nft import Nft

    sp = ServicePort("default", "web", "", "tcp", "10.96.0.2", 80, 30080, (),
                     (Endpoint("10.244.1.2", 80, "w1"), Endpoint("10.244.2.2", 80, "w2")), ("192.168.56.200",),
                     etp_local=True, itp_local=True, health_check_node_port=31000)
    many = ServicePort("default", "many", "", "udp", "10.96.0.4", 53, None, (),
                       tuple(Endpoint(f"10.244.3.{i}", 53, "w1") for i in range(1, 30)), etp_local=True)
    sticky = ServicePort("default", "s", "", "tcp", "10.96.0.3", 80, None, (), sp.endpoints,
                         ("192.168.56.201",), source_ranges=("10.0.0.0/8",), affinity_seconds=30)
    name = unique_name("kp")
    ns.create_netns(name)
    try:
        with ns.entered(net=ns.netns_path(name)):
            nft = Nft()
            nft.run(ruleset([sp], SUBNET, "w1"))
            nft.run(ruleset([sp], SUBNET, "w3", nft.list_table("ip", TABLE)))  # no local endpoint: drop rules
            nft.run(ruleset([sp, sticky, many], SUBNET, "w1", nft.list_table("ip", TABLE)))
            assert len([s for s in nft.list_table("ip", TABLE)["set"] if s.startswith("affinity-")]) == 2
            nft.run(ruleset([], SUBNET, "w1", nft.list_table("ip", TABLE)))  # and everything goes again
            left = nft.list_table("ip", TABLE)
            assert left["chain"] == {o.name for o in base() if isinstance(o, Chain)}
            assert left["set"] == {"hairpin-endpoints"}
    finally:
        ns.delete_netns(name)


def _table_lines(name: str) -> set[str]:
    import subprocess
    out = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "table", "ip", TABLE],
                         capture_output=True, text=True).stdout
    # Map elements print on one line in any order: compare them as sets.
    lines = set()
    for line in out.splitlines():
        if "elements = {" in line or line.strip().startswith(("10.", "192.", "tcp", "udp")):
            lines.update(x.strip(" {},") for x in line.replace("elements = {", "").split(","))
        else:
            lines.add(line.strip())
    return {x for x in lines if x}


@pytest.mark.root
def test_partial_sync_matches_a_full_sync_in_the_kernel():
    from knet.harness.cluster import unique_name
    from knet.net import ns
    from knet.net.nft import Nft

    svcs = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 50)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 50)]
    before = per_service(service_ports(svcs, slices), SUBNET)
    added = per_service(service_ports(svcs + [svc("new", "10.96.2.1", [{"port": 80}])],
                                      slices + [eps("new", 8080, ("10.244.3.1", READY))]), SUBNET)
    moved = per_service(service_ports(svcs, [eps("s1", 8080, ("10.244.9.9", READY))] + slices[1:]), SUBNET)
    emptied = per_service(service_ports(svcs, slices[1:]), SUBNET)  # s1 loses its endpoints
    gone = per_service(service_ports(svcs[1:], slices[1:]), SUBNET)  # then s1 is deleted
    sticky = per_service(service_ports(  # s2 turns on ClientIP affinity
        [svc("s2", "10.96.1.2", [{"port": 80}], sessionAffinity="ClientIP")] + svcs[2:], slices[1:]), SUBNET)

    def load(nft, entries):
        return full(Table(entries).objects(), nft.list_table("ip", TABLE))

    a, b = unique_name("kp"), unique_name("kp")
    ns.create_netns(a)
    ns.create_netns(b)
    try:
        for step in (added, moved, emptied, gone, sticky):
            with ns.entered(net=ns.netns_path(a)):
                nft = Nft()
                nft.run(load(nft, before))
                nft.run("\n".join(partial(before, step)) + "\n")
            with ns.entered(net=ns.netns_path(b)):
                nft = Nft()
                nft.run(load(nft, step))
            assert _table_lines(a) == _table_lines(b)
    finally:
        ns.delete_netns(a)
        ns.delete_netns(b)


@pytest.mark.root
def test_sctp_services_load_into_the_kernel():
    """SCTP rules are built and accepted by nftables (the kernel here opens no SCTP socket, so no packet test)."""
    from knet.harness.cluster import unique_name
    from knet.net import ns
    from knet.net.nft import Nft

    sp = ServicePort("default", "sig", "", "sctp", "10.96.0.9", 3868, 30868, (), (Endpoint("10.244.1.2", 3868),))
    objs = desired([sp], SUBNET)
    assert trace(objs, "10.244.3.3", "10.96.0.9", 3868, proto="sctp") == {("dnat", "10.244.1.2:3868", False): 1}
    name = unique_name("kp")
    ns.create_netns(name)
    try:
        with ns.entered(net=ns.netns_path(name)):
            nft = Nft()
            nft.run(full(objs))
            assert sp.chain in nft.list_table("ip", TABLE)["chain"]
    finally:
        ns.delete_netns(name)


def _model(table: FakeTable) -> tuple:
    """A table's content, order-free where nftables' is (map elements), ordered where it is not (rules)."""
    return ({name: (c.hook, tuple(c.rules)) for name, c in table.chains.items()},
            {name: (s.kind, s.spec, s.elements) for name, s in table.sets.items()})


def test_partial_sync_matches_a_full_sync_in_the_fake():
    """Without root: each partial transaction, applied by the fake on top of
    a full sync, leaves what a full sync of the new state leaves."""
    svcs = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 20)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 20)]
    before = per_service(service_ports(svcs, slices), SUBNET)
    steps = [
        per_service(service_ports(svcs + [svc("new", "10.96.2.1", [{"port": 80}])],
                                  slices + [eps("new", 8080, ("10.244.3.1", READY))]), SUBNET),
        per_service(service_ports(svcs, [eps("s1", 8080, ("10.244.9.9", READY))] + slices[1:]), SUBNET),
        per_service(service_ports(svcs, slices[1:]), SUBNET),
        per_service(service_ports(svcs[1:], slices[1:]), SUBNET),
        per_service(service_ports([svc("s2", "10.96.1.2", [{"port": 80}], sessionAffinity="ClientIP")] + svcs[2:],
                                  slices[1:]), SUBNET),
    ]
    for step in steps:
        a, b = FakeNft(), FakeNft()
        a.run(full(Table(before).objects()))
        a.run("\n".join(partial(before, step)) + "\n")
        b.run(full(Table(step).objects()))
        assert _model(a.table("ip", TABLE)) == _model(b.table("ip", TABLE))


def test_the_fake_refuses_as_the_kernel_does_and_changes_nothing():
    fake = FakeNft()
    fake.run(full(desired(service_ports([svc("a", "10.96.0.5", [{"port": 80}])],
                                        [eps("a", 8080, ("10.244.1.2", READY))]), SUBNET)))
    before = _model(fake.table("ip", TABLE))
    chain = next(c for c in fake.table("ip", TABLE).chains if c.startswith("svc-"))
    for bad in (f"add rule ip {TABLE} services jump nowhere\n",  # a jump to a chain that does not exist
                f"delete element ip {TABLE} service-ips {{ 10.9.9.9 . tcp . 1 }}\n",  # not there
                f"flush chain ip {TABLE} services\ndelete chain ip {TABLE} {chain}\n"):  # still referenced
        try:
            fake.run(bad)
            raise AssertionError(f"the fake took: {bad}")
        except NftError:
            pass
        assert _model(fake.table("ip", TABLE)) == before  # all or nothing
    assert len(fake.transactions) == 4
