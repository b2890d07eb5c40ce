"""The responder on the wire: queries built with dnspython, replies parsed
back. Every record kind and rcode, the authority SOA of negative answers,
case echo, truncation by the UDP/EDNS size and the full answer over TCP,
the malformed packets issue 12 names, REFUSED or Forward outside the zone,
and the precomputed-reply cache never serving an answer older than the zone."""

import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from knet.dns.answer import Forward, Responder
from knet.dns.records import Zone

ZONE_SOA = "ns.dns.cluster.local. hostmaster.cluster.local."


def svc(name, ns="default", ip="10.96.0.20", ports=(("http", 80, "TCP"),), **spec):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports], **spec}}


def eps(service, addresses, hostnames=None, ns="default", ports=(("http", 8080, "TCP"),)):
    hostnames = hostnames or [None] * len(addresses)
    return {"metadata": {"name": service + "-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, **({"hostname": h} if h else {})}
                          for a, h in zip(addresses, hostnames, strict=True)]}


@pytest.fixture
def zone():
    z = Zone()
    z.upsert("Service", svc("web"))
    z.upsert("EndpointSlice", eps("web", ["10.244.1.10"]))
    z.upsert("Service", svc("db", ip="None"))
    z.upsert("EndpointSlice", eps("db", ["10.244.1.5", "10.244.2.6"], ["db-0", None]))
    z.upsert("Service", svc("big", ns="prod", ip="None"))
    z.upsert("EndpointSlice", eps("big", [f"10.244.3.{i}" for i in range(1, 33)], ns="prod"))
    z.upsert("Service", svc("ext", ip=None, type="ExternalName", externalName="example.com"))
    z.upsert("Service", svc("kube-dns", ns="kube-system", ip="10.96.0.10", ports=(("dns", 53, "UDP"),)))
    return z


@pytest.fixture
def responder(zone):
    return Responder(zone)


def ask(r, name, qtype="A", tcp=False, edns=False, payload=1232, client=None, **kw):
    q = dns.message.make_query(name, qtype, use_edns=0 if edns else False, payload=payload, **kw)
    out = r.respond(q.to_wire(), tcp=tcp, client=client)
    assert isinstance(out, bytes), out
    reply = dns.message.from_wire(out)
    assert reply.id == q.id and reply.flags & dns.flags.QR
    assert reply.question == q.question or reply.question[0].name.to_text() == q.question[0].name.to_text()
    return reply


def datas(reply, section="answer"):
    return sorted(rd.to_text() for rrset in getattr(reply, section) for rd in rrset)


def test_a_record_authoritative_with_coredns_ttl(responder):
    rep = ask(responder, "web.default.svc.cluster.local")
    assert rep.rcode() == dns.rcode.NOERROR and rep.flags & dns.flags.AA
    assert datas(rep) == ["10.96.0.20"] and {rs.ttl for rs in rep.answer} == {5}
    assert rep.flags & dns.flags.RD  # echoed


