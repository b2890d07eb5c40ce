"""The controllers' informer cache (fed by a real SQLite store) and its
indexes, the mapping of each store event to the keys it affects for every
controller, and the scheduler's queue: what makes the control plane's work
follow the change, not the size of the cluster."""

from __future__ import annotations

import pytest
import trio

from knet.api.errors import ApiError
from knet.api.objects import deep_copy
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import (
    daemonset,
    deployment,
    endpointslice,
    gc,
    nodeipam,
    nodelifecycle,
    replicaset,
    scheduler,
    statefulset,
    taints,
)
from knet.controllers.base import cache_for, count_ready, is_active
from knet.controllers.loop import Manager
from knet.controlplane import controllers
from knet.store.sqlite import SqliteStore

PODS, NODES, SVC, SLICES = (by_kind(k) for k in ("Pod", "Node", "Service", "EndpointSlice"))
RS, DEPLOY, DS, STS = (by_kind(k) for k in ("ReplicaSet", "Deployment", "DaemonSet", "StatefulSet"))


@pytest.fixture
def reg(tmp_path):
    r = Registry(SqliteStore(str(tmp_path / "c.db")))
    r.bootstrap()
    for name in ("w1", "w2"):
        r.create(NODES, None, {"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2999-01-01T00:00:00Z"}]}})
    return r


def pod(name, labels=None, node=None, owner=None, ip=None, ready=True):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
         "spec": {"containers": [{"name": "c", "image": "knet/builtin"}]}}
    if node:
        p["spec"]["nodeName"] = node
    if owner:
        p["metadata"]["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                             "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                             "controller": True}]
    return p


def running(reg, name, ip, ready=True, ns="default"):
    p = reg.get(PODS, ns, name)
    p["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return reg.update(PODS, ns, name, p, "status")


def service(name, selector):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]}}


def replicaset_obj(name, replicas, app):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": "knet/builtin"}]}}}}


# -- the cache ---------------------------------------------------------------------------


