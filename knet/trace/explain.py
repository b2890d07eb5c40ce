"""From the kernel's trace events to the path of one packet, hop by hop: pure.

Input is a `Capture`: per namespace the trace events (raw, as read from the
netlink group), the rule text of every rule they name (`nft -a list chain`),
the interfaces, the routes the packet took, and what the cluster calls each
address. Everything said about a rule comes from that rule's own text and
the comment knet's engines wrote on it (knet.proxy.rules: `<ns>/<svc>:<port>/
<proto> endpoint i of n` on an endpoint chain's DNAT, or `<ns>/<svc>:<port>/<proto>`
once on a Service chain whose ladder DNATs are then numbered by their place
in the kernel's listing; knet.policy.rules: `<policy> ingress rule N`,
`<ns>/<pod> ingress isolated`, and the jumps to the policies isolating a pod):
nothing is recomputed, so what is printed is what the kernel did.

A capture is plain JSON (`Capture.to_json`): the unit tests replay recorded
ones.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from knet.proxy.rules import TABLE as PROXY_TABLE
from knet.trace.events import Event, Packet, decode, element_comment, parse_listing, split_comment
from knet.trace.model import Hop, Step, Trace

TRACE_PREFIX = "knet-trace-"
POLICY_TABLE = "knet-policy"  # knet.policy.rules.TABLE (not a pure module to import here; a test holds them equal)
NAT_TABLE = "knet-nat"  # the node's masquerade table (knet.node.network)
HOOKS = ("prerouting", "postrouting", "forward", "input", "output")
NO_ENDPOINT_MAPS = ("no-endpoint-services", "no-endpoint-nodeports")

_SVC_COMMENT = re.compile(r"^(?P<svc>\S+) endpoint (?P<i>\d+) of (?P<n>\d+)$")
_SVC_LABEL = re.compile(r"^\S+/\S+:\d+/\w+$")  # a service port, `<ns>/<name>:<port>/<proto>`
_POLICY_RULE = re.compile(r"^(?P<policy>\S+) (?P<dir>ingress|egress) rule (?P<rule>\d+)(?: (?P<name>.*))?$")
_ISOLATED = re.compile(r"^(?P<pod>\S+) (?P<dir>ingress|egress) isolated$")


@dataclass
class Place:
    """A namespace the trace armed: kind pod, node or ext."""

    label: str
    kind: str
    node: str = ""
    ip: str = ""


@dataclass
class Flow:
    source: str  # the source place's label
    destination: str  # as the user named it, resolved: "Service default/web (10.96.0.20:80)"
    saddr: str
    daddr: str
    protocol: str  # TCP, UDP, ICMP
    port: int
    sport: int  # TCP/UDP source port, ICMP echo identifier


@dataclass
class Capture:
    flow: Flow
    places: dict[str, Place]
    raw: dict[str, list[str]]  # label -> hex of each read from its trace socket
    links: dict[str, dict[int, list[str]]] = field(default_factory=dict)  # label -> ifindex -> [name, kind]
    listings: dict[str, str] = field(default_factory=dict)  # "label family table chain" -> nft -a list chain
    elements: dict[str, str] = field(default_factory=dict)  # "label map key" -> nft get element
    routes: dict[str, dict] = field(default_factory=dict)  # "label dst" -> {oif, gateway}
    names: dict[str, str] = field(default_factory=dict)  # address -> what the cluster calls it
    node_cidrs: dict[str, str] = field(default_factory=dict)
    node_ips: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    elapsed_ms: float = 0.0

    def events(self, label: str) -> list[Event]:
        return [e for chunk in self.raw.get(label, []) for e in decode(bytes.fromhex(chunk))]

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Capture:
        doc = dict(doc)
        doc["flow"] = Flow(**doc["flow"])
        doc["places"] = {k: Place(**v) for k, v in doc["places"].items()}
        doc["links"] = {k: {int(i): v for i, v in m.items()} for k, m in doc.get("links", {}).items()}
        return cls(**doc)


# -- packets within one namespace ---------------------------------------------------------------


@dataclass
class Run:
    """One base chain's run over the packet: its events, the headers it saw."""

    base: str
    hook: str
    packet: Packet | None
    iif: int | None
    oif: int | None
    events: list[Event] = field(default_factory=list)


def direction(flow: Flow, p: Packet) -> str:
    if flow.protocol == "ICMP":
        if p.proto == "icmp" and p.sport == flow.sport:
            return "request" if p.icmp_type == 8 else "reply" if p.icmp_type == 0 else ""
        return ""
    if p.proto != flow.protocol.lower():
        return ""
    if p.sport == flow.sport:
        return "request"
    if p.dport == flow.sport:
        return "reply"
    return ""


