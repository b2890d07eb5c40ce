"""Service allocation, EndpointSlices and Service environment variables
(the control-plane half of Services), against a real registry."""

from __future__ import annotations

import pytest

from knet.api.allocators import ServiceAllocator
from knet.api.errors import ApiError
from knet.api.objects import deep_copy
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import endpointslice
from knet.controllers.base import View
from knet.node.podspec import service_env
from knet.store.sqlite import SqliteStore

SVC, PODS, SLICES = by_kind("Service"), by_kind("Pod"), by_kind("EndpointSlice")


@pytest.fixture
def reg(tmp_path):
    r = Registry(SqliteStore(str(tmp_path / "s.db")), allocators={"Service": ServiceAllocator(
        "10.96.0.0/28", "30000-30002")})
    r.bootstrap()
    return r


def svc(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_cluster_ips_are_unique_and_kubernetes_gets_the_first(reg):
    k = reg.create(SVC, "default", svc("kubernetes", ports=[{"port": 443}]))
    assert k["spec"]["clusterIP"] == "10.96.0.1"
    ips = {reg.create(SVC, "default", svc(f"s{i}"))["spec"]["clusterIP"] for i in range(5)}
    assert len(ips) == 5 and "10.96.0.1" not in ips


def test_explicit_cluster_ip_validated(reg):
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("far", clusterIP="10.100.0.5"))
    assert e.value.details["causes"][0]["field"] == "spec.clusterIPs"
    assert e.value.message == (
        'Service "far" is invalid: spec.clusterIPs: Invalid value: []string{"10.100.0.5"}: failed to allocate IP '
        "10.100.0.5: the provided IP (10.100.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/28")
    reg.create(SVC, "default", svc("a", clusterIP="10.96.0.9"))
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("b", clusterIP="10.96.0.9"))
    assert e.value.message == ('Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.9"}: '
                               "failed to allocate IP 10.96.0.9: provided IP is already allocated")
    assert e.value.details["causes"][0]["field"] == "spec.clusterIPs"
    assert reg.find(SVC, "default", "b") is None


def test_exhausted_service_range_is_a_clear_error_and_allocates_nothing(reg):
    for i in range(13):  # a /28 has 14 hosts, one of them kept for kubernetes
        reg.create(SVC, "default", svc(f"s{i}"))
    rev = reg.store.revision()
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("one-too-many"))
    assert "failed to allocate a serviceIP: range is full" in e.value.message
    assert reg.store.revision() == rev


def test_node_ports_allocated_checked_and_kept(reg):
    a = reg.create(SVC, "default", svc("a", type="NodePort"))
    taken = a["spec"]["ports"][0]["nodePort"]
    assert 30000 <= taken <= 30002
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("b", type="NodePort", ports=[{"port": 80, "nodePort": taken}]))
    assert e.value.details["causes"][0]["field"] == "spec.ports[0].nodePort"
    with pytest.raises(ApiError) as e:
        reg.create(SVC, "default", svc("c", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert "not in the valid range" in e.value.message
    # UDP and TCP share numbers independently
    u = reg.create(SVC, "default", svc("u", type="NodePort", ports=[{"port": 53, "protocol": "UDP", "nodePort": taken}]))
    assert u["spec"]["ports"][0]["nodePort"] == taken
    again = reg.patch(SVC, "default", "a", {"metadata": {"labels": {"x": "y"}}})
    assert again["spec"]["ports"][0]["nodePort"] == taken
    back = reg.patch(SVC, "default", "a", {"spec": {"type": "ClusterIP"}})
    assert "nodePort" not in back["spec"]["ports"][0]


def pod(name, ip, ready=True, labels=None, ports=None, deleting=False):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": "web"}},
         "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "agnhost", "ports": ports or [{"containerPort": 8080,
                                                                                      "name": "http"}]}]}}
    return p, {"phase": "Running", "podIP": ip,
               "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}


def add_pod(reg, name, ip, **kw):
    body, status = pod(name, ip, **kw)
    created = reg.create(PODS, "default", body)
    new = deep_copy(created)
    new["status"] = status
    return reg.update(PODS, "default", name, new, "status")


def slices_of(reg, name):
    return [s for s in reg.list(SLICES, "default")[0]
            if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == name]


def test_endpointslices_follow_selector_readiness_and_named_ports(reg):
    reg.create(SVC, "default", svc("web", selector={"app": "web"}, ports=[{"name": "http", "port": 80,
                                                                            "targetPort": "http"}]))
    add_pod(reg, "a", "10.244.1.2")
    add_pod(reg, "b", "10.244.1.3", ready=False)
    add_pod(reg, "c", "10.244.1.4", ports=[{"containerPort": 9090, "name": "http"}])
    add_pod(reg, "other", "10.244.1.9", labels={"app": "db"})
    endpointslice.sync(View(reg))
    slices = slices_of(reg, "web")
    by_port = {s["ports"][0]["port"]: s for s in slices}
    assert set(by_port) == {8080, 9090}  # the name resolves per pod
    eps = {e["addresses"][0]: e["conditions"] for e in by_port[8080]["endpoints"]}
    assert eps == {"10.244.1.2": {"ready": True, "serving": True, "terminating": False},
                   "10.244.1.3": {"ready": False, "serving": False, "terminating": False}}
    assert by_port[8080]["ports"][0]["name"] == "http" and by_port[8080]["endpoints"][0]["nodeName"] == "n1"
    reg.delete(PODS, "default", "a")  # bound: graceful, so it turns terminating
    endpointslice.sync(View(reg))
    term = next(e for s in slices_of(reg, "web") for e in s["endpoints"] if e["addresses"] == ["10.244.1.2"])
    assert term["conditions"] == {"ready": False, "serving": True, "terminating": True}
    rev = reg.store.revision()
    endpointslice.sync(View(reg))
    assert reg.store.revision() == rev  # nothing changed, nothing written


def test_at_most_100_endpoints_per_slice(reg):
    reg.create(SVC, "default", svc("big", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}]))
    for i in range(150):
        add_pod(reg, f"p{i}", f"10.244.{i // 200}.{i % 250 + 2}")
    endpointslice.sync(View(reg))
    sizes = sorted(len(s["endpoints"]) for s in slices_of(reg, "big"))
    assert sizes == [50, 100]


def test_service_environment_variables():
    env = service_env([
        {"metadata": {"name": "redis-primary"}, "spec": {"clusterIP": "10.96.0.11", "ports": [
            {"name": "redis", "port": 6379, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}},
        {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}])
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.11"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379" and env["REDIS_PRIMARY_SERVICE_PORT_REDIS"] == "6379"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.96.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_53_UDP"] == "udp://10.96.0.11:53"
    assert env["REDIS_PRIMARY_PORT_53_UDP_ADDR"] == "10.96.0.11"
    assert not any(k.startswith("HEADLESS") for k in env)
