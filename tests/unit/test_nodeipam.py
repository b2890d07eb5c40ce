"""Node IPAM hands each node a podCIDR of the configured size from the podSubnet, and none twice."""

from __future__ import annotations

from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import nodeipam
from knet.controllers.base import View
from knet.store.sqlite import SqliteStore

NODES = by_kind("Node")


def _nodes(n: int) -> Registry:
    reg = Registry(SqliteStore(":memory:"))
    for i in range(n):
        reg.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}})
    return reg


def test_each_node_gets_its_own_cidr_of_the_mask_size():
    reg = _nodes(3)
    nodeipam.sync(View(reg), "10.244.0.0/16", node_prefix=23)
    cidrs = [reg.get(NODES, None, f"n{i}")["spec"]["podCIDR"] for i in range(3)]
    assert cidrs == ["10.244.0.0/23", "10.244.2.0/23", "10.244.4.0/23"]
    assert reg.get(NODES, None, "n1")["spec"]["podCIDRs"] == ["10.244.2.0/23"]


def test_an_exhausted_subnet_leaves_the_last_node_without_one():
    reg = _nodes(3)
    nodeipam.sync(View(reg), "10.244.0.0/23", node_prefix=24)
    assert [reg.get(NODES, None, f"n{i}").get("spec", {}).get("podCIDR") for i in range(3)] == [
        "10.244.0.0/24", "10.244.1.0/24", None]
