"""Upstream's NetworkPolicy e2e model and cases, as data every knet test can share.

The model is kubernetes test/e2e/network/netpol/model.go: namespaces x, y, z (labels `ns=<name>`
and `kubernetes.io/metadata.name=<name>`), pods a, b, c in each (label `pod=<name>`), every pod
serving TCP and UDP on 80 and 81 with one container per (port, protocol), named
`cont-<port>-<proto>`, whose port is named `serve-<port>-<proto>` (the named-port cases use those
names). knet's built-in server answers on every declared containerPort, so the pods here are
plain manifests a cluster can apply.

The cases are kubernetes test/e2e/network/netpol/network_policy.go's, in order, and the
AdminNetworkPolicy ones are network-policy-api's conformance tests (v1alpha1, before the move to
ClusterNetworkPolicy) moved onto x/y/z. Each expectation is written as upstream writes it: a
matrix of all-connected, then upstream's edits (knet.policy.matrix.Matrix.expect_peer etc.),
copied from the test rather than computed, so the oracle and the compiler are both judged against
upstream's text. Where upstream runs a case on a subset of the pods, the edits are the ones that
make the full 3x3 model right (upstream's older full-model edits); where knet probes more than
upstream does (UDP, the other port), the extra matrices are written by hand from the same text
and say so (`extra` in the case's note).

Cases that need pod IPs (ipBlock) are made by `ip_cases(ips)`; `all_cases(ips)` is everything.
Changes over time (policy updates, label changes, deletions) are `steps` after the initial state.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from knet.policy.matrix import Matrix

NAMESPACES: tuple[str, ...] = ("x", "y", "z")
POD_NAMES: tuple[str, ...] = ("a", "b", "c")
PODS: tuple[str, ...] = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in POD_NAMES)
PORTS: tuple[int, ...] = (80, 81)
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP")
PROBES: tuple[tuple[int, str], ...] = tuple((port, proto) for port in PORTS for proto in PROTOCOLS)
NS_NAME_LABEL = "kubernetes.io/metadata.name"
IMAGE = "knet/builtin"
NODES: tuple[str, ...] = ("worker", "worker2")

Probe = tuple[int, str]


# -- the model ----------------------------------------------------------------------------------

def namespace(name: str, labels: Mapping[str, str] | None = None) -> dict:
    """Namespace `name` with upstream's labels (`ns=<name>` and the immutable metadata.name)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"ns": name, NS_NAME_LABEL: name, **(labels or {})}}}


def container_ports() -> list[dict]:
    return [{"containerPort": port, "protocol": proto, "name": f"serve-{port}-{proto.lower()}"}
            for port in PORTS for proto in PROTOCOLS]


