"""The default ClusterRoles and ClusterRoleBindings every cluster starts with,
as upstream's plugin/pkg/auth/authorizer/rbac/bootstrappolicy and kubeadm
create them: cluster-admin, admin, edit and view (the last three aggregated
from the system:aggregate-to-* roles by label, so a role labelled
`rbac.authorization.k8s.io/aggregate-to-view: "true"` extends view), the
discovery and self-review rights every authenticated user has, the node and
kube-proxy roles, kubeadm's system:coredns for the DNS pods' ServiceAccount.

Created when missing at the control plane's start (upstream reconciles them
the same way, marked rbac.authorization.kubernetes.io/autoupdate), never
overwritten: a cluster's admin may edit them.
"""

from __future__ import annotations

from knet.api.rbac import GROUP, aggregated_rules

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGG = "rbac.authorization.k8s.io/aggregate-to-"


def _rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> dict:
    out = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def _urls(verbs: list[str], urls: list[str]) -> dict:
    return {"verbs": verbs, "nonResourceURLs": urls}


def _role(name: str, rules: list[dict], labels: dict | None = None, aggregate_from: str = "") -> dict:
    role = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {**BOOTSTRAP, **(labels or {})}, "annotations": dict(AUTOUPDATE)},
            "rules": rules}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGG + aggregate_from: "true"}}]}
    return role


def _binding(name: str, role: str, subjects: list[dict]) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(BOOTSTRAP), "annotations": dict(AUTOUPDATE)},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}


def _group(name: str) -> dict:
    return {"apiGroup": GROUP, "kind": "Group", "name": name}


def _user(name: str) -> dict:
    return {"apiGroup": GROUP, "kind": "User", "name": name}


def _sa(namespace: str, name: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                  "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
ISSUER_URLS = ["/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
               "/openid/v1/jwks/"]

_VIEW_RULES = [
    _rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                       "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                       "services/status"]),
    _rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                       "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                           "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                           "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                 "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
                                 "replicasets", "replicasets/scale", "replicasets/status",
                                 "replicationcontrollers/scale"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]
_EDIT_RULES = [
    _rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                        "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                            "replicasets/scale", "statefulsets", "statefulsets/scale"]),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                                  "ingresses", "networkpolicies", "replicasets", "replicasets/scale",
                                  "replicationcontrollers/scale"]),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
          ["coordination.k8s.io"], ["leases"]),
]
_ADMIN_RULES = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"], [GROUP],
          ["rolebindings", "roles"]),
]
# The Node authorizer's static rules (bootstrappolicy.NodeRules), also the system:node ClusterRole.
NODE_RULES = [
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews", "subjectaccessreviews"]),
    _rule(READ, [""], ["services"]),
    _rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    _rule(["patch", "update"], [""], ["nodes/status"]),
    _rule(["patch", "update"], [""], ["nodes"]),
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(READ, [""], ["pods"]),
    _rule(["create", "delete"], [""], ["pods"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(READ, [""], ["configmaps", "secrets"]),
    _rule(["get"], [""], ["endpoints"]),
    _rule(["create", "delete", "get", "patch", "update"], ["coordination.k8s.io"], ["leases"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
]
# kube-proxy's (system:node-proxier).
PROXIER_RULES = [
    _rule(["list", "watch"], [""], ["endpoints", "services"]),
    _rule(READ, [""], ["nodes"]),
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]
# kubeadm's CoreDNS addon ClusterRole.
COREDNS_RULES = [
    _rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
    _rule(["get"], [""], ["nodes"]),
    _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]


def cluster_roles() -> list[dict]:
    roles = [
        _role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
        _role("admin", [], aggregate_from="admin"),
        _role("edit", [], {AGG + "admin": "true"}, aggregate_from="edit"),
        _role("view", [], {AGG + "edit": "true"}, aggregate_from="view"),
        _role("system:aggregate-to-admin", _ADMIN_RULES, {AGG + "admin": "true"}),
        _role("system:aggregate-to-edit", _EDIT_RULES, {AGG + "edit": "true"}),
        _role("system:aggregate-to-view", _VIEW_RULES, {AGG + "view": "true"}),
        _role("system:discovery", [_urls(["get"], DISCOVERY_URLS)]),
        _role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        _role("system:public-info-viewer", [_urls(["get"], PUBLIC_INFO_URLS)]),
        _role("system:service-account-issuer-discovery", [_urls(["get"], ISSUER_URLS)]),
        _role("system:node", NODE_RULES),
        _role("system:node-proxier", PROXIER_RULES),
        _role("system:coredns", COREDNS_RULES),
    ]
    # The aggregated roles carry their rules as the aggregation controller writes them
    # (admin aggregates edit, which aggregates view: three rounds settle it).
    for _ in range(3):
        for role in roles:
            rules = aggregated_rules(role, roles)
            if rules is not None:
                role["rules"] = rules
    return roles


def cluster_role_bindings() -> list[dict]:
    return [
        _binding("cluster-admin", "cluster-admin", [_group("system:masters")]),
        _binding("system:discovery", "system:discovery", [_group("system:authenticated")]),
        _binding("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [_group("system:authenticated"), _group("system:unauthenticated")]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 [_group("system:serviceaccounts")]),
        _binding("system:node-proxier", "system:node-proxier", [_user("system:kube-proxy")]),
        _binding("system:coredns", "system:coredns", [_sa("kube-system", "coredns")]),
    ]


def bootstrap(reg) -> int:
    """Create the default roles and bindings that are missing (and kube-system's
    coredns ServiceAccount); how many were created."""
    from knet.api.resources import by_kind

    made = 0
    for kind, objs in (("ClusterRole", cluster_roles()), ("ClusterRoleBinding", cluster_role_bindings())):
        res = by_kind(kind)
        for obj in objs:
            if reg.find(res, None, obj["metadata"]["name"]) is None:
                reg.create(res, None, obj)
                made += 1
    sa = by_kind("ServiceAccount")
    if reg.find(sa, "kube-system", "coredns") is None:
        reg.create(sa, "kube-system", {"apiVersion": "v1", "kind": "ServiceAccount",
                                       "metadata": {"name": "coredns"}})
        made += 1
    return made
