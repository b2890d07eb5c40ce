"""Policies, pods and the selections between them, normalised for the
compiler (knet.policy.rules). Pure: plain API dicts in, frozen values out.

Every API default is applied here, once (NetworkPolicy policyTypes and port
protocol, AdminNetworkPolicy port protocol), so the compiler never has to
tell `[]` from a missing list again. A selection of pods (a policy's subject
or one of its peers) is a `Sig`: equal selections written in different
policies are one `Sig`, one nftables set, one set of members. `SelectorIndex`
keeps who is in each selection and finds the selections a pod may enter
from the pod's own labels, so a pod event costs the selections that could
match it, not a walk of every policy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from knet.api.selectors import Selector, selector_from_label_selector

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
DIRECTIONS = ("ingress", "egress")


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _canon(sel: Any) -> str:
    """A LabelSelector as a key: "" for "everything" (None here means the field was absent, also everything)."""
    if not sel:
        return ""
    exprs = sorted((e.get("key", ""), e.get("operator", ""), tuple(sorted(e.get("values") or [])))
                   for e in sel.get("matchExpressions") or [])
    labels = sorted((sel.get("matchLabels") or {}).items())
    if not exprs and not labels:
        return ""
    return json.dumps({"l": labels, "e": exprs}, separators=(",", ":"))


@dataclass(frozen=True, order=True)
class Sig:
    """A selection of pods: in namespace `ns` ("" = any), in namespaces whose
    labels match `ns_sel`, with labels matching `pod_sel` (canonical
    LabelSelector JSON; "" = no constraint)."""
    ns: str = ""
    ns_sel: str = ""
    pod_sel: str = ""

    @property
    def name(self) -> str:
        return "pods-" + short_hash(repr(self))

    def describe(self) -> str:
        where = self.ns or ("namespaces " + _short_sel(self.ns_sel) if self.ns_sel else "all namespaces")
        return f"pods {_short_sel(self.pod_sel) if self.pod_sel else 'all'} in {where}"


def _short_sel(canon: str) -> str:
    d = json.loads(canon)
    parts = [f"{k}={v}" for k, v in d["l"]] + [f"{k} {op} {','.join(vs)}".strip() for k, op, vs in d["e"]]
    return "{" + ",".join(parts) + "}"


def sig(ns: str = "", ns_sel: dict | None = None, pod_sel: dict | None = None) -> Sig:
    return Sig(ns, _canon(ns_sel), _canon(pod_sel))


def _selector(canon: str) -> Selector:
    if not canon:
        return selector_from_label_selector({})
    d = json.loads(canon)
    return selector_from_label_selector({
        "matchLabels": dict(d["l"]),
        "matchExpressions": [{"key": k, "operator": op, "values": list(vs)} for k, op, vs in d["e"]]})


@dataclass(frozen=True)
class NodeSel:
    """A selection of nodes (AdminNetworkPolicy egress `nodes`)."""
    sel: str

    @property
    def name(self) -> str:
        return "nodes-" + short_hash(self.sel)


# -- pods, namespaces, nodes -------------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    ns: str
    name: str
    ip: str  # "" until status.podIP, and for a pod that takes part in no policy (hostNetwork, finished)
    labels: tuple[tuple[str, str], ...]
    node: str
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, containerPort) of every named container port

    @property
    def key(self) -> tuple[str, str]:
        return (self.ns, self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def pod_info(obj: dict) -> PodInfo:
    """hostNetwork pods are never selected (their address is the node's) and a
    pod that has finished may hand its address to another: both get no IP."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ip = status.get("podIP") or ""
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed") or ":" in ip:
        ip = ""
    ports = tuple(sorted((p["name"], PROTOCOLS.get(p.get("protocol") or "TCP", "tcp"), int(p["containerPort"]))
                         for c in spec.get("containers") or [] for p in c.get("ports") or []
                         if p.get("name") and p.get("containerPort")))
    return PodInfo(meta.get("namespace") or "default", meta["name"], ip,
                   tuple(sorted((meta.get("labels") or {}).items())), spec.get("nodeName") or "", ports)


def slim_pod(obj: dict) -> dict:
    """The fields of a Pod the policy engine reads (pod_info, and the uid that tells
    a pod made again under the same name), shaped as the Pod itself: the informer
    transform of the cluster-wide Pod cache every agent keeps (Cilium's slim Pod).
    A whole decoded Pod is ~16 KB, ~12 KB with the shared keys; this is ~1.5 KB."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    slim_spec: dict[str, Any] = {}
    if spec.get("nodeName"):
        slim_spec["nodeName"] = spec["nodeName"]
    if spec.get("hostNetwork"):
        slim_spec["hostNetwork"] = True
    named = [p for c in spec.get("containers") or [] for p in c.get("ports") or [] if p.get("name")]
    if named:  # one container holds every named port: pod_info reads them across containers alike
        slim_spec["containers"] = [{"ports": named}]
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels") if k in meta},
            "spec": slim_spec, "status": {k: status[k] for k in ("podIP", "phase") if k in status}}


def namespace_labels(name: str, obj: dict | None) -> dict[str, str]:
    """A namespace's labels, with the immutable kubernetes.io/metadata.name the API server adds."""
    labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {})
    labels.setdefault("kubernetes.io/metadata.name", name)
    return labels


