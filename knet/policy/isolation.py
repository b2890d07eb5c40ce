"""Which policies select and isolate a pod: the part of policy semantics that
needs no packet.

Kept pure (plain API dicts in, names out) so the oracle, the compiler, `knet
describe pod` and `knet get pods -o wide` all answer "is this pod isolated, and
by what?" from one piece of code instead of four copies that drift apart.

Rules (networking.k8s.io/v1 and policy.networking.k8s.io/v1alpha1):
- A NetworkPolicy selects the pods of ITS namespace that match spec.podSelector
  (`{}` = all of them). It isolates a selected pod in each direction listed in
  policyTypes; when policyTypes is missing it is defaulted as the API server does
  (`[Ingress]`, plus `Egress` when spec.egress is non-empty), so an object that
  never went through admission is judged the same way.
- An ANP/BANP subject is `namespaces` (a namespace selector) or `pods`
  (namespaceSelector AND podSelector). ANPs never isolate: they only select.
- hostNetwork pods are never selected by anything (their IP is the node's).
"""

from __future__ import annotations

from collections.abc import Iterable

from knet.api.selectors import selector_from_label_selector

INGRESS = "Ingress"
EGRESS = "Egress"
ANP_KEY = "AdminNetworkPolicy"
BANP_KEY = "BaselineAdminNetworkPolicy"


def _meta(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def _labels(obj: dict | None) -> dict:
    return _meta(obj).get("labels") or {}


def _namespace_labels(pod: dict, namespace: dict | None) -> dict:
    """The namespace's labels; without the object, the one label the API server
    always sets (kubernetes.io/metadata.name), so selectors on it still work."""
    if namespace is not None:
        return _labels(namespace)
    ns = _meta(pod).get("namespace") or "default"
    return {"kubernetes.io/metadata.name": ns}


def _host_network(pod: dict) -> bool:
    return bool(((pod or {}).get("spec") or {}).get("hostNetwork"))


def policy_types(policy: dict) -> list[str]:
    """spec.policyTypes, defaulted as SetDefaults_NetworkPolicy does when empty."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return [INGRESS, EGRESS] if spec.get("egress") else [INGRESS]


def selects(policy: dict, pod: dict, namespace: dict | None = None) -> bool:
    """True when the NetworkPolicy's spec.podSelector picks the pod (same namespace only)."""
    if _host_network(pod):
        return False
    if (_meta(policy).get("namespace") or "default") != (_meta(pod).get("namespace") or "default"):
        return False
    spec = policy.get("spec") or {}
    # A missing podSelector is `{}` after decoding (the field is required but
    # may be empty); treat it the same here.
    return selector_from_label_selector(spec.get("podSelector") or {}).matches(_labels(pod))


def subject_selects(subject: dict | None, pod: dict, namespace: dict | None = None) -> bool:
    """An ANP/BANP `spec.subject` against a pod. An empty or unknown subject
    selects nothing (fail closed: it never widens a policy's reach)."""
    if _host_network(pod) or not subject:
        return False
    ns_labels = _namespace_labels(pod, namespace)
    if "namespaces" in subject:
        return selector_from_label_selector(subject.get("namespaces") or {}).matches(ns_labels)
    if "pods" in subject:
        pods = subject.get("pods") or {}
        return (selector_from_label_selector(pods.get("namespaceSelector") or {}).matches(ns_labels)
                and selector_from_label_selector(pods.get("podSelector") or {}).matches(_labels(pod)))
    return False


def anp_subject_selects(anp: dict, pod: dict, namespace: dict | None = None) -> bool:
    """True when the (Baseline)AdminNetworkPolicy's subject picks the pod."""
    return subject_selects((anp.get("spec") or {}).get("subject"), pod, namespace)


def anp_order(anps: Iterable[dict]) -> list[dict]:
    """ANPs in evaluation order: lower priority number first; at equal priority
    (undefined upstream) by name, so the result is at least deterministic."""
    return sorted(anps, key=lambda a: (int((a.get("spec") or {}).get("priority") or 0),
                                       _meta(a).get("name") or ""))


def _key(policy: dict) -> str:
    m = _meta(policy)
    return f"{m.get('namespace') or 'default'}/{m.get('name') or ''}"


def isolation(pod: dict, namespace: dict | None, netpols: Iterable[dict],
              anps: Iterable[dict] = (), banp: dict | None = None) -> dict[str, list[str]]:
    """{"Ingress": [ns/name...], "Egress": [...], "AdminNetworkPolicy": [names in
    evaluation order], "BaselineAdminNetworkPolicy": [name]}: the NetworkPolicies
    isolating the pod per direction and the admin policies whose subject selects it.
    A pod with empty Ingress/Egress lists is not isolated in that direction."""
    out: dict[str, list[str]] = {INGRESS: [], EGRESS: [], ANP_KEY: [], BANP_KEY: []}
    for np in sorted(netpols, key=_key):
        if selects(np, pod, namespace):
            for t in policy_types(np):
                if t in (INGRESS, EGRESS) and _key(np) not in out[t]:
                    out[t].append(_key(np))
    out[ANP_KEY] = [_meta(a).get("name") or "" for a in anp_order(anps)
                    if anp_subject_selects(a, pod, namespace)]
    if banp is not None and anp_subject_selects(banp, pod, namespace):
        out[BANP_KEY] = [_meta(banp).get("name") or "default"]
    return out


def selected_pods(policy: dict, pods: Iterable[dict]) -> list[dict]:
    """The pods a NetworkPolicy selects (for `knet describe netpol`)."""
    return [p for p in pods if selects(policy, p)]


def subject_pods(anp: dict, pods: Iterable[dict], namespaces: dict[str, dict]) -> list[dict]:
    """The pods an ANP/BANP subject selects; `namespaces` maps name -> Namespace."""
    return [p for p in pods
            if anp_subject_selects(anp, p, namespaces.get(_meta(p).get("namespace") or "default"))]