@pytest.mark.parametrize("name,qtype,rcode,answer", [
    ("db.default.svc.cluster.local", "A", dns.rcode.NOERROR, ["10.244.1.5", "10.244.2.6"]),
    ("db-0.db.default.svc.cluster.local", "A", dns.rcode.NOERROR, ["10.244.1.5"]),
    ("_http._tcp.web.default.svc.cluster.local", "SRV", dns.rcode.NOERROR, ["0 100 80 web.default.svc.cluster.local."]),
    ("20.0.96.10.in-addr.arpa", "PTR", dns.rcode.NOERROR, ["web.default.svc.cluster.local."]),
    ("5.1.244.10.in-addr.arpa", "PTR", dns.rcode.NOERROR, ["db-0.db.default.svc.cluster.local."]),
    ("ext.default.svc.cluster.local", "CNAME", dns.rcode.NOERROR, ["example.com."]),
    ("10-244-7-7.default.pod.cluster.local", "A", dns.rcode.NOERROR, ["10.244.7.7"]),
    ("dns-version.cluster.local", "TXT", dns.rcode.NOERROR, ['"1.1.0"']),
    ("cluster.local", "NS", dns.rcode.NOERROR, ["kube-dns.kube-system.svc.cluster.local."]),
    ("nope.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN, []),
    ("web.default.svc.cluster.local", "AAAA", dns.rcode.NOERROR, []),
    ("web.nons.svc.cluster.local", "AAAA", dns.rcode.NXDOMAIN, []),
])
def test_record_kinds_and_rcodes(responder, name, qtype, rcode, answer):
    rep = ask(responder, name, qtype)
    assert rep.rcode() == rcode and rep.flags & dns.flags.AA
    assert datas(rep) == answer


def test_srv_additional_carries_the_target(responder):
    rep = ask(responder, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(rs.name.to_text(), rs.rdtype) for rs in rep.additional] == [("web.default.svc.cluster.local.", 1)]
    rep = ask(responder, "cluster.local", "NS")
    assert datas(rep, "additional") == ["10.96.0.10"]


def test_soa_in_authority_of_negative_answers(responder):
    for name, qtype, rcode in (("nope.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN),
                               ("web.default.svc.cluster.local", "AAAA", dns.rcode.NOERROR),
                               ("web.default.svc.cluster.local", "TXT", dns.rcode.NOERROR),
                               ("svc.cluster.local", "A", dns.rcode.NOERROR)):
        rep = ask(responder, name, qtype)
        assert rep.rcode() == rcode and not rep.answer
        [soa] = rep.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "cluster.local." and soa.ttl == 5
        assert soa[0].to_text().startswith(ZONE_SOA) and soa[0].minimum == 5
    rep = ask(responder, "cluster.local", "SOA")
    assert rep.answer[0].rdtype == dns.rdatatype.SOA and not rep.authority


def test_answers_with_the_querys_case(responder):
    for name in ("WEB.Default.SVC.cluster.LOCAL.", "web.default.svc.cluster.local.", "wEb.DEFAULT.svc.Cluster.local."):
        rep = ask(responder, name)
        assert rep.question[0].name.to_text() == name
        assert rep.answer[0].name.to_text() == name, "the owner echoes the query, also from the cache"
        assert datas(rep) == ["10.96.0.20"]
    rep = ask(responder, "NOPE.default.svc.CLUSTER.local")
    assert rep.authority[0].name.to_text() == "CLUSTER.local."
    assert responder.hits >= 2


def test_truncation_at_512_then_full_over_tcp(responder):
    name = "big.prod.svc.cluster.local"
    rep = ask(responder, name)
    assert rep.flags & dns.flags.TC
    assert 0 < len(datas(rep)) < 32  # the records that fit (CoreDNS keeps them)
    q = dns.message.make_query(name, "A", use_edns=False)
    assert len(responder.respond(q.to_wire())) <= 512
    rep = ask(responder, name, tcp=True)
    assert not rep.flags & dns.flags.TC and len(datas(rep)) == 32
    rep = ask(responder, name, edns=True, payload=4096)  # the EDNS size allows it over UDP
    assert not rep.flags & dns.flags.TC and len(datas(rep)) == 32 and rep.edns == 0
    rep = ask(responder, name, edns=True, payload=540)  # 32 records take 567 bytes with the OPT record
    assert rep.flags & dns.flags.TC
    assert len(responder.respond(dns.message.make_query(name, "A", use_edns=0, payload=540).to_wire())) <= 540
    rep = ask(responder, name, edns=True, payload=100)  # below 512 counts as 512
    assert rep.flags & dns.flags.TC


def test_edns_is_answered_with_edns(responder):
    rep = ask(responder, "web.default.svc.cluster.local", edns=True)
    assert rep.edns == 0
    assert ask(responder, "web.default.svc.cluster.local").edns == -1
    q = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=1)
    rep = dns.message.from_wire(responder.respond(q.to_wire()))
    assert rep.rcode() == dns.rcode.BADVERS


def test_zone_transfers_refused(responder):
    assert ask(responder, "cluster.local", "AXFR", tcp=True).rcode() == dns.rcode.REFUSED


def test_outside_names_refused_without_upstreams(responder):
    rep = ask(responder, "example.com")
    assert rep.rcode() == dns.rcode.REFUSED and not rep.answer and not rep.flags & dns.flags.AA
    rep = ask(responder, "8.8.8.8.in-addr.arpa", "PTR")
    assert rep.rcode() == dns.rcode.REFUSED
    q = dns.message.make_query("web.default.svc.cluster.local", "A", rdclass="CH")
    assert dns.message.from_wire(responder.respond(q.to_wire())).rcode() == dns.rcode.REFUSED


def test_outside_names_forwarded_for_cluster_clients_only(zone):
    r = Responder(zone, upstreams=["192.168.56.1"], recursion_from=["192.168.56.11/32"])
    q = dns.message.make_query("example.com", "A")
    wire = q.to_wire()
    fwd = r.respond(wire, client="10.244.1.7")
    assert isinstance(fwd, Forward) and fwd.query == wire
    assert isinstance(r.respond(wire, client="192.168.56.11"), Forward)  # a host-network pod's node
    for outsider in ("192.168.56.1", "192.168.56.99", "8.8.8.8"):  # the LAN, the ext host: not an open resolver
        rep = dns.message.from_wire(r.respond(wire, client=outsider))
        assert rep.rcode() == dns.rcode.REFUSED
    # cluster names are answered for anyone
    assert ask(r, "web.default.svc.cluster.local", client="192.168.56.1").rcode() == dns.rcode.NOERROR
    # relaying: the client's id, whatever id the upstream used; no upstream answer: SERVFAIL
    up = dns.message.make_response(q)
    up.id = (q.id + 1) % 65536
    up.answer.append(dns.rrset.from_text("example.com.", 300, "IN", "A", "93.184.216.34"))
    rep = dns.message.from_wire(fwd.reply(up.to_wire()))
    assert rep.id == q.id and datas(rep) == ["93.184.216.34"]
    rep = dns.message.from_wire(fwd.reply(None))
    assert rep.id == q.id and rep.rcode() == dns.rcode.SERVFAIL
    # an upstream answer too big for the client's UDP size is truncated
    for i in range(40):
        up.answer.append(dns.rrset.from_text(f"x{i}.example.com.", 300, "IN", "A", f"10.0.0.{i}"))
    out = fwd.reply(up.to_wire())
    assert len(out) <= 512 and dns.message.from_wire(out).flags & dns.flags.TC


def test_externalname_chased_upstream(zone):
    r = Responder(zone, upstreams=["192.168.56.1"])
    q = dns.message.make_query("ext.default.svc.cluster.local", "A")
    fwd = r.respond(q.to_wire(), client="10.244.1.7")
    assert isinstance(fwd, Forward)
    sub = dns.message.from_wire(fwd.query)
    assert sub.question[0].name.to_text() == "example.com." and sub.question[0].rdtype == dns.rdatatype.A
    up = dns.message.make_response(sub)
    up.answer.append(dns.rrset.from_text("example.com.", 300, "IN", "A", "93.184.216.34"))
    rep = dns.message.from_wire(fwd.reply(up.to_wire()))
    assert rep.id == q.id and rep.rcode() == dns.rcode.NOERROR
    assert [rs.rdtype for rs in rep.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    rep = dns.message.from_wire(fwd.reply(None))  # upstream failed: the CNAME alone, NOERROR
    assert rep.rcode() == dns.rcode.NOERROR and datas(rep) == ["example.com."]
    # without upstreams: the CNAME alone
    rep = ask(Responder(zone), "ext.default.svc.cluster.local")
    assert datas(rep) == ["example.com."]


# -- malformed queries ----------------------------------------------------------------------------------------

def query_wire(name="web.default.svc.cluster.local"):
    return dns.message.make_query(name, "A", use_edns=False).to_wire()


def header(wire, qdcount=1):
    return wire[:4] + qdcount.to_bytes(2, "big") + wire[6:12]


def formerr(r, wire):
    out = r.respond(wire)
    assert isinstance(out, bytes)
    rep = dns.message.from_wire(out)
    assert rep.id == int.from_bytes(wire[:2], "big") and rep.flags & dns.flags.QR
    return rep.rcode()


def test_no_header_is_dropped(responder):
    for n in range(12):
        assert responder.respond(query_wire()[:n]) is None
    assert responder.respond(b"") is None


def test_responses_are_dropped(responder):
    w = bytearray(query_wire())
    w[2] |= 0x80
    assert responder.respond(bytes(w)) is None


@pytest.mark.parametrize("case", ["qd0", "qd2", "truncated", "loop", "forward-pointer", "label64", "name-too-long",
                                  "too-many-labels", "trailing", "cut-type"])
def test_malformed_is_formerr(responder, case):
    w = query_wire()
    h = w[:12]
    packets = {
        "qd0": header(w, 0),
        "qd2": header(w, 2) + w[12:] + w[12:],
        "truncated": w[:20],
        "loop": h + b"\x01a\xc0\x0c\x00\x01\x00\x01",
        "forward-pointer": h + b"\xc0\x14\x00\x01\x00\x01" + b"\x01a\x00",
        "label64": h + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
        "name-too-long": h + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
        "too-many-labels": h + b"\x01a" * 128 + b"\x00\x00\x01\x00\x01",
        "trailing": w + b"junk",
        "cut-type": w[:-3],
    }
    assert formerr(responder, packets[case]) == dns.rcode.FORMERR
    # and the next good query is answered
    assert ask(responder, "web.default.svc.cluster.local").rcode() == dns.rcode.NOERROR


def test_other_opcodes_not_implemented(responder):
    w = bytearray(query_wire())
    w[2] = (w[2] & 0x87) | (5 << 3)  # UPDATE
    assert formerr(responder, bytes(w)) == dns.rcode.NOTIMP


def test_garbage_never_raises(responder):
    rng = random.Random(12)
    good = query_wire()
    for i in range(3000):
        if i % 2:
            w = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:  # a valid query with a few bytes flipped
            b = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            w = bytes(b)
        out = responder.respond(w, tcp=bool(i % 3 == 0))
        assert out is None or isinstance(out, bytes)
        if isinstance(out, bytes):
            rep = dns.message.from_wire(out)
            assert rep.id == int.from_bytes(w[:2], "big") and rep.flags & dns.flags.QR
            assert len(out) <= 512 or i % 3 == 0
    assert ask(responder, "web.default.svc.cluster.local").rcode() == dns.rcode.NOERROR


# -- the precomputed-reply cache -------------------------------------------------------------------------------

def test_cached_reply_is_byte_identical_to_a_fresh_one(zone):
    warm, cold = Responder(zone), Responder(zone)
    names = ["web.default.svc.cluster.local", "db.default.svc.cluster.local", "nope.default.svc.cluster.local",
             "Web.Default.svc.cluster.local", "example.com", "cluster.local"]
    for name in names:
        warm.respond(query_wire(name))
    hits = warm.hits
    for name in names:
        for edns in (False, 0):
            q = dns.message.make_query(name, "A", use_edns=edns, want_dnssec=False)
            q.flags &= ~dns.flags.RD
            w = q.to_wire()
            warm.respond(w)
            assert warm.respond(w) == cold._answer(w, False, None)[0]
    assert warm.hits > hits


def test_cache_never_serves_a_stale_answer(zone, responder):
    name = "web.default.svc.cluster.local"
    assert datas(ask(responder, name)) == ["10.96.0.20"]
    assert datas(ask(responder, name)) == ["10.96.0.20"]
    zone.upsert("Service", svc("web", ip="10.96.0.21"))
    assert datas(ask(responder, name)) == ["10.96.0.21"]
    assert datas(ask(responder, name, tcp=True)) == ["10.96.0.21"]
    zone.delete("Service", svc("web"))
    assert ask(responder, name).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, name, tcp=True).rcode() == dns.rcode.NXDOMAIN
    zone.upsert("Service", svc("web", ip="10.96.0.22"))
    assert datas(ask(responder, name)) == ["10.96.0.22"]
    # endpoints too
    assert datas(ask(responder, "db.default.svc.cluster.local")) == ["10.244.1.5", "10.244.2.6"]
    zone.upsert("EndpointSlice", eps("db", ["10.244.1.5"], ["db-0"]))
    assert datas(ask(responder, "db.default.svc.cluster.local")) == ["10.244.1.5"]


def test_cache_hit_patches_only_the_id(responder):
    w = query_wire()
    first = responder.respond(w)
    other = bytes([w[0] ^ 0xFF, w[1] ^ 0x55]) + w[2:]
    hits = responder.hits
    second = responder.respond(other)
    assert responder.hits == hits + 1
    assert second[:2] == other[:2] and second[2:] == first[2:]


def test_cache_is_bounded(zone, monkeypatch):
    import knet.dns.answer as answer
    monkeypatch.setattr(answer, "CACHE_MAX", 50)
    r = Responder(zone)
    for i in range(200):
        r.respond(query_wire(f"n{i}.default.svc.cluster.local"))
    assert len(r._udp) <= 50


def _essence(out: bytes) -> tuple:
    """What a client acts on: rcode, flags, the answer and additional sections, and the authority's names
    and types (a kept negative answer of an untouched name may carry an older SOA serial, as CoreDNS's cache)."""
    m = dns.message.from_wire(out)
    return (m.rcode(), m.flags, datas(m), datas(m, "additional"),
            sorted((rs.name.to_text(), rs.rdtype) for rs in m.authority))


def test_a_change_drops_only_the_kept_replies_it_touched(zone, responder):
    ask(responder, "web.default.svc.cluster.local")
    ask(responder, "nope.default.svc.cluster.local")
    zone.upsert("Service", svc("new", ip="10.96.0.30"))
    hits = responder.hits
    assert datas(ask(responder, "web.default.svc.cluster.local")) == ["10.96.0.20"]
    assert ask(responder, "nope.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert responder.hits == hits + 2, "names the change did not touch stay precomputed"
    assert datas(ask(responder, "new.default.svc.cluster.local")) == ["10.96.0.30"]
    assert responder.hits == hits + 2


def test_kept_replies_always_equal_fresh_ones_through_random_changes(zone):
    """A warm Responder (kept replies, scoped drops) against a cold one after every change: every name kind
    (Services, endpoints by hostname, SRV, PTR of ClusterIPs and endpoints, namespaces, pod names, CNAME
    chains inside the zone, the apex) over Services, EndpointSlices and Namespaces coming and going."""
    rnd = random.Random(12)
    warm = Responder(zone)
    names = ["cluster.local", "svc.cluster.local", "team.svc.cluster.local", "default.svc.cluster.local",
             "10-244-1-5.team.pod.cluster.local", "alias.default.svc.cluster.local",
             "alias2.team.svc.cluster.local", "dns-version.cluster.local"]
    for s in ("a", "b", "c"):
        for ns in ("default", "team"):
            names += [f"{s}.{ns}.svc.cluster.local", f"_http._tcp.{s}.{ns}.svc.cluster.local",
                      f"h-0.{s}.{ns}.svc.cluster.local", f"10-244-1-{ord(s)}.{s}.{ns}.svc.cluster.local"]
    for i in (5, 20, 21, 22, 97, 98, 99):
        names += [f"{i}.0.96.10.in-addr.arpa", f"{i}.1.244.10.in-addr.arpa"]
    qtypes = ("A", "SRV", "PTR", "AAAA", "SOA", "NS", "TXT")

    def change() -> None:
        s, ns = rnd.choice("abc"), rnd.choice(("default", "team"))
        what = rnd.randrange(7)
        if what == 0:
            zone.upsert("Service", svc(s, ns=ns, ip=f"10.96.0.{rnd.choice((20, 21, 22))}"))
        elif what == 1:
            zone.upsert("Service", svc(s, ns=ns, ip="None"))
        elif what == 2:
            zone.delete("Service", svc(s, ns=ns))
        elif what == 3:
            addrs = rnd.sample([f"10.244.1.{ord(x)}" for x in "abc"] + ["10.244.1.5"], rnd.randrange(3))
            zone.upsert("EndpointSlice", eps(s, addrs, [rnd.choice((None, "h-0")) for _ in addrs], ns=ns))
        elif what == 4:
            zone.delete("EndpointSlice", eps(s, [], ns=ns))
        elif what == 5:
            zone.upsert("Service", svc("alias2", ns="team", ip=None, type="ExternalName",
                                       externalName=f"{s}.{ns}.svc.cluster.local"))
        else:
            (zone.upsert if rnd.random() < 0.5 else zone.delete)("Namespace", {"metadata": {"name": "team"}})

    for step in range(150):
        change()
        for name in rnd.sample(names, 25):
            for qtype in rnd.sample(qtypes, 2):
                w = dns.message.make_query(name, qtype).to_wire()
                got = warm.respond(w)
                want = Responder(zone).respond(w)
                assert _essence(got) == _essence(want), (step, name, qtype)
    assert warm.hits > 0
