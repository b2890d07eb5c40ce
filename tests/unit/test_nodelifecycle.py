"""The node lifecycle controller's and the taint manager's decisions: when a
node turns Unknown, which taints which condition calls for, which pods are
marked Ready=False, and when a pod is evicted; then the same against a real
registry and store (the agents' part played by the test)."""

from __future__ import annotations

import pytest

from knet.api.objects import condition, now_rfc3339, parse_rfc3339
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import nodelifecycle as nl
from knet.controllers import taints
from knet.controllers.base import View
from knet.store.sqlite import SqliteStore

T0 = parse_rfc3339("2030-01-01T00:00:00Z")
PODS, NODES, EVENTS, LEASES = by_kind("Pod"), by_kind("Node"), by_kind("Event"), by_kind("Lease")


def node(name="w1", ready="True", beat=T0, node_taints=None, conditions=None) -> dict:
    conds = conditions if conditions is not None else [
        {"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": now_rfc3339(beat),
         "lastTransitionTime": now_rfc3339(T0 - 100)},
        {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": now_rfc3339(beat)}]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "creationTimestamp": now_rfc3339(T0 - 100)},
            "spec": {"taints": node_taints or []}, "status": {"conditions": conds}}


def pod(name, node_name="w1", ready="True", tolerations=None, bound=T0 - 50) -> dict:
    conds = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339(bound)}]
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "lastTransitionTime": now_rfc3339(bound)})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": now_rfc3339(bound - 1)},
            "spec": {"nodeName": node_name, "tolerations": tolerations or [], "containers": [{"name": "c", "image": "knet/builtin"}]},
            "status": {"phase": "Running", "conditions": conds}}


def tol(key, seconds=None, effect="NoExecute") -> dict:
    t = {"key": key, "operator": "Exists", "effect": effect}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


# -- the node goes quiet ------------------------------------------------------------------


def test_a_node_turns_unknown_only_after_the_grace_period():
    n = node(beat=T0)
    assert nl.stale_status(n, 10, T0 + 10) is None
    status = nl.stale_status(n, 10, T0 + 10.5)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert ready["lastTransitionTime"] == now_rfc3339(T0 + 10.5)
    assert ready["lastHeartbeatTime"] == now_rfc3339(T0)  # the last one the agent posted
    # The pressure conditions go Unknown too; those never posted are added as never updated.
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["MemoryPressure"]["status"] == "Unknown"
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"


def test_the_grace_period_counts_from_when_the_heartbeat_was_seen():
    n = node(beat=T0)  # a heartbeat stamped T0, first seen by this controller at T0 + 5
    assert nl.stale_status(n, 10, T0 + 12, seen=T0 + 5) is None
    assert nl.stale_status(n, 10, T0 + 15.5, seen=T0 + 5) is not None


def test_an_unknown_node_is_left_as_it_is_and_a_new_node_gets_its_startup_grace():
    assert nl.stale_status(node(ready="Unknown", beat=T0 - 1000), 10, T0) is not None  # pressure still False
    unknown = node(conditions=[{"type": t, "status": "Unknown"} for t in nl.HEALTH_CONDITIONS], beat=T0 - 1000)
    assert nl.stale_status(unknown, 10, T0) is None
    fresh = node(conditions=[])
    assert nl.stale_status(fresh, 200, T0) is None  # created 100 s ago
    never = nl.stale_status(fresh, 10, T0)
    assert condition({"status": never}, "Ready")["reason"] == "NodeStatusNeverUpdated"


@pytest.mark.parametrize("conds, expected", [
    ({"Ready": "True"}, set()),
    ({"Ready": "Unknown"}, {("node.kubernetes.io/unreachable", "NoSchedule"),
                            ("node.kubernetes.io/unreachable", "NoExecute")}),
    ({"Ready": "False"}, {("node.kubernetes.io/not-ready", "NoSchedule"),
                          ("node.kubernetes.io/not-ready", "NoExecute")}),
    ({"Ready": "True", "MemoryPressure": "True", "DiskPressure": "False"},
     {("node.kubernetes.io/memory-pressure", "NoSchedule")}),
])
def test_which_taints_each_condition_calls_for(conds, expected):
    n = node(conditions=[{"type": t, "status": s} for t, s in conds.items()])
    assert {(t["key"], t["effect"]) for t in nl.wanted_taints(n)} == expected


