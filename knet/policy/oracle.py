"""The verdict oracle: would a connection from `src` to `dst` on `port`/`protocol` be let through?

Written straight from the semantics (docs: /work/notes/policy.md "Semantics", the NetworkPolicy v1
text, AdminNetworkPolicy/BaselineAdminNetworkPolicy v1alpha1), with no indexes, no sets and
no caching, so that it can be read against the text line by line. It is the yardstick the
compiler (knet.policy.rules) is tested against, and the conformance cases' expectations are
checked against it too: when the two disagree, one of them is wrong and the reason says which
policy and rule decided here.

Deliberately independent of knet.policy.isolation and knet.policy.model (it repeats the small
amount of selection logic they hold), so that a slip there is caught here rather than copied.

Per direction (egress at the source pod, ingress at the destination pod; both must allow):
1. AdminNetworkPolicies whose subject selects the pod, lowest priority number first (ties in
   name order), each one's rules in order: the first rule whose peer and port match decides:
   Allow -> allowed, Deny -> denied, Pass -> skip every remaining ANP rule and go to 2.
2. NetworkPolicies of the pod's namespace selecting it with that direction in policyTypes
   (defaulted as the API server does): if there is one, allowed iff some rule of one of them
   matches, and the BANP is not consulted.
3. The BaselineAdminNetworkPolicy `default`, if its subject selects the pod: first matching rule
   decides (Allow / Deny).
4. Otherwise allowed.
Traffic from the destination pod's own node is always allowed (kubelet probes). hostNetwork
pods are never selected and count as their node's IP. Replies are not judged here: the oracle
answers for the first packet of a connection, after any Service DNAT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from knet.api.selectors import selector_from_label_selector
from knet.policy.matrix import Matrix

NS_NAME_LABEL = "kubernetes.io/metadata.name"
INGRESS, EGRESS = "Ingress", "Egress"

Peer = dict | str  # a Pod object, or an IP address (a node, an outside host)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # e.g. "egress denied by x/deny-all (isolated, no egress rule allows it)"


@dataclass
class Objects:
    """The cluster state the verdict depends on, as plain API dicts."""

    pods: list[dict] = field(default_factory=list)
    namespaces: list[dict] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    netpols: list[dict] = field(default_factory=list)
    anps: list[dict] = field(default_factory=list)
    banp: dict | None = None

    @classmethod
    def of(cls, objs: Iterable[dict]) -> Objects:
        """Sort a mixed list of API objects by kind."""
        out = cls()
        for o in objs:
            kind = o.get("kind")
            if kind == "Pod":
                out.pods.append(o)
            elif kind == "Namespace":
                out.namespaces.append(o)
            elif kind == "Node":
                out.nodes.append(o)
            elif kind == "NetworkPolicy":
                out.netpols.append(o)
            elif kind == "AdminNetworkPolicy":
                out.anps.append(o)
            elif kind == "BaselineAdminNetworkPolicy":
                out.banp = o
            else:
                raise ValueError(f"kind: unsupported value {kind!r}")
        return out


# -- small readers ---------------------------------------------------------------------------------

def _md(o: dict | None) -> dict:
    return (o or {}).get("metadata") or {}


def _spec(o: dict | None) -> dict:
    return (o or {}).get("spec") or {}


def _labels(o: dict | None) -> dict:
    return _md(o).get("labels") or {}


def _name(o: dict) -> str:
    md = _md(o)
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md.get("name", "")


def _matches(selector: dict | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector field that is present: `{}` (or null) selects everything."""
    return selector_from_label_selector(selector or {}).matches(labels)


def _pod_ip(pod: dict) -> str | None:
    return ((pod.get("status") or {}).get("podIP")) or None


def _host_network(pod: dict) -> bool:
    return bool(_spec(pod).get("hostNetwork"))


