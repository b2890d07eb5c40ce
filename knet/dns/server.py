"""The cluster DNS server: the process each coredns pod runs as its container.

The node agent starts it in the pod's network namespace (a command
container), so it binds UDP and TCP 53 on the pod's addresses and reaches the
API as any in-cluster client does: through the `kubernetes` Service named by
the environment kubelet gives every container (`api_credentials`, the one
place that says where the API and its token are). It keeps the Services and
EndpointSlices in a `Zone` (knet.dns.records) through shared informers, and
answers through a `Responder` (knet.dns.answer), which owns every DNS rule:
this module is only transport.

- UDP is the hot path: one task drains the socket without awaiting per packet
  (recvfrom until it would block, answer, sendto), yielding to the other
  tasks every few dozen packets, so a burst costs a syscall pair and the
  Responder's cached answer per query.
- Names outside the cluster zone come back from the Responder as a Forward:
  its query goes to the upstreams over the client's transport (CoreDNS
  `forward`: a fresh socket per query, upstreams in random order, 2 s each)
  and what comes back (or None: SERVFAIL) is turned into the client's
  answer by the Forward. The Responder forwards only for clients in the
  cluster (the pod subnet, plus the nodes this server is told of); anyone
  else gets REFUSED, so the server is never an open resolver for the LAN or
  the ext host. Beyond 1000 forwards in flight: REFUSED (max_concurrent).
- Until the informers have listed, every query gets SERVFAIL (CoreDNS's
  answer before its API sync) and /ready (8181) says 503: the readinessProbe
  keeps the pod out of kube-dns until it knows the cluster. /health (8080)
  is liveness; /metrics (9153) counts queries, Prometheus text.

Imports stay lean (trio, the informer, the pure answer code): two of these
run in every cluster.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import random
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio

log = logging.getLogger("knet.dns")

# Where a pod's ServiceAccount token is mounted (issue 15 will mount one), and the cluster CA beside it.
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
FORWARD_TIMEOUT = 2.0  # per upstream, CoreDNS forward's read_timeout
MAX_FORWARDS = 1000  # in flight, CoreDNS forward's max_concurrent (REFUSED beyond)
TCP_IDLE = 10.0  # seconds a client's TCP connection may sit idle
BATCH = 64  # UDP packets answered before the loop lets other tasks run

RCODE_SERVFAIL, RCODE_REFUSED, RCODE_FORMERR = 2, 5, 1


# -- where the API is ------------------------------------------------------------------

@dataclass
class ApiEndpoint:
    host: str
    port: int
    token: str
    ca_file: str | None = None  # the cluster CA the API server's certificate must chain to (HTTPS)


def api_credentials(env: dict[str, str] | None = None, token_file: str | None = None,
                    ca_file: str | None = None) -> ApiEndpoint:
    """How the server finds the API from inside its pod, in one place.

    The address is what every container gets: KUBERNETES_SERVICE_HOST and
    KUBERNETES_SERVICE_PORT (the `kubernetes` Service, DNATed by the node's
    proxy to the API server). The token is the pod's ServiceAccount token
    when one is mounted (issue 15), else the file the Deployment names
    (`--token-file`: the cluster's token, which pods can read today because
    they see the host's files; issue 15 masks /run/knet and mounts the
    ServiceAccount token instead, and only this function changes). The CA
    that vouches for the API server likewise: the ServiceAccount's ca.crt, or
    `--ca-file` (the cluster's pki/ca.crt)."""
    env = os.environ if env is None else env
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise RuntimeError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: "
                           "the DNS server runs inside a pod")
    ca = next((p for p in (SERVICE_ACCOUNT_CA, ca_file) if p and os.path.exists(p)), None)
    for path in (SERVICE_ACCOUNT_TOKEN, token_file):
        if path and os.path.exists(path):
            with open(path) as f:
                return ApiEndpoint(host, int(port), f.read().strip(), ca)
    raise RuntimeError(f"no API token: neither {SERVICE_ACCOUNT_TOKEN} nor --token-file {token_file!r} exists")


# -- replies the server makes itself ---------------------------------------------------

