"""The registry's rules without HTTP: admission, status subresource, graceful
pod deletion, watch filtering."""

import pytest

from knet.api.errors import ApiError
from knet.api.objects import merge_patch
from knet.api.registry import Registry, filter_event
from knet.api.resources import by_kind
from knet.store.sqlite import SqliteStore

PODS, NODES = by_kind("Pod"), by_kind("Node")


@pytest.fixture
def reg(tmp_path):
    r = Registry(SqliteStore(str(tmp_path / "r.db")), pod_netns=lambda uid: f"knet-t-pod-{uid[:4]}")
    r.bootstrap()
    return r


def pod(name, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "agnhost"}], **spec}}


def test_create_defaults_and_annotates_netns(reg):
    p = reg.create(PODS, "default", pod("a"))
    assert p["metadata"]["annotations"]["knet.dev/netns"] == "knet-t-pod-" + p["metadata"]["uid"][:4]
    assert p["spec"]["terminationGracePeriodSeconds"] == 30


def test_main_update_keeps_status_and_status_update_keeps_spec(reg):
    p = reg.create(PODS, "default", pod("a"))
    p["status"] = {"phase": "Running"}
    same = reg.update(PODS, "default", "a", p)
    assert same["status"]["phase"] == "Pending"
    p = reg.get(PODS, "default", "a")
    p["status"] = {"phase": "Running"}
    p["metadata"]["labels"] = {"sneaky": "yes"}
    out = reg.update(PODS, "default", "a", p, "status")
    assert out["status"]["phase"] == "Running" and "labels" not in out["metadata"]


def test_bound_pod_is_deleted_gracefully(reg):
    reg.create(PODS, "default", pod("a", nodeName="n1"))
    marked = reg.delete(PODS, "default", "a")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert reg.find(PODS, "default", "a") is not None
    reg.delete(PODS, "default", "a", grace=0)
    assert reg.find(PODS, "default", "a") is None
    reg.create(PODS, "default", pod("b"))
    reg.delete(PODS, "default", "b")
    assert reg.find(PODS, "default", "b") is None  # unbound: at once


def test_bind_once(reg):
    reg.create(PODS, "default", pod("a"))
    assert reg.bind("default", "a", "n1")["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiError) as e:
        reg.bind("default", "a", "n2")
    assert e.value.code == 409


def test_dry_run_writes_nothing(reg):
    rev = reg.store.revision()
    reg.create(PODS, "default", pod("a"), dry_run=True)
    assert reg.store.revision() == rev and reg.find(PODS, "default", "a") is None


def test_filtered_watch_turns_binding_into_added_and_move_into_deleted(reg):
    events = []
    reg.store.subscribe(events.append)
    reg.create(PODS, "default", pod("a"))
    reg.bind("default", "a", "n1")
    on_n1 = lambda o: o["spec"].get("nodeName") == "n1"  # noqa: E731
    assert filter_event(events[0], on_n1) is None
    assert filter_event(events[1], on_n1)[0] == "ADDED"
    reg.delete(PODS, "default", "a", grace=0)
    assert filter_event(events[2], on_n1)[0] == "DELETED"


def test_merge_patch_rfc7386():
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == \
        {"a": {"c": 2, "d": 3}, "l": [2]}
