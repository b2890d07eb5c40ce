"""A controller failure reaches the user: a Service with more ports than an
EndpointSlice may hold (a Service may have any number, a slice at most 100, as
upstream) gets a FailedToUpdateEndpointSlices Warning Event, and `knet apply
--wait` prints it and exits non-zero, where it used to print nothing and exit 0."""

from __future__ import annotations

import json

from knet.harness.cluster import Cluster


def service(name: str, ports: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": f"p{i}", "port": 1000 + i} for i in range(ports)]}}


def pod(app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{app}-1", "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "knet/builtin", "ports": [{"containerPort": 1000}]}]}}


def manifest(*objs: dict) -> str:
    return "".join(f"---\n{json.dumps(o)}\n" for o in objs)


def test_apply_wait_reports_a_service_its_controller_cannot_realize():
    with Cluster.up(workers=1) as c:
        c.apply(manifest(pod("small")))
        c.wait_pod("default", "small-1", lambda p: p["status"].get("podIP"))
        ok = c.apply(manifest(service("small", 100)), check=False)
        assert ok.returncode == 0 and "Warning" not in ok.stderr, ok.stdout + ok.stderr
        assert c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=small")

        c.apply(manifest(pod("big")))
        c.wait_pod("default", "big-1", lambda p: p["status"].get("podIP"))
        out = c.apply(manifest(service("big", 101)), check=False)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "service/big created" in out.stdout
        assert "Warning: service/big: FailedToUpdateEndpointSlices: Error updating Endpoint Slices for Service " \
               "default/big: " in out.stderr
        assert "error: applied but not realized: service/big" in out.stderr
        events = [e for e in c.list("Event", "default") if e["involvedObject"]["name"] == "big"]
        assert [(e["type"], e["reason"]) for e in events] == [("Warning", "FailedToUpdateEndpointSlices")]
        assert "FailedToUpdateEndpointSlices" in c.knet("describe", "service", "big").stdout