def _node_ips(node: dict) -> set[str]:
    """A node's own addresses: status.addresses, and the bridge address its pods see traffic from
    (the first host of each podCIDR), since the node reaches its pods from there."""
    ips = {a.get("address") for a in (node.get("status") or {}).get("addresses") or [] if a.get("address")}
    spec = _spec(node)
    for cidr in (spec.get("podCIDRs") or []) + ([spec["podCIDR"]] if spec.get("podCIDR") else []):
        net = ipaddress.ip_network(cidr, strict=False)
        ips.add(str(net.network_address + 1))
    return ips


@dataclass(frozen=True)
class _End:
    """One end of a connection: a (non-hostNetwork) pod, or just an IP."""

    ip: str | None
    pod: dict | None = None
    ns_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _name(self.pod) if self.pod is not None else (self.ip or "?")


def _ns_labels(objs: Objects, ns: str) -> dict[str, str]:
    """The namespace's labels plus kubernetes.io/metadata.name, which the API server always sets."""
    for n in objs.namespaces:
        if _md(n).get("name") == ns:
            return {**_labels(n), NS_NAME_LABEL: ns}
    return {NS_NAME_LABEL: ns}


def _node_of(objs: Objects, name: str | None) -> dict | None:
    return next((n for n in objs.nodes if _md(n).get("name") == name), None)


def _resolve(objs: Objects, peer: Peer) -> _End:
    if isinstance(peer, str):
        # An IP that is a pod's is that pod: the kernel sees addresses, not objects.
        for p in objs.pods:
            if not _host_network(p) and _pod_ip(p) == peer:
                return _resolve(objs, p)
        return _End(ip=peer)
    if _host_network(peer):
        return _End(ip=_pod_ip(peer))
    return _End(ip=_pod_ip(peer), pod=peer, ns_labels=_ns_labels(objs, _md(peer).get("namespace", "default")))


def _in_cidr(ip: str | None, cidr: str) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _named_port(dst: _End, name: str, port: int, protocol: str, want_protocol: str | None) -> bool:
    """`name` is a containerPort of the destination pod with this number and protocol (and, for a
    NetworkPolicy port, the protocol the rule names)."""
    if dst.pod is None:
        return False
    if want_protocol is not None and want_protocol != protocol:
        return False
    for c in _spec(dst.pod).get("containers") or []:
        for cp in c.get("ports") or []:
            if (cp.get("name") == name and cp.get("containerPort") == port
                    and (cp.get("protocol") or "TCP") == protocol):
                return True
    return False


# -- NetworkPolicy ------------------------------------------------------------------------------

def policy_types(np: dict) -> list[str]:
    """spec.policyTypes, or its default: [Ingress], plus Egress when spec.egress is non-empty."""
    spec = _spec(np)
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return [INGRESS, EGRESS] if spec.get("egress") else [INGRESS]


def _np_selects(np: dict, pod: dict) -> bool:
    if _md(np).get("namespace", "default") != _md(pod).get("namespace", "default"):
        return False
    return _matches(_spec(np).get("podSelector"), _labels(pod))


def isolated_by(objs: Objects, pod: dict, direction: str) -> list[dict]:
    """The NetworkPolicies isolating `pod` in `direction` ("Ingress"/"Egress"), in name order."""
    if _host_network(pod):
        return []
    return sorted((np for np in objs.netpols if _np_selects(np, pod) and direction in policy_types(np)),
                  key=_name)


def _np_port_matches(entry: dict, dst: _End, port: int, protocol: str) -> bool:
    proto = entry.get("protocol") or "TCP"
    p = entry.get("port")
    if p is None:
        return proto == protocol
    if isinstance(p, str):
        return _named_port(dst, p, port, protocol, proto)
    if proto != protocol:
        return False
    end = entry.get("endPort")
    return p == port if end is None else p <= port <= end


def _np_peer_matches(peer: dict, np_ns: str, other: _End) -> bool:
    block = peer.get("ipBlock")
    if block is not None:
        return (_in_cidr(other.ip, block.get("cidr", ""))
                and not any(_in_cidr(other.ip, e) for e in block.get("except") or []))
    pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
    if other.pod is None or (pod_sel is None and ns_sel is None):
        return False
    if ns_sel is None:  # podSelector alone: pods of the policy's own namespace
        in_ns = _md(other.pod).get("namespace", "default") == np_ns
    else:
        in_ns = _matches(ns_sel, other.ns_labels)
    return in_ns and (pod_sel is None or _matches(pod_sel, _labels(other.pod)))


