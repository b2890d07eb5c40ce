"""The API server over real HTTP on a unix socket, in-process: REST verbs,
Status errors, resourceVersion conflicts, watch (resume, filter, 410 Gone),
and auth. No namespaces needed, so these run fast."""

from __future__ import annotations

import pytest

from knet.api.client import Client
from knet.api.errors import ApiError
from knet.api.resources import SERVED, by_kind
from knet.harness.apiserver import TOKEN, LocalApiServer

PODS, NS, SVC, NODES = by_kind("Pod"), by_kind("Namespace"), by_kind("Service"), by_kind("Node")


@pytest.fixture
def server(tmp_path):
    s = LocalApiServer(tmp_path, services=False).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    return Client(TOKEN, unix_path=server.socket)


def pod(name, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "agnhost"}], **spec}}


def test_unauthorized_without_or_with_wrong_token(server):
    for token in ("", "wrong"):
        with pytest.raises(ApiError) as e:
            Client(token, unix_path=server.socket).list(PODS, "default")
        assert e.value.code == 401 and e.value.reason == "Unauthorized"


def test_crud_and_status_errors(client):
    created = client.create(PODS, "default", pod("a"))
    assert created["metadata"]["uid"] and created["status"]["phase"] == "Pending"
    assert created["spec"]["restartPolicy"] == "Always"  # defaulted
    got = client.get(PODS, "default", "a")
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as e:
        client.create(PODS, "default", pod("a"))
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")
    with pytest.raises(ApiError) as e:
        client.get(PODS, "default", "missing")
    assert (e.value.code, e.value.reason) == (404, "NotFound")
    with pytest.raises(ApiError) as e:
        client.create(PODS, "nosuchns", pod("b"))
    assert e.value.code == 404 and "nosuchns" in e.value.message
    client.delete(PODS, "default", "a")
    assert client.list(PODS, "default")["items"] == []


def test_stale_resource_version_conflicts(client):
    a = client.create(SVC, "default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                       "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    fresh = dict(a, metadata=dict(a["metadata"], labels={"v": "1"}))
    updated = client.update(SVC, "default", "s", fresh)
    assert int(updated["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    stale = dict(a, metadata=dict(a["metadata"], labels={"v": "2"}))
    with pytest.raises(ApiError) as e:
        client.update(SVC, "default", "s", stale)
    assert (e.value.code, e.value.reason) == (409, "Conflict")
    assert client.get(SVC, "default", "s")["metadata"]["labels"] == {"v": "1"}


def test_invalid_object_is_422_with_field_and_not_stored(client):
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
           "spec": {"ports": [{"port": 70000}]}}
    with pytest.raises(ApiError) as e:
        client.create(SVC, "default", bad)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert "spec.ports[0].port" in [c["field"] for c in e.value.details["causes"]]
    assert "spec.ports[0].port: Invalid value: 70000" in e.value.message
    with pytest.raises(ApiError):
        client.get(SVC, "default", "bad")


def test_list_with_label_and_field_selectors(client):
    client.create(PODS, "default", pod("a", nodeName="n1"))
    client.create(PODS, "default", pod("b", nodeName="n2"))
    client.create(PODS, "default", pod("c"))
    names = lambda out: sorted(p["metadata"]["name"] for p in out["items"])  # noqa: E731
    assert names(client.list(PODS, "default", label_selector="app in (a,c)")) == ["a", "c"]
    assert names(client.list(PODS, "default", label_selector="app!=a")) == ["b", "c"]
    assert names(client.list(PODS, None, field_selector="spec.nodeName=n2")) == ["b"]
    with pytest.raises(ApiError) as e:
        client.list(PODS, "default", label_selector="app in (")
    assert e.value.code == 400


def test_watch_from_revision_and_filtered_transitions(client):
    first = client.create(PODS, "default", pod("w1"))
    rv = first["metadata"]["resourceVersion"]
    client.create(PODS, "default", pod("w2"))
    bound = client.request("POST", PODS.path("default", "w1") + "/binding",
                           {"apiVersion": "v1", "kind": "Binding", "target": {"kind": "Node", "name": "n1"}})
    assert bound["spec"]["nodeName"] == "n1"
    client.delete(PODS, "default", "w2")
    events = []
    for ev in client.watch(PODS, "default", resource_version=rv, timeout=5):
        if ev["type"] != "BOOKMARK":
            events.append((ev["type"], ev["object"]["metadata"]["name"]))
        if len(events) == 3:
            break
    assert events == [("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]
    # A watch filtered by node sees the pod arrive as ADDED when it is bound there.
    seen = []
    for ev in client.watch(PODS, None, resource_version=rv, field_selector="spec.nodeName=n1", timeout=5):
        if ev["type"] != "BOOKMARK":
            seen.append(ev["type"])
            break
    assert seen == ["ADDED"]


def test_watch_too_old_is_410_gone(tmp_path):
    s = LocalApiServer(tmp_path, services=False, history=10).start()
    try:
        c = Client(TOKEN, unix_path=s.socket)
        for i in range(1100):
            c.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}})
        with pytest.raises(ApiError) as e:
            next(iter(c.watch(NODES, None, resource_version="3", timeout=5)))
        assert e.value.code == 410
    finally:
        s.stop()


def test_update_that_changes_nothing_writes_nothing(client):
    a = client.create(PODS, "default", pod("same"))
    again = client.request("PATCH", PODS.path("default", "same"), {"metadata": {"labels": {"app": "same"}}},
                           content_type="application/merge-patch+json")
    assert again["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]


def test_namespace_deletion_removes_contents(client):
    client.create(NS, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    client.create(PODS, "shop", pod("p"))
    client.create(SVC, "shop", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                "spec": {"ports": [{"port": 80}]}})
    client.delete(NS, None, "shop")
    assert client.list(PODS, "shop")["items"] == []
    with pytest.raises(ApiError):
        client.get(NS, None, "shop")
    with pytest.raises(ApiError) as e:
        client.delete(NS, None, "default")
    assert e.value.code == 403


def test_discovery(client):
    out = client.request("GET", "/apis/apps/v1")
    assert {r["name"] for r in out["resources"] if "/" not in r["name"]} == {
        "deployments", "replicasets", "daemonsets", "statefulsets"}
    core = client.request("GET", "/api/v1")
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["namespaced"] and pods["shortNames"] == ["po"]
    assert client.request("GET", "/api") == {"kind": "APIVersions", "versions": ["v1"]}
    groups = client.request("GET", "/apis")["groups"]
    # Each group at the versions its kinds' records give (all v1 today).
    assert {(g["name"], g["preferredVersion"]["groupVersion"]) for g in groups} == {
        (r.group, r.api_version) for r in SERVED if r.group}