def test_the_cache_lists_what_is_there_and_follows_every_write(reg):
    reg.create(PODS, "default", pod("before", {"app": "a"}, node="w1"))
    cache = cache_for(reg)
    assert cache.get("Pod", "default/before")["metadata"]["name"] == "before"
    created = reg.create(PODS, "default", pod("after", {"app": "a"}))
    assert cache.get("Pod", "default/after")["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert set(cache.unbound) == {"default/after"}
    assert cache.node_counts == {"w1": 1}
    reg.bind("default", "after", "w2")
    assert cache.unbound == {} and cache.node_counts == {"w1": 1, "w2": 1}
    assert [p["metadata"]["name"] for p in cache.pods_on("w2")] == ["after"]
    reg.delete(PODS, "default", "after", grace=0)
    assert cache.get("Pod", "default/after") is None and cache.pods_on("w2") == []
    assert cache.node_counts == {"w1": 1}
    assert [p["metadata"]["name"] for p in cache.list("Pod", "default")] == ["before"]
    assert cache.list("Pod", "kube-system") == []


def test_finished_pods_leave_their_nodes_count(reg):
    cache = cache_for(reg)
    reg.create(PODS, "default", pod("job", node="w1"))
    p = reg.get(PODS, "default", "job")
    p["status"] = {"phase": "Succeeded"}
    reg.update(PODS, "default", "job", p, "status")
    assert cache.node_counts.get("w1", 0) == 0 and len(cache.pods_on("w1")) == 1


def test_owner_and_orphan_indexes_follow_adoption(reg):
    cache = cache_for(reg)
    rs = reg.create(RS, "default", replicaset_obj("web", 0, "web"))
    reg.create(PODS, "default", pod("stray", {"app": "web"}))
    assert [p["metadata"]["name"] for p in cache.orphans("Pod", "default")] == ["stray"]
    adopted = deep_copy(reg.get(PODS, "default", "stray"))
    adopted["metadata"]["ownerReferences"] = pod("x", owner=rs)["metadata"]["ownerReferences"]
    reg.update(PODS, "default", "stray", adopted)
    assert cache.orphans("Pod", "default") == []
    assert [p["metadata"]["name"] for p in cache.owned("Pod", rs["metadata"]["uid"])] == ["stray"]
    assert cache.dependents(rs["metadata"]["uid"]) == {("Pod", "default/stray")}
    assert cache.uids[rs["metadata"]["uid"]] == ("ReplicaSet", "default/web")



def test_per_owner_pod_counts_follow_readiness_deletion_and_completion(reg):
    """What ReplicaSet and Deployment syncs read instead of walking their pods:
    active (not terminating, not finished) and active-and-Ready, per controller owner."""
    cache = cache_for(reg)
    rs = reg.create(RS, "default", replicaset_obj("web", 0, "web"))
    uid = rs["metadata"]["uid"]
    for i in range(4):
        reg.create(PODS, "default", pod(f"p{i}", {"app": "web"}, node="w1", owner=rs))
    reg.create(PODS, "default", pod("stray", {"app": "web"}, node="w1"))  # no owner: counted for nobody
    assert cache.pod_counts(uid) == (4, 0)
    for i in range(3):
        running(reg, f"p{i}", f"10.244.0.{i + 2}")
    assert cache.pod_counts(uid) == (4, 3)
    running(reg, "p2", "10.244.0.4", ready=False)
    assert cache.pod_counts(uid) == (4, 2)
    reg.delete(PODS, "default", "p1")  # bound: terminating, no longer active
    assert cache.pod_counts(uid) == (3, 1)
    done = reg.get(PODS, "default", "p3")
    done["status"] = {"phase": "Succeeded"}
    reg.update(PODS, "default", "p3", done, "status")
    assert cache.pod_counts(uid) == (2, 1)
    reg.delete(PODS, "default", "p0", grace=0)
    reg.delete(PODS, "default", "p2", grace=0)
    assert cache.pod_counts(uid) == (0, 0)
    pods = cache.owned("Pod", uid)
    assert cache.pod_counts(uid) == (sum(is_active(p) for p in pods), count_ready(pods))

def test_label_and_selector_indexes_find_both_directions(reg):
    cache = cache_for(reg)
    reg.create(SVC, "default", service("web", {"app": "web"}))
    reg.create(SVC, "default", service("web-v2", {"app": "web", "v": "2"}))
    reg.create(SVC, "default", service("db", {"app": "db"}))
    reg.create(PODS, "default", pod("w1", {"app": "web", "v": "1"}))
    reg.create(PODS, "default", pod("w2", {"app": "web", "v": "2"}))
    assert cache.services_selecting(cache.get("Pod", "default/w1")) == {"default/web"}
    assert cache.services_selecting(cache.get("Pod", "default/w2")) == {"default/web", "default/web-v2"}
    assert {p["metadata"]["name"] for p in cache.pods_matching("default", {"app": "web"})} == {"w1", "w2"}
    assert [p["metadata"]["name"] for p in cache.pods_matching("default", {"app": "web", "v": "2"})] == ["w2"]
    assert cache.pods_matching("default", {}) == []
    # relabelled: the indexes follow
    p = reg.get(PODS, "default", "w2")
    p["metadata"]["labels"] = {"app": "db"}
    reg.update(PODS, "default", "w2", p)
    assert cache.services_selecting(cache.get("Pod", "default/w2")) == {"default/db"}
    assert [p["metadata"]["name"] for p in cache.pods_matching("default", {"app": "web"})] == ["w1"]


def test_slices_by_service_name(reg):
    cache = cache_for(reg)
    reg.create(SVC, "default", service("web", {"app": "web"}))
    reg.create(PODS, "default", pod("p", {"app": "web"}, node="w1"))
    running(reg, "p", "10.244.1.2")
    Manager(reg, controllers()).drain()
    [s] = cache.slices_of("default", "web")
    assert s["endpoints"][0]["addresses"] == ["10.244.1.2"]
    assert cache.slices_of("default", "db") == []


# -- events to keys ----------------------------------------------------------------------


def test_pod_events_map_to_their_owner_and_services_and_node(reg):
    cache = cache_for(reg)
    rs = reg.create(RS, "default", replicaset_obj("web-abc", 1, "web"))
    d = reg.create(DEPLOY, "default", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                                       "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                "template": replicaset_obj("x", 1, "web")["spec"]["template"]}})
    rs_owned = deep_copy(reg.get(RS, "default", "web-abc"))
    rs_owned["metadata"]["ownerReferences"] = pod("x", owner=d)["metadata"]["ownerReferences"]
    reg.update(RS, "default", "web-abc", rs_owned)
    reg.create(SVC, "default", service("web", {"app": "web"}))
    old = None
    new = reg.create(PODS, "default", pod("web-abc-1", {"app": "web"}, owner=rs))
    assert replicaset.keys_for("Pod", old, new, cache) == {"default/web-abc"}
    assert deployment.keys_for("Pod", old, new, cache) == {"default/web"}
    assert scheduler.keys_for("Pod", old, new, cache) == {"default/web-abc-1"}
    assert endpointslice.keys_for("Pod", old, new, cache) == set()  # no address yet: not an endpoint
    bound = reg.bind("default", "web-abc-1", "w1")
    assert scheduler.keys_for("Pod", new, bound, cache) == set()
    ready = running(reg, "web-abc-1", "10.244.1.9")
    assert endpointslice.keys_for("Pod", bound, ready, cache) == {"default/web"}
    same = deep_copy(ready)
    same["status"]["containerStatuses"] = [{"name": "c", "restartCount": 1}]
    assert endpointslice.keys_for("Pod", ready, same, cache) == set()  # not about its endpoint
    assert deployment.keys_for("Pod", ready, same, cache) == set()
    # relabelled away from the Service: the Service it left is synced too
    moved = deep_copy(ready)
    moved["metadata"]["labels"] = {"app": "other"}
    assert endpointslice.keys_for("Pod", ready, moved, cache) == {"default/web"}
    assert gc.keys_for("Pod", None, new, cache) == {("Pod", "default/web-abc-1")}
    assert gc.keys_for("Deployment", d, None, cache) == {("ReplicaSet", "default/web-abc")}
    assert deployment.keys_for("ReplicaSet", None, rs_owned, cache) == {"default/web"}


def test_orphans_map_to_the_owners_that_could_adopt_them(reg):
    cache = cache_for(reg)
    reg.create(RS, "default", replicaset_obj("a", 1, "a"))
    reg.create(RS, "default", replicaset_obj("b", 1, "b"))
    orphan = reg.create(PODS, "default", pod("o", {"app": "b"}))
    assert replicaset.keys_for("Pod", None, orphan, cache) == {"default/b"}


def test_node_events_map_to_daemonsets_pods_and_unbound_pods(reg):
    cache = cache_for(reg)
    ds = reg.create(DS, "default", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                    "spec": {"selector": {"matchLabels": {"app": "agent"}},
                                             "template": replicaset_obj("x", 1, "agent")["spec"]["template"]}})
    reg.create(STS, "default", {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                                "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                                         "template": replicaset_obj("x", 1, "db")["spec"]["template"]}})
    sts = reg.get(STS, "default", "db")
    on_w1 = reg.create(PODS, "default", pod("on-w1", node="w1", owner=ds))
    reg.create(PODS, "default", pod("waiting"))
    sts_pod = reg.create(PODS, "default", pod("db-0", owner=sts))
    assert statefulset.keys_for("Pod", None, sts_pod, cache) == {"default/db"}
    assert daemonset.keys_for("Pod", None, on_w1, cache) == {"default/agent"}
    old = reg.get(NODES, None, "w1")
    beat = deep_copy(old)
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2999-01-01T00:00:10Z"
    # a heartbeat changes nothing any controller acts on
    for mod in (daemonset, scheduler, nodelifecycle, taints):
        assert mod.keys_for("Node", old, beat, cache) == set(), mod.__name__
    tainted = deep_copy(old)
    tainted.setdefault("spec", {})["taints"] = [{"key": "maint", "effect": "NoExecute"}]
    assert daemonset.keys_for("Node", old, tainted, cache) == {"default/agent"}
    assert scheduler.keys_for("Node", old, tainted, cache) == {"default/waiting", "default/db-0"}
    assert nodelifecycle.keys_for("Node", old, tainted, cache) == {"w1"}
    assert taints.keys_for("Node", old, tainted, cache) == {"default/on-w1"}
    assert nodeipam.keys_for("Node", None, old, cache) == {"w1"}
    with_cidr = deep_copy(old)
    with_cidr.setdefault("spec", {})["podCIDR"] = "10.244.1.0/24"
    assert nodeipam.keys_for("Node", old, with_cidr, cache) == set()


def test_a_not_ready_nodes_pod_events_map_to_the_node(reg):
    cache = cache_for(reg)
    n = reg.get(NODES, None, "w2")
    n["status"]["conditions"][0]["status"] = "Unknown"
    reg.update(NODES, None, "w2", n, "status")
    p = reg.create(PODS, "default", pod("p", node="w2"))
    assert nodelifecycle.keys_for("Pod", None, p, cache) == {"w2"}
    q = reg.create(PODS, "default", pod("q", node="w1"))
    assert nodelifecycle.keys_for("Pod", None, q, cache) == set()


# -- the work follows the change ---------------------------------------------------------


def test_one_pods_readiness_change_is_one_slice_write_and_one_service_synced(reg):
    manager = Manager(reg, controllers())
    services, per = 60, 10
    for s in range(services):
        reg.create(SVC, "default", service(f"s{s}", {"app": f"s{s}"}))
        for i in range(per):
            name = f"s{s}-{i}"
            reg.create(PODS, "default", pod(name, {"app": f"s{s}"}, node="w1"))
            running(reg, name, f"10.244.{s}.{i + 2}")
    manager.drain()
    es = next(c for c in manager.controllers if c.name == "endpointslice controller")
    syncs, before = es.syncs, reg.store.revision()
    slice_writes = []
    unsubscribe = reg.store.subscribe(lambda ev: slice_writes.append(ev.key)
                                      if ev.key.startswith("/registry/endpointslices/") else None)
    running(reg, "s17-3", "10.244.17.5", ready=False)
    manager.drain()
    unsubscribe()
    assert es.syncs - syncs == 1
    assert len(slice_writes) == 1 and reg.store.revision() - before == 2  # the pod's status and its slice
    [s] = [s for s in reg.list(SLICES, "default")[0] if s["metadata"]["labels"]["kubernetes.io/service-name"] == "s17"]
    assert [e["conditions"]["ready"] for e in s["endpoints"]].count(False) == 1


def test_the_scheduler_binds_from_its_queue_with_counts_kept_by_the_cache(reg):
    manager = Manager(reg, controllers())
    sched = next(c for c in manager.controllers if c.name == "scheduler")
    for i in range(4):
        reg.create(PODS, "default", pod(f"p{i}"))
    assert len(sched.queue) == 4
    manager.drain()
    placed = sorted(p["spec"].get("nodeName") for p in reg.list(PODS, "default")[0])
    assert placed == ["w1", "w1", "w2", "w2"]  # fewest pods first
    assert manager.cache.node_counts == {"w1": 2, "w2": 2}
    assert sched.syncs == 4  # one sync per pod, no pass over all pods


def test_a_pod_that_fits_nowhere_is_retried_when_a_node_changes(reg):
    manager = Manager(reg, controllers())
    p = pod("picky")
    p["spec"]["nodeSelector"] = {"disk": "ssd"}
    reg.create(PODS, "default", p)
    manager.drain()
    assert not reg.get(PODS, "default", "picky")["spec"].get("nodeName")
    n = reg.get(NODES, None, "w2")
    n["metadata"]["labels"] = {"disk": "ssd"}
    reg.update(NODES, None, "w2", n)
    manager.drain()
    assert reg.get(PODS, "default", "picky")["spec"]["nodeName"] == "w2"


def test_a_replicaset_creates_in_bursts_and_a_failing_write_backs_off(reg, monkeypatch):
    manager = Manager(reg, controllers())
    rsc = next(c for c in manager.controllers if c.name == "replicaset controller")
    reg.create(RS, "default", replicaset_obj("big", replicaset.BURST * 2 + 1, "big"))
    key = rsc.queue.get_nowait()
    manager.process(rsc, key)
    assert len(reg.list(PODS, "default")[0]) == replicaset.BURST
    manager.drain()
    assert len(reg.list(PODS, "default")[0]) == replicaset.BURST * 2 + 1
    reg.create(RS, "default", replicaset_obj("bad", 1, "bad"))
    create = reg.create

    def refuse_pods(res, namespace, obj, **kw):
        if res.kind == "Pod":
            raise ApiError(500, "InternalError", "the store is away")
        return create(res, namespace, obj, **kw)

    monkeypatch.setattr(reg, "create", refuse_pods)  # the API refuses every pod
    manager.drain()
    assert rsc.queue.num_requeues("default/bad") == 1 and rsc.queue.next_due() is not None


def test_running_controllers_act_on_writes_between_requests_and_go_idle(reg):
    """As in the control plane: workers as trio tasks; once the writes are acted
    on, every queue is idle and `observed` reaches the store's revision."""
    async def main():
        manager = Manager(reg, controllers())
        seen = []
        manager.on_idle = lambda observed, written: seen.append(observed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(manager.run)
            for i in range(3):
                reg.create(PODS, "default", pod(f"p{i}"))
                await trio.sleep(0.05)
            with trio.fail_after(10):
                while manager.busy() or manager.observed < reg.store.revision():
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        sched = next(c for c in manager.controllers if c.name == "scheduler")
        return sched.queue.adds, seen

    adds, seen = trio.run(main)
    assert all(p["spec"].get("nodeName") for p in reg.list(PODS, "default")[0])
    assert adds == 3 and seen and seen[-1] == reg.store.revision()


def test_a_pod_waiting_on_full_nodes_is_retried_when_one_frees_up(reg):
    manager = Manager(reg, controllers())
    for name in ("w1", "w2"):
        n = reg.get(NODES, None, name)
        n["status"]["allocatable"] = {"pods": "1"}
        reg.update(NODES, None, name, n, "status")
    for i in range(3):
        reg.create(PODS, "default", pod(f"p{i}"))
    manager.drain()
    waiting = [p for p in reg.list(PODS, "default")[0] if not p["spec"].get("nodeName")]
    assert len(waiting) == 1
    assert waiting[0]["status"]["conditions"][0]["message"] == "0/2 nodes are available: 2 Too many pods."
    gone = next(p for p in reg.list(PODS, "default")[0] if p["spec"].get("nodeName"))
    reg.delete(PODS, "default", gone["metadata"]["name"], grace=0)
    manager.drain()
    assert reg.get(PODS, "default", waiting[0]["metadata"]["name"])["spec"]["nodeName"] == gone["spec"]["nodeName"]


def test_a_new_endpoint_rewrites_one_slice_not_every_slice_after_it(reg):
    manager = Manager(reg, controllers())
    reg.create(SVC, "default", service("big", {"app": "big"}))
    for i in range(150):
        reg.create(PODS, "default", pod(f"p{i:03d}", {"app": "big"}, node="w1"))
        running(reg, f"p{i:03d}", f"10.244.{i // 200}.{i % 250 + 2}")
    manager.drain()
    assert sorted(len(s["endpoints"]) for s in reg.list(SLICES, "default")[0]) == [50, 100]
    writes = []
    unsubscribe = reg.store.subscribe(lambda ev: writes.append(ev.key)
                                      if ev.key.startswith("/registry/endpointslices/") else None)
    reg.create(PODS, "default", pod("a-first-by-name", {"app": "big"}, node="w1"))
    running(reg, "a-first-by-name", "10.244.9.9")
    manager.drain()
    unsubscribe()
    assert len(writes) == 1
    assert sorted(len(s["endpoints"]) for s in reg.list(SLICES, "default")[0]) == [51, 100]
