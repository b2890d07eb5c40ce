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

The "its own" checks read an index, as upstream's node graph does (a
vertex per pod, edges to its node, Secrets, ConfigMaps and ServiceAccount):
kept from the store's pod events, so a check is a few dict lookups however
many pods there are. It used to decode every pod of the namespace per check,
and a node reads a Secret or ConfigMap or asks a token once per pod started.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from knet.api.authz import User
from knet.api.bootstrappolicy import NODE_RULES, PROXIER_RULES, READ, _rule, _urls
from knet.api.rbac import NODE_PREFIX, Attributes, compile_rule, rule_allows
from knet.api.registry import event_new

log = logging.getLogger("knet.api")
LEASE_NAMESPACE = "kube-node-lease"
_POLICY_READS = [
    _rule(READ, [""], ["namespaces", "pods"]),
    _rule(READ, ["networking.k8s.io"], ["networkpolicies"]),
    _rule(READ, ["policy.networking.k8s.io"], ["adminnetworkpolicies", "baselineadminnetworkpolicies"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _urls(["post"], ["/knet/v1/progress", "/knet/v1/bookmarks"]),
    _urls(["get"], ["/version", "/version/"]),
]
RULES = tuple(compile_rule(r) for r in NODE_RULES + PROXIER_RULES + _POLICY_READS)
PODS_PREFIX = "/registry/pods/"


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


class PodGraph:
    """What the pods bound to each node refer to, by (node, namespace): the
    pods' keys, and how many of them name each Secret, ConfigMap and
    ServiceAccount. Built from one listing at the first check, then kept from
    the store's events (delivered on the writer's thread, which is the API
    server's loop, as the checks are). A pod's edges change only with its
    spec, so a status write that leaves them as they were costs a comparison."""

    def __init__(self, store):
        self.store = store
        self._pods: dict[str, tuple] | None = None  # pod key -> its edges (node, namespace, sa, secrets, configmaps)
        self._refs: dict[tuple[str, str, str], Counter] = {}  # (node, namespace, kind) -> name -> pods naming it
        self.decodes = 0  # pods this graph decoded itself (a listing, or an event no one else decoded)
        self.builds = 0
        self.unsubscribe = store.subscribe(self._on_event)

    @staticmethod
    def edges(pod: dict) -> tuple | None:
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            return None
        return (node, (pod.get("metadata") or {}).get("namespace") or "",
                spec.get("serviceAccountName", "default"),
                frozenset(references(pod, "secrets")), frozenset(references(pod, "configmaps")))

    def _build(self) -> dict[str, tuple]:
        self.builds += 1
        self._pods, self._refs = {}, {}
        for key, value, _ in self.store.list(PODS_PREFIX)[0]:
            self.decodes += 1
            self._set(key, self.edges(json.loads(value)))
        return self._pods

    def _set(self, key: str, edges: tuple | None) -> None:
        old = self._pods.get(key)
        if old == edges:
            return
        if old is not None:
            self._count(old, -1)
            del self._pods[key]
        if edges is not None:
            self._count(edges, 1)
            self._pods[key] = edges

    def _count(self, edges: tuple, step: int) -> None:
        node, ns, sa, secrets, configmaps = edges
        for kind, names in (("serviceaccounts", (sa,)), ("secrets", secrets), ("configmaps", configmaps)):
            counts = self._refs.setdefault((node, ns, kind), Counter())
            for name in names:
                counts[name] += step
                if counts[name] <= 0:
                    del counts[name]
            if not counts:
                del self._refs[(node, ns, kind)]

    def _on_event(self, event) -> None:
        if self._pods is None or not event.key.startswith(PODS_PREFIX):
            return
        if not event.value:
            self._set(event.key, None)
            return
        if event.key not in self._pods and '"nodeName"' not in event.value:
            return  # not bound yet, and not before: no edges, and no decode
        if "_new" not in event.__dict__:
            self.decodes += 1
        try:
            self._set(event.key, self.edges(event_new(event)))  # decoded once for every reader (the watches too)
        except Exception:  # this runs inside the store's write: never fail it; the next check lists again
            log.exception("node authorizer: pod graph dropped at %s", event.key)
            self._pods, self._refs = None, {}

    def node_of(self, namespace: str, name: str) -> str | None:
        """The node a pod is bound to (None: no such pod, or not bound)."""
        pods = self._pods if self._pods is not None else self._build()
        edges = pods.get(f"{PODS_PREFIX}{namespace}/{name}")
        return edges[0] if edges else None

    def refers(self, node: str, namespace: str, kind: str, name: str) -> bool:
        """Whether a pod bound to node names this Secret, ConfigMap or ServiceAccount."""
        if self._pods is None:
            self._build()
        return self._refs.get((node, namespace, kind), {}).get(name, 0) > 0


class NodeAuthorizer:
    def __init__(self, store):
        self.store = store
        self.graph = PodGraph(store)

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
            if not a.name or self.graph.node_of(a.namespace, a.name) != node:
                return f'node "{node}" can only modify pods with spec.nodeName set to itself'
            return ""
        if group == "" and res in ("secrets", "configmaps") and not a.subresource:
            if not a.name:
                return f"can only read individual {res} referenced by pods bound to node \"{node}\""
            if not self.graph.refers(node, a.namespace, res, a.name):
                return f"no relationship found between node '{node}' and this object"
            return ""
        if group == "" and res == "serviceaccounts" and a.subresource == "token":
            if not self.graph.refers(node, a.namespace, "serviceaccounts", a.name):
                return f"no relationship found between node '{node}' and this object"
        return ""
