"""Policies to nftables, the pure part: NetworkPolicies, AdminNetworkPolicies,
the BaselineAdminNetworkPolicy, pods, namespaces and nodes in; one node's
table `inet knet-policy` out, as nft text (see knet.proxy.rules for why
text).

The shape, per direction (`ip daddr` for ingress, `ip saddr` for egress):

    base chains   forward-egress  (hook forward, priority 0)   ct state established,related accept; goto egress
                  input-egress    (hook input, priority 0)     the same: a pod reaching its own node
                  forward-ingress (hook forward, priority 1)   ct state established,related accept; goto ingress
    egress        ip saddr vmap @egress-admin   -> jump admin-egress-<pod>: the pod's ANPs in priority order
                  goto egress-policy
    egress-policy ip saddr vmap @egress-pods    -> goto egress-<pod>: jump to each NetworkPolicy chain
                                                   selecting the pod, then drop (isolated)
                  ip saddr vmap @egress-baseline -> jump banp-egress
                  accept

An `accept` ends only its own base chain, so a packet allowed by egress
goes on to the ingress base chain: same-node traffic is judged at both
ends in one pass, cross-node traffic at each end's node. ANP Allow is
`accept`, Deny `drop`, Pass `goto egress-policy` (which leaves the admin
chains behind and always ends in a verdict). Replies and established
connections never get past the first rule, so a policy change never cuts a
connection it allowed. The node's own traffic leaves by `output`, which
has no chain here: it is always allowed, kubelet probes included.

Per packet this costs the same whatever the number of pods or policies:
one verdict-map lookup per stage, then only the chains of the policies that
select the pod. A policy's rule is one nft rule per kind of peer and kind
of port: pods selected by a peer are a named set per distinct selection
(`pods-<hash>`, shared by every policy that writes the same selector), an
ipBlock or a network is inline, one rule per block with its excepts in the
same rule (`ip saddr 10.0.0.0/8 ip saddr != 10.1.0.0/16 ...`), port ranges
inline up to INLINE_PORTS of them and past that a `meta l4proto . th dport`
interval set, a named port the set of `ip daddr . meta l4proto . th dport`
of every pod serving it (so one rule serves every destination pod, whatever
number each gives the name). Why addresses are never an interval set: the
benchmark note below.

Changes are element adds and deletes in those sets, and the chains of what
changed: a pod label change moves the pod's address in or out of the sets
of the selections it enters or leaves; a new policy adds the selections
nobody had yet and, on a node where it selects a pod, its chains (a
policy's chains live only on the nodes of the pods it selects: they come
with the first such pod and go with the last); a pod newly selected gets
one `insert rule` into its own chain (the order of NetworkPolicies in it
does not matter). The Compiler keeps the table it wants and the table it
last rendered, and renders only the names an event dirtied. Selections are indexed by one of
their label equalities (model.SelectorIndex), so a pod event looks only
at selections that could hold it. The operation counts do not grow with
the policies present (tests/unit/test_policy_rules.py checks 100 against
1,000); what the kernel makes of them is the benchmark note below.

Benchmark note (bench/policy.py's table: 200 pods in 20 namespaces, a
third of them on the measured node, each policy selecting one pod, with a
pod and a namespace peer, a port by number and by name, an ipBlock with an
except, a port range, every fourth an egress rule with UDP and TCP 53;
nft 1.0.6, Linux 6.18, 2 shared cores). libnftables, on any transaction
holding an `add element`/`delete element`, first reads every element of
every non-concatenated interval set in the table, named or anonymous
(NFT_CACHE_SETELEM_MAYBE; concatenated ones are spared), and for `add
element` or `add rule` every chain and set of the table (not the rules).
With one interval set per ipBlock (the first shape) the cost of a
one-element change grew with the number of policies, not with the change.
Median apply time of one change in ms (bench/policy.py's sync part, and
the same with 20 samples), for three shapes in turn:

    policies present                      10        100       1,000
    pod label change (1-2 ops)
      an interval set per ipBlock       0.5-0.9   4.0-7.7   78-83
      blocks inline                     0.25      0.50      1.8-2.2
      and chains only where selected    0.25      0.36      1.0
    new policy selecting a pod here (7-19 ops)
      an interval set per ipBlock       0.9-1.7   4.7-8.8   83-85
      blocks inline                     0.54      0.82      3.0-3.2
      and chains only where selected    0.67      0.67      1.7
    interval sets / chains in the table
      an interval set per ipBlock       10/26     123/177   1,248/1,345
      blocks inline                     0/26      0/177     0/1,345
      and chains only where selected    0/20      0/96      0/521

(under the load of other test runs the first shape's 1,000-policy figures
were 450-770 ms, against the live `knet apply` to enforcement target of
100 ms). What still grows is nft reading the table's chains and sets into
its cache: ~1.4 ms per 1,000 chains (measured on empty chains), hence a
policy's chains only on the nodes where it selects a pod. Inline port
ranges, over a concatenated set each, took ~1 ms more off at 1,000. The
price is per packet and local: a rule with k ipBlocks and p port ranges is
k*p nft rules, walked only by the first packet of a connection to or from
a pod that policy selects. TCP connect time between two pods each selected
by ~5 of 1,000 policies, against the same table with none
(bench/policy.py's connect_ratio_1000_vs_none): 0.97-1.12, typically
1.06-1.08, over a dozen runs on the shared machine (the table itself, with
no policy, costs 15-25% over a node with none: conntrack's state and the
dispatch maps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from knet.policy.model import (
    DIRECTIONS,
    NamedPort,
    NodeSel,
    PodInfo,
    PolicyModel,
    RuleModel,
    SelectorIndex,
    Sig,
    namespace_labels,
    node_ips,
    pod_info,
    policy_model,
    short_hash,
)

TABLE = "knet-policy"
FAMILY = "inet"
KINDS = ("Pod", "Namespace", "Node", "NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
POLICY_KINDS = KINDS[3:]

ADDR = {"ingress": "daddr", "egress": "saddr"}  # whose address picks the pod
PEER = {"ingress": "saddr", "egress": "daddr"}  # the other end

BASE_CHAINS = {
    "forward-egress": ("type filter hook forward priority 0; policy accept;", "egress"),
    "input-egress": ("type filter hook input priority 0; policy accept;", "egress"),
    "forward-ingress": ("type filter hook forward priority 1; policy accept;", "ingress"),
}
ADDR_SET = "type ipv4_addr;"
VMAP = "type ipv4_addr : verdict;"
PORTS_SET = "type inet_proto . inet_service; flags interval;"
NAMED_SET = "type ipv4_addr . inet_proto . inet_service;"
INLINE_PORTS = 4  # a rule with more port ranges than this gets a set of them (see the benchmark note)


def _comment(text: str) -> str:
    text = text.replace('"', "'")[:120]
    return f'comment "{text}"'


# -- the table as data: wanted, and last rendered -------------------------------------


@dataclass
class _Set:
    spec: str
    kind: str = "set"  # or "map"
    elements: dict[str, str] = field(default_factory=dict)  # key -> value ("" in a set)


class _Tables:
    """The table the compiler wants (`chains`, `sets`) and the one it last
    rendered (`done_*`), with the names each event dirtied: changes() looks
    at those only."""

    def __init__(self) -> None:
        self.chains: dict[str, tuple[str, list[str]]] = {}  # name -> (hook, rules)
        self.sets: dict[str, _Set] = {}
        self.done_chains: dict[str, tuple[str, list[str]]] = {}
        self.done_sets: dict[str, _Set] = {}
        self.dirty_chains: set[str] = set()
        self.dirty_sets: set[str] = set()
        self.dirty_elems: dict[str, set[str]] = {}

    def chain(self, name: str, rules: list[str], hook: str = "") -> None:
        cur = self.chains.get(name)
        if cur is None or cur[1] != rules or cur[0] != hook:
            self.chains[name] = (hook, list(rules))
            self.dirty_chains.add(name)

    def drop_chain(self, name: str) -> None:
        if self.chains.pop(name, None) is not None:
            self.dirty_chains.add(name)

    def set(self, name: str, spec: str, kind: str = "set") -> _Set:
        s = self.sets.get(name)
        if s is None:
            s = self.sets[name] = _Set(spec, kind)
            self.dirty_sets.add(name)
        return s

    def drop_set(self, name: str) -> None:
        s = self.sets.pop(name, None)
        if s is not None:
            self.dirty_sets.add(name)
            self.dirty_elems.setdefault(name, set()).update(s.elements)

    def put(self, name: str, key: str, value: str = "") -> None:
        s = self.sets[name]
        if s.elements.get(key) != value:
            s.elements[key] = value
            self.dirty_elems.setdefault(name, set()).add(key)

    def pop(self, name: str, key: str) -> None:
        s = self.sets.get(name)
        if s is not None and key in s.elements:
            del s.elements[key]
            self.dirty_elems.setdefault(name, set()).add(key)

    def fill(self, name: str, elements: dict[str, str]) -> None:
        """Make a set hold exactly `elements`."""
        s = self.sets[name]
        for k in [k for k in s.elements if k not in elements]:
            self.pop(name, k)
        for k, v in elements.items():
            self.put(name, k, v)

    # -- rendering ----------------------------------------------------------------

    def full(self, table: str) -> str:
        t = f"{FAMILY} {table}"
        lines = [f"add table {t}", f"delete table {t}", f"table {t} {{"]
        for name, s in self.sets.items():
            lines.append(f"\t{s.kind} {name} {{ {s.spec} }}")
        for name, (hook, rules) in self.chains.items():
            lines.append(f"\tchain {name} {{")
            if hook:
                lines.append(f"\t\t{hook}")
            lines += [f"\t\t{r}" for r in rules]
            lines.append("\t}")
        lines.append("}")
        for name, s in self.sets.items():
            if s.elements:
                lines.append(f"add element {t} {name} {{ {', '.join(_elem(k, v) for k, v in s.elements.items())} }}")
        self.done_chains = {n: (h, list(r)) for n, (h, r) in self.chains.items()}
        self.done_sets = {n: _Set(s.spec, s.kind, dict(s.elements)) for n, s in self.sets.items()}
        self.dirty_chains, self.dirty_sets, self.dirty_elems = set(), set(), {}
        return "\n".join(lines) + "\n"

    def changes(self, table: str) -> str:
        t = f"{FAMILY} {table}"
        new_objs, rules, elem_dels, elem_adds, flush_gone, gone = [], [], [], [], [], []
        for name in sorted(self.dirty_sets):
            want, have = self.sets.get(name), self.done_sets.get(name)
            if want is not None and have is None:
                new_objs.append(f"add {want.kind} {t} {name} {{ {want.spec} }}")
                self.done_sets[name] = _Set(want.spec, want.kind)
            elif want is None and have is not None:
                gone.append(f"delete {have.kind} {t} {name}")
        for name in sorted(self.dirty_chains):
            want, have = self.chains.get(name), self.done_chains.get(name)
            if want is not None and have is None:
                new_objs.append(f"add chain {t} {name}" + (f" {{ {want[0]} }}" if want[0] else ""))
                rules += [f"add rule {t} {name} {r}" for r in want[1]]
            elif want is None and have is not None:
                flush_gone.append(f"flush chain {t} {name}")
                gone.insert(0, f"delete chain {t} {name}")
            elif want is not None and have is not None and want[1] != have[1]:
                new, old = want[1], have[1]
                k = len(new) - len(old)
                if k > 0 and new[k:] == old:  # only new rules at the head: insert them
                    rules += [f"insert rule {t} {name} {r}" for r in reversed(new[:k])]
                else:
                    rules.append(f"flush chain {t} {name}")
                    rules += [f"add rule {t} {name} {r}" for r in new]
            if want is None:
                self.done_chains.pop(name, None)
            else:
                self.done_chains[name] = (want[0], list(want[1]))
        for name in sorted(self.dirty_elems):
            want, have = self.sets.get(name), self.done_sets.get(name)
            if have is None:
                continue
            dels, adds = [], []
            for key in sorted(self.dirty_elems[name]):
                new = want.elements.get(key) if want is not None else None
                old = have.elements.get(key)
                if old is not None and old != new:
                    if want is not None:  # a set that goes takes its elements with it
                        dels.append(key)
                    del have.elements[key]
                if new is not None and new != old:
                    adds.append(_elem(key, new))
                    have.elements[key] = new
            if dels:
                elem_dels.append(f"delete element {t} {name} {{ {', '.join(dels)} }}")
            if adds:
                elem_adds.append(f"add element {t} {name} {{ {', '.join(adds)} }}")
        for name in self.dirty_sets:
            if name not in self.sets:
                self.done_sets.pop(name, None)
        self.dirty_chains, self.dirty_sets, self.dirty_elems = set(), set(), {}
        lines = new_objs + rules + elem_dels + elem_adds + flush_gone + gone
        return "\n".join(lines) + "\n" if lines else ""


def _elem(key: str, value: str) -> str:
    return f"{key} : {value}" if value else key


# -- the compiler -----------------------------------------------------------------------


@dataclass
class _PodState:
    info: PodInfo
    peers: set[Sig] = field(default_factory=set)  # peer selections it is in
    subjects: set[Sig] = field(default_factory=set)  # subject selections it is in (local pods only)
    np: dict[str, list[str]] = field(default_factory=lambda: {"ingress": [], "egress": []})  # chains, newest first
    admin: set[tuple[str, str, str]] = field(default_factory=set)  # ANPs selecting it
    baseline: bool = False


class Compiler:
    """Stateful but pure: objects in (upsert/delete), nft text out
    (full/changes). See the module docstring for the table's shape."""

    def __init__(self, node: str, *, table: str = TABLE) -> None:
        self.node, self.table = node, table
        self.t = _Tables()
        self.pods: dict[tuple[str, str], _PodState] = {}
        self.by_ns: dict[str, set[tuple[str, str]]] = {}
        self.ns_objs: dict[str, dict] = {}
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.nodes: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}
        self.policies: dict[tuple[str, str, str], PolicyModel] = {}
        self.peer_index = SelectorIndex()  # every pod with an address
        self.subject_index = SelectorIndex()  # this node's pods
        self.peer_users: dict[Sig, set[tuple[str, str, str]]] = {}
        self.subject_users: dict[Sig, set[tuple[str, str, str]]] = {}
        self.node_users: dict[NodeSel, set[tuple[str, str, str]]] = {}
        self.port_users: dict[NamedPort, set[tuple[str, str, str]]] = {}
        self.named: dict[str, dict[tuple[str, str], set[tuple[str, str]]]] = {}  # name -> pod -> {(proto, element)}
        self._own_sets: dict[tuple[str, str, str], set[str]] = {}  # a policy's own sets (networks, ports)
        self.banp: tuple[str, str, str] | None = None
        self.ip_owner: dict[str, tuple[str, str]] = {}
        self.np_labels: dict[str, str] = {}  # a NetworkPolicy's chain -> its name, for the jumps' comments
        self._base()

    # -- the seam -------------------------------------------------------------------------

    def upsert(self, kind: str, obj: dict) -> None:
        if kind == "Pod":
            self._pod(pod_info(obj))
        elif kind == "Namespace":
            name = obj["metadata"]["name"]
            self.ns_objs[name] = obj
            self._namespace(name, namespace_labels(name, obj))
        elif kind == "Node":
            self._node(obj["metadata"]["name"], (dict(obj["metadata"].get("labels") or {}), node_ips(obj)))
        elif kind in POLICY_KINDS:
            self._policy(policy_model(kind, obj))
        else:
            raise ValueError(f"kind: unsupported value {kind!r}")

    def delete(self, kind: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        if kind == "Pod":
            key = (meta.get("namespace") or "default", meta["name"])
            if key in self.pods:
                self._pod(None, key)
        elif kind == "Namespace":
            self.ns_objs.pop(meta["name"], None)
            self._namespace(meta["name"], namespace_labels(meta["name"], None))
        elif kind == "Node":
            if meta["name"] in self.nodes:
                self._node(meta["name"], None)
        elif kind in POLICY_KINDS:
            ns = meta.get("namespace") or "default" if kind == "NetworkPolicy" else ""
            old = self.policies.get((kind, ns, meta["name"]))
            if old is not None:
                self._policy(None, old)
        else:
            raise ValueError(f"kind: unsupported value {kind!r}")

    def full(self) -> str:
        return self.t.full(self.table)

    def changes(self) -> str:
        return self.t.changes(self.table)

    @staticmethod
    def ops(text: str) -> int:
        """nftables operations in a text: one per command, per declaration or
        rule in a table block, and per element added or deleted."""
        n = 0
        for line in text.splitlines():
            s = line.strip()
            if not s or s == "}" or s.startswith("#") or s.startswith("type ") or re.fullmatch(r"table .* \{", s):
                continue
            if " element " in f" {s}" and "{" in s:
                n += s[s.index("{"):].count(",") + 1
            else:
                n += 1
        return n

    # -- the fixed part -------------------------------------------------------------------

    def _base(self) -> None:
        t = self.t
        for d in DIRECTIONS:
            t.set(f"{d}-admin", VMAP, "map")
            t.set(f"{d}-pods", VMAP, "map")
            t.set(f"{d}-baseline", VMAP, "map")
        for name, (hook, target) in BASE_CHAINS.items():
            t.chain(name, ["ct state established,related accept", f"goto {target}"], hook)
        for d in DIRECTIONS:
            a = ADDR[d]
            t.chain(d, [f"ip {a} vmap @{d}-admin", f"goto {d}-policy"])
            t.chain(f"{d}-policy", [f"ip {a} vmap @{d}-pods", f"ip {a} vmap @{d}-baseline", "accept"])
            t.chain(f"banp-{d}", [])

    # -- pods and namespaces ----------------------------------------------------------------

    def _labels(self, ns: str) -> dict[str, str]:
        if ns not in self.ns_labels:
            self.ns_labels[ns] = namespace_labels(ns, self.ns_objs.get(ns))
        return self.ns_labels[ns]

    def _namespace(self, name: str, labels: dict[str, str]) -> None:
        if self.ns_labels.get(name) == labels:
            return
        self.ns_labels[name] = labels
        for key in sorted(self.by_ns.get(name, ())):
            st = self.pods[key]
            self._pod_memberships(st)
            self._render_pod(st, st.info.ip)  # an admin policy's subject may take or leave it

    def _pod(self, info: PodInfo | None, key: tuple[str, str] | None = None) -> None:
        key = info.key if info is not None else key
        st = self.pods.get(key)
        if st is not None and info is not None and st.info == info:
            return
        old = st.info if st is not None else None
        if old is not None and old.ip and self.ip_owner.get(old.ip) == key and (info is None or info.ip != old.ip):
            del self.ip_owner[old.ip]
        if info is not None and info.ip:
            # An address belongs to one pod. If another still holds it (its deletion not seen yet,
            # the address already given again), that one has lost it: it must not take it out
            # of the sets the new holder is in when its deletion comes.
            other = self.ip_owner.get(info.ip)
            if other is not None and other != key and other in self.pods:
                self._pod(replace(self.pods[other].info, ip=""))
            self.ip_owner[info.ip] = key
        if st is None:
            st = self.pods[key] = _PodState(info)
            self.by_ns.setdefault(key[0], set()).add(key)
        self._pod_ports(key, old, info)
        if info is None:  # gone: leave every selection, then forget it
            st.info = PodInfo(old.ns, old.name, "", (), old.node, ())
            self._pod_memberships(st, old)
            self._render_pod(st, old.ip)
            del self.pods[key]
            self.by_ns[key[0]].discard(key)
            return
        st.info = info
        self._pod_memberships(st, old)
        self._render_pod(st, old.ip if old is not None else "")

    def _pod_ports(self, key: tuple[str, str], old: PodInfo | None, new: PodInfo | None) -> None:
        """The pod's entries in the named-port sets (`ip . proto . port` per container port name)."""
        def entries(info: PodInfo | None) -> set[tuple[str, str, str]]:
            if info is None or not info.ip:
                return set()
            return {(name, proto, f"{info.ip} . {proto} . {port}") for name, proto, port in info.ports}

        was, now = entries(old), entries(new)
        if was == now:
            return
        for name in {e[0] for e in was | now}:
            pods = self.named.setdefault(name, {})
            mine = {(pr, e) for n, pr, e in now if n == name}
            if mine:
                pods[key] = mine
            else:
                pods.pop(key, None)
        for np in self.port_users:
            for name, proto, e in was - now:
                if name == np.name and np.proto in ("", proto):
                    self.t.pop(np.set_name, e)
            for name, proto, e in now - was:
                if name == np.name and np.proto in ("", proto):
                    self.t.put(np.set_name, e)

    def _pod_memberships(self, st: _PodState, old: PodInfo | None = None) -> None:
        """Move the pod between selections (peers everywhere; subjects if it is this node's)."""
        info = st.info
        labels = self._labels(info.ns)
        peers = self.peer_index.lookup(info, labels) if info.ip else set()
        old_ip = old.ip if old is not None else ""
        if not old_ip and st.peers:  # a namespace changed: the pod is as it was
            old_ip = info.ip
        for s in st.peers - peers:
            self.peer_index.entries[s].members.discard(info.key)
            if old_ip:
                self.t.pop(s.name, old_ip)
        for s in peers:
            self.peer_index.entries[s].members.add(info.key)
            if old_ip and old_ip != info.ip and s in st.peers:
                self.t.pop(s.name, old_ip)
            self.t.put(s.name, info.ip)
        st.peers = peers
        local = info.ip and info.node == self.node
        subjects = self.subject_index.lookup(info, labels) if local else set()
        for s in st.subjects - subjects:
            members = self.subject_index.entries[s].members
            members.discard(info.key)
            for pk in self.subject_users.get(s, ()):
                self._selected(st, self.policies[pk], False)
                if not members:  # its last pod here: the policy's chains go
                    self._render_policy(self.policies[pk], self.policies[pk])
        for s in subjects - st.subjects:
            members = self.subject_index.entries[s].members
            members.add(info.key)
            for pk in sorted(self.subject_users.get(s, ())):
                self._selected(st, self.policies[pk], True)
                if len(members) == 1:  # its first pod here: the policy's chains come
                    self._render_policy(self.policies[pk], self.policies[pk])
        st.subjects = subjects

    def _selected(self, st: _PodState, p: PolicyModel, yes: bool) -> None:
        """Record whether policy `p` selects the pod (a NetworkPolicy that
        newly selects it goes first in its chain: one `insert rule`)."""
        if p.kind == "NetworkPolicy":
            for d in DIRECTIONS:
                c = f"np-{p.hash}-{d}"
                self.np_labels[c] = p.label
                want = yes and p.rules(d) is not None
                if want and c not in st.np[d]:
                    st.np[d].insert(0, c)
                elif not want and c in st.np[d]:
                    st.np[d].remove(c)
        elif p.kind == "AdminNetworkPolicy":
            if yes:
                st.admin.add(p.key)
            else:
                st.admin.discard(p.key)
        else:
            st.baseline = yes

    def _render_pod(self, st: _PodState, old_ip: str) -> None:
        """The pod's own chains and its entries in the dispatch maps."""
        info = st.info
        h = short_hash(f"{info.ns}/{info.name}")
        ip = info.ip if info.node == self.node else ""
        for d in DIRECTIONS:
            if old_ip and old_ip != ip:
                for m in (f"{d}-admin", f"{d}-pods", f"{d}-baseline"):
                    self.t.pop(m, old_ip)
            chain = f"{d}-{h}"
            if st.np[d] and ip:
                # Each jump names its policy: `knet trace` says which policies isolate the pod.
                self.t.chain(chain, [f"jump {c} {_comment(self.np_labels.get(c, c))}" for c in st.np[d]]
                             + [f"drop {_comment(f'{info.ns}/{info.name} {d} isolated')}"])
                self.t.put(f"{d}-pods", ip, f"goto {chain}")
            else:
                if ip:
                    self.t.pop(f"{d}-pods", ip)
                self.t.drop_chain(chain)
            admin = sorted((self.policies[k] for k in st.admin if self.policies[k].rules(d)),
                           key=lambda p: (p.priority, p.name))
            chain = f"admin-{d}-{h}"
            if admin and ip:
                self.t.chain(chain, [f"jump anp-{p.hash}-{d}" for p in admin])
                self.t.put(f"{d}-admin", ip, f"jump {chain}")
            else:
                if ip:
                    self.t.pop(f"{d}-admin", ip)
                self.t.drop_chain(chain)
            banp = self.policies.get(self.banp) if self.banp else None
            if ip and st.baseline and banp is not None and banp.rules(d):
                self.t.put(f"{d}-baseline", ip, f"jump banp-{d}")
            elif ip:
                self.t.pop(f"{d}-baseline", ip)

    # -- nodes ------------------------------------------------------------------------------

    def _node(self, name: str, value: tuple[dict[str, str], tuple[str, ...]] | None) -> None:
        old = self.nodes.get(name)
        if old == value:
            return
        if value is None:
            del self.nodes[name]
        else:
            self.nodes[name] = value
        for ns in self.node_users:
            self._node_member(ns, old, value)

    def _node_member(self, ns: NodeSel, old, new) -> None:
        from knet.policy.model import _selector

        sel = _selector(ns.sel)
        was = set(old[1]) if old is not None and sel.matches(old[0]) else set()
        now = set(new[1]) if new is not None and sel.matches(new[0]) else set()
        for ip in was - now:
            self.t.pop(ns.name, ip)
        for ip in now - was:
            self.t.put(ns.name, ip)

    # -- policies ---------------------------------------------------------------------------

    def _policy(self, new: PolicyModel | None, old: PolicyModel | None = None) -> None:
        if new is not None:
            old = self.policies.get(new.key)
            if old == new:
                return
        key = (new or old).key
        if new is not None:  # the new references first: a selection both use is not emptied and refilled
            self.policies[key] = new
            for s in new.sigs():
                self._use_peer(s, key)
            for n in new.node_sels():
                self._use_nodes(n, key)
            for n in new.named_ports():
                self._use_port(n, key)
        if key[0] == "BaselineAdminNetworkPolicy":
            self.banp = key if new is not None else None
        # The pods it selected and the pods it selects now.
        before: set[tuple[str, str]] = set()
        if old is not None:
            before = set(self.subject_index.entries[old.subject].members)
            self.subject_users[old.subject].discard(key)
        now = self._use_subject(new.subject, key) if new is not None else set()
        if old is not None and not self.subject_users[old.subject]:
            del self.subject_users[old.subject]
            for pk in self.subject_index.entries[old.subject].members:
                self.pods[pk].subjects.discard(old.subject)
            self.subject_index.remove(old.subject)
        self._render_policy(new, old)
        if new is None:
            del self.policies[key]
        for pk in sorted(before | now):
            st = self.pods[pk]
            self._selected(st, new if new is not None else old, pk in now)
            self._render_pod(st, st.info.ip)
        if old is not None:
            for s in old.sigs() - (new.sigs() if new else set()):
                self._release_peer(s, key)
            for n in old.node_sels() - (new.node_sels() if new else set()):
                self._release(self.node_users, n, key, n.name)
            for n in old.named_ports() - (new.named_ports() if new else set()):
                self._release(self.port_users, n, key, n.set_name)

    def _use_subject(self, s: Sig, key) -> set[tuple[str, str]]:
        if s not in self.subject_index:
            entry = self.subject_index.add(s)
            pods = self.by_ns.get(s.ns, ()) if s.ns else self.pods
            for pk in pods:
                st = self.pods[pk]
                if st.info.ip and st.info.node == self.node and \
                        self.subject_index.matches(s, st.info, self._labels(st.info.ns)):
                    entry.members.add(pk)
                    st.subjects.add(s)
        self.subject_users.setdefault(s, set()).add(key)
        return set(self.subject_index.entries[s].members)

    def _use_peer(self, s: Sig, key) -> None:
        users = self.peer_users.setdefault(s, set())
        if not users:
            entry = self.peer_index.add(s)
            self.t.set(s.name, ADDR_SET + f" {_comment(s.describe())};")
            pods = self.by_ns.get(s.ns, ()) if s.ns else self.pods
            for pk in pods:
                st = self.pods[pk]
                if st.info.ip and self.peer_index.matches(s, st.info, self._labels(st.info.ns)):
                    entry.members.add(pk)
                    st.peers.add(s)
                    self.t.put(s.name, st.info.ip)
        users.add(key)

    def _release_peer(self, s: Sig, key) -> None:
        users = self.peer_users[s]
        users.discard(key)
        if not users:
            del self.peer_users[s]
            for pk in self.peer_index.entries[s].members:
                self.pods[pk].peers.discard(s)
            self.peer_index.remove(s)
            self.t.drop_set(s.name)

    def _use_nodes(self, n: NodeSel, key) -> None:
        users = self.node_users.setdefault(n, set())
        if not users:
            self.t.set(n.name, ADDR_SET + f" {_comment('nodes ' + (n.sel or 'all'))};")
            for value in self.nodes.values():
                self._node_member(n, None, value)
        users.add(key)

    def _use_port(self, n: NamedPort, key) -> None:
        users = self.port_users.setdefault(n, set())
        if not users:
            self.t.set(n.set_name, NAMED_SET + f" {_comment('named port ' + n.name + ' ' + (n.proto or 'any'))};")
            for entries in self.named.get(n.name, {}).values():
                for proto, e in entries:
                    if n.proto in ("", proto):
                        self.t.put(n.set_name, e)
        users.add(key)

    def _release(self, users_of: dict, obj, key, set_name: str) -> None:
        users = users_of[obj]
        users.discard(key)
        if not users:
            del users_of[obj]
            self.t.drop_set(set_name)

    def _render_policy(self, new: PolicyModel | None, old: PolicyModel | None) -> None:
        """The policy's own chains and sets (per rule: several ports), on a node
        where it selects a pod (the baseline's always: its chains are fixed).
        A node where it selects none has nothing of it but the peer sets it
        shares: fewer chains is less for nft to read before each change (the
        benchmark note)."""
        want: dict[str, list[str]] = {}
        sets: dict[str, tuple[str, list[str]]] = {}
        if new is not None and (new.kind == "BaselineAdminNetworkPolicy" or self._selects_here(new)):
            prefix = {"NetworkPolicy": "np", "AdminNetworkPolicy": "anp"}.get(new.kind)
            for d in DIRECTIONS:
                rules = new.rules(d)
                if rules is None:
                    continue
                chain = f"{prefix}-{new.hash}-{d}" if prefix else f"banp-{d}"
                want[chain] = [r for rule in rules for r in self._rule_texts(new, d, rule, chain, sets)]
        if old is not None:
            prefix = {"NetworkPolicy": "np", "AdminNetworkPolicy": "anp"}.get(old.kind)
            for d in DIRECTIONS:
                chain = f"{prefix}-{old.hash}-{d}" if prefix else f"banp-{d}"
                if chain not in want:
                    if prefix:
                        self.t.drop_chain(chain)
                    else:
                        self.t.chain(chain, [])
            for name in self._own_sets.pop(old.key, set()) - set(sets):
                self.t.drop_set(name)
        for name, (spec, elements) in sets.items():
            self.t.set(name, spec)
            self.t.fill(name, dict.fromkeys(elements, ""))
        if new is not None:
            self._own_sets[new.key] = set(sets)
        for chain, rules in want.items():
            self.t.chain(chain, rules)


    def _selects_here(self, p: PolicyModel) -> bool:
        entry = self.subject_index.entries.get(p.subject)
        return entry is not None and bool(entry.members)

    def _rule_texts(self, p: PolicyModel, d: str, rule: RuleModel, chain: str,
                    sets: dict[str, tuple[str, list[str]]]) -> list[str]:
        """One nft rule per kind of peer x kind of port, in the rule's place."""
        where = f"{p.label} {d} rule {rule.index}" + (f" {rule.name}" if rule.name else "")
        peer = PEER[d]
        peers: list[str] = []
        if rule.peers.any:
            peers.append("")
        peers += [f"ip {peer} @{s.name}" for s in rule.peers.sigs]
        peers += [f"ip {peer} @{n.name}" for n in rule.peers.nodes]
        # Never an interval set of addresses: see the benchmark note in the docstring.
        peers += [" ".join([f"ip {peer} {b.cidr}", *(f"ip {peer} != {e}" for e in b.excepts)])
                  for b in rule.peers.blocks]
        ports: list[str] = []
        if rule.any_port:
            ports.append("")
        if len(rule.ranges) <= INLINE_PORTS:
            ports += [f"meta l4proto {r.proto}" if (r.start, r.end) == (0, 65535) else
                      f"{r.proto} dport {r.start}" + (f"-{r.end}" if r.end != r.start else "") for r in rule.ranges]
        else:
            name = f"{chain}-{rule.index}-ports"
            sets[name] = (PORTS_SET + f" {_comment(where)};",
                          [f"{r.proto} . {r.start}" + (f"-{r.end}" if r.end != r.start else "") for r in rule.ranges])
            ports.append(f"meta l4proto . th dport @{name}")
        ports += [f"ip daddr . meta l4proto . th dport @{n.set_name}" for n in rule.named]
        verdict = {"Allow": "accept", "Deny": "drop", "Pass": f"goto {d}-policy"}[rule.action]
        return [" ".join(x for x in (a, b, verdict, _comment(where)) if x) for a in peers for b in ports]