def node_ips(obj: dict) -> tuple[str, ...]:
    return tuple(sorted({a["address"] for a in (obj.get("status") or {}).get("addresses") or []
                         if a.get("type") in ("InternalIP", "ExternalIP") and ":" not in a.get("address", "")}))


# -- policies ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class PortRange:
    proto: str
    start: int
    end: int


@dataclass(frozen=True, order=True)
class NamedPort:
    """Resolved per destination pod. proto "" = any protocol (AdminNetworkPolicy's namedPort)."""
    name: str
    proto: str

    @property
    def set_name(self) -> str:
        return f"port-{self.proto or 'any'}-{self.name}"


@dataclass(frozen=True, order=True)
class Block:
    """An ipBlock (or one of an AdminNetworkPolicy's networks): its cidr less
    its excepts. Kept as written, not cut into the prefixes it leaves: the
    compiler matches it inline (`ip saddr CIDR ip saddr != EXCEPT ...`), see
    knet.policy.rules' benchmark note for why never an interval set."""
    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peers:
    any: bool = False  # no `from`/`to`: every address
    sigs: tuple[Sig, ...] = ()
    nodes: tuple[NodeSel, ...] = ()
    blocks: tuple[Block, ...] = ()  # ipBlocks and networks: IPv4 only, each except inside its cidr


@dataclass(frozen=True)
class RuleModel:
    index: int
    action: str  # Allow, Deny, Pass
    peers: Peers
    any_port: bool = True
    ranges: tuple[PortRange, ...] = ()  # merged, no overlaps
    named: tuple[NamedPort, ...] = ()
    name: str = ""  # an admin rule's name


@dataclass(frozen=True)
class PolicyModel:
    kind: str  # NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
    ns: str  # "" for the cluster-scoped kinds
    name: str
    subject: Sig
    ingress: tuple[RuleModel, ...] | None  # None: this direction is not the policy's business
    egress: tuple[RuleModel, ...] | None
    priority: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.ns, self.name)

    @property
    def label(self) -> str:
        """How comments name the policy (issue 16's trace reads them)."""
        if self.kind == "NetworkPolicy":
            return f"{self.ns}/{self.name}"
        return f"{'anp' if self.kind == 'AdminNetworkPolicy' else 'banp'}/{self.name}"

    @property
    def hash(self) -> str:
        return short_hash("/".join(self.key))

    def rules(self, direction: str) -> tuple[RuleModel, ...] | None:
        return self.ingress if direction == "ingress" else self.egress

    def sigs(self) -> set[Sig]:
        return {s for d in DIRECTIONS for r in self.rules(d) or () for s in r.peers.sigs}

    def node_sels(self) -> set[NodeSel]:
        return {s for d in DIRECTIONS for r in self.rules(d) or () for s in r.peers.nodes}

    def named_ports(self) -> set[NamedPort]:
        return {n for d in DIRECTIONS for r in self.rules(d) or () for n in r.named}


def policy_model(kind: str, obj: dict) -> PolicyModel:
    if kind == "NetworkPolicy":
        return netpol_model(obj)
    if kind in ("AdminNetworkPolicy", "BaselineAdminNetworkPolicy"):
        return admin_model(kind, obj)
    raise ValueError(f"kind: unsupported value {kind!r}")


