from knet.proxy.rules import Endpoint, ruleset, service_ports


def svc(name, ip, ports, **spec):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": ports, **spec}}


def eps(name, port, *endpoints, port_name=""):
    return {"metadata": {"namespace": "default", "name": name + "-x", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": cond} for ip, cond in endpoints]}


READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}


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


def elements(cmds, map_name):
    return [c["add"]["element"]["elem"][0] for c in cmds if "element" in c.get("add", {})
            and c["add"]["element"]["name"] == map_name]


def test_one_map_lookup_per_packet_whatever_the_number_of_services():
    services = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 200)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 200)]
    cmds = ruleset(service_ports(services, slices), "10.244.0.0/16")
    assert len(elements(cmds, "service-ips")) == 199
    services_chain = [c for c in cmds if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == "services"]
    assert len(services_chain) == 2  # a vmap for ClusterIPs and one for NodePorts: no rule per Service


def test_no_endpoints_go_to_reject_and_node_ports_are_mapped():
    cmds = ruleset(service_ports([svc("e", "10.96.0.9", [{"port": 80, "nodePort": 30001}], type="NodePort")], []),
                   "10.244.0.0/16")
    rejected = elements(cmds, "no-endpoint-services")
    assert rejected == [[{"concat": ["10.96.0.9", "tcp", 80]}, {"goto": {"target": "reject-chain"}}]]
    assert elements(cmds, "no-endpoint-nodeports")[0][0] == {"concat": ["tcp", 30001]}
    assert elements(cmds, "service-ips") == []


def test_endpoint_chains_dnat_and_mark_hairpin():
    cmds = ruleset(service_ports([svc("a", "10.96.0.5", [{"port": 80}])],
                                 [eps("a", 8080, ("10.244.1.2", READY), ("10.244.1.3", READY))]), "10.244.0.0/16")
    dnats = [e for c in cmds if "rule" in c.get("add", {}) for e in c["add"]["rule"]["expr"] if "dnat" in e]
    assert sorted(d["dnat"]["addr"] for d in dnats) == ["10.244.1.2", "10.244.1.3"]
    numgen = [e for c in cmds if "rule" in c.get("add", {}) for e in c["add"]["rule"]["expr"]
              if "vmap" in e and "numgen" in e["vmap"]["key"]]
    assert numgen[0]["vmap"]["key"]["numgen"]["mod"] == 2


def test_local_policies_load_into_the_kernel_and_pick_local_endpoints():
    """The generated table is accepted by nftables (a namespace of the test's own)."""
    from knet.harness.cluster import unique_name
    from knet.net import nft, ns
    from knet.proxy.rules import ServicePort

    sp = ServicePort("default", "web", "", "tcp", "10.96.0.2", 80, 30080, (),
                     (Endpoint("10.244.1.2", 80, "w1"), Endpoint("10.244.2.2", 80, "w2")), ("192.168.56.200",),
                     etp_local=True, itp_local=True)
    cmds = ruleset([sp], "10.244.0.0/16", "w1")
    picks = [e["vmap"]["data"]["set"] for c in cmds if "rule" in c.get("add", {})
             for e in c["add"]["rule"]["expr"] if "vmap" in e and "numgen" in e["vmap"]["key"]]
    assert [len(p) for p in picks] == [1, 1]  # cluster (ITP Local) and external (ETP Local): w1's only
    name = unique_name("kp")
    ns.create_netns(name)
    try:
        with ns.entered(net=ns.netns_path(name)):
            nft._nft = None
            nft.apply(cmds)
            nft.apply(ruleset([sp], "10.244.0.0/16", "w3"))  # no local endpoint: drop rules
            sticky = ServicePort("default", "s", "", "tcp", "10.96.0.3", 80, None, (), sp.endpoints,
                                 ("192.168.56.201",), source_ranges=("10.0.0.0/8",), affinity_seconds=30)
            nft.apply(ruleset([sp, sticky], "10.244.0.0/16", "w1"))  # affinity sets and a firewall chain
    finally:
        nft._nft = None
        ns.delete_netns(name)


def _table_lines(name: str) -> set[str]:
    import subprocess
    out = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "table", "ip", "knet-proxy"],
                         capture_output=True, text=True).stdout
    # Map elements print on one line in any order: compare them as sets.
    lines = set()
    for line in out.splitlines():
        if "elements = {" in line or line.strip().startswith(("10.", "192.", "tcp", "udp")):
            lines.update(x.strip(" {},") for x in line.replace("elements = {", "").split(","))
        else:
            lines.add(line.strip())
    return {x for x in lines if x}


def test_partial_sync_touches_only_what_changed_and_matches_a_full_sync():
    from knet.harness.cluster import unique_name
    from knet.net import nft, ns
    from knet.proxy.rules import base, partial, per_service, transaction

    subnet = "10.244.0.0/16"
    svcs = [svc(f"s{i}", f"10.96.1.{i}", [{"port": 80}]) for i in range(1, 50)]
    slices = [eps(f"s{i}", 8080, (f"10.244.2.{i}", READY)) for i in range(1, 50)]
    before = per_service(service_ports(svcs, slices), subnet)
    assert partial(before, before) == []  # nothing changed: no operation
    added = per_service(service_ports(svcs + [svc("new", "10.96.2.1", [{"port": 80}])],
                                      slices + [eps("new", 8080, ("10.244.3.1", READY))]), subnet)
    ops_new = partial(before, added)
    assert len(ops_new) <= 10, len(ops_new)
    moved = [eps("s1", 8080, ("10.244.9.9", READY))] + slices[1:]
    changed = per_service(service_ports(svcs, moved), subnet)
    ops_ep = partial(before, changed)
    assert 0 < len(ops_ep) <= 10
    emptied = per_service(service_ports(svcs, slices[1:]), subnet)  # s1 loses its endpoints
    gone = per_service(service_ports(svcs[1:], slices[1:]), subnet)  # then s1 is deleted

    a, b = unique_name("kp"), unique_name("kp")
    ns.create_netns(a)
    ns.create_netns(b)
    try:
        for step in (added, changed, emptied, gone):
            with ns.entered(net=ns.netns_path(a)):
                nft._nft = None
                nft.apply(transaction(base(subnet) + [c for ch in before.values() for c in ch],
                                      nft.table_objects("ip", "knet-proxy")))
                nft.apply(partial(before, step))
            with ns.entered(net=ns.netns_path(b)):
                nft._nft = None
                nft.apply(transaction(base(subnet) + [c for ch in step.values() for c in ch],
                                      nft.table_objects("ip", "knet-proxy")))
            assert _table_lines(a) == _table_lines(b)
    finally:
        nft._nft = None
        ns.delete_netns(a)
        ns.delete_netns(b)
