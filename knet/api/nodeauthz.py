"""The Node authorizer and the NodeRestriction admission's checks, for the
node agents' credentials (CN=system:node:<name>, O=system:nodes).

A knet agent is kubelet, kube-proxy and the node's NetworkPolicy daemon in
one process, so its identity gets the union of what those have upstream:
bootstrappolicy.NodeRules() (kubelet's), system:node-proxier's reads
(Services, EndpointSlices, Nodes) and the reads a policy daemon's
ServiceAccount is given (pods, namespaces, the policy kinds). What the Node
authorizer and NodeRestriction add is the "its own" part, kept here:

- a Node, its status and its Lease (kube-node-lease/<name>): only its own;
- a pod's status, deletion, creation: only pods bound to it;
- a Secret or ConfigMap: only one a pod bound to it refers to (volumes,
  projected sources, env, envFrom, imagePullSecrets), read by name;
- a ServiceAccount token: only for a ServiceAccount a pod bound to it runs as.

Anything else its rules do not allow falls through to RBAC (where nothing
binds system:nodes but discovery), so a node cannot delete a Service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from knet.api.authz import User
from knet.api.bootstrappolicy import NODE_RULES, PROXIER_RULES, READ, _rule, _urls
from knet.api.rbac import NODE_PREFIX, Attributes, compile_rule, rule_allows

LEASE_NAMESPACE = "kube-node-lease"
_POLICY_READS = [
    _rule(READ, [""], ["namespaces", "pods"]),
    _rule(READ, ["networking.k8s.io"], ["networkpolicies"]),
    _rule(READ, ["policy.networking.k8s.io"], ["adminnetworkpolicies", "baselineadminnetworkpolicies"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _urls(["post"], ["/knet/v1/progress"]),
    _urls(["get"], ["/version", "/version/"]),
]
RULES = tuple(compile_rule(r) for r in NODE_RULES + PROXIER_RULES + _POLICY_READS)


def _pods_on(store, namespace: str, node: str) -> Iterator[dict]:
    for _, value, _ in store.list(f"/registry/pods/{namespace}/")[0]:
        pod = json.loads(value)
        if (pod.get("spec") or {}).get("nodeName") == node:
            yield pod


def _pod(store, namespace: str, name: str) -> dict | None:
    found = store.get(f"/registry/pods/{namespace}/{name}")
    return json.loads(found[0]) if found else None


def references(pod: dict, kind: str) -> set[str]:
    """The ConfigMaps (kind "configmaps") or Secrets ("secrets") a pod names."""
    spec = pod.get("spec") or {}
    out: set[str] = set()
    secret = kind == "secrets"
    for v in spec.get("volumes") or []:
        if secret and (v.get("secret") or {}).get("secretName"):
            out.add(v["secret"]["secretName"])
        if not secret and (v.get("configMap") or {}).get("name"):
            out.add(v["configMap"]["name"])
        for src in (v.get("projected") or {}).get("sources") or []:
            ref = src.get("secret" if secret else "configMap") or {}
            if ref.get("name"):
                out.add(ref["name"])
    if secret:
        out.update(r.get("name") for r in spec.get("imagePullSecrets") or [] if r.get("name"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef" if secret else "configMapKeyRef") or {}
                if ref.get("name"):
                    out.add(ref["name"])
            for env in c.get("envFrom") or []:
                ref = env.get("secretRef" if secret else "configMapRef") or {}
                if ref.get("name"):
                    out.add(ref["name"])
    return out


def admit(user: User, a: Attributes, obj: dict) -> str:
    """NodeRestriction on a create whose name is in the body: a node creates
    only its own Node and its own Lease. Why not ("" when it may)."""
    node = user.name[len(NODE_PREFIX):]
    name = str((obj.get("metadata") or {}).get("name") or "")
    if a.api_group == "" and a.resource == "nodes" and name != node:
        return f'node "{node}" is not allowed to modify node "{name}"'
    if a.api_group == "coordination.k8s.io" and a.resource == "leases" and name != node:
        return f'node "{node}" can only access leases with name "{node}" in namespace "{LEASE_NAMESPACE}"'
    return ""


class NodeAuthorizer:
    def __init__(self, store):
        self.store = store

    def __call__(self, user: User, a: Attributes) -> tuple[bool, str] | None:
        node = user.name[len(NODE_PREFIX):]
        if not any(rule_allows(r, a) for r in RULES):
            return None  # no opinion: RBAC decides
        if not a.resource_request:
            return True, ""
        why = self._restrict(node, a)
        return (False, why) if why else (True, "")

    def _restrict(self, node: str, a: Attributes) -> str:
        """Why this node may not do this to that object ("" when it may)."""
        group, res, verb = a.api_group, a.resource, a.verb
        if group == "" and res == "nodes" and verb in ("create", "update", "patch"):
            if a.name and a.name != node:
                return f'node "{node}" is not allowed to modify node "{a.name}"'
            return ""
        if group == "coordination.k8s.io" and res == "leases":
            if a.namespace != LEASE_NAMESPACE or (a.name != node and not (verb == "create" and not a.name)):
                return f'node "{node}" can only access leases with name "{node}" in namespace "{LEASE_NAMESPACE}"'
            return ""
        if group == "" and res == "pods" and (a.subresource == "status" or verb in ("create", "delete")):
            if verb == "create" and not a.subresource:
                return ""  # mirror pods: NodeRestriction checks the body's nodeName, knet's agents make none
            pod = _pod(self.store, a.namespace, a.name) if a.name else None
            if pod is None or (pod.get("spec") or {}).get("nodeName") != node:
                return f'node "{node}" can only modify pods with spec.nodeName set to itself'
            return ""
        if group == "" and res in ("secrets", "configmaps") and not a.subresource:
            if not a.name:
                return f"can only read individual {res} referenced by pods bound to node \"{node}\""
            if not any(a.name in references(p, res) for p in _pods_on(self.store, a.namespace, node)):
                return f"no relationship found between node '{node}' and this object"
            return ""
        if group == "" and res == "serviceaccounts" and a.subresource == "token":
            if not any((p.get("spec") or {}).get("serviceAccountName", "default") == a.name
                       for p in _pods_on(self.store, a.namespace, node)):
                return f"no relationship found between node '{node}' and this object"
        return ""
