"""API discovery: what /api, /apis and /apis/GROUP/VERSION serve, built from
the kinds' records so that each group lists the versions it really has
(AdminNetworkPolicy's policy.networking.k8s.io is served at v1alpha1, not v1).

Pure functions of the records, so a test can serve records the cluster does not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knet.api.resources import Resource

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """A sort key putting the version a client should prefer first, as
    apimachinery's CompareKubeAwareVersionStrings orders them: GA before beta
    before alpha, higher numbers first; versions not of that form last, by name."""
    m = _KUBE_VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    major, level, minor = m.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -int(major), -int(minor or 0), version)


def group_versions(records: Iterable[Resource]) -> dict[str, list[str]]:
    """Each group's versions, preferred first ("" is the core group)."""
    found: dict[str, set[str]] = {}
    for r in records:
        found.setdefault(r.group, set()).add(r.version)
    return {g: sorted(vs, key=version_priority) for g, vs in found.items()}


def api_versions(records: Iterable[Resource]) -> dict:
    """/api: the core group's versions."""
    return {"kind": "APIVersions", "versions": group_versions(records).get("", [])}


def api_groups(records: Iterable[Resource]) -> dict:
    """/apis: every named group with its versions; the preferred one first."""
    groups = []
    for group, versions in sorted(group_versions(records).items()):
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


# What each subresource is, as upstream's discovery lists it: the kind it
# answers with (None: the parent's own kind), that kind's group and version
# when it is not the parent's ("" "" : the parent's), and its verbs.
SUBRESOURCES: dict[str, tuple[str | None, str, str, tuple[str, ...]]] = {
    "status": (None, "", "", ("get", "patch", "update")),
    "scale": ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
    "binding": ("Binding", "", "", ("create",)),
    "eviction": ("Eviction", "policy", "v1", ("create",)),
    "log": (None, "", "", ("get",)),
    "exec": ("PodExecOptions", "", "", ("create", "get")),
    "attach": ("PodAttachOptions", "", "", ("create", "get")),
    "portforward": ("PodPortForwardOptions", "", "", ("create", "get")),
    "token": ("TokenRequest", "authentication.k8s.io", "v1", ("create",)),
}


def storage_version_hash(r: Resource) -> str:
    """apiserver's StorageVersionHash: the first 8 bytes of sha256("group/version/Kind"),
    base64; clients (the storage version migrator) compare it across discoveries."""
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()[:8]).decode()


def subresources_of(r: Resource) -> list[str]:
    """The subresources the kind serves, sorted as discovery sorts them."""
    return sorted({*r.subresources, *(("status",) if r.status else ())})


def resource_entry(r: Resource) -> dict:
    """One kind's APIResource, with the fields upstream leaves out when empty left out."""
    entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "verbs": list(r.served_verbs)}
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.stored:
        entry["storageVersionHash"] = storage_version_hash(r)
    return entry


def subresource_entry(r: Resource, sub: str) -> dict:
    kind, group, version, verbs = SUBRESOURCES[sub]
    entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced}
    if group or version:
        entry.update(group=group, version=version)
    entry.update(kind=kind or r.kind, verbs=list(verbs))
    return entry


def api_resources(records: Iterable[Resource], group_version: str) -> dict | None:
    """/api/v1 or /apis/GROUP/VERSION: the kinds served there and their
    subresources, sorted by name as upstream lists them; None if nothing is."""
    found = [r for r in records if r.api_version == group_version]
    if not found:
        return None
    entries = []
    for r in found:
        entries.append(resource_entry(r))
        entries += [subresource_entry(r, sub) for sub in subresources_of(r)]
    entries.sort(key=lambda e: e["name"])
    doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}
    if "/" not in group_version:  # the core group's list carries no apiVersion, as upstream's
        del doc["apiVersion"]
    return doc


def document(path: str, records: Iterable[Resource]) -> dict | None:
    """The discovery document at `path`, or None if `path` is not one."""
    records = tuple(records)
    if path == "/api":
        return api_versions(records)
    if path == "/apis":
        return api_groups(records)
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "api":
        return api_resources(records, parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return api_resources(records, f"{parts[1]}/{parts[2]}")
    return None


# -- aggregated discovery (apidiscovery.k8s.io) ------------------------------------------

AGGREGATED_VERSIONS = ("v2", "v2beta1")


def aggregated_version(accept: str) -> str | None:
    """The apidiscovery.k8s.io version the Accept header asks for first, or None
    when plain JSON comes first (then the legacy documents are served, and
    client-go fetches each group version on its own)."""
    for alternative in accept.split(","):
        media, *params = [p.strip() for p in alternative.split(";")]
        if media not in ("application/json", "*/*", "application/*"):
            continue
        options = dict(p.partition("=")[::2] for p in params if "=" in p)
        if not options.get("as"):
            return None
        if (options.get("g"), options.get("as")) == ("apidiscovery.k8s.io", "APIGroupDiscoveryList") and \
                options.get("v") in AGGREGATED_VERSIONS:
            return options["v"]
    return None


def content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def _kind_ref(group: str, version: str, kind: str) -> dict:
    return {"group": group, "version": version, "kind": kind}


def resource_discovery(r: Resource) -> dict:
    """One kind's APIResourceDiscovery, its subresources inside it."""
    entry: dict = {"resource": r.plural, "responseKind": _kind_ref(r.group, r.version, r.kind),
                   "scope": "Namespaced" if r.namespaced else "Cluster", "singularResource": r.singular,
                   "verbs": list(r.served_verbs)}
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    subs = []
    for sub in subresources_of(r):
        kind, group, version, verbs = SUBRESOURCES[sub]
        ref = _kind_ref(group, version, kind) if group or version else _kind_ref(r.group, r.version, kind or r.kind)
        subs.append({"subresource": sub, "responseKind": ref, "verbs": list(verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(path: str, records: Iterable[Resource], version: str = "v2") -> dict | None:
    """/api or /apis as one APIGroupDiscoveryList: every group, version and
    resource in one answer, the preferred version first."""
    if path not in ("/api", "/apis"):
        return None
    records = tuple(records)
    items = []
    for group, versions in sorted(group_versions(records).items()):
        if (group == "") != (path == "/api"):
            continue
        meta: dict = {"creationTimestamp": None}
        if group:
            meta["name"] = group
        items.append({"metadata": meta, "versions": [
            {"version": v, "resources": sorted((resource_discovery(r) for r in records
                                                if r.group == group and r.version == v),
                                               key=lambda e: e["resource"]),
             "freshness": "Current"}
            for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
            "items": items}


def serve_aggregated(path: str, accept: str, records: Iterable[Resource]) -> tuple[list, bytes] | None:
    """(headers, body) of the aggregated answer when the client asks for one; None otherwise."""
    if path not in ("/api", "/apis"):
        return None
    version = aggregated_version(accept)
    if version is None:
        return None
    import json

    data = json.dumps(aggregated(path, records, version), separators=(",", ":")).encode()
    return [("Content-Type", content_type(version)), ("Content-Length", str(len(data))), ("Vary", "Accept")], data