def test_taints_are_added_swapped_and_removed_keeping_the_users_and_their_time():
    mine = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    unknown = nl.wanted_taints(node(ready="Unknown"))
    added = nl.reconcile_taints([mine], unknown, T0)
    assert added[0] == mine
    assert {(t["key"], t["effect"], t["timeAdded"]) for t in added[1:]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule", now_rfc3339(T0)),
        ("node.kubernetes.io/unreachable", "NoExecute", now_rfc3339(T0))}
    assert nl.reconcile_taints(added, unknown, T0 + 30) is None  # nothing to do: timeAdded kept
    swapped = nl.reconcile_taints(added, nl.wanted_taints(node(ready="False")), T0 + 30)
    assert {t["key"] for t in swapped} == {"dedicated", "node.kubernetes.io/not-ready"}
    assert nl.reconcile_taints(swapped, nl.wanted_taints(node()), T0 + 60) == [mine]


def test_the_pods_of_a_not_ready_node_are_marked_not_ready():
    pods = [pod("a"), pod("b", ready="False"), pod("c", node_name="w2"), pod("d", ready=None), pod("e")]
    assert nl.pods_to_mark(node(ready="True"), pods) == []
    assert [p["metadata"]["name"] for p in nl.pods_to_mark(node(ready="Unknown"), pods)] == ["a", "e"]
    marked = nl.marked_not_ready(pods[0], T0)
    ready = condition(marked, "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", now_rfc3339(T0))
    assert condition(pods[0], "Ready")["status"] == "True"  # a copy


# -- eviction -----------------------------------------------------------------------------


UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}


@pytest.mark.parametrize("tolerations, node_taints, delay", [
    ([], [UNREACHABLE], 0),                                         # not tolerated: at once
    ([tol("node.kubernetes.io/unreachable", 300)], [UNREACHABLE], 300),
    ([tol("node.kubernetes.io/unreachable")], [UNREACHABLE], None),  # forever
    ([tol("node.kubernetes.io/unreachable", -5)], [UNREACHABLE], 0),
    ([tol("node.kubernetes.io/unreachable", 300)], [UNREACHABLE, NOT_READY], 0),  # one not tolerated
    ([tol("node.kubernetes.io/unreachable", 300), tol("node.kubernetes.io/not-ready")],
     [UNREACHABLE, NOT_READY], 300),                                # the finite one wins
    ([{"operator": "Exists"}], [UNREACHABLE, NOT_READY], None),     # tolerates everything
    ([tol("node.kubernetes.io/unreachable", 30, effect="NoSchedule")], [UNREACHABLE], 0),
    ([], [], None),
])
def test_eviction_delay(tolerations, node_taints, delay):
    assert taints.eviction_delay(tolerations, node_taints) == delay


def test_eviction_counts_from_the_taint_or_the_binding_whichever_is_later():
    tainted = node(ready="Unknown", node_taints=[{**UNREACHABLE, "timeAdded": now_rfc3339(T0)}])
    early = pod("early", tolerations=[tol("node.kubernetes.io/unreachable", 60)], bound=T0 - 500)
    late = pod("late", tolerations=[tol("node.kubernetes.io/unreachable", 60)], bound=T0 + 20)
    assert taints.eviction_time(early, tainted, T0 + 1) == T0 + 60
    assert taints.eviction_time(late, tainted, T0 + 21) == T0 + 80
    assert taints.eviction_time(pod("none"), tainted, T0 + 1) == T0 + 1  # at once
    assert taints.eviction_time(early, node(), T0 + 1) is None


# -- against a registry ---------------------------------------------------------------------


@pytest.fixture
def reg(tmp_path):
    r = Registry(SqliteStore(str(tmp_path / "c.db")))
    r.bootstrap()
    return r