def _np_rule_matches(rule: dict, direction: str, np_ns: str, subject: _End, other: _End,
                     port: int, protocol: str) -> bool:
    dst = subject if direction == INGRESS else other
    ports = rule.get("ports") or []
    if ports and not any(_np_port_matches(e, dst, port, protocol) for e in ports):
        return False
    peers = rule.get("from" if direction == INGRESS else "to") or []
    return not peers or any(_np_peer_matches(pe, np_ns, other) for pe in peers)


def _netpols(objs: Objects, direction: str, subject: _End, other: _End, port: int,
             protocol: str) -> Verdict | None:
    """None when no NetworkPolicy isolates the pod in this direction."""
    assert subject.pod is not None
    isolating = isolated_by(objs, subject.pod, direction)
    if not isolating:
        return None
    d = direction.lower()
    for np in isolating:
        for i, rule in enumerate(_spec(np).get(d) or []):
            if _np_rule_matches(rule or {}, direction, _md(np).get("namespace", "default"), subject, other,
                                port, protocol):
                return Verdict(True, f"{d} allowed by {_name(np)} {d} rule {i}")
    return Verdict(False, f"{d} denied by {', '.join(_name(np) for np in isolating)} "
                          f"(isolated, no {d} rule allows it)")


# -- AdminNetworkPolicy / BaselineAdminNetworkPolicy ---------------------------------------------

def _subject_selects(subject: dict | None, end: _End) -> bool:
    if end.pod is None or not subject:
        return False
    if "namespaces" in subject:
        return _matches(subject["namespaces"], end.ns_labels)
    if "pods" in subject:
        pods = subject["pods"] or {}
        return (_matches(pods.get("namespaceSelector"), end.ns_labels)
                and _matches(pods.get("podSelector"), _labels(end.pod)))
    return False


def _admin_peer_matches(objs: Objects, peer: dict, other: _End) -> bool:
    if "namespaces" in peer:
        return other.pod is not None and _matches(peer["namespaces"], other.ns_labels)
    if "pods" in peer:
        pods = peer["pods"] or {}
        return (other.pod is not None and _matches(pods.get("namespaceSelector"), other.ns_labels)
                and _matches(pods.get("podSelector"), _labels(other.pod)))
    if "networks" in peer:
        return any(_in_cidr(other.ip, c) for c in peer["networks"] or [])
    if "nodes" in peer:
        return other.pod is None and any(
            other.ip in _node_ips(n) for n in objs.nodes if _matches(peer["nodes"], _labels(n)))
    return False  # domainNames and unknown peers: nothing an IP check can match


def _admin_port_matches(entry: dict, dst: _End, port: int, protocol: str) -> bool:
    if entry.get("portNumber") is not None:
        pn = entry["portNumber"]
        return (pn.get("protocol") or "TCP") == protocol and pn.get("port") == port
    if entry.get("namedPort") is not None:
        return _named_port(dst, entry["namedPort"], port, protocol, None)
    if entry.get("portRange") is not None:
        pr = entry["portRange"]
        return (pr.get("protocol") or "TCP") == protocol and pr.get("start", 0) <= port <= pr.get("end", -1)
    return False


def _admin_rule_matches(objs: Objects, rule: dict, direction: str, subject: _End, other: _End,
                        port: int, protocol: str) -> bool:
    dst = subject if direction == INGRESS else other
    ports = rule.get("ports")
    if ports is not None and not any(_admin_port_matches(e, dst, port, protocol) for e in ports):
        return False
    peers = rule.get("from" if direction == INGRESS else "to") or []
    return any(_admin_peer_matches(objs, pe, other) for pe in peers)


