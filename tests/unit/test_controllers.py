"""Workload controllers against a real registry and store, with the node
agents' part (pods becoming Running and Ready) played by the test."""

from __future__ import annotations

import pytest

from knet.api.objects import deep_copy
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controlplane import reconcile
from knet.store.sqlite import SqliteStore

PODS, NODES = by_kind("Pod"), by_kind("Node")
DEPLOY, RS, DS, STS = (by_kind(k) for k in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"))


@pytest.fixture
def reg(tmp_path):
    r = Registry(SqliteStore(str(tmp_path / "c.db")))
    r.bootstrap()
    for name, taints in (("cp", [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
                         ("w1", []), ("w2", []), ("w3", [])):
        r.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                               "spec": {"taints": taints},
                               "status": {"conditions": [{"type": "Ready", "status": "True",
                                                          "lastHeartbeatTime": "2999-01-01T00:00:00Z"}]}})
    return r


def pods(reg, **labels) -> list[dict]:
    out = reg.list(PODS, "default")[0]
    return [p for p in out if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())]


def become_ready(reg, only=None) -> int:
    """What agents do: bound pods turn Running and Ready; deleting ones go away."""
    n = 0
    for p in reg.list(PODS)[0]:
        m = p["metadata"]
        if m.get("deletionTimestamp"):
            reg.delete(PODS, m["namespace"], m["name"], grace=0)
            n += 1
            continue
        if not p["spec"].get("nodeName") or p["status"].get("phase") == "Running":
            continue
        if only and not only(p):
            continue
        new = deep_copy(p)
        new["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        reg.update(PODS, m["namespace"], m["name"], new, "status")
        n += 1
    return n


def deployment(replicas=3, env="1", strategy=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "agnhost", "env": [{"name": "V", "value": env}]}]}}}
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def settle(reg, rounds=20):
    for _ in range(rounds):
        reconcile(reg)
        if not become_ready(reg):
            reconcile(reg)
            return


def test_deployment_makes_a_replicaset_and_named_owned_pods(reg):
    reg.create(DEPLOY, "default", deployment(3))
    reconcile(reg)
    sets = reg.list(RS, "default")[0]
    assert len(sets) == 1
    rs = sets[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}" and rs["spec"]["replicas"] == 3
    ps = pods(reg)
    assert len(ps) == 3
    for p in ps:
        assert p["metadata"]["name"].startswith(f"web-{h}-") and len(p["metadata"]["name"]) == len(f"web-{h}-") + 5
        assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert p["spec"]["nodeName"] in ("w1", "w2", "w3")
    settle(reg)
    d = reg.get(DEPLOY, "default", "web")
    assert d["status"]["readyReplicas"] == 3 and d["status"]["updatedReplicas"] == 3
    reconcile(reg)
    assert len(pods(reg)) == 3  # level-triggered: another pass adds nothing


def test_scale_up_and_down(reg):
    reg.create(DEPLOY, "default", deployment(2))
    settle(reg)
    reg.patch(DEPLOY, "default", "web", {"spec": {"replicas": 5}})
    settle(reg)
    assert len(pods(reg)) == 5
    reg.patch(DEPLOY, "default", "web", {"spec": {"replicas": 1}})
    settle(reg)
    assert len(pods(reg)) == 1


def test_rolling_update_keeps_surge_and_availability_bounds(reg):
    reg.create(DEPLOY, "default", deployment(4))
    settle(reg)
    reg.patch(DEPLOY, "default", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "agnhost", "env": [{"name": "V", "value": "2"}]}]}}}})
    for _ in range(40):
        reconcile(reg)
        live = [p for p in pods(reg) if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if p["status"].get("phase") == "Running"]
        assert len(live) <= 4 + 1, "maxSurge 25% of 4 rounds up to 1"
        assert len(ready) >= 4 - 1, "maxUnavailable 25% of 4 rounds down to 1"
        if not become_ready(reg, only=lambda p: True):
            break
    settle(reg)
    sets = sorted(reg.list(RS, "default")[0], key=lambda r: r["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
    assert [r["spec"]["replicas"] for r in sets] == [0, 4]
    new_hash = sets[1]["metadata"]["labels"]["pod-template-hash"]
    assert all(p["metadata"]["labels"]["pod-template-hash"] == new_hash for p in pods(reg))
    assert len(pods(reg)) == 4


def test_recreate_removes_old_pods_before_new_ones(reg):
    reg.create(DEPLOY, "default", deployment(2, strategy={"type": "Recreate"}))
    settle(reg)
    old = {p["metadata"]["name"] for p in pods(reg)}
    reg.patch(DEPLOY, "default", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "agnhost", "env": [{"name": "V", "value": "2"}]}]}}}})
    reconcile(reg)
    names = {p["metadata"]["name"] for p in pods(reg)}
    assert names == old  # old still terminating, no new pod yet
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(reg))
    settle(reg)
    assert len(pods(reg)) == 2 and not ({p["metadata"]["name"] for p in pods(reg)} & old)


def test_deleting_a_deployment_cascades(reg):
    reg.create(DEPLOY, "default", deployment(3))
    settle(reg)
    reg.delete(DEPLOY, "default", "web")
    settle(reg)
    assert reg.list(RS, "default")[0] == [] and pods(reg) == []


