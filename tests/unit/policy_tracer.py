"""A packet tracer for the policy table (knet.policy.rules), reading what
the nftables fake holds after full()/changes() texts, as the kernel would
walk it. Other tests import it as `import policy_tracer`.

    fake = FakeNft(); fake.run(compiler.full())
    table = fake.table("inet", "knet-policy")
    trace(table, "10.244.1.5", "10.244.2.7", 80, "tcp", local_node_ips=("192.168.56.11",))  -> "accept" | "drop"
    explain(...)  -> (verdict, comment of the rule that decided, or "" when the packet fell through)

One table is one node's: to judge pod A -> pod B across nodes, trace the
packet through A's node's table and B's node's table (both must accept);
`connect` does that for a cluster of node tables:

    connect({"w1": t1, "w2": t2}, ("10.244.1.5", "w1"), ("10.244.2.7", "w2"), 80, "tcp",
            node_ips={"w1": ("192.168.56.11",), "w2": ("192.168.56.12",)})  -> "accept" | "drop"

an end's node is None for an address outside the cluster; a node's own
address is given as that node's (ip, node).
The hook follows the node's addresses: from one of `local_node_ips`, the
node's own traffic (`output`: no chain here, accepted); to one of them,
`input`; otherwise `forward`. Base chains of the hook run in priority
order; an `accept` ends only its own base chain, a `drop` ends the packet.
`established=True` traces a reply or a later packet of a connection.

It understands exactly the nft the compiler writes (matches on ip
saddr/daddr against a prefix or a set, `ip saddr != PREFIX`, concatenations of ip daddr / meta
l4proto / th dport against a set, `meta l4proto P`, `P dport N[-M]`,
verdict maps, jump/goto/return/accept/drop, comments) and raises on
anything else, and on an interval element in a set without `flags
interval` (the kernel would refuse it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from knet.net.nftfake import FakeTable

TABLE = "knet-policy"
PROTOS = ("tcp", "udp", "sctp")
_COMMENT = re.compile(r'\s*comment "([^"]*)"$')


class TraceError(AssertionError):
    pass


def trace(table: FakeTable, src_ip: str, dst_ip: str, dport: int, proto: str = "tcp", *,
          local_node_ips: tuple[str, ...] | list[str] = (), established: bool = False) -> str:
    """"accept" or "drop" for one packet through one node's table."""
    return explain(table, src_ip, dst_ip, dport, proto, local_node_ips=local_node_ips, established=established)[0]


def explain(table: FakeTable, src_ip: str, dst_ip: str, dport: int, proto: str = "tcp", *,
            local_node_ips: tuple[str, ...] | list[str] = (), established: bool = False) -> tuple[str, str]:
    proto = proto.lower()
    if src_ip in local_node_ips:
        return "accept", ""  # output: the node's own traffic is not filtered
    hook = "input" if dst_ip in local_node_ips else "forward"
    bases = []
    for name, c in table.chains.items():
        if m := re.fullmatch(r"type filter hook (\w+) priority (-?\d+); policy (\w+);", c.hook):
            if m[1] == hook:
                bases.append((int(m[2]), name, m[3]))
    pkt = _Packet(table, src_ip, dst_ip, int(dport), proto, established)
    why = ""
    for _prio, name, policy in sorted(bases):
        verdict, comment = pkt.run(name, policy)
        why = comment or why
        if verdict == "drop":
            return "drop", comment
    return "accept", why


def connect(tables: Mapping[str, FakeTable], src: tuple[str, str | None], dst: tuple[str, str | None],
            dport: int, proto: str = "tcp", *, node_ips: Mapping[str, Sequence[str]] | None = None,
            established: bool = False) -> str:
    """A packet from src (ip, node or None) to dst through every node table
    it crosses: the source's node, then the destination's if it is another."""
    node_ips = node_ips or {}
    nodes = [n for n in dict.fromkeys((src[1], dst[1])) if n is not None]
    for n in nodes:
        if trace(tables[n], src[0], dst[0], dport, proto, local_node_ips=tuple(node_ips.get(n, ())),
                 established=established) == "drop":
            return "drop"
    return "accept"