def _anps(objs: Objects, direction: str, subject: _End, other: _End, port: int,
          protocol: str) -> tuple[Verdict | None, str]:
    """(final verdict or None, a note when a Pass rule handed over)."""
    d = direction.lower()
    ordered = sorted(objs.anps, key=lambda a: (_spec(a).get("priority", 0), _md(a).get("name", "")))
    for a in ordered:
        if not _subject_selects(_spec(a).get("subject"), subject):
            continue
        for i, rule in enumerate(_spec(a).get(d) or []):
            if not _admin_rule_matches(objs, rule, direction, subject, other, port, protocol):
                continue
            where = f"AdminNetworkPolicy {_md(a).get('name')} {d} rule {i} ({rule.get('name', '')})"
            action = rule.get("action")
            if action == "Allow":
                return Verdict(True, f"{d} allowed by {where}"), ""
            if action == "Deny":
                return Verdict(False, f"{d} denied by {where}"), ""
            if action == "Pass":
                return None, f"{d} passed by {where}, then "
    return None, ""


def _banp(objs: Objects, direction: str, subject: _End, other: _End, port: int, protocol: str) -> Verdict | None:
    b = objs.banp
    if b is None or _md(b).get("name") != "default" or not _subject_selects(_spec(b).get("subject"), subject):
        return None
    d = direction.lower()
    for i, rule in enumerate(_spec(b).get(d) or []):
        if _admin_rule_matches(objs, rule, direction, subject, other, port, protocol):
            where = f"BaselineAdminNetworkPolicy default {d} rule {i} ({rule.get('name', '')})"
            if rule.get("action") == "Allow":
                return Verdict(True, f"{d} allowed by {where}")
            if rule.get("action") == "Deny":
                return Verdict(False, f"{d} denied by {where}")
    return None


def _direction(objs: Objects, direction: str, subject: _End, other: _End, port: int, protocol: str) -> Verdict:
    final, passed = _anps(objs, direction, subject, other, port, protocol)
    if final is not None:
        return final
    for step in (_netpols, _banp):
        v = step(objs, direction, subject, other, port, protocol)
        if v is not None:
            return Verdict(v.allowed, passed + v.reason)
    return Verdict(True, f"{passed}{direction.lower()} allowed: no policy applies to {subject.name}")


# -- the seam ---------------------------------------------------------------------------------------

def verdict(objects: Objects, src: Peer, dst: Peer, port: int, protocol: str) -> Verdict:
    """The fate of a new connection src -> dst:port/protocol (port after any DNAT)."""
    if protocol not in ("TCP", "UDP", "SCTP"):
        raise ValueError(f"protocol: Unsupported value {protocol!r}: supported values: \"SCTP\", \"TCP\", \"UDP\"")
    s, d = _resolve(objects, src), _resolve(objects, dst)
    if d.pod is not None and s.pod is None:
        node = _node_of(objects, _spec(d.pod).get("nodeName"))
        if node is not None and s.ip in _node_ips(node):
            return Verdict(True, f"from {d.name}'s own node {_md(node).get('name')}: always allowed")
    reasons = []
    if s.pod is not None:
        v = _direction(objects, EGRESS, s, d, port, protocol)
        if not v.allowed:
            return v
        reasons.append(v.reason)
    if d.pod is not None:
        v = _direction(objects, INGRESS, d, s, port, protocol)
        if not v.allowed:
            return v
        reasons.append(v.reason)
    return Verdict(True, "; ".join(reasons) or "neither end is a pod")


def matrix(objects: Objects, port: int, protocol: str, pods: Iterable[dict] | None = None) -> Matrix:
    """The reachability matrix over `pods` (default: every pod in `objects`), rows and columns
    named <namespace>/<name> in the order given."""
    pods = list(objects.pods if pods is None else pods)
    names = [_name(p) for p in pods]
    m = Matrix(names, None, None)
    for src, sname in zip(pods, names, strict=True):
        for dst, dname in zip(pods, names, strict=True):
            m.expect(sname, dname, verdict(objects, src, dst, port, protocol).allowed)
    return m
