"""The Service allocators' state kept from store events (knet/api/allocators.py):
exhaustion, release on delete and on a type change, interleaved creates and
deletes, rebuild from the store, and dry runs that allocate nothing."""

from __future__ import annotations

import ipaddress
import random

import pytest

from knet.api.allocators import Bitmap, ServiceAllocator, range_offset
from knet.api.errors import ApiError
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.store.sqlite import SqliteStore

SVC = by_kind("Service")


def registry(path, subnet="10.96.0.0/28", ports="30000-30004", seed=1):
    reg = Registry(SqliteStore(str(path)), allocators={"Service": ServiceAllocator(
        subnet, ports, rng=random.Random(seed))})
    reg.bootstrap()
    return reg


def svc(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def stored_values(reg):
    ips, ports = [], []
    for s in reg.list(SVC)[0]:
        ips += [ip for ip in s["spec"].get("clusterIPs") or [] if ip != "None"]
        ports += [(p["nodePort"], p.get("protocol", "TCP")) for p in s["spec"]["ports"] if p.get("nodePort")]
    return ips, ports


def allocator_values(reg):
    a = reg.allocators["Service"]
    ips = sorted(str(ipaddress.ip_address(v)) for v in a.ips.owner)
    ports = sorted((v, proto) for proto, b in a.node_ports.items() for v in b.owner)
    return ips, ports


def test_range_offsets_as_upstream():
    assert range_offset(14, 16, 256, 16) == 0  # a small range has no static band
    assert range_offset(1 << 20, 16, 256, 16) == 256  # a /12
    assert range_offset(2768, 16, 128, 32) == 86  # 30000-32767


def test_bitmap_prefers_the_dynamic_band_and_is_full_by_count():
    b = Bitmap(100, 20, 16, random.Random(3))
    got = [b.next_free() for _ in range(1)]
    assert 116 <= got[0] < 120
    for v in range(116, 120):
        b.take(v, "k")
    assert b.next_free() < 116  # then the static band
    for v in range(100, 116):
        b.take(v, "k")
    assert b.next_free() is None
    b.release(105, "other")  # only the owner releases
    assert b.next_free() is None
    b.release(105, "k")
    assert b.next_free() == 105


def test_exhaustion_then_release_on_delete(tmp_path):
    reg = registry(tmp_path / "s.db")
    names = [f"s{i}" for i in range(14)]  # a /28 has 14 hosts; .1 stays for default/kubernetes
    for n in names[:13]:
        reg.create(SVC, "default", svc(n))
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("more"))
    assert "failed to allocate a serviceIP: range is full" in e.value.message
    freed = reg.get(SVC, "default", "s4")["spec"]["clusterIP"]
    reg.delete(SVC, "default", "s4")
    assert reg.create(SVC, "default", svc("more"))["spec"]["clusterIP"] == freed
    for i in range(5):
        reg.create(SVC, "default", svc(f"np{i}", clusterIP="None", type="ClusterIP"))
    # NodePorts: five in the range, the sixth is refused, a type change frees one
    for i in range(5):
        reg.patch(SVC, "default", f"s{i if i != 4 else 5}", {"spec": {"type": "NodePort"}})
    with pytest.raises(ApiError) as e:
        reg.patch(SVC, "default", "s6", {"spec": {"type": "NodePort"}})
    assert "failed to allocate a nodePort: range is full" in e.value.message
    port = reg.get(SVC, "default", "s0")["spec"]["ports"][0]["nodePort"]
    reg.patch(SVC, "default", "s0", {"spec": {"type": "ClusterIP"}})
    assert reg.patch(SVC, "default", "s6", {"spec": {"type": "NodePort"}})["spec"]["ports"][0]["nodePort"] == port
    assert allocator_values(reg) == tuple(sorted(x) for x in stored_values(reg))


def test_dry_run_and_a_refused_create_allocate_nothing(tmp_path):
    reg = registry(tmp_path / "s.db", ports="30000-30000")
    before = allocator_values(reg)
    dry = reg.create(SVC, "default", svc("d", type="NodePort"), dry_run=True)
    assert dry["spec"]["ports"][0]["nodePort"] == 30000
    assert allocator_values(reg) == before
    with pytest.raises(ApiError):  # invalid: refused after allocation chose values
        reg.create(SVC, "default", svc("bad", type="NodePort", ports=[{"port": 80}, {"port": 81, "nodePort": 1}]))
    assert allocator_values(reg) == before
    real = reg.create(SVC, "default", svc("r", type="NodePort"))
    assert real["spec"]["ports"][0]["nodePort"] == 30000


def test_interleaved_creates_updates_and_deletes_never_share_a_value(tmp_path):
    reg = registry(tmp_path / "s.db", subnet="10.96.0.0/26", ports="30000-30039")
    rnd = random.Random(7)
    live: set[str] = set()
    for _ in range(400):
        name = f"s{rnd.randrange(40)}"
        try:
            if name in live and rnd.random() < 0.5:
                reg.delete(SVC, "default", name)
                live.discard(name)
            elif name in live:
                kind = rnd.choice(("ClusterIP", "NodePort", "LoadBalancer"))
                reg.patch(SVC, "default", name, {"spec": {"type": kind}})
            else:
                reg.create(SVC, "default", svc(name, type=rnd.choice(("ClusterIP", "NodePort"))),
                           dry_run=rnd.random() < 0.2)
                live.add(name) if reg.find(SVC, "default", name) else None
        except ApiError as e:
            assert "range is full" in e.message
        ips, ports = stored_values(reg)
        assert len(ips) == len(set(ips)) and len(ports) == len(set(ports))
    assert allocator_values(reg) == (sorted(ips), sorted(ports))


def test_rebuilt_from_the_store_after_a_restart(tmp_path):
    reg = registry(tmp_path / "s.db")
    for i in range(3):
        reg.create(SVC, "default", svc(f"s{i}", type="NodePort"))
    ips, ports = stored_values(reg)
    reg.store.close()
    again = registry(tmp_path / "s.db", seed=1)  # the same random start: only the rebuilt state avoids reuse
    assert allocator_values(again) == ([], [])  # not bound until first used
    new = again.create(SVC, "default", svc("s3", type="NodePort"))
    assert new["spec"]["clusterIP"] not in ips
    assert (new["spec"]["ports"][0]["nodePort"], "TCP") not in ports
    assert allocator_values(again) == tuple(sorted(x) for x in stored_values(again))