def netpol_model(obj: dict) -> PolicyModel:
    """networking.k8s.io/v1, defaulted as the API server does
    (SetDefaults_NetworkPolicy): policyTypes [Ingress] plus Egress iff
    spec.egress is non-empty; protocol TCP. `ingress: []` and a missing
    `ingress` are the same (deny all once isolated)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    ns = meta.get("namespace") or "default"
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
    out: dict[str, tuple[RuleModel, ...] | None] = {}
    for d, field_name, peers_name in (("ingress", "ingress", "from"), ("egress", "egress", "to")):
        if d.capitalize() not in types:
            out[d] = None
            continue
        rules = []
        for i, r in enumerate(spec.get(field_name) or []):
            r = r or {}
            rules.append(_np_rule(i, ns, r.get(peers_name) or [], r.get("ports") or []))
        out[d] = tuple(rules)
    return PolicyModel("NetworkPolicy", ns, meta["name"], sig(ns, None, spec.get("podSelector")),
                       out["ingress"], out["egress"])


def _np_rule(index: int, ns: str, peers: list[dict], ports: list[dict]) -> RuleModel:
    sigs: list[Sig] = []
    blocks: list[tuple[str, list[str]]] = []
    for p in peers:
        p = p or {}
        if p.get("ipBlock"):
            blocks.append((p["ipBlock"]["cidr"], p["ipBlock"].get("except") or []))
        elif "namespaceSelector" in p and p["namespaceSelector"] is not None:
            sigs.append(sig("", p["namespaceSelector"], p.get("podSelector")))
        elif p.get("podSelector") is not None:
            sigs.append(sig(ns, None, p["podSelector"]))
    ranges, named = [], []
    for p in ports:
        p = p or {}
        proto = PROTOCOLS.get(p.get("protocol") or "TCP", "tcp")
        port = p.get("port")
        if port is None:
            ranges.append(PortRange(proto, 0, 65535))
        elif isinstance(port, str) and not port.isdigit():
            named.append(NamedPort(port, proto))
        else:
            start = int(port)
            ranges.append(PortRange(proto, start, int(p.get("endPort") or start)))
    return RuleModel(index, "Allow", Peers(not peers, tuple(sorted(set(sigs))), (), ip_blocks(blocks)),
                     not ports, merge_ranges(ranges), tuple(sorted(set(named))))


def admin_model(kind: str, obj: dict) -> PolicyModel:
    """policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy and
    BaselineAdminNetworkPolicy. A direction without rules is None: an admin
    policy isolates nothing by itself. A peer of a kind this compiler does
    not know (domainNames, or an empty peer) fails closed: it matches nothing
    in an Allow rule and everything in a Deny or Pass rule."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    subj = spec.get("subject") or {}
    if subj.get("pods"):
        subject = sig("", subj["pods"].get("namespaceSelector") or {}, subj["pods"].get("podSelector") or {})
    elif subj.get("namespaces") is not None:
        subject = sig("", subj["namespaces"], None)
    else:
        subject = Sig("", "", "")
    out: dict[str, tuple[RuleModel, ...] | None] = {}
    for d, peers_name in (("ingress", "from"), ("egress", "to")):
        rules = [_admin_rule(i, r or {}, peers_name) for i, r in enumerate(spec.get(d) or [])]
        out[d] = tuple(rules) or None
    return PolicyModel(kind, "", meta["name"], subject, out["ingress"], out["egress"],
                       int(spec.get("priority") or 0))


def _admin_rule(index: int, r: dict, peers_name: str) -> RuleModel:
    action = r.get("action") or "Deny"
    sigs: list[Sig] = []
    nodes: list[NodeSel] = []
    blocks: list[tuple[str, list[str]]] = []
    unknown = False
    for p in r.get(peers_name) or []:
        p = p or {}
        if p.get("namespaces") is not None:
            sigs.append(sig("", p["namespaces"], None))
        elif p.get("pods") is not None:
            sigs.append(sig("", p["pods"].get("namespaceSelector") or {}, p["pods"].get("podSelector") or {}))
        elif p.get("nodes") is not None:
            nodes.append(NodeSel(_canon(p["nodes"])))
        elif p.get("networks"):
            blocks += [(c, []) for c in p["networks"]]
        else:
            unknown = True
    ranges, named = [], []
    for p in r.get("ports") or []:
        p = p or {}
        if p.get("portNumber"):
            pn = p["portNumber"]
            proto = PROTOCOLS.get(pn.get("protocol") or "TCP", "tcp")
            ranges.append(PortRange(proto, int(pn["port"]), int(pn["port"])))
        elif p.get("portRange"):
            pr = p["portRange"]
            ranges.append(PortRange(PROTOCOLS.get(pr.get("protocol") or "TCP", "tcp"), int(pr["start"]),
                                    int(pr["end"])))
        elif p.get("namedPort"):
            named.append(NamedPort(p["namedPort"], ""))
    peers = Peers(False, tuple(sorted(set(sigs))), tuple(sorted(set(nodes), key=lambda n: n.sel)),
                  ip_blocks(blocks))
    if unknown and action != "Allow":
        action, peers = "Deny", Peers(True)
    return RuleModel(index, action, peers, not r.get("ports"), merge_ranges(ranges), tuple(sorted(set(named))),
                     str(r.get("name") or ""))


