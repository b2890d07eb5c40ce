"""The DNS server (knet.dns.server) over real sockets on 127.0.0.1, without
root: a Zone fed objects through an informer's handlers, queries over UDP and
TCP, forwarding to a fake upstream on 127.0.0.1, malformed packets that must
not stop it, readiness and the probe endpoints."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio

from knet.api.informer import Informers
from knet.dns import server as srv
from knet.dns.answer import Responder
from knet.dns.records import Zone


def service(name, ns="default", ip="10.96.0.50", ports=(("http", 80),), **spec):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "10"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
                     "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports], **spec}}


def endpoint_slice(svc, addresses, ns="default", name=None):
    return {"metadata": {"name": name or f"{svc}-abc", "namespace": ns, "resourceVersion": "11",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


async def udp_ask(port, wire, timeout=2.0):
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        await s.connect(("127.0.0.1", port))
        await s.send(wire)
        with trio.move_on_after(timeout):
            return await s.recv(65535)
    return None


async def tcp_ask(port, wire, timeout=2.0):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(struct.pack("!H", len(wire)) + wire)
        return await _read_tcp(stream, timeout)


async def _read_tcp(stream, timeout):
    buf = b""
    with trio.move_on_after(timeout):
        while len(buf) < 2 or len(buf) < 2 + struct.unpack_from("!H", buf)[0]:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            buf += chunk
        return buf[2:2 + struct.unpack_from("!H", buf)[0]]
    return None


def _frames(buf: bytes) -> list[bytes]:
    """The whole length-prefixed messages at the start of a TCP byte stream."""
    out = []
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from("!H", buf)[0]:
        n = struct.unpack_from("!H", buf)[0]
        out.append(buf[2:2 + n])
        buf = buf[2 + n:]
    return out


def query(name, rdtype="A"):
    return dns.message.make_query(name, rdtype, use_edns=False)


class FakeUpstream:
    """A resolver on 127.0.0.1 that answers every A question with 192.0.2.123,
    over UDP and TCP, counting what it was asked."""

    def __init__(self):
        self.asked = []

    def answer(self, wire):
        q = dns.message.from_wire(wire)
        self.asked.append(q.question[0].name.to_text())
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.123"))
        return r.to_wire()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        while True:  # a free UDP port may be taken for TCP: try another
            udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                await tcp.bind(("127.0.0.1", port))
                break
            except OSError:
                udp.close()
                tcp.close()
        tcp.listen(8)

        async def serve_tcp(stream):
            async with stream:
                wire = await _read_tcp(stream, 2)
                if wire:
                    out = self.answer(wire)
                    await stream.send_all(struct.pack("!H", len(out)) + out)

        async with trio.open_nursery() as n:
            n.start_soon(trio.serve_listeners, serve_tcp, [trio.SocketListener(tcp)])
            task_status.started(port)
            with udp:
                while True:
                    wire, addr = await udp.recvfrom(65535)
                    await udp.sendto(self.answer(wire), addr)


def run_server(body, *, upstreams=(), recursion_from=("127.0.0.0/8",), ready=True, objects=(),
               forward_timeout=0.5):
    """Start a server on 127.0.0.1 (a fake upstream too, when asked for), feed
    `objects` to its Zone and run `body(ctx)`."""

    async def main():
        zone = Zone("cluster.local")
        for kind, obj in objects:
            zone.upsert(kind, obj)
        async with trio.open_nursery() as n:
            up = FakeUpstream()
            up_port = await n.start(up.run) if upstreams else 53
            responder = Responder(zone, upstreams=list(upstreams), recursion_from=list(recursion_from))
            server = srv.DnsServer(responder, list(upstreams), upstream_port=up_port, forward_timeout=forward_timeout)
            udp, tcp = await srv.open_sockets("127.0.0.1", 0)
            port = udp.getsockname()[1]
            await n.start(srv.serve, server, udp, tcp)
            if ready:
                server.set_ready()
            await body(type("Ctx", (), {"port": port, "server": server, "zone": zone, "upstream": up})())
            n.cancel_scope.cancel()

    trio.run(main)


OBJECTS = [("Service", service("web")), ("EndpointSlice", endpoint_slice("web", ["10.244.1.5"]))]


def test_answers_a_service_over_udp_and_tcp_in_any_case():
    async def body(ctx):
        for ask in (udp_ask, tcp_ask):
            for name in ("web.default.svc.cluster.local", "WEB.Default.SVC.cluster.LOCAL"):
                q = query(name)
                r = dns.message.from_wire(await ask(ctx.port, q.to_wire()))
                assert r.id == q.id and r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
                assert [rr.address for rr in r.answer[0]] == ["10.96.0.50"]
            r = dns.message.from_wire(await ask(ctx.port, query("nope.default.svc.cluster.local").to_wire()))
            assert r.rcode() == dns.rcode.NXDOMAIN
    run_server(body, objects=OBJECTS)


def test_servfail_until_synced_then_answers():
    async def body(ctx):
        q = query("web.default.svc.cluster.local")
        r = dns.message.from_wire(await udp_ask(ctx.port, q.to_wire()))
        assert r.rcode() == dns.rcode.SERVFAIL and r.id == q.id
        assert r.question[0].name.to_text() == "web.default.svc.cluster.local."
        ctx.server.set_ready()
        r = dns.message.from_wire(await udp_ask(ctx.port, q.to_wire()))
        assert r.rcode() == dns.rcode.NOERROR and r.answer
    run_server(body, ready=False, objects=OBJECTS)


def test_informer_events_change_the_answers():
    """feed() wires an informer's handlers to the Zone; an update is answered
    at once (the Responder's cache follows the Zone's generation)."""
    async def body(ctx):
        informers = Informers(api=None)
        namespaces, services, slices = srv.feed(informers, ctx.zone, srv.ZONE_KINDS)
        assert [i.res.kind for i in (namespaces, services, slices)] == ["Namespace", "Service", "EndpointSlice"]
        assert all(i.transform is not None for i in (namespaces, services, slices))  # the caches hold views
        name = "api.shop.svc.cluster.local"
        r = dns.message.from_wire(await udp_ask(ctx.port, query(name).to_wire()))
        assert r.rcode() == dns.rcode.NXDOMAIN
        await namespaces.replace([{"metadata": {"name": "shop", "resourceVersion": "5"}}], 5)
        await services.replace([service("api", ns="shop", ip="10.96.0.77")], 12)
        r = dns.message.from_wire(await udp_ask(ctx.port, query(name).to_wire()))
        assert [rr.address for rr in r.answer[0]] == ["10.96.0.77"]
        await services.handle("MODIFIED", service("api", ns="shop", ip="10.96.0.78"), 13)
        r = dns.message.from_wire(await udp_ask(ctx.port, query(name).to_wire()))
        assert [rr.address for rr in r.answer[0]] == ["10.96.0.78"]
        await services.handle("DELETED", service("api", ns="shop", ip="10.96.0.78"), 14)
        r = dns.message.from_wire(await udp_ask(ctx.port, query(name).to_wire()))
        assert r.rcode() == dns.rcode.NXDOMAIN
    run_server(body)


def test_forwards_outside_names_to_the_upstream_over_the_clients_transport():
    async def body(ctx):
        for ask in (udp_ask, tcp_ask):
            q = query("example.org")
            r = dns.message.from_wire(await ask(ctx.port, q.to_wire()))
            assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
            assert [rr.address for rr in r.answer[0]] == ["192.0.2.123"]
        assert ctx.upstream.asked == ["example.org.", "example.org."]
        assert ctx.server.stats.forwarded == 2
    run_server(body, upstreams=["127.0.0.1"])


def test_refused_without_upstreams_and_for_clients_outside_the_cluster():
    async def body(ctx):
        r = dns.message.from_wire(await udp_ask(ctx.port, query("example.org").to_wire()))
        assert r.rcode() == dns.rcode.REFUSED
    run_server(body)

    async def outsider(ctx):  # 127.0.0.1 is not in recursion_from here: not an open resolver
        for ask in (udp_ask, tcp_ask):
            r = dns.message.from_wire(await ask(ctx.port, query("example.org").to_wire()))
            assert r.rcode() == dns.rcode.REFUSED
        assert ctx.upstream.asked == []
    run_server(outsider, upstreams=["127.0.0.1"], recursion_from=())


def test_servfail_when_the_upstream_does_not_answer():
    async def body(ctx):
        ctx.server.upstream_port = 9  # discard: nothing answers on 127.0.0.1:9
        for ask in (udp_ask, tcp_ask):
            q = query("example.org")
            r = dns.message.from_wire(await ask(ctx.port, q.to_wire(), timeout=3))
            assert r.id == q.id and r.rcode() == dns.rcode.SERVFAIL
        assert ctx.server.stats.forward_failed == 2
    run_server(body, upstreams=["127.0.0.1"], forward_timeout=0.3)


def test_truncated_over_udp_whole_over_tcp():
    ips = [f"10.244.1.{i}" for i in range(1, 41)]
    objects = [("Service", service("big", ip="None")), ("EndpointSlice", endpoint_slice("big", ips))]

    async def body(ctx):
        q = query("big.default.svc.cluster.local")
        udp = await udp_ask(ctx.port, q.to_wire())
        assert len(udp) <= 512
        r = dns.message.from_wire(udp, ignore_trailing=True)
        assert r.flags & dns.flags.TC
        r = dns.message.from_wire(await tcp_ask(ctx.port, q.to_wire()))
        assert not r.flags & dns.flags.TC
        assert sorted(rr.address for rrset in r.answer for rr in rrset) == sorted(ips)
    run_server(body, objects=objects)


def _loop_query():
    # QDCOUNT 1, the name a compression pointer to itself.
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)


MALFORMED = [
    b"", b"\x12", b"\x12\x34\x01\x00\x00\x01",  # shorter than a header
    struct.pack("!HHHHHH", 0x1111, 0x0100, 0, 0, 0, 0),  # QDCOUNT 0
    query("a.b").to_wire()[:12].replace(b"\x00\x01", b"\x00\x02", 1) + query("a.b").to_wire()[12:] * 2,  # QDCOUNT 2
    _loop_query(),
    struct.pack("!HHHHHH", 0x2222, 0x0100, 1, 0, 0, 0) + b"\x50" + b"a" * 80 + b"\x00\x00\x01\x00\x01",  # label > 63
    struct.pack("!HHHHHH", 0x3333, 0x0100, 1, 0, 0, 0) + b"\x03ab",  # truncated question
    bytes(range(256)) * 3,  # garbage
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_malformed_packets_get_formerr_or_nothing_and_it_keeps_serving(transport):
    async def body(ctx):
        ask = udp_ask if transport == "udp" else tcp_ask
        formerr = 0
        for wire in MALFORMED:
            if transport == "udp" and not wire:
                continue  # an empty datagram: nothing to send
            out = await ask(ctx.port, wire, timeout=0.3)
            if out is not None and len(out) >= 12:
                assert out[:2] == wire[:2]
                assert out[3] & 0xF == dns.rcode.FORMERR, wire[:16]
                formerr += 1
            q = query("web.default.svc.cluster.local")
            r = dns.message.from_wire(await ask(ctx.port, q.to_wire()))
            assert r.rcode() == dns.rcode.NOERROR and r.answer
        assert formerr >= 4  # QDCOUNT 0 and 2, the pointer loop, the long label, the cut question: a header to answer
    run_server(body, objects=OBJECTS)


def test_tcp_connection_answers_several_queries_in_order():
    async def body(ctx):
        stream = await trio.open_tcp_stream("127.0.0.1", ctx.port)
        async with stream:
            qs = [query("web.default.svc.cluster.local"), query("nope.default.svc.cluster.local")]
            await stream.send_all(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in qs)))
            # Both answers may come in one segment: split them by their length prefixes.
            buf = b""
            with trio.move_on_after(2):
                while len(_frames(buf)) < 2:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    buf += chunk
            first, second = (dns.message.from_wire(f) for f in _frames(buf))
            assert first.id == qs[0].id and first.rcode() == dns.rcode.NOERROR
            assert second.id == qs[1].id and second.rcode() == dns.rcode.NXDOMAIN
    run_server(body, objects=OBJECTS)


def test_probe_endpoints():
    async def main():
        ready = {"ok": False}
        routes = {"/health": lambda: (200, "OK"),
                  "/ready": lambda: (200, "OK") if ready["ok"] else (503, "no\n")}
        async with trio.open_nursery() as n:
            listener = trio.socket.socket()
            await listener.bind(("127.0.0.1", 0))
            port = listener.getsockname()[1]
            listener.close()
            await n.start(srv.serve_http, port, "127.0.0.1", routes)

            async def get(path):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    data = b""
                    while chunk := await stream.receive_some(4096):
                        data += chunk
                return int(data.split()[1])

            assert await get("/health") == 200
            assert await get("/ready") == 503
            ready["ok"] = True
            assert await get("/ready") == 200
            assert await get("/other") == 404
            n.cancel_scope.cancel()

    trio.run(main)


def test_metrics_text_counts():
    stats = srv.Stats(udp=3, tcp=1, forwarded=2)
    text = srv.metrics_text(stats, 7)
    assert 'coredns_dns_requests_total{proto="udp"} 3' in text and "knet_dns_zone_generation 7" in text


def test_error_reply_keeps_id_and_question():
    q = query("x.example")
    r = dns.message.from_wire(srv.error_reply(q.to_wire(), srv.RCODE_SERVFAIL))
    assert r.id == q.id and r.rcode() == dns.rcode.SERVFAIL and r.question == q.question
    assert srv.error_reply(b"\x01", srv.RCODE_SERVFAIL) is None
    response = dns.message.make_response(q).to_wire()
    assert srv.error_reply(response, srv.RCODE_SERVFAIL) is None  # never answer a response


def test_api_credentials_from_the_pod_environment(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("abc\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    monkeypatch.setattr(srv, "SERVICE_ACCOUNT_TOKEN", str(tmp_path / "absent"))
    assert srv.api_credentials(env, str(token)) == srv.ApiEndpoint("10.96.0.1", 443, "abc")
    sa = tmp_path / "sa-token"
    sa.write_text("from-sa")
    monkeypatch.setattr(srv, "SERVICE_ACCOUNT_TOKEN", str(sa))
    assert srv.api_credentials(env, str(token)).token == "from-sa"  # a mounted ServiceAccount token wins
    with pytest.raises(RuntimeError, match="KUBERNETES_SERVICE_HOST"):
        srv.api_credentials({}, str(token))
    monkeypatch.setattr(srv, "SERVICE_ACCOUNT_TOKEN", str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="no API token"):
        srv.api_credentials(env, str(tmp_path / "missing"))


def test_args():
    opts = srv.parse_args(["--domain", "lab.test", "--upstream", "192.168.56.1", "--upstream", "9.9.9.9",
                           "--forward-from", "192.168.56.10/32", "--token-file", "/t"])
    assert opts.domain == "lab.test" and opts.upstreams == ["192.168.56.1", "9.9.9.9"]
    assert opts.forward_from == ["192.168.56.10/32"] and opts.token_file == "/t" and opts.port == 53
    server, zone = srv.build(opts)
    assert zone.domain == "lab.test." and server.upstreams == ["192.168.56.1", "9.9.9.9"]
    assert dns.rdatatype.A  # dnspython is what the tests speak
