"""Node IPAM: each node gets a podCIDR (/24 by default) from the cluster's
podSubnet, recorded on the Node as kube-controller-manager's range
allocator does; the node's CNI plugin allocates pod addresses from it."""

from __future__ import annotations

import ipaddress

from knet.api.objects import deep_copy
from knet.controllers.base import View


def sync(view: View, pod_subnet: str, node_prefix: int = 24) -> None:
    nodes = view.list("Node")
    taken = {n["spec"]["podCIDR"] for n in nodes if n.get("spec", {}).get("podCIDR")}
    free = (str(c) for c in ipaddress.ip_network(pod_subnet).subnets(new_prefix=node_prefix) if str(c) not in taken)
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        if node.get("spec", {}).get("podCIDR"):
            continue
        cidr = next(free, None)
        if cidr is None:
            return  # exhausted: the node stays without pods networking, as upstream reports CIDRNotAvailable
        new = deep_copy(node)
        new.setdefault("spec", {})["podCIDR"] = cidr
        new["spec"]["podCIDRs"] = [cidr]
        view.update("Node", new)
