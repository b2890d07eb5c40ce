"""Where a pod may run: the scheduler's filters and score, as pure functions.

The filters follow kube-scheduler's plugins in its order (node readiness,
NodeUnschedulable, TaintToleration, NodeAffinity), the first failing one
naming the reason for that node, so a pod that fits nowhere can say
exactly why, as FailedScheduling does: `0/4 nodes are available: 1 node(s)
had untolerated taint {...}, 3 node(s) didn't match Pod's node
affinity/selector.`

The score: first the pod's preferred podAntiAffinity (InterPodAffinity's
part that kubeadm's coredns relies on, so its two replicas land on two nodes
and a drain never takes both), then "fewest pods". Upstream adds weighted
plugin scores; here anti-affinity weights only ever break away from nodes
holding matching pods, which is what a user writing it expects.
"""

from __future__ import annotations

from collections import Counter

from knet.api.objects import condition
from knet.api.selectors import selector_from_label_selector


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations or []:
        effect = t.get("effect", "")
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key", "")
        if t.get("operator", "Equal") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _match_expression(expr: dict, labels: dict) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            a, b = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def matches_node_selector_terms(terms: list[dict], node: dict) -> bool:
    """Terms are ORed, expressions within a term ANDed (NodeSelectorTerm semantics)."""
    labels = node.get("metadata", {}).get("labels") or {}
    name = node.get("metadata", {}).get("name")
    for term in terms or []:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_match_expression(e, labels) for e in exprs) and all(
                _match_expression(f, {"metadata.name": name}) for f in fields):
            return True
    return False


def node_ready(node: dict) -> bool:
    c = condition(node, "Ready")
    return bool(c and c.get("status") == "True")


def why_not(pod: dict, node: dict) -> str | None:
    """The reason a node cannot take this pod (kube-scheduler's wording), or None."""
    spec = pod.get("spec", {})
    nspec = node.get("spec", {})
    if not node_ready(node):
        return "node(s) were not ready"
    if nspec.get("unschedulable") and not tolerates(spec.get("tolerations"), {
            "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    for taint in nspec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(spec.get("tolerations"), taint):
            value = taint.get("value", "")
            return f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"
    labels = node.get("metadata", {}).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector"
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required and not matches_node_selector_terms(required.get("nodeSelectorTerms"), node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def anti_affinity_penalties(pod: dict, nodes: list[dict], placed: dict[str, list[dict]]) -> Counter:
    """Per node, the summed weights of the pod's preferred podAntiAffinity terms
    that a pod already in the node's topology domain (the nodes sharing its
    value of the term's topologyKey) matches. A term looks in the pod's own
    namespace, in its `namespaces`, or everywhere with `namespaceSelector: {}`;
    a non-empty namespaceSelector needs namespace labels the scheduler does not
    keep, so such a term counts only the listed namespaces."""
    terms = (((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution") or []
    out: Counter = Counter()
    if not terms:
        return out
    own_ns = pod["metadata"].get("namespace") or "default"
    labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
    for weighted in terms:
        term = weighted.get("podAffinityTerm") or {}
        key, weight = term.get("topologyKey"), int(weighted.get("weight") or 0)
        if not key or not weight:
            continue
        try:
            sel = selector_from_label_selector(term.get("labelSelector"))
        except Exception:  # validation's to refuse; an unreadable term scores nothing
            continue
        everywhere = term.get("namespaceSelector") == {}
        namespaces = set(term.get("namespaces") or []) or ({own_ns} if term.get("namespaceSelector") is None else set())
        taken = {labels[name].get(key) for name, there in placed.items() if name in labels and key in labels[name]
                 and any((everywhere or (p["metadata"].get("namespace") or "default") in namespaces)
                         and sel.matches(p["metadata"].get("labels")) for p in there)}
        for name, node_labels in labels.items():
            if key in node_labels and node_labels[key] in taken:
                out[name] += weight
    return out


def pod_capacity(node: dict) -> float:
    """The node's allocatable pods (kubelet's --max-pods), unbounded if it reports none."""
    try:
        return int(((node.get("status") or {}).get("allocatable") or {}).get("pods"))
    except (TypeError, ValueError):
        return float("inf")


def choose_node(pod: dict, nodes: list[dict], pods_per_node: Counter,
                placed: dict[str, list[dict]] | None = None) -> tuple[str | None, str]:
    """Pick the feasible node with the least anti-affinity (with `placed`, the
    pods on each node), then the fewest pods (ties by name, so placement is
    repeatable); or None with the FailedScheduling message."""
    feasible = []
    reasons: Counter = Counter()
    for node in nodes:
        reason = why_not(pod, node)
        if reason is None and pods_per_node.get(node["metadata"]["name"], 0) >= pod_capacity(node):
            reason = "Too many pods"  # NodeResourcesFit's reason for allocatable.pods
        if reason is None:
            feasible.append(node["metadata"]["name"])
        else:
            reasons[reason] += 1
    if feasible:
        penalty = anti_affinity_penalties(pod, nodes, placed) if placed else Counter()
        best = min(feasible, key=lambda n: (penalty.get(n, 0), pods_per_node.get(n, 0), n))
        return best, ""
    detail = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    message = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ": no nodes registered.")
    return None, message
