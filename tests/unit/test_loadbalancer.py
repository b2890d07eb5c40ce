"""The LoadBalancer IP controller (knet/controllers/loadbalancer.py) driven by
the key-driven manager over a real registry: the pool's addresses in order,
<pending> with an AllocationFailed warning when it is empty, and the pending
Service retried when an address frees (a delete, a type change)."""

from __future__ import annotations

import random

from knet.api.allocators import ServiceAllocator
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import loadbalancer
from knet.controllers.loop import Manager
from knet.store.sqlite import SqliteStore

SVC, EVENTS = by_kind("Service"), by_kind("Event")


def setup(tmp_path, pool="192.168.56.200-192.168.56.201"):
    reg = Registry(SqliteStore(str(tmp_path / "s.db")), allocators={"Service": ServiceAllocator(
        "10.96.0.0/24", "30000-30100", rng=random.Random(1))})
    reg.bootstrap()
    return reg, Manager(reg, [loadbalancer.controller(pool)])


def lb(name, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec}}


def ip_of(reg, name):
    ingress = (reg.get(SVC, "default", name).get("status", {}).get("loadBalancer") or {}).get("ingress")
    return ingress[0]["ip"] if ingress else None


def events(reg, name):
    return [(e["type"], e["reason"], e["message"]) for e in reg.list(EVENTS, "default")[0]
            if e["involvedObject"]["name"] == name]


def test_pending_on_an_exhausted_pool_then_retried_when_an_address_frees(tmp_path):
    reg, manager = setup(tmp_path)
    for name in ("a", "b", "c"):
        reg.create(SVC, "default", lb(name))
    manager.drain()
    assert (ip_of(reg, "a"), ip_of(reg, "b"), ip_of(reg, "c")) == ("192.168.56.200", "192.168.56.201", None)
    assert ("Normal", "IPAllocated", 'Assigned IP ["192.168.56.200"]') in events(reg, "a")
    assert ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/c": no available IPs') in events(
        reg, "c")
    kept = reg.patch(SVC, "default", "a", {"metadata": {"labels": {"v": "2"}}})
    manager.drain()
    assert kept["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.56.200" == ip_of(reg, "a")
    reg.delete(SVC, "default", "a")
    manager.drain()
    assert ip_of(reg, "c") == "192.168.56.200"
    assert ("Normal", "IPAllocated", 'Assigned IP ["192.168.56.200"]') in events(reg, "c")
    # a type change gives the address back too
    reg.create(SVC, "default", lb("d"))
    manager.drain()
    assert ip_of(reg, "d") is None
    reg.patch(SVC, "default", "b", {"spec": {"type": "ClusterIP"}})
    manager.drain()
    assert ip_of(reg, "b") is None and ip_of(reg, "d") == "192.168.56.201"


def test_requested_address_class_and_rebuild(tmp_path):
    reg, manager = setup(tmp_path)
    reg.create(SVC, "default", lb("want", loadBalancerIP="192.168.56.201"))
    reg.create(SVC, "default", lb("outside", loadBalancerIP="10.1.1.1"))
    reg.create(SVC, "default", lb("other", loadBalancerClass="example.com/lb"))
    manager.drain()
    assert ip_of(reg, "want") == "192.168.56.201"
    assert ip_of(reg, "outside") is None and ip_of(reg, "other") is None
    assert ("Warning", "AllocationFailed",
            'Failed to allocate IP for "default/outside": "10.1.1.1" is not allowed in config') in events(reg, "outside")
    assert events(reg, "other") == []
    # a restarted control plane: a new controller rebuilds the pool from the store
    manager.close()
    again = Manager(reg, [loadbalancer.controller("192.168.56.200-192.168.56.201")])
    reg.create(SVC, "default", lb("next"))
    again.drain()
    assert ip_of(reg, "next") == "192.168.56.200"
