"""The cluster zone's records, name by name, against the Kubernetes DNS
specification (schema 1.1.0) and CoreDNS's kubernetes plugin tables
(handler_test.go): which names exist, which types they hold, NXDOMAIN
against NODATA, and that every change that alters an answer moves the
generation (the wire cache's key)."""

import pytest

from knet.dns.records import CHANGE_LOG, CHANGE_LOG_SCOPES, ZONE_WIDE, Zone, dashed

Z = "cluster.local."


def svc(name, ns="default", ip="10.96.0.20", ports=(("http", 80, "TCP"),), rv=None, **spec):
    obj = {"metadata": {"name": name, "namespace": ns},
           "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports], **spec}}
    if rv is not None:
        obj["metadata"]["resourceVersion"] = str(rv)
    return obj


def eps(service, endpoints, ns="default", name=None, ports=(("http", 8080, "TCP"),), address_type="IPv4"):
    """endpoints: (address, ready, hostname-or-None)."""
    return {"metadata": {"name": name or service + "-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type,
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
            "endpoints": [{"addresses": [a], "conditions": {"ready": r}, **({"hostname": h} if h else {})}
                          for a, r, h in endpoints]}


@pytest.fixture
def zone():
    z = Zone()
    z.upsert("Service", svc("web", ports=(("http", 80, "TCP"), ("", 8443, "TCP"), ("dns", 53, "UDP"))))
    z.upsert("EndpointSlice", eps("web", [("10.244.1.10", True, None), ("10.244.2.11", False, None)]))
    z.upsert("Service", svc("db", ip="None", ports=(("pg", 5432, "TCP"),)))
    z.upsert("EndpointSlice", eps("db", [("10.244.1.5", True, "db-0"), ("10.244.2.6", True, None),
                                         ("10.244.3.7", False, "db-2")], ports=(("pg", 5432, "TCP"),)))
    z.upsert("Service", svc("pnr", ip="None", publishNotReadyAddresses=True))
    z.upsert("EndpointSlice", eps("pnr", [("10.244.1.20", False, None)]))
    z.upsert("Service", svc("empty", ip="None"))
    z.upsert("Service", svc("ext", ip=None, type="ExternalName", externalName="example.com"))
    z.upsert("Service", svc("alias", ip=None, type="ExternalName", externalName="web.default.svc.cluster.local"))
    z.upsert("Service", svc("api", ns="prod", ip="10.96.0.30"))
    z.upsert("Service", svc("kube-dns", ns="kube-system", ip="10.96.0.10",
                            ports=(("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))))
    return z


def look(z, name, qtype):
    a = z.lookup(name, qtype)
    assert a is not None, f"{name} should be in the zone"
    return a.rcode, sorted(r.data for r in a.answer)


@pytest.mark.parametrize("name,qtype,rcode,data", [
    # ClusterIP Services (spec 2.3.1): A; AAAA on an IPv4 Service is NODATA, never NXDOMAIN
    ("web.default.svc.cluster.local", "A", "NOERROR", ["10.96.0.20"]),
    ("web.default.svc.cluster.local", "AAAA", "NOERROR", []),
    ("web.default.svc.cluster.local", "TXT", "NOERROR", []),
    ("web.default.svc.cluster.local", "MX", "NOERROR", []),
    ("web.default.svc.cluster.local", "SOA", "NOERROR", []),
    ("api.prod.svc.cluster.local", "A", "NOERROR", ["10.96.0.30"]),
    ("api.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("nope.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("nope.default.svc.cluster.local", "AAAA", "NXDOMAIN", []),
    ("web.nons.svc.cluster.local", "A", "NXDOMAIN", []),
    # SRV for named ports (2.3.2): _port._proto, protocol must match, unnamed ports have none
    ("_http._tcp.web.default.svc.cluster.local", "SRV", "NOERROR", ["0 100 80 web.default.svc.cluster.local."]),
    ("_dns._udp.web.default.svc.cluster.local", "SRV", "NOERROR", ["0 100 53 web.default.svc.cluster.local."]),
    ("_http._udp.web.default.svc.cluster.local", "SRV", "NXDOMAIN", []),
    ("_nope._tcp.web.default.svc.cluster.local", "SRV", "NXDOMAIN", []),
    ("_http._tcp.web.default.svc.cluster.local", "A", "NOERROR", []),
    # headless (2.4): the ready endpoints; endpoint names by hostname or dashed IP; none ready: NXDOMAIN
    ("db.default.svc.cluster.local", "A", "NOERROR", ["10.244.1.5", "10.244.2.6"]),
    ("db.default.svc.cluster.local", "AAAA", "NOERROR", []),
    ("db-0.db.default.svc.cluster.local", "A", "NOERROR", ["10.244.1.5"]),
    ("10-244-2-6.db.default.svc.cluster.local", "A", "NOERROR", ["10.244.2.6"]),
    ("db-2.db.default.svc.cluster.local", "A", "NXDOMAIN", []),  # not ready
    ("bogus.db.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("_pg._tcp.db.default.svc.cluster.local", "SRV", "NOERROR",
     ["0 50 5432 10-244-2-6.db.default.svc.cluster.local.", "0 50 5432 db-0.db.default.svc.cluster.local."]),
    ("empty.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("empty.default.svc.cluster.local", "AAAA", "NXDOMAIN", []),
    ("pnr.default.svc.cluster.local", "A", "NOERROR", ["10.244.1.20"]),  # publishNotReadyAddresses
    # endpoints of a ClusterIP Service have names too (CoreDNS)
    ("10-244-1-10.web.default.svc.cluster.local", "A", "NOERROR", ["10.244.1.10"]),
    ("10-244-2-11.web.default.svc.cluster.local", "A", "NXDOMAIN", []),
    # ExternalName (2.5): CNAME; in-zone targets are followed; nothing below it, no SRV
    ("ext.default.svc.cluster.local", "CNAME", "NOERROR", ["example.com."]),
    ("ext.default.svc.cluster.local", "TXT", "NOERROR", ["example.com."]),
    ("alias.default.svc.cluster.local", "A", "NOERROR", ["10.96.0.20", "web.default.svc.cluster.local."]),
    ("alias.default.svc.cluster.local", "AAAA", "NOERROR", ["web.default.svc.cluster.local."]),
    ("sub.ext.default.svc.cluster.local", "CNAME", "NXDOMAIN", []),
    ("_http._tcp.ext.default.svc.cluster.local", "SRV", "NXDOMAIN", []),
    # pods ("pods insecure"): an IP-shaped label in an existing namespace
    ("10-244-1-99.default.pod.cluster.local", "A", "NOERROR", ["10.244.1.99"]),
    ("10-244-1-99.default.pod.cluster.local", "AAAA", "NOERROR", []),
    ("10-244-1-99.nons.pod.cluster.local", "A", "NXDOMAIN", []),
    ("not-an-ip.default.pod.cluster.local", "A", "NXDOMAIN", []),
    ("10-244-1-300.default.pod.cluster.local", "A", "NXDOMAIN", []),
    # structure: the apex, svc/pod, namespaces; too many labels; wildcards are plain labels
    ("cluster.local", "A", "NOERROR", []),
    ("cluster.local", "SOA", "NOERROR", ["ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"]),
    ("cluster.local", "NS", "NOERROR", ["kube-dns.kube-system.svc.cluster.local."]),
    ("svc.cluster.local", "A", "NOERROR", []),
    ("pod.cluster.local", "A", "NOERROR", []),
    ("svc.cluster.local", "NS", "NOERROR", []),
    ("default.svc.cluster.local", "A", "NOERROR", []),
    ("prod.svc.cluster.local", "A", "NOERROR", []),
    ("nons.svc.cluster.local", "A", "NXDOMAIN", []),
    ("foo.cluster.local", "NS", "NXDOMAIN", []),
    ("foo.svc.cluster.local", "NS", "NXDOMAIN", []),
    ("a.b.c.web.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("*.default.svc.cluster.local", "A", "NXDOMAIN", []),
    ("any.default.svc.cluster.local", "A", "NXDOMAIN", []),
    # the schema version (2.2)
    ("dns-version.cluster.local", "TXT", "NOERROR", ['"1.1.0"']),
    ("dns-version.cluster.local", "A", "NXDOMAIN", []),
    # PTR (2.3.3, 2.4.3): ClusterIPs and endpoint addresses, system-assigned names included
    ("20.0.96.10.in-addr.arpa", "PTR", "NOERROR", ["web.default.svc.cluster.local."]),
    ("5.1.244.10.in-addr.arpa", "PTR", "NOERROR", ["db-0.db.default.svc.cluster.local."]),
    ("6.2.244.10.in-addr.arpa", "PTR", "NOERROR", ["10-244-2-6.db.default.svc.cluster.local."]),
    ("7.3.244.10.in-addr.arpa", "PTR", "NXDOMAIN", []),  # not ready
    ("99.9.96.10.in-addr.arpa", "PTR", "NXDOMAIN", []),
    ("20.0.96.10.in-addr.arpa", "A", "NOERROR", []),
])
def test_names(zone, name, qtype, rcode, data):
    assert look(zone, name, qtype) == (rcode, sorted(d.format(serial=zone.serial) for d in data))


def test_case_insensitive_and_trailing_dot(zone):
    assert look(zone, "WEB.Default.SVC.Cluster.Local.", "a") == ("NOERROR", ["10.96.0.20"])
    assert look(zone, "Db-0.DB.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.1.5"])


def test_negative_answers_carry_the_zone_soa(zone):
    for name, qtype in (("nope.default.svc.cluster.local", "A"), ("web.default.svc.cluster.local", "AAAA"),
                        ("cluster.local", "A")):
        a = zone.lookup(name, qtype)
        assert not a.answer and a.soa is not None
        assert a.soa.name == Z and a.soa.type == "SOA" and a.soa.ttl == 5
        assert a.soa.data.split()[-1] == "5"  # the minimum: resolvers cache the denial for the record TTL
    a = zone.lookup("9.9.244.10.in-addr.arpa", "PTR")
    assert a.rcode == "NXDOMAIN" and a.soa.name == "244.10.in-addr.arpa."


def test_ttls(zone):
    assert {r.ttl for r in zone.lookup("web.default.svc.cluster.local", "A").answer} == {5}
    assert zone.lookup("dns-version.cluster.local", "TXT").answer[0].ttl == 28800
    z = Zone("example.internal", ttl=30)
    z.upsert("Service", svc("web"))
    assert z.lookup("web.default.svc.example.internal", "A").answer[0].ttl == 30
    assert z.lookup("web.default.svc.cluster.local", "A") is None
    with pytest.raises(ValueError, match="ttl"):
        Zone(ttl=4000)


def test_srv_targets_resolve_in_the_additional_section(zone):
    a = zone.lookup("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(r.name, r.data) for r in a.additional] == [("web.default.svc.cluster.local.", "10.96.0.20")]
    a = zone.lookup("_pg._tcp.db.default.svc.cluster.local", "SRV")
    targets = {r.data.split()[-1] for r in a.answer}
    assert {r.name for r in a.additional} == targets
    for t in targets:  # each target answers A by itself
        assert look(zone, t, "A")[0] == "NOERROR"


def test_statefulset_pods_through_their_governing_service():
    z = Zone()
    z.upsert("Service", svc("nginx", ip="None", ports=(("web", 80, "TCP"),)))
    z.upsert("EndpointSlice", eps("nginx", [("10.244.1.2", True, "web-0"), ("10.244.2.3", True, "web-1")],
                                  ports=(("web", 80, "TCP"),)))
    assert look(z, "web-0.nginx.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.1.2"])
    assert look(z, "web-1.nginx.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.2.3"])
    assert look(z, "_web._tcp.nginx.default.svc.cluster.local", "SRV")[1] == [
        "0 50 80 web-0.nginx.default.svc.cluster.local.", "0 50 80 web-1.nginx.default.svc.cluster.local."]
    assert look(z, "2.1.244.10.in-addr.arpa", "PTR") == ("NOERROR", ["web-0.nginx.default.svc.cluster.local."])


def test_outside_names_are_not_the_zones(zone):
    for name in ("example.com", "local", "cluster.local.evil.com", "8.8.8.8.in-addr.arpa", "10.in-addr.arpa",
                 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", ""):
        assert zone.lookup(name, "A") is None, name


def test_externalname_outside_the_zone_is_chased_upstream(zone):
    a = zone.lookup("ext.default.svc.cluster.local", "A")
    assert a.rcode == "NOERROR" and [r.data for r in a.answer] == ["example.com."] and a.chase == "example.com."
    assert zone.lookup("ext.default.svc.cluster.local", "CNAME").chase is None


def test_cname_loop_stops():
    z = Zone()
    z.upsert("Service", svc("a", ip=None, type="ExternalName", externalName="b.default.svc.cluster.local"))
    z.upsert("Service", svc("b", ip=None, type="ExternalName", externalName="a.default.svc.cluster.local"))
    a = z.lookup("a.default.svc.cluster.local", "A")
    assert a.rcode == "NOERROR" and 1 < len(a.answer) <= 12 and {r.type for r in a.answer} == {"CNAME"}


def test_generation_moves_on_changes_only(zone):
    g = zone.generation
    zone.upsert("Service", svc("web", ports=(("http", 80, "TCP"), ("", 8443, "TCP"), ("dns", 53, "UDP"))))
    assert zone.generation == g  # the same records: the cache stays
    zone.upsert("Service", svc("web", ip="10.96.0.21"))
    assert zone.generation > g
    assert look(zone, "web.default.svc.cluster.local", "A") == ("NOERROR", ["10.96.0.21"])
    assert look(zone, "20.0.96.10.in-addr.arpa", "PTR")[0] == "NXDOMAIN"
    assert look(zone, "21.0.96.10.in-addr.arpa", "PTR") == ("NOERROR", ["web.default.svc.cluster.local."])
    g = zone.generation
    zone.delete("Service", svc("web"))
    assert zone.generation > g
    assert look(zone, "web.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    g = zone.generation
    zone.delete("Service", svc("web"))  # already gone
    assert zone.generation == g


def test_endpoint_changes(zone):
    g = zone.generation
    zone.upsert("EndpointSlice", eps("db", [("10.244.3.7", True, "db-2")], ports=(("pg", 5432, "TCP"),)))
    assert zone.generation > g
    assert look(zone, "db.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.3.7"])
    assert look(zone, "5.1.244.10.in-addr.arpa", "PTR")[0] == "NXDOMAIN"
    # a second slice adds to the first; deleting one keeps the other's records
    zone.upsert("EndpointSlice", eps("db", [("10.244.1.5", True, "db-0")], name="db-second"))
    assert look(zone, "db.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.1.5", "10.244.3.7"])
    zone.delete("EndpointSlice", eps("db", [], name="db-abc"))
    assert look(zone, "db.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.1.5"])
    assert look(zone, "7.3.244.10.in-addr.arpa", "PTR")[0] == "NXDOMAIN"
    zone.delete("EndpointSlice", eps("db", [], name="db-second"))
    assert look(zone, "db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    # FQDN slices and slices of no Service make no records
    zone.upsert("EndpointSlice", eps("db", [("10.244.9.9", True, None)], address_type="FQDN", name="db-f"))
    assert look(zone, "db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"


def test_same_address_in_two_services_gives_two_ptrs():
    z = Zone()
    for name in ("a", "b"):
        z.upsert("Service", svc(name, ip="None"))
        z.upsert("EndpointSlice", eps(name, [("10.244.1.5", True, None)]))
    assert look(z, "5.1.244.10.in-addr.arpa", "PTR")[1] == [
        "10-244-1-5.a.default.svc.cluster.local.", "10-244-1-5.b.default.svc.cluster.local."]
    z.delete("Service", svc("a"))
    assert look(z, "5.1.244.10.in-addr.arpa", "PTR")[1] == ["10-244-1-5.b.default.svc.cluster.local."]


def test_namespaces_exist_through_objects_and_services():
    z = Zone()
    assert look(z, "default.svc.cluster.local", "A")[0] == "NOERROR"  # always there
    assert look(z, "team.svc.cluster.local", "A")[0] == "NXDOMAIN"
    z.upsert("Namespace", {"metadata": {"name": "team"}})
    assert look(z, "team.svc.cluster.local", "A")[0] == "NOERROR"
    assert look(z, "10-1-2-3.team.pod.cluster.local", "A") == ("NOERROR", ["10.1.2.3"])
    z.delete("Namespace", {"metadata": {"name": "team"}})
    assert look(z, "team.svc.cluster.local", "A")[0] == "NXDOMAIN"
    z.upsert("Service", svc("x", ns="other"))
    assert look(z, "other.svc.cluster.local", "A")[0] == "NOERROR"
    z.delete("Service", svc("x", ns="other"))
    assert look(z, "other.svc.cluster.local", "A")[0] == "NXDOMAIN"


def test_soa_serial_follows_the_api_revision():
    z = Zone()
    z.upsert("Service", svc("a", rv=1234))
    assert z.lookup("cluster.local", "SOA").answer[0].data.split()[2] == "1234"
    z.upsert("Service", svc("b"))  # no revision: still moves forward
    assert int(z.lookup("cluster.local", "SOA").answer[0].data.split()[2]) > 1234


def test_ns_without_kube_dns_falls_back():
    assert look(Zone(), "cluster.local", "NS") == ("NOERROR", ["ns.dns.cluster.local."])


def test_service_without_an_ip_yet_has_no_records():
    z = Zone()
    z.upsert("Service", svc("pending", ip=""))
    assert look(z, "pending.default.svc.cluster.local", "A")[0] == "NXDOMAIN"


def test_ipv6_addresses():
    z = Zone()
    z.upsert("Service", svc("v6", ip="fd00::10"))
    assert look(z, "v6.default.svc.cluster.local", "AAAA") == ("NOERROR", ["fd00::10"])
    assert look(z, "v6.default.svc.cluster.local", "A") == ("NOERROR", [])
    assert dashed("5678:abcd::1") == "5678-abcd--1"
    assert dashed("fd00::") == "fd00--0"


def test_bad_input_is_refused_by_field():
    z = Zone()
    with pytest.raises(ValueError, match="kind"):
        z.upsert("Pod", svc("x"))
    with pytest.raises(ValueError, match="metadata.name"):
        z.upsert("Service", {"metadata": {}})
    assert z.generation == 0


def test_changes_name_the_scopes_they_touch():
    """The answer cache drops only what changes_since names: a Service's names, its namespace's (it can make
    the namespace exist), the reverse names of its and its endpoints' addresses; kube-dns (the apex's NS glue)
    and a log overrun say "anything"."""
    z = Zone()
    g0 = g = z.generation
    z.upsert("Service", svc("a", ns="team", ip="10.96.0.5"))
    assert z.changes_since(g) == {("svc", "team", "a"), ("ns", "team"), ("ip", "10.96.0.5"), ZONE_WIDE}
    g = z.generation
    z.upsert("EndpointSlice", eps("a", [("10.244.1.9", True, "h")], ns="team"))
    assert z.changes_since(g) == {("svc", "team", "a"), ("ip", "10.244.1.9"), ZONE_WIDE}
    g = z.generation
    z.delete("Service", svc("a", ns="team"))
    assert z.changes_since(g) == {("svc", "team", "a"), ("ns", "team"), ("ip", "10.96.0.5"), ("ip", "10.244.1.9"),
                                  ZONE_WIDE}
    assert z.changes_since(z.generation) == set()
    for name, scope in [("A.Team.svc.cluster.local.", ("svc", "team", "a")),
                        ("_http._tcp.a.team.svc.cluster.local", ("svc", "team", "a")),
                        ("h.a.team.svc.cluster.local", ("svc", "team", "a")),
                        ("team.svc.cluster.local", ("ns", "team")), ("10-1-2-3.team.pod.cluster.local", ("ns", "team")),
                        ("5.0.96.10.in-addr.arpa.", ("ip", "10.96.0.5")), ("cluster.local", ZONE_WIDE),
                        ("svc.cluster.local", ZONE_WIDE), ("example.com", ZONE_WIDE)]:
        assert z.scope(name) == scope, name
    z.upsert("Service", svc("x", ip=None, type="ExternalName", externalName="a.team.svc.cluster.local"))
    assert z.scope("x.default.svc.cluster.local") == ZONE_WIDE  # its answer follows another name's
    g = z.generation
    z.upsert("Service", svc("kube-dns", ns="kube-system", ip="10.96.0.10"))
    assert z.changes_since(g) is None
    for i in range(CHANGE_LOG):
        z.upsert("Service", svc(f"s{i}", ip=f"10.96.{1 + i // 250}.{i % 250}"))
    assert z.changes_since(g0) is None


def test_a_zone_fed_the_informers_views_answers_as_one_fed_whole_objects():
    """The DNS server's informers keep ZONE_VIEWS of each object (what the Zone reads);
    whole objects, with what the API adds (targetRefs, annotations, status), answer alike."""
    from knet.dns.records import ZONE_VIEWS

    def whole(kind, obj):
        obj = {**obj, "apiVersion": "v1", "kind": kind,
               "metadata": {**obj["metadata"], "uid": "u", "resourceVersion": "7",
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}
        if kind == "EndpointSlice":
            obj["endpoints"] = [{**e, "nodeName": "worker-1", "targetRef": {"kind": "Pod", "name": "p", "uid": "u"},
                                 "conditions": {**e["conditions"], "serving": True, "terminating": False}}
                                for e in obj["endpoints"]]
        return obj

    objects = [("Service", svc("web", ports=(("http", 80, "TCP"), ("dns", 53, "UDP")))),
               ("EndpointSlice", eps("web", [("10.244.1.10", True, None), ("10.244.2.11", False, None)])),
               ("Service", svc("db", ip="None", ports=(("pg", 5432, "TCP"),))),
               ("EndpointSlice", eps("db", [("10.244.1.5", True, "db-0"), ("10.244.3.7", False, "db-2")],
                                     ports=(("pg", 5432, "TCP"),))),
               ("Service", svc("pnr", ip="None", publishNotReadyAddresses=True)),
               ("EndpointSlice", eps("pnr", [("10.244.1.20", False, None)])),
               ("Service", svc("ext", ip=None, type="ExternalName", externalName="example.com")),
               ("Namespace", {"metadata": {"name": "prod"}}),
               ("Service", svc("api", ns="prod", ip="10.96.0.30"))]
    full, viewed = Zone(), Zone()
    for kind, obj in objects:
        full.upsert(kind, whole(kind, obj))
        view = ZONE_VIEWS[kind](whole(kind, obj))
        assert "uid" not in view["metadata"] and "annotations" not in view["metadata"]
        assert all("targetRef" not in e and "nodeName" not in e for e in view.get("endpoints", []))
        viewed.upsert(kind, view)
    names = [("web.default.svc.cluster.local", "A"), ("_dns._udp.web.default.svc.cluster.local", "SRV"),
             ("10-244-1-10.web.default.svc.cluster.local", "A"), ("10-244-2-11.web.default.svc.cluster.local", "A"),
             ("db.default.svc.cluster.local", "A"), ("db-0.db.default.svc.cluster.local", "A"),
             ("db-2.db.default.svc.cluster.local", "A"), ("_pg._tcp.db.default.svc.cluster.local", "SRV"),
             ("pnr.default.svc.cluster.local", "A"), ("ext.default.svc.cluster.local", "CNAME"),
             ("api.prod.svc.cluster.local", "A"), ("prod.svc.cluster.local", "A"),
             ("5.1.244.10.in-addr.arpa", "PTR"), ("cluster.local", "SOA")]
    for name, qtype in names:
        assert look(viewed, name, qtype) == look(full, name, qtype), (name, qtype)
    assert look(viewed, "db.default.svc.cluster.local", "A") == ("NOERROR", ["10.244.1.5"])
    for kind, obj in objects:  # and what a deletion reads (the final state, through the view)
        full.delete(kind, whole(kind, obj))
        viewed.delete(kind, ZONE_VIEWS[kind](whole(kind, obj)))
    assert look(viewed, "web.default.svc.cluster.local", "A") == look(full, "web.default.svc.cluster.local", "A")


def test_the_change_log_is_bounded_by_the_scopes_it_names():
    """Slices of many endpoints name a scope per address: the log drops its oldest entries once they name more
    than CHANGE_LOG_SCOPES together (a reader that far behind starts over), and a reader a change behind still
    hears exactly what that change touched."""
    z = Zone()
    g0 = z.generation
    per_slice = 200
    slices = CHANGE_LOG_SCOPES // per_slice + 2
    for i in range(slices):
        z.upsert("EndpointSlice", eps(f"s{i}", [(f"10.244.{i}.{j}", True, None) for j in range(per_slice)]))
    assert sum(len(scopes or ()) for _, scopes in z._log) <= CHANGE_LOG_SCOPES
    assert len(z._log) < slices
    assert z.changes_since(g0) is None
    g = z.generation
    z.upsert("EndpointSlice", eps("last", [("10.244.250.1", True, None)]))
    assert z.changes_since(g) == {("svc", "default", "last"), ("ip", "10.244.250.1"), ZONE_WIDE}