def pod(ns: str, name: str, *, ip: str | None = None, node: str | None = None,
        labels: Mapping[str, str] | None = None) -> dict:
    """Pod `name` in `ns` as model.go builds it. `ip`/`node` fill status.podIP/spec.nodeName for
    pure tests (an applied manifest leaves them to the cluster)."""
    p: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name, **(labels or {})}},
        "spec": {"containers": [{"name": f"cont-{cp['containerPort']}-{cp['protocol'].lower()}",
                                 "image": IMAGE, "ports": [cp]} for cp in container_ports()]},
    }
    if node is not None:
        p["spec"]["nodeName"] = node
    if ip is not None:
        p["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    return p


def service(ns: str, name: str) -> dict:
    """Upstream's `s-<ns>-<pod>` ClusterIP Service in front of one pod, with every port."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s-{ns}-{name}", "namespace": ns},
            "spec": {"selector": {"pod": name},
                     "ports": [{"name": f"service-port-{port}-{proto.lower()}", "port": port,
                                "protocol": proto, "targetPort": port}
                               for port in PORTS for proto in PROTOCOLS]}}


def default_ips() -> dict[str, str]:
    """Made-up pod IPs for pure tests: pods alternate over two nodes' podCIDRs (10.244.1.0/24,
    10.244.2.0/24), so same-node and cross-node pairs both occur."""
    out = {}
    for i, p in enumerate(PODS):
        out[p] = f"10.244.{1 + i % 2}.{10 + i}"
    return out


def default_nodes() -> dict[str, str]:
    """The node of each pod, matching default_ips (even index on NODES[0], odd on NODES[1])."""
    return {p: NODES[i % 2] for i, p in enumerate(PODS)}


@dataclass
class Model:
    namespaces: list[dict]
    pods: list[dict]

    def pod(self, name: str) -> dict:
        ns, _, n = name.partition("/")
        for p in self.pods:
            if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == n:
                return p
        raise KeyError(name)

    def namespace(self, name: str) -> dict:
        for n in self.namespaces:
            if n["metadata"]["name"] == name:
                return n
        raise KeyError(name)


def model(ips: Mapping[str, str] | None = None, nodes: Mapping[str, str] | None = None) -> Model:
    """The 3x3 model; with `ips`/`nodes` ({"x/a": ...}) the pods carry them (pure tests)."""
    ips = ips or {}
    nodes = nodes or {}
    return Model([namespace(ns) for ns in NAMESPACES],
                 [pod(*p.split("/"), ip=ips.get(p), node=nodes.get(p)) for p in PODS])


def manifests(*, services: bool = False) -> list[dict]:
    """What a cluster applies for the model: namespaces, then pods (and Services if asked)."""
    m = model()
    out = m.namespaces + m.pods
    if services:
        out += [service(*p.split("/")) for p in PODS]
    return out


# -- building policies as upstream's helpers do ---------------------------------------------------

def netpol(name: str, ns: str, pod_selector: dict | None = None, *,
           ingress: list[dict] | None = None, egress: list[dict] | None = None,
           policy_types: Sequence[str] | None = None) -> dict:
    """A NetworkPolicy as upstream's GenNetworkPolicy + SetSpecIngressRules/SetSpecEgressRules
    build it: each rules list given (even empty) adds its type to policyTypes, Ingress first.
    `policy_types` overrides that (pass [] to leave policyTypes out, for defaulting cases)."""
    spec: dict[str, Any] = {"podSelector": {} if pod_selector is None else pod_selector}
    types = []
    if ingress is not None:
        spec["ingress"] = ingress
        types.append("Ingress")
    if egress is not None:
        spec["egress"] = egress
        types.append("Egress")
    if policy_types is not None:
        types = list(policy_types)
    if types:
        spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def labels(**kv: str) -> dict:
    return {"matchLabels": dict(kv)}


def expr(key: str, op: str, *values: str) -> dict:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return {"matchExpressions": [e]}


def ns_is(name: str) -> dict:
    return {"matchLabels": {NS_NAME_LABEL: name}}


def port(p: int | str | None = None, protocol: str | None = None, end_port: int | None = None) -> dict:
    out: dict[str, Any] = {}
    if protocol is not None:
        out["protocol"] = protocol
    if p is not None:
        out["port"] = p
    if end_port is not None:
        out["endPort"] = end_port
    return out


def anp(name: str, priority: int, subject: dict, *, ingress: list[dict] | None = None,
        egress: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {"priority": priority, "subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def banp(subject: dict, *, ingress: list[dict] | None = None, egress: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {"subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": "default"}, "spec": spec}


def admin_rule(name: str, action: str, peers: list[dict], *, direction: str,
               ports: list[dict] | None = None) -> dict:
    r: dict[str, Any] = {"name": name, "action": action, "from" if direction == "ingress" else "to": peers}
    if ports is not None:
        r["ports"] = ports
    return r


# -- cases --------------------------------------------------------------------------------------

@dataclass
class Change:
    """One change between steps. op: "apply" (create or replace `obj`: a policy, a Pod or a
    Namespace), "delete" (`obj`, only kind/namespace/name matter), "label" (merge `labels` into
    the Pod "x/b" or Namespace "y" named by `target`; a value None removes the label)."""

    op: str
    obj: dict | None = None
    target: str = ""
    labels: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Step:
    description: str
    changes: list[Change]
    expected: dict[Probe, Matrix]


@dataclass
class Case:
    """One upstream test: `policies` applied on the model, then `expected` per probe; then each
    of `steps` in order. `source` names the upstream test it comes from."""

    name: str
    policies: list[dict]
    probes: list[Probe]
    expected: dict[Probe, Matrix]
    steps: list[Step] = field(default_factory=list)
    source: str = ""
    note: str = ""

    def states(self) -> list[tuple[str, list[Change], dict[Probe, Matrix]]]:
        """Every state to check: the initial one (its changes apply the policies), then the steps."""
        first = [Change("apply", p) for p in self.policies]
        return [("initial", first, self.expected)] + [(s.description, s.changes, s.expected)
                                                      for s in self.steps]


def apply_changes(namespaces: list[dict], pods: list[dict], policies: list[dict],
                  changes: list[Change]) -> None:
    """Apply `changes` to plain object lists in place (what a pure test does instead of a cluster)."""
    def key(o: dict) -> tuple:
        md = o["metadata"]
        return (o["kind"], md.get("namespace", ""), md["name"])

    lists = {"Pod": pods, "Namespace": namespaces}
    for c in changes:
        if c.op in ("apply", "delete"):
            assert c.obj is not None
            objs = lists.get(c.obj["kind"], policies)
            objs[:] = [o for o in objs if key(o) != key(c.obj)]
            if c.op == "apply":
                objs.append(copy.deepcopy(c.obj))
        elif c.op == "label":
            if "/" in c.target:
                ns, _, name = c.target.partition("/")
                objs = [p for p in pods if (p["metadata"]["namespace"], p["metadata"]["name"]) == (ns, name)]
            else:
                objs = [n for n in namespaces if n["metadata"]["name"] == c.target]
            if not objs:
                raise KeyError(f"label: no object {c.target}")
            lbl = objs[0]["metadata"].setdefault("labels", {})
            for k, v in c.labels.items():
                if v is None:
                    lbl.pop(k, None)
                else:
                    lbl[k] = v
        else:
            raise ValueError(f"unknown change {c.op!r}")


def M() -> Matrix:
    """All connected over the whole model: upstream's NewReachability(pods, true)."""
    return Matrix(PODS)


def on(probes: Sequence[Probe], m: Matrix) -> dict[Probe, Matrix]:
    return {p: m.copy() for p in probes}


def every(m: Matrix) -> dict[Probe, Matrix]:
    """The same matrix on TCP and UDP, 80 and 81 (a policy without ports)."""
    return on(PROBES, m)