class _Packet:
    def __init__(self, table: FakeTable, src: str, dst: str, dport: int, proto: str, established: bool):
        self.table, self.proto, self.dport, self.established = table, proto, dport, established
        self.addr = {"saddr": ipaddress.ip_address(src), "daddr": ipaddress.ip_address(dst)}

    def run(self, base: str, policy: str) -> tuple[str, str]:
        """Walk from a base chain to its verdict, with the kernel's jump stack."""
        stack: list[tuple[str, int]] = []
        chain, i = base, 0
        for _ in range(100000):
            rules = self.table.chains[chain].rules
            if i >= len(rules):
                if not stack:
                    return policy, ""
                chain, i = stack.pop()
                continue
            text = rules[i]
            i += 1
            m = _COMMENT.search(text)
            comment = m[1] if m else ""
            body = text[:m.start()] if m else text
            verdict = self._rule(body.split())
            if verdict is None:
                continue
            if verdict in ("accept", "drop"):
                return verdict, comment
            if verdict == "return":
                if not stack:
                    return policy, comment
                chain, i = stack.pop()
                continue
            kind, target = verdict.split()
            if target not in self.table.chains:
                raise TraceError(f"{kind} to a chain that does not exist: {target}")
            if kind == "jump":
                stack.append((chain, i))
            chain, i = target, 0
        raise TraceError("loop")

    def _rule(self, toks: list[str]) -> str | None:
        """The rule's verdict if every match holds, else None."""
        i = 0
        while i < len(toks):
            t = toks[i]
            if t in ("accept", "drop", "return"):
                return t
            if t in ("jump", "goto"):
                return f"{t} {toks[i + 1]}"
            if t == "ct" and toks[i + 1] == "state":
                if not self.established or not ({"established", "related"} & set(toks[i + 2].split(","))):
                    return None
                i += 3
                continue
            if t in PROTOS and toks[i + 1] == "dport":
                lo, _, hi = toks[i + 2].partition("-")
                if self.proto != t or not int(lo) <= self.dport <= int(hi or lo):
                    return None
                i += 3
                continue
            # A selector, or a concatenation of them, then what it is compared with.
            fields = []
            while True:
                sel = " ".join(toks[i:i + 2])
                if sel not in ("ip saddr", "ip daddr", "meta l4proto", "th dport"):
                    raise TraceError(f"the tracer does not know: {' '.join(toks)}")
                fields.append(sel)
                i += 2
                if toks[i] != ".":
                    break
                i += 1
            value = self._value(fields)
            if toks[i] == "vmap":
                s = self._set(toks[i + 1])
                hit = s.elements.get(self._key(value))
                i += 2
                if hit is None:
                    return None
                return hit
            negate = toks[i] == "!="
            if negate:
                if len(fields) != 1 or not fields[0].startswith("ip "):
                    raise TraceError(f"the tracer does not know: {' '.join(toks)}")
                i += 1
            other = toks[i]
            i += 1
            if other.startswith("@"):
                if negate:
                    raise TraceError(f"the tracer does not know: {' '.join(toks)}")
                if not self._in_set(self._set(other), fields, value):
                    return None
            elif len(fields) == 1:
                if _component(fields[0], other, value[0], interval=True) == negate:
                    return None
            else:
                raise TraceError(f"the tracer does not know: {' '.join(toks)}")
        raise TraceError(f"a rule without a verdict: {' '.join(toks)}")

    def _value(self, fields: list[str]) -> list:
        out = []
        for f in fields:
            if f.startswith("ip "):
                out.append(self.addr[f[3:]])
            elif f == "meta l4proto":
                out.append(self.proto)
            else:
                if self.proto not in PROTOS:
                    raise TraceError("th dport on a protocol without ports")
                out.append(self.dport)
        return out

    @staticmethod
    def _key(value: list) -> str:
        return " . ".join(str(v) for v in value)

    def _set(self, ref: str):
        name = ref.lstrip("@")
        if name not in self.table.sets:
            raise TraceError(f"a rule refers to a set that does not exist: {name}")
        return self.table.sets[name]

    def _in_set(self, s, fields: list[str], value: list) -> bool:
        interval = "interval" in s.spec
        for key in s.elements:
            parts = key.split(" . ")
            if len(parts) != len(fields):
                raise TraceError(f"element {key!r} does not fit {fields}")
            if all(_component(f, p, v, interval) for f, p, v in zip(fields, parts, value, strict=True)):
                return True
        return False


def _component(field: str, text: str, value, interval: bool) -> bool:
    if field.startswith("ip "):
        if "/" in text or "-" in text:
            if not interval:
                raise TraceError(f"an interval {text} in a set without flags interval")
            if "-" in text:
                lo, hi = (ipaddress.ip_address(x) for x in text.split("-"))
                return lo <= value <= hi
            return value in ipaddress.ip_network(text)
        return value == ipaddress.ip_address(text)
    if field == "meta l4proto":
        return value == text
    lo, _, hi = text.partition("-")
    if hi and not interval:
        raise TraceError(f"an interval {text} in a set without flags interval")
    return int(lo) <= value <= int(hi or lo)