def put_node(reg, beat: float) -> None:
    n = node(beat=beat)
    reg.create(NODES, None, {k: n[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": "w1"}})
    reg.update(NODES, None, "w1", {**reg.get(NODES, None, "w1"), "status": n["status"]}, "status")


def test_a_quiet_node_is_marked_and_its_pods_lose_readiness_then_evicted(reg):
    put_node(reg, T0)
    for p in (pod("stays", tolerations=[tol("node.kubernetes.io/unreachable", 3600)]),
              pod("goes", tolerations=[tol("node.kubernetes.io/unreachable", 1)])):
        created = reg.create(PODS, "default", {k: p[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        reg.update(PODS, "default", p["metadata"]["name"], {**created, "status": p["status"]}, "status")
    assert nl.check_nodes(reg, 10, T0 + 1) == []      # first sight of its heartbeat
    assert nl.check_nodes(reg, 10, T0 + 10) == []
    assert nl.check_nodes(reg, 10, T0 + 11.5) == ["w1"]
    assert nl.check_nodes(reg, 10, T0 + 12) == []     # written once

    nl.sync(View(reg), now=T0 + 12)
    n = reg.get(NODES, None, "w1")
    assert {(t["key"], t["effect"]) for t in n["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoExecute"), ("node.kubernetes.io/unreachable", "NoSchedule")}
    for name in ("stays", "goes"):
        assert condition(reg.get(PODS, "default", name), "Ready")["status"] == "False"
    events = reg.list(EVENTS, "default")[0]
    assert sorted(e["involvedObject"]["name"] for e in events if e["reason"] == "NodeNotReady") == [
        "goes", "stays", "w1"]
    assert next(e for e in events if e["involvedObject"]["name"] == "goes")["type"] == "Warning"

    added = parse_rfc3339(n["spec"]["taints"][0]["timeAdded"])
    assert added == T0 + 12
    assert taints.sync(View(reg), now=added + 0.5) == pytest.approx(0.5)
    taints.sync(View(reg), now=added + 1)
    goes = reg.get(PODS, "default", "goes")
    assert goes["metadata"].get("deletionTimestamp")
    assert condition(goes, "DisruptionTarget")["reason"] == "DeletionByTaintManager"
    assert not reg.get(PODS, "default", "stays")["metadata"].get("deletionTimestamp")

    # The agent is back: Ready, and the next pass takes the taints away.
    put_back = reg.get(NODES, None, "w1")
    put_back["status"] = node(beat=T0 + 30)["status"]
    reg.update(NODES, None, "w1", put_back, "status")
    nl.sync(View(reg), now=T0 + 31)
    assert reg.get(NODES, None, "w1")["spec"].get("taints") == []


def renew(reg, when: float) -> None:
    """The agent's Lease renewal (knet.node.lease's object), stamped `when`."""
    from knet.node.lease import lease_object

    obj = lease_object("w1", reg.get(NODES, None, "w1")["metadata"]["uid"], now=when)
    current = reg.find(LEASES, nl.LEASE_NAMESPACE, "w1")
    if current is None:
        reg.create(LEASES, nl.LEASE_NAMESPACE, obj)
    else:
        reg.update(LEASES, nl.LEASE_NAMESPACE, "w1", {**current, "spec": obj["spec"]})


def test_lease_renewals_keep_a_node_alive_whose_status_is_not_rewritten(reg):
    put_node(reg, T0)  # the agent's one status write; from now on only its Lease
    renew(reg, T0)
    assert nl.check_nodes(reg, 10, T0 + 1) == []
    for t in range(5, 60, 5):
        renew(reg, T0 + t)
        assert nl.check_nodes(reg, 10, T0 + t + 0.5) == [], f"marked at T0+{t} while the Lease was renewed"
        assert nl.ready_status(reg.get(NODES, None, "w1")) == "True"
    # The agent dies: neither its Lease nor its status moves. Unknown once the grace has passed
    # since the last renewal was seen (T0+55.5), not since the status heartbeat (T0).
    assert nl.check_nodes(reg, 10, T0 + 65) == []
    assert nl.check_nodes(reg, 10, T0 + 66) == ["w1"]
    ready = condition(reg.get(NODES, None, "w1"), "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert ready["lastHeartbeatTime"] == now_rfc3339(T0)
    assert nl.check_nodes(reg, 10, T0 + 70) == []  # written once


def test_a_node_that_never_posted_status_lives_on_its_lease(reg):
    reg.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"}})
    renew(reg, T0)
    assert nl.check_nodes(reg, 10, T0 + 100) == []  # the first renewal seen now: a full grace
    assert nl.check_nodes(reg, 10, T0 + 111) == ["w1"]
    assert condition(reg.get(NODES, None, "w1"), "Ready")["reason"] == "NodeStatusNeverUpdated"


def test_who_is_heard_from():
    assert nl.heard(node(beat=T0), None) == (now_rfc3339(T0), "")
    assert nl.heard(node(conditions=[]), {"spec": {"renewTime": "2030-01-01T00:00:01.000000Z"}}) == (
        "", "2030-01-01T00:00:01.000000Z")
    assert nl.heard(node(conditions=[]), {"spec": {}}) is None
