"""Node IPAM: each node gets a podCIDR (/24 by default) from the cluster's
podSubnet, recorded on the Node as kube-controller-manager's range
allocator does; the node's CNI plugin allocates pod addresses from it."""

from __future__ import annotations

import ipaddress

from knet.api.objects import deep_copy
from knet.controllers.base import View

WATCHES = ("Node",)


def sync(view: View, pod_subnet: str, node_prefix: int = 24) -> None:
    for node in sorted(view.list("Node"), key=lambda n: n["metadata"]["name"]):
        sync_key(view, node["metadata"]["name"], pod_subnet, node_prefix)


def sync_key(view: View, key: str, pod_subnet: str, node_prefix: int = 24) -> None:
    node = view.get("Node", key)
    if node is None or node.get("spec", {}).get("podCIDR"):
        return
    taken = {n["spec"]["podCIDR"] for n in view.list("Node") if n.get("spec", {}).get("podCIDR")}
    free = (str(c) for c in ipaddress.ip_network(pod_subnet).subnets(new_prefix=node_prefix) if str(c) not in taken)
    cidr = next(free, None)
    if cidr is None:
        return  # exhausted: the node stays without pods networking, as upstream reports CIDRNotAvailable
    new = deep_copy(node)
    new.setdefault("spec", {})["podCIDR"] = cidr
    new["spec"]["podCIDRs"] = [cidr]
    view.update("Node", new)


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    if new is not None and not new.get("spec", {}).get("podCIDR"):
        return {new["metadata"]["name"]}
    return set()