def hook_of(chain: str) -> str:
    for h in HOOKS:
        if h in chain:
            return h
    return ""


def first_packet(events: list[Event], flow: Flow, want: str) -> list[Run]:
    """The base-chain runs of the first packet going `want` (request or reply)."""
    runs: list[Run] = []
    key = None
    current: Run | None = None
    for e in events:
        if e.packet is not None:
            d = direction(flow, e.packet)
            k = (d, e.packet.ip_id, e.packet.flags, e.packet.icmp_type)
            if d == want and (key is None or k == key):
                key = k
                current = Run(e.chain, hook_of(e.chain), e.packet, e.iif, e.oif)
                runs.append(current)
            elif key is not None and d == want and k != key:
                break  # the next packet the same way: not ours to explain
            else:
                current = None
        if current is not None:
            current.events.append(e)
    return runs


# -- explaining -----------------------------------------------------------------------------------


class Explainer:
    def __init__(self, cap: Capture):
        self.cap = cap
        self.flow = cap.flow

    def rule(self, label: str, e: Event) -> tuple[str, str]:
        """(rule text without comment, comment) of a rule event."""
        text = self.cap.listings.get(f"{label} {e.family} {e.table} {e.chain}", "")
        rule = parse_listing(text).get(e.handle or -1, "")
        return split_comment(rule)

    def ifname(self, label: str, index: int | None) -> tuple[str, str]:
        if index is None:
            return "", ""
        name, kind = self.cap.links.get(label, {}).get(index, [f"if{index}", ""])
        return name, kind

    def name(self, ip: str) -> str:
        return self.cap.names.get(ip, ip)

    def node_for(self, ip: str) -> str:
        """The node whose podCIDR holds ip, or whose LAN address it is."""
        for node, addr in self.cap.node_ips.items():
            if addr == ip:
                return node
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return ""
        for node, cidr in self.cap.node_cidrs.items():
            if cidr and a in ipaddress.ip_network(cidr, strict=False):
                return node
        return ""

    # -- one namespace ------------------------------------------------------------------------

    def hop(self, label: str, runs: list[Run]) -> tuple[Hop, str, str, Packet | None]:
        """The hop's steps, its end ("out", "deliver", "drop", "reject", "lost"),
        the reason when it ends the path, and the packet as it left."""
        place = self.cap.places[label]
        role = {"pod": f"pod on {place.node}" if place.node else "pod", "node": "node",
                "ext": "outside host on the LAN"}.get(place.kind, place.kind)
        hop = Hop(label, role)
        first = runs[0]
        if first.hook == "output":
            hop.steps.append(Step("send", f"sends {first.packet.describe()}" if first.packet else "sends",
                                  {"packet": first.packet.describe() if first.packet else ""}))
        else:
            name, kind = self.ifname(label, first.iif)
            via = {"bridge": " (bridge)", "vxlan": " (VXLAN overlay)", "veth": ""}.get(kind, "")
            hop.steps.append(Step("in", f"in {name}{via}: {first.packet.describe() if first.packet else ''}",
                                  {"interface": name, "packet": first.packet.describe() if first.packet else ""}))
        end, reason = "", ""
        isolating: dict[str, list[str]] = {}
        hooks = set()
        last = first
        for run in runs:
            hooks.add(run.hook)
            last = run
            via = ""  # the last rule that jumped or went to a chain: how the packet got where it is
            for e in run.events:
                if e.table.startswith(TRACE_PREFIX):
                    continue
                if e.type == "policy" and e.verdict == "drop":
                    end, reason = "drop", f"dropped by the policy of chain {e.family} {e.table} {e.chain}"
                    hop.steps.append(Step("drop", reason, {"table": e.table, "chain": e.chain}))
                    break
                if e.type != "rule":
                    continue
                text, comment = self.rule(label, e)
                step = self.step(label, run, e, text, comment, via, isolating)
                if e.verdict in ("jump", "goto"):
                    via = text
                if step is not None:
                    hop.steps.append(step)
                    if step.kind in ("drop", "reject"):
                        end, reason = step.kind, step.text
                        break
            if end:
                break
        if end:
            return hop, end, reason, last.packet
        if last.oif is not None and last.hook in ("forward", "postrouting", "output"):
            hop.steps.append(self.out_step(label, last))
            return hop, "out", "", last.packet
        p = last.packet
        if "input" in hooks or place.kind in ("pod", "ext") or (p is not None and p.daddr == place.ip):
            where = f"{p.daddr}:{p.dport}" if p is not None and p.proto in ("tcp", "udp") else (p.daddr if p else "")
            hop.steps.append(Step("deliver", f"delivered to {where} in {label}", {"address": where}))
            return hop, "deliver", "", p
        route = self.cap.routes.get(f"{label} {p.daddr}", None) if p is not None else None
        if p is not None and route == {}:
            reason = f"no route to {p.daddr} in {label}"
            hop.steps.append(Step("drop", f"dropped: {reason}", {"reason": "no route"}))
            return hop, "drop", reason, p
        hop.steps.append(Step("note", "not seen leaving this namespace (routing or the neighbour dropped it)"))
        return hop, "lost", "not seen leaving " + label, p

    def step(self, label: str, run: Run, e: Event, text: str, comment: str, via: str,
             isolating: dict[str, list[str]]) -> Step | None:
        p = run.packet
        if e.table == PROXY_TABLE and e.family == "ip":
            if "dnat to" in text and (m := _SVC_COMMENT.match(comment) or self.ladder_place(label, e)):
                endpoint = text.rsplit("dnat to ", 1)[1].split()[0]
                # an endpoint chain is reached by the numgen choice, or by a known client's affinity set
                how = "by ClientIP affinity" if "@affinity-" in via else f"chosen {m['i']} of {m['n']}"
                svc = m["svc"]
                return Step("service", f"Service {_short(svc)} -> endpoint {endpoint}, {how}",
                            {"service": svc, "endpoint": endpoint, "index": int(m["i"]), "endpoints": int(m["n"])})
            if e.chain == "reject-chain" and e.verdict == "drop":
                svc = self.no_endpoint_service(label, p)
                how = "ICMP port unreachable" if text == "reject" else text.replace("reject with ", "")
                return Step("reject", f"rejected: Service {_short(svc) if svc else '?'} has no endpoints "
                                      f"({how} sent back)", {"service": svc})
            if e.verdict == "drop":
                return Step("drop", f"dropped by the Service proxy: {comment or text}",
                            {"rule": text, "comment": comment})
            if "masquerade" in text and e.chain == "nat-postrouting":
                return Step("masquerade", "masqueraded to this node's address (the Service proxy's mark: "
                                          "traffic from outside the pod network, or a pod reaching itself)", {})
            return None
        if e.table == POLICY_TABLE and e.family == "inet":
            return self.policy_step(label, run, e, text, comment, isolating)
        if e.table == NAT_TABLE and "masquerade" in text:
            return Step("masquerade", "masqueraded to this node's address (pod traffic leaving the pod network)", {})
        if e.verdict == "drop":
            return Step("drop", f"dropped by {e.family} {e.table} {e.chain}: {comment or text}",
                        {"table": e.table, "chain": e.chain, "rule": text, "comment": comment})
        return None

    def ladder_place(self, label: str, e: Event) -> dict[str, str] | None:
        """A Service chain's numgen ladder DNATs without a comment each
        (knet.proxy.rules names the service port once, on the chain's first
        rule): the endpoint is the rule's place among the chain's DNATs, as
        the kernel lists them, and "of n" their number."""
        listing = parse_listing(self.cap.listings.get(f"{label} {e.family} {e.table} {e.chain}", ""))
        svc, dnats = "", []
        for handle, rule in listing.items():
            text, comment = split_comment(rule)
            if not svc and _SVC_LABEL.match(comment):
                svc = comment
            if "dnat to" in text:
                dnats.append(handle)
        if not svc or e.handle not in dnats:
            return None
        return {"svc": svc, "i": str(dnats.index(e.handle) + 1), "n": str(len(dnats))}

    def no_endpoint_service(self, label: str, p: Packet | None) -> str:
        """The Service named by the comment on the verdict-map element that sent the packet to reject."""
        if p is None:
            return ""
        for m in NO_ENDPOINT_MAPS:
            key = f"{p.daddr} . {p.proto} . {p.dport}" if m == "no-endpoint-services" else f"{p.proto} . {p.dport}"
            comment = element_comment(self.cap.elements.get(f"{label} {m} {key}", ""))
            if comment:
                return comment
        return ""

    def policy_step(self, label: str, run: Run, e: Event, text: str, comment: str,
                    isolating: dict[str, list[str]]) -> Step | None:
        d = "ingress" if "ingress" in e.chain else "egress"
        if e.verdict == "jump" and e.target.startswith("np-") and comment:
            isolating.setdefault(e.chain, []).append(comment)
            return None
        if m := _ISOLATED.match(comment):
            by = sorted(isolating.get(e.chain, []))
            reason = (f"pod {m['pod']} isolated for {m['dir']} by {', '.join(by) or 'a NetworkPolicy'}; "
                      f"no rule allowed it")
            return Step("drop", f"dropped: {reason}", {"policy": by, "direction": m["dir"], "pod": m["pod"],
                                                       "reason": "policy"})
        if m := _POLICY_RULE.match(comment):
            rule = f"{m['dir']} rule {m['rule']}" + (f" ({m['name']})" if m["name"] else "")
            kind = {"accept": "allowed", "drop": "dropped"}.get(e.verdict, "passed to NetworkPolicies")
            step = Step("drop" if e.verdict == "drop" else "policy", f"{kind} by {m['policy']}, {rule}",
                        {"policy": m["policy"], "direction": m["dir"], "rule": int(m["rule"]), "verdict": e.verdict,
                         **({"reason": "policy"} if e.verdict == "drop" else {})})
            if e.verdict == "drop":
                step.text = f"dropped: denied by {m['policy']}, {rule}"
            return step
        if e.verdict == "accept" and "established" in text:
            return Step("policy", f"{d}: allowed as part of an established connection", {"direction": d})
        if e.verdict == "accept" and e.chain in (f"{d}-policy",) and run.packet is not None:
            ip = run.packet.daddr if d == "ingress" else run.packet.saddr
            place = self.cap.places.get(label)
            owner = self.name(ip)
            if place is not None and place.kind == "node" and self.node_for(ip) == place.node:
                return Step("policy", f"{d}: {owner} is not isolated (no NetworkPolicy selects it for {d})",
                            {"direction": d, "pod": owner, "isolated": False})
        return None

    def out_step(self, label: str, run: Run) -> Step:
        name, kind = self.ifname(label, run.oif)
        p = run.packet
        place = self.cap.places[label]
        fields: dict = {"interface": name}
        if p is None:
            return Step("out", f"out {name}", fields)
        route = self.cap.routes.get(f"{label} {p.daddr}", {})
        gw = route.get("gateway", "")
        if kind == "vxlan":
            node = self.node_for(gw or p.daddr)
            fields.update(overlay="vxlan", node=node, address=self.cap.node_ips.get(node, ""))
            return Step("out", f"out {name}: VXLAN to {node or gw} ({self.cap.node_ips.get(node, '?')})", fields)
        if kind == "bridge":
            fields.update(to=self.name(p.daddr))
            return Step("out", f"out {name} (bridge) to {self.name(p.daddr)} {p.daddr}", fields)
        if place.kind == "node" and gw:
            node = self.node_for(gw)
            fields.update(gateway=gw, node=node)
            return Step("out", f"out {name}: routed via {gw}" + (f" ({node})" if node else ""), fields)
        fields.update(to=self.name(p.daddr))
        target = self.name(p.daddr)
        return Step("out", f"out {name}" + (f" to {target}" if target != p.daddr else f" to {p.daddr}")
                    + (f" via {gw}" if gw else ""), fields)

    # -- the whole path -----------------------------------------------------------------------

    def order(self, seen: dict[str, list[Run]], start: str | None) -> list[str]:
        """The places that saw the packet, in the order it crossed them."""
        left = [label for label in self.cap.places if label in seen]
        if not left:
            return []
        if start is None or start not in left:
            start = next((lb for lb in left if seen[lb][0].hook == "output"), left[0])
        path = [start]
        left.remove(start)
        while left:
            cur = path[-1]
            nxt = self.next_place(cur, seen[cur][-1], left, seen)
            if nxt is None:
                break
            path.append(nxt)
            left.remove(nxt)
        return path + left

    def next_place(self, cur: str, run: Run, left: list[str], seen: dict[str, list[Run]]) -> str | None:
        place = self.cap.places[cur]
        p = run.packet

        def first(pred) -> str | None:
            return next((lb for lb in left if pred(self.cap.places[lb])), None)

        if place.kind == "pod":
            return first(lambda q: q.kind == "node" and q.node == place.node) or left[0]
        if place.kind == "ext":
            target = self.node_for(p.daddr) if p is not None else ""
            return first(lambda q: q.kind == "node" and q.node == target) or first(lambda q: q.kind == "node") \
                or left[0]
        # a node: to a local pod, another node, or the LAN
        if p is not None:
            here = first(lambda q: q.kind == "pod" and q.ip == p.daddr and q.node == place.node)
            if here:
                return here
            name, kind = self.ifname(cur, run.oif)
            if kind == "vxlan" or name == "eth0":
                gw = self.cap.routes.get(f"{cur} {p.daddr}", {}).get("gateway", "")
                node = self.node_for(gw) if gw else self.node_for(p.daddr)
                if node and node != place.node:
                    nxt = first(lambda q: q.kind == "node" and q.node == node)
                    if nxt:
                        return nxt
                if name == "eth0":
                    nxt = first(lambda q: q.kind == "ext" and q.ip == p.daddr)
                    if nxt:
                        return nxt
            pod = first(lambda q: q.kind == "pod" and q.ip == p.daddr)
            if pod:
                return pod
        return first(lambda q: q.kind == "node") or left[0]

    def explain(self) -> Trace:
        flow = self.flow
        t = Trace(flow.source, flow.destination, flow.protocol, flow.port, flow.sport,
                  result=self.cap.outcome, elapsed_ms=self.cap.elapsed_ms)
        request = {lb: runs for lb in self.cap.places if (runs := first_packet(self.cap.events(lb), flow, "request"))}
        reply = {lb: runs for lb in self.cap.places if (runs := first_packet(self.cap.events(lb), flow, "reply"))}
        for label in self.order(request, flow.source):
            hop, end, reason, _p = self.hop(label, request[label])
            t.hops.append(hop)
            if end in ("drop", "reject"):
                t.verdict = "dropped" if end == "drop" else "rejected"
                t.reason = reason.removeprefix("dropped: ").removeprefix("rejected: ")
                break
            if end == "deliver":
                t.verdict = "delivered"
                t.reason = hop.steps[-1].text
                break
            if end == "lost":
                t.reason = reason
        if t.verdict == "unknown" and t.hops and t.hops[-1].steps and t.hops[-1].steps[-1].kind == "out":
            t.reason = f"{t.hops[-1].steps[-1].text} (not traced further: nothing armed there saw it)"
        if not request and "network unreachable" in self.cap.outcome:
            t.verdict, t.reason = "dropped", f"no route to {flow.daddr} in {flow.source}: nothing was sent"
        elif not request:
            t.reason = "no packet was seen: the sender could not send it" + \
                       (f" ({self.cap.outcome})" if self.cap.outcome else "")
        if reply:
            origin = next((lb for lb, runs in reply.items() if runs[0].hook == "output"), None)
            path = self.order(reply, origin)
            t.reply = path
            first = reply[path[0]][0].packet
            last = reply[path[-1]][0].packet
            text = f"{first.describe() if first else ''} via {', '.join(path)}"
            if path[-1] == flow.source and last is not None and first is not None and last.saddr != first.saddr:
                text += f"; {flow.source} sees it from {last.saddr}" + \
                        (f":{last.sport}" if last.proto in ("tcp", "udp") else "")
            t.reply_text = text
        return t