TCP80, TCP81, UDP80, UDP81 = (80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP")
UDP = (UDP80, UDP81)
NP_GO = "kubernetes test/e2e/network/netpol/network_policy.go"


def _np_cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, policies: list[dict], expected: dict[Probe, Matrix], *, steps=(),
            source: str = "", note: str = "") -> None:
        cases.append(Case(name, list(policies), list(expected), expected, list(steps),
                          source=f"{NP_GO}: {source}" if source else NP_GO, note=note))

    add("default-deny-ingress",
        [netpol("deny-ingress", "x", {}, ingress=[])],
        every(M().expect_peer("", "x", False)),
        source="should support a 'default-deny-ingress' policy", note="extra: UDP and 81")

    add("default-deny-all",
        [netpol("deny-all", "x", {}, ingress=[], egress=[])],
        every(M().expect_peer("", "x", False).expect_peer("x", "", False)),
        source="should support a 'default-deny-all' policy", note="extra: UDP and 81")

    from_b = [{"from": [{"podSelector": labels(pod="b")}]}]
    add("allow-from-pod-selector",
        [netpol("x-a-allows-x-b", "x", labels(pod="a"), ingress=from_b)],
        every(M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True)),
        source="should enforce policy to allow traffic from pods within server namespace based on PodSelector")

    add("allow-ingress-for-a-target",
        [netpol("deny-all", "x", {}, ingress=[]),
         netpol("allow-all-to-a", "x", labels(pod="a"),
                ingress=[{"from": [{"podSelector": {}, "namespaceSelector": {}}]}])],
        every(M().expect_peer("", "x", False).expect_all_ingress("x/a", True)),
        source="should enforce policy to allow ingress traffic for a target",
        note="full-model edits: x/c is denied like x/b")

    add("allow-from-all-namespaces",
        [netpol("allow-from-another-ns", "x", labels(pod="a"), ingress=[{"from": [{"namespaceSelector": {}}]}])],
        every(M()),
        source="should enforce policy to allow ingress traffic from pods in all namespaces")

    add("allow-from-namespace-selector",
        [netpol("allow-client-a-via-ns-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y")}]}])],
        every(M().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False)),
        source="should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector")

    add("pod-selector-match-expressions",
        [netpol("x-a-allows-x-b", "x", labels(pod="a"),
                ingress=[{"from": [{"podSelector": expr("pod", "In", "b")}]}])],
        every(M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True)),
        source="should enforce policy based on PodSelector with MatchExpressions")

    add("namespace-selector-match-expressions",
        [netpol("allow-ns-y-match-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": expr(NS_NAME_LABEL, "In", "y")}]}])],
        every(M().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False)),
        source="should enforce policy based on NamespaceSelector with MatchExpressions")

    add("pod-selector-or-namespace-selector",
        [netpol("allow-ns-y-match-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": expr(NS_NAME_LABEL, "NotIn", "x")},
                                   {"podSelector": labels(pod="b")}]}])],
        every(M().expect("x/a", "x/a", False).expect("x/c", "x/a", False)),
        source="should enforce policy based on PodSelector or NamespaceSelector")

    add("pod-selector-and-namespace-selector",
        [netpol("allow-ns-y-podselector-and-nsselector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": expr(NS_NAME_LABEL, "NotIn", "x"),
                                    "podSelector": labels(pod="b")}]}])],
        every(M().expect_all_ingress("x/a", False).expect("y/b", "x/a", True).expect("z/b", "x/a", True)),
        source="should enforce policy based on PodSelector and NamespaceSelector")

    add("multiple-pod-and-namespace-selectors",
        [netpol("allow-ns-y-z-pod-b-c", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": expr(NS_NAME_LABEL, "NotIn", "x"),
                                    "podSelector": expr("pod", "In", "b", "c")}]}])],
        every(M().expect_peer("x", "x/a", False).expect("y/a", "x/a", False).expect("z/a", "x/a", False)),
        source="should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
        note="full-model edits: z/a is denied like y/a")

    add("any-pod-selectors",
        [netpol("allow-ns-x-pod-b-c", "x", labels(pod="a"),
                ingress=[{"from": [{"podSelector": labels(pod="b")}, {"podSelector": labels(pod="c")}]}])],
        every(M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True).expect("x/c", "x/a", True)),
        source="should enforce policy based on any PodSelectors")

    add("pod-in-other-namespace-by-pod-and-namespace-selector",
        [netpol("allow-ns-y-pod-a-via-namespace-pod-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y"), "podSelector": labels(pod="a")}]}])],
        every(M().expect_all_ingress("x/a", False).expect("y/a", "x/a", True)),
        source="should enforce policy to allow traffic only from a pod in a different namespace based on "
               "PodSelector and NamespaceSelector (TCP, UDP and SCTP contexts)")

    port81_from_y = netpol("allow-client-a-via-ns-selector", "x", labels(pod="a"),
                           ingress=[{"from": [{"namespaceSelector": ns_is("y")}], "ports": [port(81, "TCP")]}])
    allow_y_to_xa = (M().expect_peer("x", "x/a", False).expect_peer("y", "x/a", True)
                     .expect_peer("z", "x/a", False))
    deny_xa = M().expect_all_ingress("x/a", False)
    add("ports",
        [port81_from_y],
        {TCP81: allow_y_to_xa.copy(), TCP80: deny_xa.copy(), **on(UDP, deny_xa)},
        source="should enforce policy based on Ports", note="extra: TCP 80 and UDP deny (x/a is isolated)")

    add("stacked-policies-overlapping-pod-selectors",
        [port81_from_y],
        {TCP81: allow_y_to_xa.copy(), TCP80: deny_xa.copy(), **on(UDP, deny_xa)},
        steps=[Step("add allow-client-a-via-ns-selector-80",
                    [Change("apply", netpol("allow-client-a-via-ns-selector-80", "x", labels(pod="a"),
                                            ingress=[{"from": [{"namespaceSelector": ns_is("y")}],
                                                      "ports": [port(80, "TCP")]}]))],
                    {TCP81: allow_y_to_xa.copy(), TCP80: allow_y_to_xa.copy(), **on(UDP, deny_xa)})],
        source="should enforce multiple, stacked policies with overlapping podSelectors", note="extra: UDP")

    add("allow-all",
        [netpol("allow-all", "x", {}, ingress=[{}])],
        every(M()),
        source="should support allow-all policy")

    add("ingress-one-named-port",
        [netpol("allow-all", "x", {}, ingress=[{"ports": [port("serve-81-tcp")]}])],
        {TCP81: M(), TCP80: M().expect_peer("", "x", False), **on(UDP, M().expect_peer("", "x", False))},
        source="should allow ingress access on one named port", note="extra: UDP (the named port is TCP)")

    add("ingress-from-namespace-one-named-port",
        [netpol("allow-client-a-via-ns-selector-80", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y")}], "ports": [port("serve-80-tcp", "TCP")]}])],
        {TCP80: M().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False),
         TCP81: deny_xa.copy(), **on(UDP, deny_xa)},
        source="should allow ingress access from namespace on one named port", note="extra: UDP")

    add("egress-one-named-port",
        [netpol("allow-egress", "x", {}, egress=[{"ports": [port("serve-80-tcp")]}])],
        {TCP80: M(), TCP81: M().expect_peer("x", "", False), **on(UDP, M().expect_peer("x", "", False))},
        source="should allow egress access on one named port", note="extra: UDP")

    add("updated-policy",
        [netpol("allow-all-mutate-to-deny-all", "x", {}, ingress=[{}])],
        every(M()),
        steps=[Step("update the policy to ingress: []",
                    [Change("apply", netpol("allow-all-mutate-to-deny-all", "x", {}, ingress=[]))],
                    every(M().expect_peer("", "x", False)))],
        source="should enforce updated policy")

    add("updated-namespace",
        [netpol("allow-client-a-via-ns-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": labels(ns2="updated")}]}])],
        every(M().expect_all_ingress("x/a", False)),
        steps=[Step("label namespace y ns2=updated", [Change("label", target="y", labels={"ns2": "updated"})],
                    every(M().expect_all_ingress("x/a", False).expect_peer("y", "", True))),
               Step("remove the label again", [Change("label", target="y", labels={"ns2": None})],
                    every(M().expect_all_ingress("x/a", False)))],
        source="should allow ingress access from updated namespace",
        note="extra: the last step (upstream's cleanup, DeleteNamespaceLabel) checked too")

    add("updated-pod",
        [netpol("allow-client-a-via-pod-selector", "x", labels(pod="a"),
                ingress=[{"from": [{"podSelector": labels(pod="b", pod2="updated")}]}])],
        every(M().expect_all_ingress("x/a", False)),
        steps=[Step("label pod x/b pod2=updated", [Change("label", target="x/b", labels={"pod2": "updated"})],
                    every(M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True))),
               Step("remove the label again", [Change("label", target="x/b", labels={"pod2": None})],
                    every(M().expect_all_ingress("x/a", False)))],
        source="should allow ingress access from updated pod",
        note="extra: the last step (upstream's cleanup, ResetPodLabels) checked too")

    add("deny-from-other-namespaces",
        [netpol("deny-empty-policy", "x", {}, ingress=[{"from": [{"podSelector": {}}]}])],
        every(M().expect_peer("y", "x", False).expect_peer("z", "x", False)),
        source="should deny ingress from pods on other namespaces")

    add("deny-to-updated-pod",
        [netpol("deny-ingress-via-label-selector", "x", labels(target="isolated"), ingress=[])],
        every(M()),
        steps=[Step("label pod x/a target=isolated", [Change("label", target="x/a", labels={"target": "isolated"})],
                    every(M().expect_all_ingress("x/a", False)))],
        source="should deny ingress access to updated pod")

    add("deny-egress-pod-selector",
        [netpol("deny-egress-pod-a", "x", labels(pod="a"), egress=[])],
        every(M().expect_all_egress("x/a", False)),
        source="should deny egress from pods based on PodSelector")

    add("deny-egress-namespace",
        [netpol("deny-egress-ns-x", "x", {}, egress=[])],
        every(M().expect_peer("x", "", False)),
        source="should deny egress from all pods in a namespace")

    both = netpol("allow-client-a-via-pod-selector", "x", labels(pod="a"), ingress=from_b,
                  egress=[{"ports": [port(80)]}], policy_types=["Egress", "Ingress"])
    no_egress = (M().expect_all_ingress("x/a", False).expect_all_egress("x/a", False)
                 .expect("x/b", "x/a", True))
    add("ingress-and-egress-together",
        [both],
        {TCP80: M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True),
         TCP81: no_egress.copy(), **on(UDP, no_egress)},
        source="should work with Ingress, Egress specified together",
        note="extra: UDP (the egress port is TCP by default)")

    ya_yb_from_xa = [{"from": [{"namespaceSelector": ns_is("x"), "podSelector": labels(pod="a")}]}]
    add("client-side-egress-deny",
        [netpol("allow-to-ns-y-pod-a", "x", labels(pod="a"),
                egress=[{"to": [{"namespaceSelector": ns_is("y"), "podSelector": labels(pod="a")}]}]),
         netpol("allow-from-xa-on-ya-match-selector", "y", labels(pod="a"), ingress=ya_yb_from_xa),
         netpol("allow-from-xa-on-yb-match-selector", "y", labels(pod="b"), ingress=ya_yb_from_xa)],
        every(M().expect_peer("x/a", "", False).expect_peer("", "y/a", False)
              .expect_peer("x/a", "y/a", True).expect_peer("", "y/b", False)),
        source="should support denying of egress traffic on the client side (even if the server explicitly "
               "allows this traffic)")

    add("egress-to-other-namespace-pod-and-namespace-selector",
        [netpol("allow-to-ns-y-pod-a", "x", labels(pod="a"),
                egress=[{"to": [{"namespaceSelector": ns_is("y"), "podSelector": labels(pod="a")}]}])],
        every(M().expect_all_egress("x/a", False).expect("x/a", "y/a", True)),
        source="should enforce egress policy allowing traffic to a server in a different namespace based on "
               "PodSelector and NamespaceSelector")

    add("ingress-any-port-one-protocol",
        [netpol("allow-ingress-by-proto", "x", labels(pod="a"), ingress=[{"ports": [port(None, "TCP")]}])],
        {TCP80: M(), TCP81: M(), **on(UDP, M().expect_peer("", "x/a", False))},
        source="should enforce ingress policy allowing any port traffic to a server on a specific protocol",
        note="extra: port 81")

    add("ingress-allow-all-takes-precedence",
        [netpol("allow-ingress-port-80", "x", {}, ingress=[{"ports": [port(80)]}])],
        {TCP80: M(), TCP81: M().expect_peer("", "x", False), **on(UDP, M().expect_peer("", "x", False))},
        steps=[Step("add allow-ingress (ingress: [{}])",
                    [Change("apply", netpol("allow-ingress", "x", {}, ingress=[{}]))], every(M()))],
        source="should enforce multiple ingress policies with ingress allow-all policy taking precedence",
        note="extra: TCP 80 and UDP")

    add("egress-allow-all-takes-precedence",
        [netpol("allow-egress-port-80", "x", {}, egress=[{"ports": [port(80)]}])],
        {TCP80: M(), TCP81: M().expect_peer("x", "", False), **on(UDP, M().expect_peer("x", "", False))},
        steps=[Step("add allow-egress (egress: [{}])",
                    [Change("apply", netpol("allow-egress", "x", {}, egress=[{}]))], every(M()))],
        source="should enforce multiple egress policies with egress allow-all policy taking precedence",
        note="extra: TCP 80 and UDP")

    deny_all = netpol("deny-all", "x", {}, ingress=[], egress=[])
    add("stop-enforcing-after-delete",
        [deny_all],
        every(M().expect_peer("x", "", False).expect_peer("", "x", False)),
        steps=[Step("delete the policy", [Change("delete", deny_all)], every(M()))],
        source="should stop enforcing policies after they are deleted")

    allow_egress_a = netpol("allow-egress-for-target", "x", labels(pod="a"), egress=[{}])
    add("ingress-and-egress-independent",
        [allow_egress_a],
        every(M()),
        steps=[Step("add deny-ingress-via-label-selector for x/a",
                    [Change("apply", netpol("deny-ingress-via-label-selector", "x", labels(pod="a"), ingress=[]))],
                    every(M().expect_all_ingress("x/a", False)))],
        source="should enforce policies to check ingress and egress policies can be controlled independently "
               "based on PodSelector")

    add("sctp-is-not-tcp",
        [netpol("deny-ingress", "x", {}, ingress=[]),
         netpol("allow-only-sctp-ingress-on-port-81", "x", labels(pod="a"), ingress=[{"ports": [port(81, "SCTP")]}])],
        every(M().expect_peer("", "x", False)),
        source="should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't "
               "support SCTP")

    add("sctp-only-still-isolates",
        [netpol("allow-only-sctp-ingress-on-port-80", "x", labels(pod="a"), ingress=[{"ports": [port(80, "SCTP")]}])],
        every(M().expect_all_ingress("x/a", False)),
        source="should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin "
               "doesn't support SCTP")

    add("udp-only-denies-tcp",
        [netpol("allow-only-udp-ingress-on-port-81", "x", labels(pod="a"), ingress=[{"ports": [port(81, "UDP")]}])],
        {TCP81: deny_xa.copy(), TCP80: deny_xa.copy(), UDP80: deny_xa.copy(), UDP81: M()},
        source="should not allow access by TCP when a policy specifies only UDP", note="extra: port 80 and UDP")

    add("default-ns-label-match-labels",
        [netpol("allow-client-a-via-ns-selector-for-immutable-ns-label", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y")}]}])],
        every(M().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False)),
        source="should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using "
               "default ns label")

    add("default-ns-label-match-expressions-egress",
        [netpol("allow-ns-y-match-selector-for-immutable-ns-label", "x", labels(pod="a"),
                egress=[{"to": [{"namespaceSelector": expr(NS_NAME_LABEL, "NotIn", "y")}]}])],
        every(M().expect_peer("x/a", "y", False)),
        source="should enforce policy based on NamespaceSelector with MatchExpressions using default ns label")

    add("udp-ports",
        [netpol("allow-ingress-on-port-81-ns-x", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y")}], "ports": [port(81, "UDP")]}])],
        {UDP81: M().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False),
         UDP80: deny_xa.copy(), TCP80: deny_xa.copy(), TCP81: deny_xa.copy()},
        source="Netpol [LinuxOnly] using UDP: should enforce policy based on Ports", note="extra: TCP and port 80")

    add("sctp-ports",
        [netpol("allow-ingress-on-port-81-ns-x", "x", labels(pod="a"),
                ingress=[{"from": [{"namespaceSelector": ns_is("y")}], "ports": [port(81, "SCTP")]}])],
        every(deny_xa),
        source="Netpol [Feature:SCTPConnectivity] using SCTP: should enforce policy based on Ports",
        note="knet probes no SCTP: TCP and UDP must stay denied")
    return cases


CYCLONUS = "mattfenwick/cyclonus pkg/generator (port, conflict and defaulting families)"


def _extra_cases() -> list[Case]:
    """cyclonus-style cases for what network_policy.go leaves untested: endPort, named ports with
    the wrong protocol, policyTypes defaulting, conflicting deny-all/allow-all. Expectations written
    by hand from the semantics text, with the same edits."""
    cases: list[Case] = []

    def add(name: str, policies: list[dict], expected: dict[Probe, Matrix], *, steps=(), note="") -> None:
        cases.append(Case(name, list(policies), list(expected), expected, list(steps), source=CYCLONUS, note=note))

    deny_xa = M().expect_all_ingress("x/a", False)
    add("end-port-range-80-81-tcp",
        [netpol("range", "x", labels(pod="a"), ingress=[{"ports": [port(80, "TCP", 81)]}])],
        {TCP80: M(), TCP81: M(), **on(UDP, deny_xa)})
    add("end-port-range-53-80-udp",
        [netpol("range", "x", labels(pod="a"), ingress=[{"ports": [port(53, "UDP", 80)]}])],
        {UDP80: M(), UDP81: deny_xa.copy(), TCP80: deny_xa.copy(), TCP81: deny_xa.copy()})
    add("named-port-wrong-protocol-matches-nothing",
        [netpol("pathological", "x", labels(pod="a"), ingress=[{"ports": [port("serve-81-udp", "TCP")]}])],
        every(deny_xa))
    add("named-port-udp",
        [netpol("named-udp", "x", labels(pod="a"), ingress=[{"ports": [port("serve-81-udp", "UDP")]}])],
        {UDP81: M(), UDP80: deny_xa.copy(), TCP80: deny_xa.copy(), TCP81: deny_xa.copy()})
    add("unserved-named-port",
        [netpol("no-such-port", "x", {}, egress=[{"ports": [port("serve-82-tcp")]}])],
        every(M().expect_peer("x", "", False)))
    add("egress-rules-without-policy-types-isolate-ingress-too",
        [netpol("egress-only-no-types", "x", labels(pod="a"),
                egress=[{"to": [{"podSelector": {}}]}], policy_types=[])],
        every(M().expect_all_ingress("x/a", False).expect_peer("x/a", "y", False).expect_peer("x/a", "z", False)),
        note="policyTypes defaults to [Ingress, Egress] (egress is non-empty): ingress denied, egress only to x")
    add("empty-egress-without-policy-types-is-ingress-only",
        [netpol("no-types", "x", labels(pod="a"), ingress=[{}], egress=[], policy_types=[])],
        every(M()),
        note="egress: [] does not add Egress to the defaulted policyTypes")
    add("deny-all-and-allow-all-conflict",
        [netpol("deny-all", "x", {}, ingress=[], egress=[]),
         netpol("allow-all", "x", {}, ingress=[{}], egress=[{}])],
        every(M()))
    add("egress-deny-beats-ingress-allow",
        [netpol("deny-egress", "y", labels(pod="b"), egress=[]),
         netpol("allow-all-ingress", "x", {}, ingress=[{}])],
        every(M().expect_all_egress("y/b", False)))
    add("policy-types-lacking-a-direction-ignore-its-rules",
        [netpol("ingress-only", "x", labels(pod="c"), ingress=[{"from": [{"podSelector": labels(pod="a")}]}],
                egress=[], policy_types=["Ingress"])],
        every(M().expect_all_ingress("x/c", False).expect("x/a", "x/c", True)),
        note="egress: [] is present but policyTypes says Ingress only: x/c's egress stays open")
    add("new-namespace-label-selects-peer",
        [netpol("allow-from-team", "z", {}, ingress=[{"from": [{"namespaceSelector": labels(team="blue"),
                                                                "podSelector": expr("pod", "NotIn", "a")}]}])],
        every(M().expect_peer("", "z", False)),
        steps=[Step("label namespace x team=blue", [Change("label", target="x", labels={"team": "blue"})],
                    every(M().expect_peer("", "z", False).expect("x/b", "z/a", True).expect("x/b", "z/b", True)
                          .expect("x/b", "z/c", True).expect("x/c", "z/a", True).expect("x/c", "z/b", True)
                          .expect("x/c", "z/c", True))),
               Step("relabel pod x/b pod=a (now excluded)", [Change("label", target="x/b", labels={"pod": "a"})],
                    every(M().expect_peer("", "z", False).expect_peer("x/c", "z", True)))],
        note="label changes on both a peer namespace and a peer pod")
    return cases


CYCLONUS_CONFLICT = "mattfenwick/cyclonus pkg/generator/conflictcases.go"


def _conflict_cases() -> list[Case]:
    """cyclonus's allow/deny conflicts (source x/b, destination y/c): deny-all layered with an
    allow-all written as `[{}]`, as a namespaceSelector {} peer, as ipBlock 0.0.0.0/0, and the
    'deny-all' written as a peer that matches nothing (0.0.0.0/31, an unused namespace label)."""
    src, dst = labels(pod="b"), labels(pod="c")
    allow_all = [{}]
    by_pod = [{"to": [{"namespaceSelector": {}}]}]
    by_ip = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
    deny_by_ip = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/31"}}]}]
    deny_by_pod = [{"to": [{"namespaceSelector": labels(**{"this-will-never-happen": "qrs123"})}]}]

    def ing(rules: list[dict]) -> list[dict]:
        return [{"from": r["to"]} if "to" in r else r for r in rules]

    def eg(name: str, rules: list[dict]) -> dict:
        return netpol(name, "x", src, egress=rules)

    def ig(name: str, rules: list[dict], ns: str = "x", sel: dict = src) -> dict:
        return netpol(name, ns, sel, ingress=ing(rules))

    no_out, no_in = M().expect_all_egress("x/b", False), M().expect_all_ingress("x/b", False)
    table = [
        ([eg("deny-all-egress", []), ig("allow-all-ingress", allow_all, "y", dst)], no_out),
        ([eg("allow-all-egress", allow_all), ig("deny-all-ingress", [], "y", dst)],
         M().expect_all_ingress("y/c", False)),
        ([eg("deny-all-egress", []), eg("allow-all-egress", allow_all)], M()),
        ([ig("deny-all-ingress", [], "y", dst), ig("allow-all-ingress", allow_all, "y", dst)], M()),
        ([eg("deny-all-egress", []), eg("allow-all-egress-by-pod", by_pod)], M()),
        ([eg("deny-all-egress", []), eg("allow-all-egress-by-ip", by_ip)], M()),
        ([eg("deny-all-egress-by-ip", deny_by_ip), eg("allow-all-egress-by-pod", by_pod)], M()),
        ([eg("deny-all-egress-by-pod", deny_by_pod), eg("allow-all-egress-by-ip", by_ip)], M()),
        ([ig("deny-all-ingress", []), ig("allow-all-ingress-by-pod", by_pod)], M()),
        ([ig("deny-all-ingress", []), ig("allow-all-ingress-by-ip", by_ip)], M()),
        ([ig("deny-all-ingress-by-ip", deny_by_ip), ig("allow-all-ingress-by-pod", by_pod)], M()),
        ([ig("deny-all-ingress-by-pod", deny_by_pod), ig("allow-all-ingress-by-ip", by_ip)], M()),
        ([eg("deny-all-egress-by-ip", deny_by_ip)], no_out),
        ([eg("deny-all-egress-by-ip", deny_by_pod)], no_out),
        ([ig("deny-all-ingress-by-ip", deny_by_ip)], no_in),
        ([ig("deny-all-ingress-by-ip", deny_by_pod)], no_in),
    ]
    return [Case(f"conflict-{i}", pols, list(PROBES), every(m), source=CYCLONUS_CONFLICT,
                 note="expectation written by hand from the policies")
            for i, (pols, m) in enumerate(table, 1)]


def _moved_pod_case() -> Case:
    """A peer pod deleted and made again with another IP on the other node (a Deployment's pod
    replaced): selections, named-port sets and the node it is judged on all follow it."""
    moved = pod("x", "b", ip="10.244.1.99", node=NODES[0])
    ns = {"namespaceSelector": labels(ns="x"), "podSelector": labels(pod="b")}
    pols = [netpol("from-b", "x", labels(pod="a"), ingress=[{"from": [{"podSelector": labels(pod="b")}]}]),
            netpol("to-x-b", "z", labels(pod="c"), egress=[{"to": [ns], "ports": [port("serve-80-tcp"),
                                                                                  port("serve-81-udp", "UDP")]}])]

    def want(p: Probe) -> Matrix:
        m = M().expect_all_ingress("x/a", False).expect("x/b", "x/a", True).expect_all_egress("z/c", False)
        return m.expect("z/c", "x/b", True) if p in (TCP80, UDP81) else m
    expected = {p: want(p) for p in PROBES}
    return Case("peer-pod-recreated-with-new-ip", pols, list(PROBES), expected,
                [Step("delete x/b and create it again with another IP on the other node",
                      [Change("delete", moved), Change("apply", moved)], {p: want(p) for p in PROBES})],
                source="mattfenwick/cyclonus pkg/generator/actioncases.go (create/delete pod)",
                note="expectation written by hand from the policies")


def _ip_np_cases(ips: Mapping[str, str]) -> list[Case]:
    cases: list[Case] = []

    def add(name: str, policies: list[dict], expected: dict[Probe, Matrix], *, steps=(), source="", note="") -> None:
        cases.append(Case(name, list(policies), list(expected), expected, list(steps),
                          source=f"{NP_GO}: {source}" if source else CYCLONUS, note=note))

    yb, xb = ips["y/b"], ips["x/b"]
    add("egress-to-cidr",
        [netpol("allow-client-a-via-cidr-egress-rule", "x", labels(pod="a"),
                egress=[{"to": [{"ipBlock": {"cidr": f"{yb}/32"}}]}])],
        every(M().expect_all_egress("x/a", False).expect("x/a", "y/b", True)),
        source="should allow egress access to server in CIDR block")

    large = _large_cidr(xb, ips)
    except_b = netpol("allow-client-a-via-cidr-egress-rule", "x", labels(pod="a"),
                      egress=[{"to": [{"ipBlock": {"cidr": large, "except": [f"{xb}/32"]}}]}])
    add("egress-cidr-except",
        [except_b],
        every(M().expect("x/a", "x/b", False)),
        source="should enforce except clause while egress access to server in CIDR block")

    add("egress-cidr-except-overlap-update",
        [except_b],
        every(M().expect("x/a", "x/b", False)),
        steps=[Step("update the policy to allow only x/b's /32",
                    [Change("apply", netpol("allow-client-a-via-cidr-egress-rule", "x", labels(pod="a"),
                                            egress=[{"to": [{"ipBlock": {"cidr": f"{xb}/32"}}]}]))],
                    every(M().expect_all_egress("x/a", False).expect("x/a", "x/b", True)))],
        source="should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed")

    add("ingress-from-cidr",
        [netpol("allow-from-y-b-ip", "x", labels(pod="a"), ingress=[{"from": [{"ipBlock": {"cidr": f"{yb}/32"}}]}])],
        every(M().expect_all_ingress("x/a", False).expect("y/b", "x/a", True)),
        note="ingress ipBlock on a pod IP (cyclonus; kube-network-policies)")

    add("ingress-cidr-except-and-another-rule",
        [netpol("all-but-y-b", "x", labels(pod="a"),
                ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{yb}/32", f"{xb}/32"]}}]}]),
         netpol("x-b-by-selector", "x", labels(pod="a"), ingress=[{"from": [{"podSelector": labels(pod="b")}]}])],
        every(M().expect("y/b", "x/a", False)),
        note="an except narrows only its own peer: x/b is let in by the other policy")
    return cases


def _large_cidr(ip: str, ips: Mapping[str, str]) -> str:
    """makeLargeCIDRForIP: the /4 holding `ip`. Upstream's expectation assumes every pod is in it."""
    net = ipaddress.ip_network(f"{ip}/4", strict=False)
    outside = [p for p, a in ips.items() if ipaddress.ip_address(a) not in net]
    if outside:
        raise ValueError(f"pods {', '.join(outside)} are outside {net}: the case assumes one /4 holds all pods")
    return str(net)


ANP_CONF = "kubernetes-sigs/network-policy-api conformance/tests (v1alpha1)"


def _admin_cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, policies: list[dict], expected: dict[Probe, Matrix], *, steps=(), source="", note="") -> None:
        cases.append(Case(name, list(policies), list(expected), expected, list(steps),
                          source=f"{ANP_CONF}: {source}", note=note))

    x_ns = {"namespaces": labels(ns="x")}
    y_peer = [{"namespaces": labels(ns="y")}]

    def pass_example(ingress_action: str, egress_action: str) -> dict:
        return anp("pass-example", 10, x_ns,
                   ingress=[admin_rule("deny-all-ingress-from-y", ingress_action, y_peer, direction="ingress")],
                   egress=[admin_rule("deny-all-egress-to-y", egress_action, y_peer, direction="egress")])
    np_xy = netpol("allow-gress-from-to-y-to-x", "x", {},
                   ingress=[{"from": [{"namespaceSelector": labels(ns="y")}]}],
                   egress=[{"to": [{"namespaceSelector": labels(ns="y")}]}])
    banp_deny_y = banp(x_ns, ingress=[admin_rule("deny-all-ingress-from-y", "Deny", y_peer, direction="ingress")],
                       egress=[admin_rule("deny-all-egress-to-y", "Deny", y_peer, direction="egress")])
    isolated_x = M().expect_peer("", "x", False).expect_peer("x", "", False)
    add("anp-np-banp-integration",
        [pass_example("Deny", "Deny"), np_xy, banp_deny_y],
        every(isolated_x),
        steps=[Step("ANP ingress rule action -> Pass",
                    [Change("apply", pass_example("Pass", "Deny"))],
                    every(isolated_x.copy().expect_peer("y", "x", True))),
               Step("ANP egress rule action -> Pass",
                    [Change("apply", pass_example("Pass", "Pass"))],
                    every(isolated_x.copy().expect_peer("y", "x", True).expect_peer("x", "y", True))),
               Step("delete the NetworkPolicy: Pass goes on to the BANP",
                    [Change("delete", np_xy)],
                    every(M().expect_peer("y", "x", False).expect_peer("x", "y", False)))],
        source="admin-network-policy-standard-integration.go (standard-anp-np-banp.yaml)",
        note="gryffindor -> x, slytherin -> y; upstream pokes y->x and x->y, the other pairs are written "
             "from the same policies (x is NP-isolated both ways, allowing only y)")

    sub_ab = {"pods": {"namespaceSelector": labels(ns="x"), "podSelector": expr("pod", "In", "a", "b")}}
    y_pods = [{"pods": {"namespaceSelector": labels(ns="y"), "podSelector": {}}}]

    def prio(priority: int) -> dict:
        return anp("old-priority-60-new-priority-40", priority, sub_ab,
                   ingress=[admin_rule("pass-all-ingress-from-y", "Pass", y_pods, direction="ingress")],
                   egress=[admin_rule("pass-all-egress-to-y", "Pass", y_pods, direction="egress")])
    denied = M()
    for p in ("x/a", "x/b"):
        denied.expect_peer("y", p, False).expect_peer(p, "y", False)
    add("anp-priority",
        [anp("priority-50", 50, sub_ab,
             ingress=[admin_rule("deny-all-ingress-from-y", "Deny", y_pods, direction="ingress")],
             egress=[admin_rule("deny-all-egress-to-y", "Deny", y_pods, direction="egress")]),
         prio(60),
         banp(sub_ab, ingress=[admin_rule("allow-all-ingress-from-y", "Allow", y_pods, direction="ingress")],
              egress=[admin_rule("allow-all-egress-to-y", "Allow", y_pods, direction="egress")])],
        every(denied),
        steps=[Step("priority 60 -> 40: Pass first, on to the BANP's Allow",
                    [Change("apply", prio(40))], every(M()))],
        source="admin-network-policy-standard-priority.go (standard-priority-field.yaml)",
        note="subject narrowed to x/a and x/b (pod selector In) so x/c shows the subject's edge")

    add("anp-allow-beats-np-deny",
        [anp("allow-from-z", 5, x_ns,
             ingress=[admin_rule("allow-from-z", "Allow", [{"namespaces": labels(ns="z")}], direction="ingress")]),
         netpol("deny-ingress", "x", {}, ingress=[])],
        every(M().expect_peer("", "x", False).expect_peer("z", "x", True)),
        source="admin-network-policy-standard-gress-rules.go (Allow is final; NetworkPolicy is not consulted)")

    allow_y = netpol("allow-from-y", "x", {}, ingress=[{"from": [{"namespaceSelector": labels(ns="y")}]}])
    add("banp-after-np",
        [banp(x_ns, ingress=[admin_rule("allow-from-z", "Allow", [{"namespaces": labels(ns="z")}],
                                        direction="ingress"),
                             admin_rule("deny-all", "Deny", [{"namespaces": {}}], direction="ingress")]),
         allow_y],
        every(M().expect_peer("", "x", False).expect_peer("y", "x", True)),
        steps=[Step("delete the NetworkPolicy: the BANP decides, first rule first",
                    [Change("delete", allow_y)],
                    every(M().expect_peer("", "x", False).expect_peer("z", "x", True)))],
        source="baseline-admin-network-policy-standard-gress-rules.go (BANP applies only when no NetworkPolicy "
               "isolates the pod)")

    add("anp-rule-order-and-ports",
        [anp("ports-then-deny", 20, {"namespaces": labels(ns="y")},
             ingress=[admin_rule("allow-some-ports", "Allow", [{"namespaces": labels(ns="x")}], direction="ingress",
                                 ports=[{"portNumber": {"protocol": "TCP", "port": 80}},
                                        {"namedPort": "serve-81-udp"}]),
                      admin_rule("deny-the-rest", "Deny", [{"namespaces": labels(ns="x")}], direction="ingress")])],
        {TCP80: M(), UDP81: M(), TCP81: M().expect_peer("x", "y", False), UDP80: M().expect_peer("x", "y", False)},
        source="admin-network-policy-standard-ingress-tcp-rules.go / -udp-rules.go (rule order, portNumber, "
               "namedPort)")

    add("anp-egress-port-range",
        [anp("deny-udp-range", 30, {"pods": {"namespaceSelector": labels(ns="z"), "podSelector": labels(pod="c")}},
             egress=[admin_rule("deny-udp-80-81-to-a", "Deny",
                                [{"pods": {"namespaceSelector": {}, "podSelector": labels(pod="a")}}],
                                direction="egress", ports=[{"portRange": {"protocol": "UDP", "start": 80, "end": 81}}])])],
        {TCP80: M(), TCP81: M(), **on(UDP, M().expect_peer("z/c", "*/a", False))},
        source="admin-network-policy-standard-egress-udp-rules.go (portRange)")

    add("anp-pass-without-np-or-banp-allows",
        [anp("pass-all", 1, x_ns, ingress=[admin_rule("pass", "Pass", [{"namespaces": {}}], direction="ingress")]),
         anp("deny-all", 2, x_ns, ingress=[admin_rule("deny", "Deny", [{"namespaces": {}}], direction="ingress")])],
        every(M()),
        source="admin-network-policy-standard-gress-rules.go (Pass skips the remaining ANP rules, later "
               "priorities too)")
    return cases


def _ip_admin_cases(ips: Mapping[str, str]) -> list[Case]:
    xb = ips["x/b"]
    return [Case("anp-egress-networks-pod-ip",
                 [anp("deny-to-x-b-ip", 15, {"namespaces": labels(ns="z")},
                      egress=[admin_rule("deny-x-b", "Deny", [{"networks": [f"{xb}/32"]}], direction="egress")])],
                 list(PROBES), every(M().expect_peer("z", "x/b", False)),
                 source=f"{ANP_CONF}: admin-network-policy-standard-egress-inline-cidr-rules.go (networks match "
                        "cluster-internal IPs too)")]


CASES: list[Case] = _np_cases() + _extra_cases() + _conflict_cases() + [_moved_pod_case()] + _admin_cases()


def ip_cases(ips: Mapping[str, str]) -> list[Case]:
    """The cases whose policies name pod IPs (ipBlock, ANP networks), for these IPs ({"x/a": ip})."""
    return _ip_np_cases(ips) + _ip_admin_cases(ips)


def all_cases(ips: Mapping[str, str]) -> list[Case]:
    return CASES + ip_cases(ips)


def case(name: str, ips: Mapping[str, str] | None = None) -> Case:
    for c in all_cases(ips or default_ips()):
        if c.name == name:
            return c
    raise KeyError(name)