def test_replicaset_adopts_orphans_and_removes_unready_first(reg):
    for i in range(2):
        reg.create(PODS, "default", {"apiVersion": "v1", "kind": "Pod",
                                     "metadata": {"name": f"orphan-{i}", "labels": {"app": "x"}},
                                     "spec": {"containers": [{"name": "c", "image": "agnhost"}]}})
    reg.create(RS, "default", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"},
                               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                                        "template": {"metadata": {"labels": {"app": "x"}},
                                                     "spec": {"containers": [{"name": "c", "image": "agnhost"}]}}}})
    reconcile(reg)
    ps = pods(reg, app="x")
    assert len(ps) == 3 and {"orphan-0", "orphan-1"} <= {p["metadata"]["name"] for p in ps}
    assert all(p["metadata"]["ownerReferences"][0]["name"] == "x" for p in ps)
    become_ready(reg, only=lambda p: p["metadata"]["name"].startswith("orphan"))
    reg.patch(RS, "default", "x", {"spec": {"replicas": 2}})
    reconcile(reg)
    live = [p for p in pods(reg, app="x") if not p["metadata"].get("deletionTimestamp")]
    assert {p["metadata"]["name"] for p in live} == {"orphan-0", "orphan-1"}


def daemonset(tolerate_cp=False):
    spec = {"containers": [{"name": "a", "image": "agnhost"}]}
    if tolerate_cp:
        spec["tolerations"] = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}}


def test_daemonset_one_pod_per_eligible_node(reg):
    reg.create(DS, "default", daemonset())
    settle(reg)
    assert sorted(p["spec"]["nodeName"] for p in pods(reg)) == ["w1", "w2", "w3"]
    st = reg.get(DS, "default", "agent")["status"]
    assert st["desiredNumberScheduled"] == 3 and st["numberReady"] == 3
    reg.create(DS, "default", dict(daemonset(tolerate_cp=True), metadata={"name": "everywhere"}))
    settle(reg)
    on = sorted(p["spec"]["nodeName"] for p in pods(reg) if p["metadata"]["name"].startswith("everywhere"))
    assert on == ["cp", "w1", "w2", "w3"]


def test_daemonset_pod_stays_on_a_cordoned_node_and_leaves_a_tainted_one(reg):
    reg.create(DS, "default", daemonset())
    settle(reg)
    reg.patch(NODES, None, "w1", {"spec": {"unschedulable": True}})
    settle(reg)
    assert sorted(p["spec"]["nodeName"] for p in pods(reg)) == ["w1", "w2", "w3"]
    reg.patch(NODES, None, "w2", {"spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}})
    settle(reg)
    assert sorted(p["spec"]["nodeName"] for p in pods(reg)) == ["w1", "w3"]


def statefulset(replicas=3, policy="OrderedReady", env="1"):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": replicas, "serviceName": "db", "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "agnhost", "env": [{"name": "V", "value": env}]}]}}}}


def names(reg):
    return sorted(p["metadata"]["name"] for p in pods(reg) if not p["metadata"].get("deletionTimestamp"))


def test_statefulset_creates_in_order_each_after_the_previous_is_ready(reg):
    reg.create(STS, "default", statefulset(3))
    reconcile(reg)
    assert names(reg) == ["db-0"]
    reconcile(reg)
    assert names(reg) == ["db-0"]  # db-1 waits for db-0 Ready
    become_ready(reg)
    reconcile(reg)
    assert names(reg) == ["db-0", "db-1"]
    p0 = reg.get(PODS, "default", "db-0")
    assert p0["spec"]["hostname"] == "db-0" and p0["spec"]["subdomain"] == "db"
    settle(reg)
    assert names(reg) == ["db-0", "db-1", "db-2"]


def test_statefulset_scales_down_in_reverse_and_updates_from_the_top(reg):
    reg.create(STS, "default", statefulset(3))
    settle(reg)
    reg.patch(STS, "default", "db", {"spec": {"replicas": 1}})
    reconcile(reg)
    terminating = [p["metadata"]["name"] for p in pods(reg) if p["metadata"].get("deletionTimestamp")]
    assert terminating == ["db-2"]  # one at a time, highest first
    settle(reg)
    assert names(reg) == ["db-0"]
    reg.patch(STS, "default", "db", {"spec": {"replicas": 3}})
    settle(reg)
    reg.patch(STS, "default", "db", {"spec": {"template": {"spec": {"containers": [
        {"name": "db", "image": "agnhost", "env": [{"name": "V", "value": "2"}]}]}}}})
    reconcile(reg)
    assert [p["metadata"]["name"] for p in pods(reg) if p["metadata"].get("deletionTimestamp")] == ["db-2"]
    settle(reg)
    rev = reg.get(STS, "default", "db")["status"]["updateRevision"]
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == rev for p in pods(reg))


def test_parallel_statefulset_creates_all_at_once(reg):
    reg.create(STS, "default", statefulset(3, policy="Parallel"))
    reconcile(reg)
    assert names(reg) == ["db-0", "db-1", "db-2"]


def test_noexecute_taint_evicts_untolerating_pods(reg):
    reg.create(DEPLOY, "default", deployment(3))
    settle(reg)
    reg.patch(NODES, None, "w1", {"spec": {"taints": [{"key": "maint", "effect": "NoExecute"}]}})
    settle(reg)
    assert all(p["spec"]["nodeName"] != "w1" for p in pods(reg)) and len(pods(reg)) == 3