def _short(port_label: str) -> str:
    """`default/web:80/tcp` as printed: the protocol only when it is not TCP."""
    base, _, proto = port_label.rpartition("/")
    return base if proto == "tcp" and base.count("/") == 1 else port_label


def _telling(e: Event) -> bool:
    """Whether the rule's text says something: listing a chain of the proxy's table makes nft read
    the whole table (~25 ms at 1,000 Services on a busy machine), so of that table only the rules
    that decided (DNAT, drop, reject, masquerade) or chose an endpoint chain; its dispatch rules
    (jump services, the verdict maps) say nothing the event does not."""
    if e.table != PROXY_TABLE:
        return True
    return e.verdict in ("accept", "drop") or (e.verdict == "goto" and e.chain.startswith(("svc-", "ext-")))


def wanted(cap: Capture) -> tuple[set[tuple[str, str, str, str]], set[tuple[str, str, str]], set[tuple[str, str]]]:
    """What the explanation will read besides the events: the chains to list
    ((label, family, table, chain)), the verdict-map elements to look up
    ((label, map, key)), the routes ((label, destination))."""
    chains, elements, routes = set(), set(), set()
    for label in cap.places:
        events = cap.events(label)
        packet = None
        for e in events:
            if e.packet is not None:
                packet = e.packet
                if e.oif is not None or e.chain.endswith("prerouting"):
                    routes.add((label, packet.daddr))
            if e.type == "rule" and e.handle is not None and not e.table.startswith(TRACE_PREFIX) \
                    and _telling(e):
                chains.add((label, e.family, e.table, e.chain))
            if e.table == PROXY_TABLE and e.chain == "reject-chain" and packet is not None:
                elements.add((label, "no-endpoint-services", f"{packet.daddr} . {packet.proto} . {packet.dport}"))
                elements.add((label, "no-endpoint-nodeports", f"{packet.proto} . {packet.dport}"))
    return chains, elements, routes


def explain(cap: Capture) -> Trace:
    return Explainer(cap).explain()