def _question_end(wire: bytes) -> int | None:
    """Where the first question ends (after QTYPE and QCLASS), or None when
    there is no readable one. Compression pointers are followed for length
    only: a question's name ends at a zero label or at its first pointer."""
    if len(wire) < 12 or wire[4:6] == b"\0\0":
        return None
    i = 12
    while i < len(wire):
        n = wire[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 == 0xC0:
            i += 2
            break
        if n & 0xC0:
            return None
        i += 1 + n
    else:
        return None
    return i + 4 if i + 4 <= len(wire) else None


def error_reply(query: bytes, rcode: int) -> bytes | None:
    """A reply carrying only the query's id, flags and question, with `rcode`
    (SERVFAIL, REFUSED): what the server says when it cannot ask anyone.
    None for something too short to carry an id."""
    if len(query) < 12:
        return None
    flags = struct.unpack_from("!H", query, 2)[0]
    if flags & 0x8000:  # a response: never answer one (no loops between servers)
        return None
    end = _question_end(query)
    # QR, the query's opcode and RD; RA (we recurse for our clients); the rcode.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode
    if end is None:
        return struct.pack("!HHHHHH", struct.unpack_from("!H", query)[0], out_flags, 0, 0, 0, 0)
    return struct.pack("!HHHHHH", struct.unpack_from("!H", query)[0], out_flags, 1, 0, 0, 0) + query[12:end]


# -- the server ------------------------------------------------------------------------

@dataclass
class Stats:
    """Counters for /metrics: plain ints, so the hot path pays an add."""
    udp: int = 0
    tcp: int = 0
    forwarded: int = 0
    forward_failed: int = 0
    refused: int = 0
    dropped: int = 0


@dataclass
class DnsServer:
    """Transport around a Responder: `respond(wire, tcp=, client=)` gives the
    reply's bytes, a Forward (send `.query` upstream, answer `.reply(what
    came back or None)`) or None (drop)."""
    responder: object
    upstreams: list[str] = field(default_factory=list)
    upstream_port: int = 53
    forward_timeout: float = FORWARD_TIMEOUT
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.ready = trio.Event()
        self._forwards = 0
        self._respond: Callable = self._not_ready

    # -- readiness ---------------------------------------------------------------

    def set_ready(self) -> None:
        """The Zone reflects the API: answer from it from now on."""
        self._respond = self.responder.respond
        self.ready.set()

    def _not_ready(self, wire: bytes, *, tcp: bool = False, client: str | None = None) -> bytes | None:
        return error_reply(wire, RCODE_SERVFAIL)

    # -- UDP -----------------------------------------------------------------------

    async def serve_udp(self, raw: socket.socket, nursery: trio.Nursery) -> None:
        """The hot loop: drain the (non-blocking) socket between awaits. Forwarded
        queries run as tasks of their own in `nursery` so a slow upstream holds
        up nobody."""
        recvfrom, sendto = raw.recvfrom, raw.sendto
        stats = self.stats
        wait_readable, checkpoint = trio.lowlevel.wait_readable, trio.lowlevel.checkpoint
        try:
            while True:
                await wait_readable(raw)
                for _ in range(BATCH):
                    try:
                        data, addr = recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # an ICMP error queued on the socket: nothing to do with this packet
                        continue
                    stats.udp += 1
                    try:
                        reply = self._respond(data, tcp=False, client=addr[0])
                    except Exception:
                        log.exception("answering a query failed")
                        reply = error_reply(data, RCODE_SERVFAIL)
                    if reply is None:
                        stats.dropped += 1
                        continue
                    if reply.__class__ is not bytes:
                        self._start_forward(nursery, data, reply, addr, raw)
                        continue
                    try:
                        sendto(reply, addr)
                    except OSError:
                        stats.dropped += 1  # the client's buffer is full or it is gone: it retries
                else:
                    await checkpoint()
        finally:
            raw.close()

    def _start_forward(self, nursery: trio.Nursery, query: bytes, fwd: object, addr: tuple,
                       raw: socket.socket) -> None:
        if self._forwards >= MAX_FORWARDS:
            self.stats.refused += 1
            refused = error_reply(query, RCODE_REFUSED)
            if refused:
                try:
                    raw.sendto(refused, addr)
                except OSError:
                    pass
            return
        self._forwards += 1
        nursery.start_soon(self._forward_udp, fwd, query, addr, raw)

    async def _forward_udp(self, fwd: object, query: bytes, addr: tuple, raw: socket.socket) -> None:
        try:
            reply = await self.relay(fwd, query, tcp=False)
        finally:
            self._forwards -= 1
        if reply:
            try:
                raw.sendto(reply, addr)
            except OSError:
                pass

    async def relay(self, fwd: object, query: bytes, *, tcp: bool) -> bytes | None:
        """Send the Forward's query upstream and make the client's answer of what came back."""
        upstream = await self.forward(getattr(fwd, "query", query), tcp=tcp)
        try:
            return fwd.reply(upstream)
        except Exception:
            log.exception("relaying an upstream answer failed")
            return error_reply(query, RCODE_SERVFAIL)

    # -- forwarding ------------------------------------------------------------------

    def _upstream_order(self) -> list[str]:
        """CoreDNS forward's default policy: random."""
        order = list(self.upstreams)
        random.shuffle(order)
        return order

    async def forward(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """Ask the upstreams in turn; the first answer carrying the query's id
        is relayed as it is (its rcode included). None when none answered."""
        self.stats.forwarded += 1
        qid = wire[:2]
        for upstream in self._upstream_order():
            with trio.move_on_after(self.forward_timeout):
                try:
                    reply = await (_ask_tcp if tcp else _ask_udp)(upstream, self.upstream_port, wire, qid)
                except OSError as e:
                    log.debug("upstream %s: %s", upstream, e)
                    continue
                if reply is not None:
                    return reply
        self.stats.forward_failed += 1
        return None

    # -- TCP -----------------------------------------------------------------------

    async def handle_tcp(self, stream: trio.SocketStream) -> None:
        """One client connection: length-prefixed queries, answered in order,
        until it closes or sits idle. Nothing it sends may escape: an exception
        out of here would stop serve_listeners."""
        try:
            peer = stream.socket.getpeername()[0]
        except OSError:
            peer = ""
        buf = b""
        try:
            while True:
                with trio.move_on_after(TCP_IDLE) as idle:
                    while True:
                        if len(buf) >= 2:
                            n = struct.unpack_from("!H", buf)[0]
                            if len(buf) >= 2 + n:
                                break
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            return
                        buf += chunk
                if idle.cancelled_caught:
                    return
                n = struct.unpack_from("!H", buf)[0]
                query, buf = buf[2:2 + n], buf[2 + n:]
                self.stats.tcp += 1
                try:
                    reply = self._respond(query, tcp=True, client=peer)
                except Exception:
                    log.exception("answering a query failed")
                    reply = error_reply(query, RCODE_SERVFAIL)
                if reply is not None and reply.__class__ is not bytes:
                    if self._forwards >= MAX_FORWARDS:
                        self.stats.refused += 1
                        reply = error_reply(query, RCODE_REFUSED)
                    else:
                        self._forwards += 1
                        try:
                            reply = await self.relay(reply, query, tcp=True)
                        finally:
                            self._forwards -= 1
                if not reply:
                    self.stats.dropped += 1
                    return  # garbage: CoreDNS closes the connection too
                await stream.send_all(struct.pack("!H", len(reply)) + reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


async def _ask_udp(host: str, port: int, wire: bytes, qid: bytes) -> bytes | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as s:
        await s.connect((host, port))  # a connected socket hears only this upstream
        await s.send(wire)
        while True:
            reply = await s.recv(65535)
            if reply[:2] == qid and len(reply) >= 12:
                return reply


async def _ask_tcp(host: str, port: int, wire: bytes, qid: bytes) -> bytes | None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(struct.pack("!H", len(wire)) + wire)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack_from("!H", buf)[0]:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            buf += chunk
        reply = buf[2:2 + struct.unpack_from("!H", buf)[0]]
        return reply if reply[:2] == qid else None


# -- health, readiness, metrics ----------------------------------------------------------

async def serve_http(port: int, host: str, routes: dict[str, Callable[[], tuple[int, str]]],
                     *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A tiny HTTP/1.0 server for the probes and Prometheus: GET path -> (status, body)."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(5):
                head = b""
                while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < 8192:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    head += chunk
                parts = head.split(b"\r\n", 1)[0].split()
                path = parts[1].decode(errors="replace").split("?")[0] if len(parts) >= 2 else ""
                status, body = routes[path]() if path in routes else (404, "404 page not found\n")
                reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
                data = body.encode()
                await stream.send_all(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started()
    await trio.serve_listeners(handle, listeners)


def metrics_text(stats: Stats, zone_generation: int) -> str:
    lines = ["# TYPE coredns_dns_requests_total counter"]
    lines += [f'coredns_dns_requests_total{{proto="{p}"}} {getattr(stats, p)}' for p in ("udp", "tcp")]
    lines += ["# TYPE coredns_forward_requests_total counter", f"coredns_forward_requests_total {stats.forwarded}",
              "# TYPE coredns_forward_failures_total counter", f"coredns_forward_failures_total {stats.forward_failed}",
              "# TYPE knet_dns_refused_total counter", f"knet_dns_refused_total {stats.refused}",
              "# TYPE knet_dns_dropped_total counter", f"knet_dns_dropped_total {stats.dropped}",
              "# TYPE knet_dns_zone_generation gauge", f"knet_dns_zone_generation {zone_generation}"]
    return "\n".join(lines) + "\n"


# -- feeding the zone ------------------------------------------------------------------

# What the Zone is kept from: Namespaces too, since `<ns>.svc.<zone>` and the
# pod records exist only for namespaces that do.
ZONE_KINDS = ("Namespace", "Service", "EndpointSlice")


def feed(informers: object, zone: object, kinds: Iterable[str]) -> list:
    """Handlers that keep `zone` equal to the informers' caches; returns the informers."""
    from knet.api.informer import EventHandler
    from knet.dns.records import ZONE_VIEWS

    out = []
    for kind in kinds:
        inf = informers.for_kind(kind, transform=ZONE_VIEWS[kind])  # what the Zone reads, no more
        inf.add_handler(EventHandler(
            on_add=lambda obj, k=kind: zone.upsert(k, obj),
            on_update=lambda old, new, k=kind: zone.upsert(k, new),
            on_delete=lambda obj, k=kind: zone.delete(k, obj)))
        out.append(inf)
    return out


@dataclass
class Options:
    domain: str = "cluster.local"
    upstreams: list[str] = field(default_factory=list)
    service_subnet: str = "10.96.0.0/12"
    pod_subnet: str = "10.244.0.0/16"
    forward_from: list[str] = field(default_factory=list)
    address: str = "0.0.0.0"
    port: int = 53
    health_port: int = 8080
    ready_port: int = 8181
    metrics_port: int = 9153
    token_file: str | None = None
    ca_file: str | None = None
    lameduck: float = 5.0


def build(opts: Options) -> tuple[DnsServer, object]:
    from knet.dns.answer import Responder
    from knet.dns.records import Zone

    zone = Zone(opts.domain, service_subnet=opts.service_subnet, pod_subnet=opts.pod_subnet)
    responder = Responder(zone, upstreams=list(opts.upstreams), recursion_from=["127.0.0.0/8", *opts.forward_from])
    return DnsServer(responder, list(opts.upstreams)), zone


async def open_sockets(address: str, port: int) -> tuple[socket.socket, trio.SocketListener]:
    """UDP (a plain non-blocking socket: the hot loop's) and TCP on the same
    port. Port 0 (tests) takes the UDP socket's free port for TCP, and tries
    another when something already holds that port for TCP: a free UDP port
    says nothing about TCP, and one CI run lost that race."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for attempt in range(20 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        udp.setblocking(False)
        udp.bind((address, port))
        tcp = trio.socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            await tcp.bind((address, udp.getsockname()[1]))
        except OSError as e:
            udp.close()
            tcp.close()
            if e.errno != errno.EADDRINUSE or port != 0 or attempt == 19:
                raise
            continue
        tcp.listen(1024)
        return udp, trio.SocketListener(tcp)
    raise AssertionError("unreachable")


async def serve(server: DnsServer, udp: socket.socket, tcp: trio.SocketListener,
                *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """UDP and TCP on the given sockets until cancelled."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_udp, udp, nursery)
        nursery.start_soon(trio.serve_listeners, server.handle_tcp, [tcp])
        task_status.started()


async def main_async(opts: Options) -> None:
    from knet.api.aclient import AsyncClient
    from knet.api.informer import Informers

    server, zone = build(opts)
    endpoint = api_credentials(token_file=opts.token_file, ca_file=opts.ca_file)
    api = AsyncClient(endpoint.host, endpoint.port, endpoint.token, ca_file=endpoint.ca_file)
    informers = Informers(api)
    watched = feed(informers, zone, ZONE_KINDS)
    udp, tcp = await open_sockets(opts.address, opts.port)
    draining = trio.Event()
    routes = {
        "/health": lambda: (200, "OK"),
        "/ready": lambda: ((503, "shutting down: lame duck\n") if draining.is_set() else (200, "OK")
                           if server.ready.is_set() else (503, "not synced with the API\n")),
        "/metrics": lambda: (200, metrics_text(server.stats, getattr(zone, "generation", 0))),
    }
    async with trio.open_nursery() as nursery:
        for port in {opts.health_port, opts.ready_port, opts.metrics_port} - {0}:
            await nursery.start(serve_http, port, opts.address, routes)
        await nursery.start(serve, server, udp, tcp)
        informers.start(nursery)
        log.info("serving DNS for %s on %s:%d (upstreams: %s)", opts.domain, opts.address, opts.port,
                 ", ".join(opts.upstreams) or "none: REFUSED outside the zone")
        for inf in watched:
            await inf.wait_synced()
        server.set_ready()
        log.info("synced with the API at %s:%d: ready", endpoint.host, endpoint.port)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        # CoreDNS's `health { lameduck 5s }`: a pod being deleted keeps answering while the
        # EndpointSlice marks it terminating and every node's proxy takes it out of the Service;
        # closing the socket at once turns the queries already on their way into ICMP
        # port-unreachable, which dig and glibc report as "connection refused" without retrying.
        draining.set()
        log.info("terminating: lame duck for %.1f s", opts.lameduck)
        await trio.sleep(opts.lameduck)
        nursery.cancel_scope.cancel()


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="knet-dns", description="knet's cluster DNS server (CoreDNS's place)")
    p.add_argument("--domain", default="cluster.local", help="the cluster domain (kubelet's --cluster-domain)")
    p.add_argument("--upstream", action="append", default=[], help="forward names outside the zone here (repeat)")
    p.add_argument("--service-subnet", default="10.96.0.0/12")
    p.add_argument("--pod-subnet", default="10.244.0.0/16")
    p.add_argument("--forward-from", action="append", default=[],
                   help="besides the pod subnet and loopback, clients forwarded for (CIDR, repeat)")
    p.add_argument("--address", default="0.0.0.0")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--health-port", type=int, default=8080)
    p.add_argument("--ready-port", type=int, default=8181)
    p.add_argument("--metrics-port", type=int, default=9153)
    p.add_argument("--token-file", default=None, help="the API token, when no ServiceAccount token is mounted")
    p.add_argument("--ca-file", default=None, help="the cluster CA, when no ServiceAccount ca.crt is mounted")
    p.add_argument("--lameduck", type=float, default=5.0,
                   help="seconds to keep answering after SIGTERM (CoreDNS's health lameduck)")
    a = p.parse_args(argv)
    return Options(a.domain, a.upstream, a.service_subnet, a.pod_subnet, a.forward_from, a.address, a.port,
                   a.health_port, a.ready_port, a.metrics_port, a.token_file, a.ca_file, a.lameduck)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(main_async, opts)
