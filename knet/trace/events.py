"""The kernel's nftables trace events, decoded: pure (struct only).

A packet whose `meta nftrace` bit is set makes the kernel send one netlink
message (NFT_MSG_TRACE, group NFNLGRP_NFTRACE) per rule that matched it, per
implicit return and per base-chain policy. The first event of each base-chain
run carries the packet's headers (as they are at that hook: after a DNAT in
prerouting, forward shows the new address); the others name only the table,
chain, rule handle and verdict. Rule handles are turned into rule text (and
so into the comments knet writes) by `parse_listing` over `nft -a list
chain`.

These are the bytes `nft monitor trace` reads; decoding them here rather than
running that command in each namespace lets the tracer join the group before
it sends its packet (a monitor process gives no sign of being ready) and keeps
one process for the whole trace.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_TRACE = 17
MSG_TYPE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE
NFNLGRP_NFTRACE = 9

# enum nft_trace_attributes
(TABLE, CHAIN, RULE_HANDLE, TYPE, VERDICT, ID, LL_HEADER, NETWORK_HEADER, TRANSPORT_HEADER,
 IIF, IIFTYPE, OIF, OIFTYPE, MARK, NFPROTO, POLICY) = range(1, 17)
TYPES = {1: "policy", 2: "return", 3: "rule"}
VERDICTS = {0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat",
            -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
TCP_FLAGS = (("fin", 0x01), ("syn", 0x02), ("rst", 0x04), ("psh", 0x08), ("ack", 0x10))


@dataclass(frozen=True)
class Packet:
    """An IPv4 packet's headers as a hook saw them."""

    saddr: str
    daddr: str
    proto: str  # tcp, udp, icmp, or the number
    ip_id: int = 0
    sport: int = 0  # tcp/udp; for icmp echo, the identifier
    dport: int = 0
    flags: int = 0  # tcp flags
    icmp_type: int = -1

    def flag_names(self) -> str:
        names = [n.upper() for n, bit in TCP_FLAGS if self.flags & bit]
        return "-".join(names)

    def describe(self) -> str:
        if self.proto in ("tcp", "udp", "sctp"):
            what = f"{self.proto.upper()}" + (f" {self.flag_names()}" if self.proto == "tcp" and self.flags else "")
            return f"{self.saddr}:{self.sport} -> {self.daddr}:{self.dport} {what}"
        if self.proto == "icmp":
            kind = {8: "echo request", 0: "echo reply", 3: "destination unreachable",
                    11: "time exceeded"}.get(self.icmp_type, f"type {self.icmp_type}")
            return f"{self.saddr} -> {self.daddr} ICMP {kind}" + (f" id {self.sport}" if self.icmp_type in (0, 8) else "")
        return f"{self.saddr} -> {self.daddr} protocol {self.proto}"


@dataclass(frozen=True)
class Event:
    family: str
    table: str
    chain: str
    type: str  # rule, return, policy
    verdict: str  # accept, drop, continue, jump, goto, return, ...
    target: str = ""  # the chain of a jump or goto
    handle: int | None = None
    trace_id: int = 0
    iif: int | None = None
    oif: int | None = None
    packet: Packet | None = None
    mark: int | None = None


def _attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _be32(raw: bytes | None) -> int | None:
    return struct.unpack(">I", raw[:4])[0] if raw and len(raw) >= 4 else None


