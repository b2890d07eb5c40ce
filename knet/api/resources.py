"""The kinds the API serves: one record per kind, as upstream's
pkg/registry/*/strategy.go has one strategy per kind.

A record says everything the API knows about its kind in one place: where it
lives (group, version, plural; namespaced or cluster-scoped), the short names
kubectl users type, whether it has a status subresource, how its names are
checked, its defaulting, its validation on create and on update, what an
update prepares before admission, and its printer columns. The registry, the
server (routing and discovery), the decoder and `knet get` all read the
record; nothing else keeps a table keyed by kind. The field schema a kind
decodes into is the struct of the kind's own name in knet/api/schema.py.

Hooks are named "module:function" and imported on first use: this module is
on the CLI's start-up path, and the validation and defaulting code behind the
hooks is only needed by the API server.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

# A named tuple rather than a dataclass: this module is on the CLI's start-up
# path, and dataclasses costs ~10 ms of imports there. group is "" for the core group.
_Fields = namedtuple(
    "_Fields",
    "kind plural group version namespaced short_names "
    "status names defaults validate validate_update prepare_update columns printer "
    "categories subresources verbs",
    defaults=((), False, "", "", "", "", "", (), "", (), (), ()),
)

# The verbs of a stored kind, as upstream's discovery lists them (sorted).
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Printer columns are (header, priority) as upstream's TableColumnDefinition:
# priority 0 is always shown, 1 only in `-o wide`; a wide table keeps the order given.
Column = tuple[str, int]


def _columns(normal: str, wide: str = "") -> tuple[Column, ...]:
    """Columns written as two comma-separated header lists: always, then wide-only."""
    return (tuple((h, 0) for h in normal.split(",") if h)
            + tuple((h, 1) for h in wide.split(",") if h))


class Resource(_Fields):
    """One kind's strategy record.

    kind, plural, group, version, namespaced, short_names: where the kind lives.
    status: the kind has a status subresource; a write of the main resource
        keeps the stored status, and a write of /status changes only the status.
    names: the check of metadata.name ("module:function" returning messages).
    defaults: fills an object in place before validation (knet/api/defaults.py).
    validate: (errs, obj) adds the kind's field errors (knet/api/validation/<group>.py).
    validate_update: (errs, new_spec, old_spec, new, old) adds what an update
        may not change.
    prepare_update: (new, old) before admission of an update of the main resource
        (a Service drops the fields of the type it left).
    columns: the table's columns (`knet get` and the server's as=Table answers);
    printer: (obj, wide, now) -> a row's cells under them (knet/api/tables.py).
    categories: the categories kubectl expands (`kubectl get all`), as upstream's
        storage declares them (pods, services and the workload kinds are in "all").
    subresources: the subresources served besides status (which `status` says),
        as discovery lists them: scale, binding, eviction, log, exec, ...
    verbs: the verbs discovery lists; empty means every verb of a stored kind
        (VERBS). A kind that is only created and never stored (the access
        reviews) lists ("create",).
    """

    __slots__ = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path, as a Kubernetes API server lays it out."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base

    def hook(self, name: str) -> Callable[..., object] | None:
        """The function a hook field names, imported on first use; None if unset."""
        ref = getattr(self, name)
        if not ref:
            return None
        from importlib import import_module

        module, _, attr = ref.partition(":")
        return getattr(import_module(module), attr)

    @property
    def served_verbs(self) -> tuple[str, ...]:
        return self.verbs or VERBS

    @property
    def stored(self) -> bool:
        """A kind kept in the store (listable, watchable); the reviews are only answered."""
        return "list" in self.served_verbs

    def column_headers(self, wide: bool) -> list[str]:
        return [h for h, priority in self.columns if wide or priority == 0]


_CORE = "knet.api.validation.core:"
_APPS = "knet.api.validation.apps:"
_DEFAULTS = "knet.api.defaults:"
_POLICY = "knet.api.validation.policy:"
_LABEL = "knet.api.validation.fields:is_dns1123_label"
_SUBDOMAIN = "knet.api.selectors:is_dns1123_subdomain"
_IDENTITY = "knet.api.validation.identity:"
_RBAC = "rbac.authorization.k8s.io"
_WORKLOAD_WIDE = "CONTAINERS,IMAGES,SELECTOR"
_ALL = ("all",)
# A pod's subresources besides status: the node agent's (log, exec, attach,
# portforward), the scheduler's binding and the eviction API.
_POD_SUBRESOURCES = ("attach", "binding", "eviction", "exec", "log", "portforward")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "Namespace", "namespaces", "", "v1", False, ("ns",),
        status=True, names=_LABEL,
        defaults=_DEFAULTS + "default_namespace",
        validate=_CORE + "validate_namespace",
        columns=_columns("NAME,STATUS,AGE"),
        printer="knet.api.tables:namespace_row",
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),  # no deletecollection, as upstream
    ),
    Resource(
        "Node", "nodes", "", "v1", False, ("no",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_node",
        validate=_CORE + "validate_node",
        validate_update=_CORE + "validate_node_update",
        columns=_columns("NAME,STATUS,ROLES,AGE,VERSION",
                         "INTERNAL-IP,EXTERNAL-IP,OS-IMAGE,KERNEL-VERSION,CONTAINER-RUNTIME"),
        printer="knet.api.tables:node_row",
    ),
    Resource(
        "Pod", "pods", "", "v1", True, ("po",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_pod",
        validate=_CORE + "validate_pod",
        validate_update=_CORE + "validate_pod_update",
        columns=_columns("NAME,READY,STATUS,RESTARTS,AGE", "IP,NODE,NOMINATED NODE,READINESS GATES"),
        printer="knet.api.tables:pod_row",
        categories=_ALL, subresources=_POD_SUBRESOURCES,
    ),
    Resource(
        "Service", "services", "", "v1", True, ("svc",),
        status=True, names="knet.api.validation.fields:is_dns1035_label",
        defaults=_DEFAULTS + "default_service",
        validate=_CORE + "validate_service",
        validate_update=_CORE + "validate_service_update",
        prepare_update="knet.api.allocators:drop_type_dependent_fields",
        columns=_columns("NAME,TYPE,CLUSTER-IP,EXTERNAL-IP,PORT(S),AGE", "SELECTOR"),
        printer="knet.api.tables:service_row",
        categories=_ALL,
    ),
    Resource(
        "Event", "events", "", "v1", True, ("ev",),
        names=_SUBDOMAIN,
        validate=_CORE + "validate_event",
        # The wide columns sit in the middle, kubectl's order.
        columns=(("LAST SEEN", 0), ("TYPE", 0), ("REASON", 0), ("OBJECT", 0), ("SUBOBJECT", 1),
                 ("SOURCE", 1), ("MESSAGE", 0), ("FIRST SEEN", 1), ("COUNT", 1), ("NAME", 1)),
        printer="knet.api.tables:event_row",
    ),
    Resource(
        "Deployment", "deployments", "apps", "v1", True, ("deploy",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_deployment",
        validate=_APPS + "validate_deployment",
        validate_update=_APPS + "validate_selector_update",
        columns=_columns("NAME,READY,UP-TO-DATE,AVAILABLE,AGE", _WORKLOAD_WIDE),
        printer="knet.api.tables:deployment_row",
        categories=_ALL, subresources=("scale",),
    ),
    Resource(
        "ReplicaSet", "replicasets", "apps", "v1", True, ("rs",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_replicaset",
        validate=_APPS + "validate_replicaset",
        validate_update=_APPS + "validate_selector_update",
        columns=_columns("NAME,DESIRED,CURRENT,READY,AGE", _WORKLOAD_WIDE),
        printer="knet.api.tables:replicaset_row",
        categories=_ALL, subresources=("scale",),
    ),
    Resource(
        "DaemonSet", "daemonsets", "apps", "v1", True, ("ds",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_daemonset",
        validate=_APPS + "validate_daemonset",
        validate_update=_APPS + "validate_selector_update",
        columns=_columns("NAME,DESIRED,CURRENT,READY,UP-TO-DATE,AVAILABLE,NODE SELECTOR,AGE",
                         _WORKLOAD_WIDE),
        printer="knet.api.tables:daemonset_row",
        categories=_ALL,
    ),
    Resource(
        "StatefulSet", "statefulsets", "apps", "v1", True, ("sts",),
        status=True, names=_LABEL,
        defaults=_DEFAULTS + "default_statefulset",
        validate=_APPS + "validate_statefulset",
        validate_update=_APPS + "validate_statefulset_update",
        columns=_columns("NAME,READY,AGE", "CONTAINERS,IMAGES"),
        printer="knet.api.tables:statefulset_row",
        categories=_ALL, subresources=("scale",),
    ),
    Resource(
        "EndpointSlice", "endpointslices", "discovery.k8s.io", "v1", True, (),
        names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_endpointslice",
        validate="knet.api.validation.discovery:validate_endpointslice",
        validate_update="knet.api.validation.discovery:validate_endpointslice_update",
        columns=_columns("NAME,ADDRESSTYPE,PORTS,ENDPOINTS,AGE"),
        printer="knet.api.tables:endpointslice_row",
    ),
    # The node agents' heartbeats, as kubelet's: one Lease per node in kube-node-lease.
    Resource(
        "Lease", "leases", "coordination.k8s.io", "v1", True, (),
        names=_SUBDOMAIN,
        validate="knet.api.validation.coordination:validate_lease",
        columns=_columns("NAME,HOLDER,AGE"),
        printer="knet.api.tables:lease_row",
    ),
    # Configuration and identity (knet/api/serviceaccounts.py, knet/api/rbac.py).
    Resource(
        "ConfigMap", "configmaps", "", "v1", True, ("cm",),
        names=_SUBDOMAIN,
        validate=_IDENTITY + "validate_configmap",
        validate_update=_IDENTITY + "validate_immutable_data",
        columns=_columns("NAME,DATA,AGE"),
        printer="knet.api.tables:configmap_row",
    ),
    Resource(
        "Secret", "secrets", "", "v1", True, (),
        names=_SUBDOMAIN,
        defaults=_IDENTITY + "default_secret",
        validate=_IDENTITY + "validate_secret",
        validate_update=_IDENTITY + "validate_secret_update",
        columns=_columns("NAME,TYPE,DATA,AGE"),
        printer="knet.api.tables:secret_row",
    ),
    Resource(
        "ServiceAccount", "serviceaccounts", "", "v1", True, ("sa",),
        names=_SUBDOMAIN,
        validate=_IDENTITY + "validate_serviceaccount",
        columns=_columns("NAME,SECRETS,AGE"),
        printer="knet.api.tables:serviceaccount_row",
        subresources=("token",),
    ),
    Resource(
        "Role", "roles", _RBAC, "v1", True, (),
        names=_IDENTITY + "rbac_name",
        validate=_IDENTITY + "validate_role",
        columns=_columns("NAME,CREATED AT"),
        printer="knet.api.tables:role_row",
    ),
    Resource(
        "ClusterRole", "clusterroles", _RBAC, "v1", False, (),
        names=_IDENTITY + "rbac_name",
        validate=_IDENTITY + "validate_clusterrole",
        columns=_columns("NAME,CREATED AT"),
        printer="knet.api.tables:role_row",
    ),
    Resource(
        "RoleBinding", "rolebindings", _RBAC, "v1", True, (),
        names=_IDENTITY + "rbac_name",
        validate=_IDENTITY + "validate_rolebinding",
        validate_update=_IDENTITY + "validate_binding_update",
        columns=_columns("NAME,ROLE,AGE", "USERS,GROUPS,SERVICEACCOUNTS"),
        printer="knet.api.tables:rolebinding_row",
    ),
    Resource(
        "ClusterRoleBinding", "clusterrolebindings", _RBAC, "v1", False, (),
        names=_IDENTITY + "rbac_name",
        validate=_IDENTITY + "validate_clusterrolebinding",
        validate_update=_IDENTITY + "validate_binding_update",
        columns=_columns("NAME,ROLE,AGE", "USERS,GROUPS,SERVICEACCOUNTS"),
        printer="knet.api.tables:rolebinding_row",
    ),
    Resource(
        "NetworkPolicy", "networkpolicies", "networking.k8s.io", "v1", True, ("netpol",),
        names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_networkpolicy",
        validate="knet.api.validation.networking:validate_networkpolicy",
        columns=_columns("NAME,POD-SELECTOR,AGE"),
        printer="knet.api.tables:networkpolicy_row",
    ),
    # network-policy-api's CRDs, served as built-in kinds at their alpha version.
    Resource(
        "AdminNetworkPolicy", "adminnetworkpolicies", "policy.networking.k8s.io", "v1alpha1", False, ("anp",),
        status=True, names=_SUBDOMAIN,
        defaults=_DEFAULTS + "default_adminnetworkpolicy",
        validate=_POLICY + "validate_adminnetworkpolicy",
        columns=_columns("NAME,PRIORITY,AGE"),
        printer="knet.api.tables:adminnetworkpolicy_row",
    ),
    Resource(
        "BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies", "policy.networking.k8s.io", "v1alpha1",
        False, ("banp",),
        status=True, names=_POLICY + "baseline_name",
        defaults=_DEFAULTS + "default_adminnetworkpolicy",
        validate=_POLICY + "validate_baselineadminnetworkpolicy",
        columns=_columns("NAME,AGE"),
        printer="knet.api.tables:default_row",
    ),
)

# Kinds a client creates and the server answers without storing anything:
# `kubectl auth can-i` (SelfSubjectAccessReview, SelfSubjectRulesReview for
# --list) and `kubectl auth whoami` (SelfSubjectReview). knet/api/authz.py
# answers them; they are routed and discovered, never listed or stored.
REVIEWS: tuple[Resource, ...] = tuple(
    Resource(kind, kind.lower() + "s", group, "v1", False, (), verbs=("create",))
    for kind, group in (("SelfSubjectAccessReview", "authorization.k8s.io"),
                        ("SelfSubjectRulesReview", "authorization.k8s.io"),
                        ("SelfSubjectReview", "authentication.k8s.io")))

# Everything discovery lists: the stored kinds and the reviews.
SERVED: tuple[Resource, ...] = RESOURCES + REVIEWS

_BY_KIND = {r.kind: r for r in RESOURCES}
_BY_PATH = {(r.group, r.version, r.plural): r for r in SERVED}
_BY_NAME: dict[str, Resource] = {}
for _r in RESOURCES:
    for _n in (_r.kind.lower(), _r.plural, *_r.short_names):
        _BY_NAME[_n] = _r


def by_kind(kind: str) -> Resource | None:
    return _BY_KIND.get(kind)


def by_path(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def lookup(name: str) -> Resource | None:
    """Find a resource by what a user types: kind, plural, singular or short name,
    optionally qualified by group (`deployments.apps`)."""
    key = name.lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    if "." in key:
        head, _, group = key.partition(".")
        r = _BY_NAME.get(head)
        if r and r.group == group:
            return r
    return None
