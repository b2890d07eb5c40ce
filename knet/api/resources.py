"""The kinds the API serves: where each lives (group/version/plural), whether it
is namespaced, and the short names kubectl users type."""

from __future__ import annotations

from collections import namedtuple

# A named tuple rather than a dataclass: this module is on the CLI's start-up
# path, and dataclasses costs ~10 ms of imports there. group is "" for the core group.
_Fields = namedtuple("_Fields", "kind plural group version namespaced short_names", defaults=((),))


class Resource(_Fields):
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


RESOURCES: tuple[Resource, ...] = (
    Resource("Namespace", "namespaces", "", "v1", False, ("ns",)),
    Resource("Node", "nodes", "", "v1", False, ("no",)),
    Resource("Pod", "pods", "", "v1", True, ("po",)),
    Resource("Service", "services", "", "v1", True, ("svc",)),
    Resource("Event", "events", "", "v1", True, ("ev",)),
    Resource("Deployment", "deployments", "apps", "v1", True, ("deploy",)),
    Resource("ReplicaSet", "replicasets", "apps", "v1", True, ("rs",)),
    Resource("DaemonSet", "daemonsets", "apps", "v1", True, ("ds",)),
    Resource("StatefulSet", "statefulsets", "apps", "v1", True, ("sts",)),
    Resource("EndpointSlice", "endpointslices", "discovery.k8s.io", "v1", True, ()),
    Resource("NetworkPolicy", "networkpolicies", "networking.k8s.io", "v1", True, ("netpol",)),
)

_BY_KIND = {r.kind: r for r in RESOURCES}
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
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