def ip_blocks(blocks: Iterable[tuple[str, list[str]]]) -> tuple[Block, ...]:
    """The IPv4 blocks, normalised: an except only narrows its own block, so
    excepts outside the cidr are dropped, one inside another is redundant,
    and a block its own except covers matches nothing and goes. IPv6 blocks
    match nothing here: every pod and node address is IPv4."""
    out: set[Block] = set()
    for cidr, excepts in blocks:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != 4:
            continue
        cuts: list[ipaddress.IPv4Network] = []
        for e in excepts:
            ex = ipaddress.ip_network(e, strict=False)
            if ex.version == 4 and ex.overlaps(net):
                cuts.append(ex)
        if any(net.subnet_of(ex) for ex in cuts):
            continue
        cuts = list(ipaddress.collapse_addresses(cuts))
        out.add(Block(str(net), tuple(str(ex) for ex in cuts)))
    # A block with no excepts inside another with none says nothing more.
    whole = [ipaddress.ip_network(b.cidr) for b in out if not b.excepts]
    return tuple(sorted(b for b in out if b.excepts or not any(
        ipaddress.ip_network(b.cidr) != w and ipaddress.ip_network(b.cidr).subnet_of(w) for w in whole)))


def merge_ranges(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Overlapping or adjacent ranges of one protocol become one: nftables
    refuses overlapping intervals in a set."""
    out: list[PortRange] = []
    for r in sorted(ranges):
        if out and out[-1].proto == r.proto and r.start <= out[-1].end + 1:
            if r.end > out[-1].end:
                out[-1] = PortRange(r.proto, out[-1].start, r.end)
        else:
            out.append(r)
    return tuple(out)


# -- who is in each selection ------------------------------------------------------


@dataclass
class _Entry:
    ns_sel: Selector
    pod_sel: Selector
    members: set[tuple[str, str]] = field(default_factory=set)


class SelectorIndex:
    """The members of each selection, and the selections a pod could be in,
    found through one equality of each selection (`app=web` in its pod
    selector, else its namespace, else one equality of its namespace
    selector); only selections with none of those are checked for every pod."""

    def __init__(self) -> None:
        self.entries: dict[Sig, _Entry] = {}
        self._by: dict[tuple[str, ...], set[Sig]] = {}

    def __contains__(self, s: Sig) -> bool:
        return s in self.entries

    def _key(self, s: Sig) -> tuple[str, ...]:
        if s.pod_sel and (labels := json.loads(s.pod_sel)["l"]):
            return ("pod", *labels[0])
        if s.ns:
            return ("name", s.ns)
        if s.ns_sel and (labels := json.loads(s.ns_sel)["l"]):
            return ("ns", *labels[0])
        return ("scan",)

    def add(self, s: Sig) -> _Entry:
        entry = _Entry(_selector(s.ns_sel), _selector(s.pod_sel))
        self.entries[s] = entry
        self._by.setdefault(self._key(s), set()).add(s)
        return entry

    def remove(self, s: Sig) -> None:
        del self.entries[s]
        key = self._key(s)
        self._by[key].discard(s)
        if not self._by[key]:
            del self._by[key]

    def matches(self, s: Sig, pod: PodInfo, ns_labels: Mapping[str, str]) -> bool:
        e = self.entries[s]
        return ((not s.ns or s.ns == pod.ns) and e.ns_sel.matches(ns_labels)
                and e.pod_sel.matches(pod.label_map))

    def lookup(self, pod: PodInfo, ns_labels: Mapping[str, str]) -> set[Sig]:
        """Every selection the pod is in."""
        cands: set[Sig] = set(self._by.get(("scan",), ()))
        cands |= self._by.get(("name", pod.ns), set())
        for k, v in pod.labels:
            cands |= self._by.get(("pod", k, v), set())
        for k, v in ns_labels.items():
            cands |= self._by.get(("ns", k, v), set())
        return {s for s in cands if self.matches(s, pod, ns_labels)}
