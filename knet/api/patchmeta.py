"""How lists and maps of the served kinds merge: the Go struct tags and
markers of k8s.io/api that knet/api/schema.py (the field types) leaves out.

Two mechanisms read them, and upstream declares them separately:
  strategic merge patch (kubectl apply, kubectl patch): the struct tags
    `patchStrategy:"merge" patchMergeKey:"name"` (STRATEGIC). A list without
    a tag is replaced whole by a patch; a list of scalars tagged merge is a
    set; `retainKeys` clears the keys a patch does not name.
  server-side apply (field ownership, managedFields): the markers
    `+listType=map +listMapKey=...`, `+listType=set`, `+mapType=atomic`,
    `+structType=atomic` (LIST_TYPES, ATOMIC_MAPS, ATOMIC_STRUCTS). A list
    without a marker is atomic: one owner for the whole list.
They disagree on purpose in places (container ports merge on containerPort
for a patch but are keyed by containerPort and protocol for apply), so each
table is transcribed from its own tags, as of k8s.io/api v0.37.

Keyed by (Go struct, JSON field), as the tags sit on the struct's fields.
"""

from __future__ import annotations

from knet.api import schema

# (struct, field) -> (patch strategies, merge key); merge key "" for a set of scalars.
STRATEGIC: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("ObjectMeta", "ownerReferences"): (("merge",), "uid"),
    ("ObjectMeta", "finalizers"): (("merge",), ""),
    ("Container", "ports"): (("merge",), "containerPort"),
    ("Container", "env"): (("merge",), "name"),
    ("Container", "volumeMounts"): (("merge",), "mountPath"),
    ("Container", "volumeDevices"): (("merge",), "devicePath"),
    ("EphemeralContainer", "ports"): (("merge",), "containerPort"),
    ("EphemeralContainer", "env"): (("merge",), "name"),
    ("EphemeralContainer", "volumeMounts"): (("merge",), "mountPath"),
    ("EphemeralContainer", "volumeDevices"): (("merge",), "devicePath"),
    ("ContainerStatus", "volumeMounts"): (("merge",), "mountPath"),
    ("PodSpec", "volumes"): (("merge", "retainKeys"), "name"),
    ("PodSpec", "initContainers"): (("merge",), "name"),
    ("PodSpec", "containers"): (("merge",), "name"),
    ("PodSpec", "ephemeralContainers"): (("merge",), "name"),
    ("PodSpec", "imagePullSecrets"): (("merge",), "name"),
    ("PodSpec", "hostAliases"): (("merge",), "ip"),
    ("PodSpec", "topologySpreadConstraints"): (("merge",), "topologyKey"),
    ("PodSpec", "schedulingGates"): (("merge",), "name"),
    ("PodSpec", "resourceClaims"): (("merge", "retainKeys"), "name"),
    ("PodStatus", "conditions"): (("merge",), "type"),
    ("PodStatus", "hostIPs"): (("merge",), "ip"),
    ("PodStatus", "podIPs"): (("merge",), "ip"),
    ("ServiceSpec", "ports"): (("merge",), "port"),
    ("ServiceStatus", "conditions"): (("merge",), "type"),
    ("NodeSpec", "podCIDRs"): (("merge",), ""),
    ("NodeStatus", "conditions"): (("merge",), "type"),
    ("NodeStatus", "addresses"): (("merge",), "type"),
    ("NamespaceStatus", "conditions"): (("merge",), "type"),
    ("DeploymentSpec", "strategy"): (("retainKeys",), ""),
    ("DeploymentStatus", "conditions"): (("merge",), "type"),
    ("ReplicaSetStatus", "conditions"): (("merge",), "type"),
    ("DaemonSetStatus", "conditions"): (("merge",), "type"),
    ("StatefulSetStatus", "conditions"): (("merge",), "type"),
}

# Kinds served without Go struct info upstream (CustomResourceDefinitions there):
# a strategic merge patch of them is refused with 415, as for any custom resource.
NO_STRATEGIC = frozenset({"AdminNetworkPolicy", "BaselineAdminNetworkPolicy"})