def _text(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


def decode_packet(network: bytes | None, transport: bytes | None) -> Packet | None:
    """The IPv4 header and what follows it (the kernel sends the transport
    header apart when it can find it; otherwise it is read after the IP header)."""
    if not network or len(network) < 20 or network[0] >> 4 != 4:
        return None
    ihl = (network[0] & 0x0F) * 4
    proto_num = network[9]
    proto = PROTOCOLS.get(proto_num, str(proto_num))
    ip_id = struct.unpack_from(">H", network, 4)[0]
    saddr, daddr = str(ipaddress.IPv4Address(network[12:16])), str(ipaddress.IPv4Address(network[16:20]))
    th = transport if transport else network[ihl:]
    sport = dport = flags = 0
    icmp_type = -1
    if proto in ("tcp", "udp", "sctp") and len(th) >= 4:
        sport, dport = struct.unpack_from(">HH", th, 0)
        if proto == "tcp" and len(th) >= 14:
            flags = th[13]
    elif proto == "icmp" and len(th) >= 1:
        icmp_type = th[0]
        if icmp_type in (0, 8) and len(th) >= 6:
            sport = struct.unpack_from(">H", th, 4)[0]
    return Packet(saddr, daddr, proto, ip_id, sport, dport, flags, icmp_type)


def decode(buffer: bytes) -> list[Event]:
    """Every trace event in one read from the socket (a read may hold several
    messages; others, and truncated ones, are skipped)."""
    out = []
    offset = 0
    while offset + 16 <= len(buffer):
        length, msg_type = struct.unpack_from("IH", buffer, offset)
        if length < 16 or offset + length > len(buffer):
            break
        if msg_type == MSG_TYPE and length >= 20:
            family = buffer[offset + 16]
            out.append(_event(family, _attrs(buffer[offset + 20:offset + length])))
        offset += (length + 3) & ~3
    return out


def _event(family: int, a: dict[int, bytes]) -> Event:
    verdict, target = "", ""
    if VERDICT in a:
        v = _attrs(a[VERDICT])
        code = _be32(v.get(1))
        if code is not None:
            code = code - (1 << 32) if code & 0x80000000 else code
            verdict = VERDICTS.get(code, str(code))
        target = _text(v.get(2))
    kind = TYPES.get(_be32(a.get(TYPE)) or 0, "unknown")
    if kind == "policy" and POLICY in a:
        verdict = VERDICTS.get(_be32(a[POLICY]) or 0, "drop")
    handle = struct.unpack(">Q", a[RULE_HANDLE][:8])[0] if RULE_HANDLE in a and len(a[RULE_HANDLE]) >= 8 else None
    return Event(FAMILIES.get(family, str(family)), _text(a.get(TABLE)), _text(a.get(CHAIN)), kind, verdict, target,
                 handle, _be32(a.get(ID)) or 0, _be32(a.get(IIF)), _be32(a.get(OIF)),
                 decode_packet(a.get(NETWORK_HEADER), a.get(TRANSPORT_HEADER)), _be32(a.get(MARK)))


# -- rule text by handle ------------------------------------------------------------------------

_HANDLE = re.compile(r"^(.*?)\s+# handle (\d+)$")
_COMMENT = re.compile(r'\s*comment "((?:[^"\\]|\\.)*)"\s*$')


def parse_listing(text: str) -> dict[int, str]:
    """`nft -a list chain F T C` -> {rule handle: rule text}."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("chain ", "table ", "type ", "}")) or not line:
            continue
        if m := _HANDLE.match(line):
            out[int(m[2])] = m[1]
    return out


def split_listing(text: str) -> dict[tuple[str, str, str], str]:
    """Several `list chain` answers in one text -> {(family, table, chain): that chain's part}."""
    out: dict[tuple[str, str, str], list[str]] = {}
    family = table = ""
    current: list[str] | None = None
    for line in text.splitlines():
        words = line.split()
        if line.startswith("table ") and len(words) >= 3:
            family, table = words[1], words[2]
        elif len(words) >= 2 and words[0] == "chain":
            current = out.setdefault((family, table, words[1]), [])
        if current is not None:
            current.append(line)
    return {k: "\n".join(v) + "\n" for k, v in out.items()}


def split_comment(rule: str) -> tuple[str, str]:
    """(the rule without its comment, the comment or "")."""
    m = _COMMENT.search(rule)
    return (rule[:m.start()], m[1]) if m else (rule, "")


def element_comment(text: str) -> str:
    """The comment of the element in `nft get element ...`'s answer, or ""."""
    m = re.search(r'elements = \{ .*? comment "((?:[^"\\]|\\.)*)"', text)
    return m[1] if m else ""
