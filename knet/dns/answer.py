"""DNS messages in, DNS messages out: the wire side of the cluster DNS.

Pure: the server (knet.dns.server) owns the sockets and calls
`Responder.respond(query_bytes, tcp=..., client=...)` for each message (TCP
without its two-byte length prefix). The result is the reply's bytes, a
`Forward` (the server sends `forward.query` to an upstream and relays
`forward.reply(upstream_bytes_or_None)`), or None: drop it.

Why the hot path looks the way it does: building a reply with dnspython costs
~100 us, which would cap a Python server far below the ~17k queries/s per core
CoreDNS manages. Every authoritative reply is rendered once and kept; a query
whose bytes (after the id, with the qname lower-cased) were seen before is
answered by splicing its own id and question into the kept bytes, a few
slices and one dict lookup. Owner names in kept replies point at the
question (name compression), so splicing the question in also answers with
the query's own case. Each kept reply is filed under its name's Zone scope;
when the Zone's generation moves, the replies of the scopes the changes
touched are dropped (all of them when the Zone cannot say), so an answer
never outlives the data it came from and the rest stay hot.

Malformed queries (RFC 1035, as miekg/dns's server treats them): shorter than
a header, or a response (QR=1): dropped. A readable header with QDCOUNT != 1,
or a question that does not parse (truncated, compression pointer loops or
forward pointers, labels over 63 octets, names over 255): FORMERR.

Names outside the zone: REFUSED with no upstreams; with upstreams, Forward, but
only for clients inside the cluster (the pod subnet, plus `recursion_from`),
so the server is never an open resolver for the LAN or the outside host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from knet.dns.records import Answer, Record, Zone

UDP_PLAIN = 512  # a UDP reply without EDNS
TCP_MAX = 65535
OUR_PAYLOAD = 1232  # the EDNS size we advertise (DNS flag day 2020)
CACHE_MAX = 20000  # kept replies per transport; the oldest goes first

_QR, _AA, _RD, _CD = 0x8000, 0x0400, 0x0100, 0x0010
_IN = dns.rdataclass.IN
_REFUSED_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)  # no zone transfers (no transfer plugin)


def header_reply(query: bytes, rcode: int) -> bytes:
    """A reply that is only a header: for queries whose question cannot be trusted."""
    flags = int.from_bytes(query[2:4], "big")
    out = _QR | (flags & 0x7800) | (flags & (_RD | _CD)) | (rcode & 0xF)
    return query[:2] + out.to_bytes(2, "big") + bytes(8)


class Forward:
    """A query the server must send upstream; `reply` turns what came back into the client's answer.

    `query` is the client's own message (same id) unless the answer chases an
    ExternalName target, in which case it asks for the target. `reply(None)`
    (no upstream answered in time) gives SERVFAIL, so no query goes unanswered.
    """

    __slots__ = ("query", "_finish")

    def __init__(self, query: bytes, finish: Callable[[bytes | None], bytes]) -> None:
        self.query = query
        self._finish = finish

    def reply(self, upstream: bytes | None) -> bytes:
        return self._finish(upstream)

    def __repr__(self) -> str:
        return f"Forward({len(self.query)} bytes)"


def _plain_qname_end(wire: bytes) -> int:
    """The offset just after an uncompressed qname starting at 12, or -1."""
    i, n = 12, len(wire)
    while i < n:
        length = wire[i]
        if length == 0:
            return i
        if length > 63:
            return -1
        i += length + 1
    return -1


def _qname_text(wire: bytes, end: int) -> str:
    """The uncompressed qname ending at `end`, as text (its labels are plain: only cached ones get here)."""
    labels, i = [], 12
    while i < end:
        n = wire[i]
        labels.append(wire[i + 1:i + 1 + n].decode("ascii", "backslashreplace"))
        i += n + 1
    return ".".join(labels) + "."


def _size_limit(q: dns.message.Message, tcp: bool) -> int:
    if tcp:
        return TCP_MAX
    return max(UDP_PLAIN, q.payload) if q.edns >= 0 else UDP_PLAIN


def _render(r: dns.message.Message, limit: int) -> bytes:
    """Keep the records that fit; TC=1 if any of the answer or authority did not (request.Scrub's rule)."""
    return r.to_wire(max_size=limit, prefer_truncation=True)


def _response(q: dns.message.Message, rcode: int, authoritative: bool = True) -> dns.message.Message:
    r = dns.message.make_response(q, our_payload=OUR_PAYLOAD)
    r.flags |= q.flags & dns.flags.CD
    if authoritative:
        r.flags |= dns.flags.AA
    r.set_rcode(rcode)
    return r


class _Cache:
    """Kept replies by query key, filed by Zone scope too, so a change drops only what it touched."""

    __slots__ = ("replies", "scopes")

    def __init__(self) -> None:
        self.replies: dict[bytes, tuple[bytes, bytes, tuple]] = {}  # key -> (header after the id, tail, scope)
        self.scopes: dict[tuple, set[bytes]] = {}

    def put(self, key: bytes, header: bytes, tail: bytes, scope: tuple) -> None:
        if key not in self.replies and len(self.replies) >= CACHE_MAX:
            self._forget(next(iter(self.replies)))  # the oldest
        old = self.replies.get(key)
        if old is not None and old[2] != scope:
            self._forget(key)
        self.replies[key] = (header, tail, scope)
        self.scopes.setdefault(scope, set()).add(key)

    def _forget(self, key: bytes) -> None:
        _h, _t, scope = self.replies.pop(key)
        keys = self.scopes.get(scope)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.scopes[scope]

    def drop(self, scopes: set | None) -> None:
        if scopes is None:
            self.replies.clear()
            self.scopes.clear()
            return
        for scope in scopes:
            for key in self.scopes.pop(scope, ()):
                self.replies.pop(key, None)

    def __len__(self) -> int:
        return len(self.replies)


class Responder:
    """Answers DNS messages from a Zone; see the module docstring for the cache and the malformed-query rules."""

    def __init__(self, zone: Zone, *, upstreams: Iterable[str] = (),
                 recursion_from: Iterable[str] = ()) -> None:
        self.zone = zone
        self.upstreams = list(upstreams)
        self.recursion_from = [ipaddress.ip_network(n, strict=False) for n in recursion_from]
        self.recursion_from.append(zone.subnets[-1])  # pods
        self._gen = zone.generation
        self._udp = _Cache()
        self._tcp = _Cache()
        self.hits = 0
        self.misses = 0

    def respond(self, wire: bytes, *, tcp: bool = False, client: str | None = None) -> bytes | Forward | None:
        if self.zone.generation != self._gen:
            self._follow_zone()
        end = wire.find(0, 12)
        key = None
        if end > 0:
            key = wire[2:12] + wire[12:end].lower() + wire[end:]
            hit = (self._tcp if tcp else self._udp).replies.get(key)
            if hit is not None:
                self.hits += 1
                return wire[:2] + hit[0] + wire[12:end] + hit[1]
        self.misses += 1
        out, keep = self._answer(wire, tcp, client)
        if keep and key is not None and type(out) is bytes and _plain_qname_end(wire) == end \
                and out[12:end].lower() == wire[12:end].lower():
            (self._tcp if tcp else self._udp).put(key, out[2:12], out[end:], self.zone.scope(_qname_text(wire, end)))
        return out

    def _follow_zone(self) -> None:
        """Drop the kept replies the Zone's changes since we last looked may have changed."""
        scopes = self.zone.changes_since(self._gen)
        self._udp.drop(scopes)
        self._tcp.drop(scopes)
        self._gen = self.zone.generation

    # -- the slow path: parse, look up, render ----------------------------------------------------------------

    def _answer(self, wire: bytes, tcp: bool, client: str | None) -> tuple[bytes | Forward | None, bool]:
        """The reply, and whether it may be kept for identical queries (it depends only on the query and zone)."""
        if len(wire) < 12:
            return None, False  # not even a header: no id to answer to
        flags = int.from_bytes(wire[2:4], "big")
        if flags & _QR:
            return None, False  # a response: answering it could loop between two servers
        if (flags >> 11) & 0xF != 0:
            return header_reply(wire, dns.rcode.NOTIMP), False
        if wire[4:6] != b"\x00\x01":
            return header_reply(wire, dns.rcode.FORMERR), False
        try:
            q = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None, False
        except Exception:  # noqa: BLE001 - any parse failure of a readable header is the client's FORMERR
            return header_reply(wire, dns.rcode.FORMERR), False
        if q.edns > 0:
            r = _response(q, dns.rcode.BADVERS, authoritative=False)
            return _render(r, _size_limit(q, tcp)), True
        question = q.question[0]
        if question.rdclass != _IN:
            return _render(_response(q, dns.rcode.REFUSED, False), _size_limit(q, tcp)), True
        qname = question.name.to_text().lower()
        qtype = dns.rdatatype.to_text(question.rdtype)
        ans = self.zone.lookup(qname, qtype)
        if ans is None:
            return self._outside(wire, q, tcp, client)
        if question.rdtype in _REFUSED_TYPES:
            return _render(_response(q, dns.rcode.REFUSED), _size_limit(q, tcp)), True
        r = _response(q, dns.rcode.NXDOMAIN if ans.rcode == "NXDOMAIN" else dns.rcode.NOERROR)
        self._fill(r, question.name, qname, ans)
        if ans.chase and self.upstreams and self._may_recurse(client):
            return self._chase(q, r, ans.chase, question.rdtype, tcp), False
        return _render(r, _size_limit(q, tcp)), True

    def _fill(self, r: dns.message.Message, qname_obj: dns.name.Name, qname: str, ans: Answer) -> None:
        # One RRset per record, so truncation keeps every record that fits (not all or nothing per RRset).
        names: dict[str, dns.name.Name] = {qname: qname_obj}
        for rec in ans.answer:
            r.answer.append(_rrset(rec, names))
        if not ans.answer and ans.soa is not None:
            r.authority.append(_rrset(ans.soa, names))
        for rec in ans.additional:
            r.additional.append(_rrset(rec, names))

    def _may_recurse(self, client: str | None) -> bool:
        if client is None:
            return True  # the caller filtered already
        try:
            addr = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(addr in net for net in self.recursion_from)

    def _outside(self, wire: bytes, q: dns.message.Message, tcp: bool,
                 client: str | None) -> tuple[bytes | Forward, bool]:
        limit = _size_limit(q, tcp)
        if not self.upstreams:
            return _render(_response(q, dns.rcode.REFUSED, False), limit), True
        if not self._may_recurse(client):
            return _render(_response(q, dns.rcode.REFUSED, False), limit), False

        def relay(upstream: bytes | None) -> bytes:
            if upstream is None or len(upstream) < 12:
                return _render(_response(q, dns.rcode.SERVFAIL, False), limit)
            out = wire[:2] + upstream[2:]
            if len(out) <= limit:
                return out
            try:  # an upstream reply larger than the client can take over UDP: truncate it
                up = dns.message.from_wire(out)
            except Exception:  # noqa: BLE001
                return _render(_response(q, dns.rcode.SERVFAIL, False), limit)
            return _render(up, limit)

        return Forward(wire, relay), False

    def _chase(self, q: dns.message.Message, r: dns.message.Message, target: str, rdtype: int, tcp: bool) -> Forward:
        """An ExternalName outside the zone: the CNAME, then the target's records from upstream (CoreDNS does
        the same; an upstream failure still answers NOERROR with the CNAME alone)."""
        sub = dns.message.make_query(target, rdtype, use_edns=0 if q.edns >= 0 else False)
        sub.id = q.id
        limit = _size_limit(q, tcp)

        cname = list(r.answer)

        def finish(upstream: bytes | None) -> bytes:
            r.answer = list(cname)
            if upstream is not None:
                try:
                    up = dns.message.from_wire(upstream)
                    if up.rcode() == dns.rcode.NOERROR:
                        r.answer.extend(up.answer)
                except Exception:  # noqa: BLE001 - a bad upstream reply: the CNAME alone
                    pass
            return _render(r, limit)

        return Forward(sub.to_wire(), finish)


def _rrset(rec: Record, names: dict[str, dns.name.Name]) -> dns.rrset.RRset:
    name = names.get(rec.name)
    if name is None:
        name = names[rec.name] = dns.name.from_text(rec.name)
    rdtype = dns.rdatatype.from_text(rec.type)
    rs = dns.rrset.RRset(name, _IN, rdtype)
    rs.add(dns.rdata.from_text(_IN, rdtype, rec.data), rec.ttl)
    return rs


__all__ = ["Forward", "Responder", "header_reply"]