# (struct, field) -> ("set",) or ("map", key fields...) for server-side apply.
_MAP = "map"
LIST_TYPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ObjectMeta", "ownerReferences"): (_MAP, "uid"),
    ("ObjectMeta", "finalizers"): ("set",),
    ("ResourceRequirements", "claims"): (_MAP, "name"),
    ("Container", "ports"): (_MAP, "containerPort", "protocol"),
    ("Container", "env"): (_MAP, "name"),
    ("Container", "volumeMounts"): (_MAP, "mountPath"),
    ("Container", "volumeDevices"): (_MAP, "devicePath"),
    ("EphemeralContainer", "ports"): (_MAP, "containerPort", "protocol"),
    ("EphemeralContainer", "env"): (_MAP, "name"),
    ("EphemeralContainer", "volumeMounts"): (_MAP, "mountPath"),
    ("EphemeralContainer", "volumeDevices"): (_MAP, "devicePath"),
    ("ContainerStatus", "volumeMounts"): (_MAP, "mountPath"),
    ("PodSpec", "volumes"): (_MAP, "name"),
    ("PodSpec", "initContainers"): (_MAP, "name"),
    ("PodSpec", "containers"): (_MAP, "name"),
    ("PodSpec", "ephemeralContainers"): (_MAP, "name"),
    ("PodSpec", "imagePullSecrets"): (_MAP, "name"),
    ("PodSpec", "hostAliases"): (_MAP, "ip"),
    ("PodSpec", "topologySpreadConstraints"): (_MAP, "topologyKey", "whenUnsatisfiable"),
    ("PodSpec", "schedulingGates"): (_MAP, "name"),
    ("PodSpec", "resourceClaims"): (_MAP, "name"),
    ("PodStatus", "conditions"): (_MAP, "type"),
    ("PodStatus", "podIPs"): (_MAP, "ip"),
    ("ServiceSpec", "ports"): (_MAP, "port", "protocol"),
    ("ServiceStatus", "conditions"): (_MAP, "type"),
    ("NodeSpec", "podCIDRs"): ("set",),
    ("NodeStatus", "conditions"): (_MAP, "type"),
    ("NodeStatus", "addresses"): (_MAP, "type"),
    ("NamespaceStatus", "conditions"): (_MAP, "type"),
    ("DeploymentStatus", "conditions"): (_MAP, "type"),
    ("ReplicaSetStatus", "conditions"): (_MAP, "type"),
    ("DaemonSetStatus", "conditions"): (_MAP, "type"),
    ("StatefulSetStatus", "conditions"): (_MAP, "type"),
    ("Endpoint", "addresses"): ("set",),
}

# Key fields a list item may omit, with the default the OpenAPI schema gives them
# (`+default="TCP"` on the protocol of ports), so `k:{"containerPort":80,"protocol":"TCP"}`.
KEY_DEFAULTS = {"protocol": "TCP"}

ATOMIC_MAPS = frozenset({("PodSpec", "nodeSelector"), ("ServiceSpec", "selector")})
ATOMIC_STRUCTS = frozenset({
    "LabelSelector", "ObjectFieldSelector", "ResourceFieldSelector", "ConfigMapKeySelector",
    "SecretKeySelector", "NodeSelector", "ObjectReference", "LocalObjectReference",
})


def resolve(t: str) -> str:
    """A type expression with its alias (ResourceList) spelled out."""
    return schema.ALIASES.get(t, t)


def field_type(struct: str | None, key: str) -> str | None:
    """The type of `key` in `struct`; None when the struct has no such field
    or the value is free-form (then nothing is known below it)."""
    if struct is None:
        return None
    t = schema.STRUCTS.get(struct, {}).get(key)
    return resolve(t) if t and t != "any" else None


def element_struct(t: str | None) -> str | None:
    """The struct a type expression holds: T, []T and map[string]T give T."""
    if t is None:
        return None
    while t.startswith("[]") or t.startswith("map[string]"):
        t = resolve(t[2:] if t.startswith("[]") else t[len("map[string]"):])
    return t if t in schema.STRUCTS else None
