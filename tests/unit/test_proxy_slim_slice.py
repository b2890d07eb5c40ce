"""The agent's EndpointSlice cache holds knet.proxy.model.slim_slice of each slice
(its informer transform): the proxy reads the same service ports from it as from
the whole slice, endpoint conditions of every shape included, and the slim slice
drops what the proxy never reads (targetRefs, annotations)."""

from __future__ import annotations

import copy
import itertools

from knet.api.objects import shared
from knet.proxy.model import service_ports, slim_slice

SERVICE = {"metadata": {"namespace": "default", "name": "web"},
           "spec": {"clusterIP": "10.96.0.20", "type": "NodePort", "externalTrafficPolicy": "Local",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                              {"name": "dns", "port": 53, "protocol": "UDP"}]}}


def whole_slice(name: str, conditions: list[dict | None]) -> dict:
    eps = []
    for i, cond in enumerate(conditions):
        ep = {"addresses": [f"10.244.{i % 3}.{10 + i}"],
              "targetRef": {"kind": "Pod", "namespace": "default", "name": f"web-{i}", "uid": f"uid-{i}"}}
        if cond is not None:
            ep["conditions"] = cond
        if i % 2:
            ep["nodeName"] = f"worker-{i % 3}"
        eps.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "default", "name": name, "uid": "s", "resourceVersion": "9",
                         "labels": {"kubernetes.io/service-name": "web"},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"},
                         "ownerReferences": [{"kind": "Service", "name": "web", "uid": "svc"}]},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353,
                                                                         "protocol": "UDP"}],
            "endpoints": eps}


SHAPES = [None, {}] + [dict(zip(("ready", "serving", "terminating"), v, strict=True))
                       for v in itertools.product((True, False), repeat=3)]


def test_the_proxy_reads_the_same_ports_and_endpoints_from_slim_slices():
    for node in ("", "worker-1"):
        for shapes in (SHAPES, [s for s in SHAPES if s and not s["ready"]], [{"ready": False, "serving": True,
                                                                               "terminating": True}]):
            slices = [whole_slice("web-a", shapes), whole_slice("web-b", list(reversed(shapes)))]
            want = service_ports([SERVICE], slices, node)
            assert want and any(sp.endpoints for sp in want)
            assert service_ports([SERVICE], [slim_slice(s) for s in copy.deepcopy(slices)], node) == want


def test_the_slim_slice_drops_what_the_proxy_never_reads():
    slim = slim_slice(whole_slice("web-a", SHAPES))
    assert set(slim) == {"metadata", "addressType", "ports", "endpoints"}
    assert set(slim["metadata"]) == {"namespace", "name", "uid", "resourceVersion", "labels"}
    assert all(set(e) <= {"addresses", "conditions", "nodeName"} for e in slim["endpoints"])
    one, two = slim_slice(whole_slice("a", [{"ready": True}])), slim_slice(whole_slice("b", [{"ready": True}]))
    assert one["endpoints"][0]["conditions"] is two["endpoints"][0]["conditions"]  # one dict per shape


def test_shared_dicts_are_equal_and_typed_alike():
    a, b = shared({"ready": True, "serving": True}), shared({"ready": True, "serving": True})
    assert a is b
    assert shared({"ready": 1})["ready"] is 1  # noqa: F632 - 1 == True, but the int stays an int
    nested = {"x": [1]}
    assert shared(nested) is nested and shared({"x": [1]}) is not nested
