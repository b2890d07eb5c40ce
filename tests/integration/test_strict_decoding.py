"""Decoding through a live cluster's API server, as kubectl meets it: a typo'd
field refused under fieldValidation=Strict naming the field, warned about (and
pruned) by default, wrong JSON types and deep nesting as 400s, nothing stored
by a refused request, and every object the cluster's own components write
decoding cleanly against the schema."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from knet.api.decode import decode_typed
from knet.api.errors import ApiError
from knet.api.resources import RESOURCES, by_kind
from knet.harness.cluster import Cluster, ready

PODS, SVC = by_kind("Pod"), by_kind("Service")


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1)
    yield cluster
    cluster.down()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("knet", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def raw(c, method: str, path: str, body: bytes, content_type: str = "application/json"):
    """One request with exactly these bytes (the client would re-encode them):
    (status, Warning headers, decoded body)."""
    conn = _UnixConnection(c.client.unix_path)
    try:
        conn.request(method, path, body=body, headers={
            "Authorization": f"Bearer {c.client.token}", "Content-Type": content_type})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers.get_all("Warning") or [], json.loads(data)
    finally:
        conn.close()


TYPO = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
        "spec": {"containers": [{"name": "web", "image": "agnhost", "prots": [{"containerPort": 80}]}]}}


def test_a_typo_is_refused_under_strict_naming_the_field_and_nothing_is_stored(c):
    status, warnings, out = raw(c, "POST", PODS.path("default") + "?fieldValidation=Strict", json.dumps(TYPO).encode())
    assert (status, out["reason"]) == (400, "BadRequest")
    assert out["message"] == ('Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
                              'unknown field "spec.containers[0].prots"')
    assert warnings == []
    with pytest.raises(ApiError) as e:
        c.client.get(PODS, "default", "typo")
    assert e.value.code == 404


def test_warn_is_the_default_prunes_the_field_and_says_so(c):
    status, warnings, out = raw(c, "POST", PODS.path("default"), json.dumps(TYPO).encode())
    assert status == 201
    assert warnings == [r'299 - "unknown field \"spec.containers[0].prots\""']
    stored = c.client.get(PODS, "default", "typo")
    assert "prots" not in stored["spec"]["containers"][0] and "prots" not in json.dumps(out)
    # A merge patch is checked the same way; Strict refuses it at `patch`, as upstream does. (The pod
    # is let settle first: its binding and status writes would move the resourceVersion compared below.)
    stored = c.wait_pod("default", "typo", ready)
    patch = b'{"spec": {"containers": [{"name": "web", "image": "agnhost", "imagePullPolicee": "Always"}]}}'
    status, _, out = raw(c, "PATCH", PODS.path("default", "typo") + "?fieldValidation=Strict", patch,
                         "application/merge-patch+json")
    assert (status, out["reason"]) == (422, "Invalid")
    assert out["details"]["causes"][0]["field"] == "patch"
    assert out["message"].endswith('strict decoding error: unknown field "spec.containers[0].imagePullPolicee"')
    assert c.client.get(PODS, "default", "typo")["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    status, warnings, _ = raw(c, "PATCH", PODS.path("default", "typo") + "?fieldValidation=Ignore",
                              b'{"metadata": {"labels": {"a": "b"}, "labelz": {}}}', "application/merge-patch+json")
    assert status == 200 and warnings == []
    assert c.client.get(PODS, "default", "typo")["metadata"]["labels"] == {"a": "b"}
    c.client.delete(PODS, "default", "typo", grace=0)


def test_wrong_types_duplicates_and_depth_are_400s_that_store_nothing(c):
    svc = b'{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "typed"}, "spec": {"ports": [{"port": "80"}]}}'
    status, _, out = raw(c, "POST", SVC.path("default"), svc)
    assert (status, out["reason"]) == (400, "BadRequest")
    assert out["message"] == ('Service in version "v1" cannot be handled as a Service: json: cannot unmarshal '
                              "string into Go struct field ServicePort.spec.ports.port of type int32")
    status, _, out = raw(c, "POST", SVC.path("default"), svc.replace(b'"80"', b"80.5"))
    assert status == 400 and "cannot unmarshal number 80.5 into Go struct field ServicePort.spec.ports.port" in out["message"]
    dup = b'{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "typed", "name": "twice"}, ' \
          b'"spec": {"ports": [{"port": 80}]}}'
    status, _, out = raw(c, "POST", SVC.path("default") + "?fieldValidation=Strict", dup)
    assert status == 400 and out["message"].endswith('strict decoding error: duplicate field "metadata.name"')
    deep = b'{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "deep", "labels": ' + \
           b'{"a": ' * 500 + b'"x"' + b"}" * 500 + b"}}"
    status, _, out = raw(c, "POST", SVC.path("default"), deep)
    assert status == 400 and "nested too deeply" in out["message"]
    assert {s["metadata"]["name"] for s in c.client.list(SVC, None)["items"]} & {"typed", "twice", "deep"} == set()


APP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports: [{port: 80, targetPort: http}]
"""


def test_every_object_the_cluster_writes_decodes_with_no_unknown_field(c):
    """Pods, Nodes, EndpointSlices, Events... as the agents and controllers
    write them: the schema knows every field, so nothing knet itself writes
    would be pruned or warned about."""
    c.apply(APP)
    c.wait_for("echo ready", lambda: len([p for p in c.list("Pod", "default", label_selector="app=echo")
                                          if ready(p)]) == 2, timeout=30)
    pod = c.list("Pod", "default", label_selector="app=echo")[0]
    tolerations = {(t["key"], t["effect"], t.get("tolerationSeconds")) for t in pod["spec"]["tolerations"]}
    assert {("node.kubernetes.io/not-ready", "NoExecute", 300),
            ("node.kubernetes.io/unreachable", "NoExecute", 300)} <= tolerations
    assert c.get("Service", "default", "echo")["spec"]["healthCheckNodePort"]
    seen = set()
    for res in RESOURCES:
        for obj in c.client.list(res, None)["items"]:
            _, unknown = decode_typed(obj, res.kind)
            assert unknown == [], f"{res.kind} {obj['metadata'].get('name')}: {unknown}"
            seen.add(res.kind)
    assert {"Pod", "Node", "Service", "EndpointSlice", "Deployment", "ReplicaSet", "Namespace"} <= seen
    # POST creates only (what `knet create` relies on): an existing object is a 409.
    deploy = by_kind("Deployment")
    with pytest.raises(ApiError) as e:
        c.client.create(deploy, "default", c.get("Deployment", "default", "echo"))
    assert (e.value.code, e.value.reason, e.value.message) == (
        409, "AlreadyExists", 'deployments.apps "echo" already exists')
    c.knet("delete", "deployment", "echo")
    c.knet("delete", "service", "echo")
