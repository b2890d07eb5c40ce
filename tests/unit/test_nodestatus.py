"""When a node agent writes its Node status (knet.node.nodestatus): only on a
change other than the heartbeat times, on its first report, or once the
report frequency has passed; and the node's Lease, its liveness heartbeat,
renewed against a real API server (knet.harness.apiserver)."""

from __future__ import annotations

import pytest
import trio

from knet.api.aclient import AsyncClient
from knet.api.objects import now_rfc3339, parse_rfc3339
from knet.api.resources import by_kind
from knet.harness.apiserver import TOKEN, LocalApiServer
from knet.node import lease, nodestatus

T0 = parse_rfc3339("2030-01-01T00:00:00Z")
STATIC = {"capacity": {"cpu": "2", "pods": "110"}, "allocatable": {"cpu": "2", "pods": "110"},
          "nodeInfo": {"kubeletVersion": "v1.37.0"}}


def stored_after(wanted: dict) -> dict:
    """The status as the API stores it after the agent wrote `wanted`."""
    return nodestatus.with_transitions(None, wanted)


def test_a_status_differing_only_in_its_heartbeat_times_is_unchanged():
    first = stored_after(nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0))
    later = nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0 + 60)
    assert not nodestatus.changed(first, later)
    assert not nodestatus.due(first, later, last_report=100.0, now=160.0, report_seconds=300)


def test_a_changed_condition_address_or_capacity_is_written_at_once():
    first = stored_after(nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0))
    wanted = nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0 + 5)
    unknown = dict(first, conditions=[dict(c, status="Unknown", reason="NodeStatusUnknown")
                                      if c["type"] == "Ready" else c for c in first["conditions"]])
    assert nodestatus.changed(unknown, wanted)  # the lifecycle controller's mark: put Ready back
    assert nodestatus.due(unknown, wanted, last_report=100.0, now=105.0)
    assert nodestatus.changed(first, nodestatus.wanted_status("w1", "192.168.56.12", STATIC, T0 + 5))
    bigger = dict(STATIC, capacity=dict(STATIC["capacity"], pods="300"))
    assert nodestatus.changed(first, nodestatus.wanted_status("w1", "192.168.56.11", bigger, T0 + 5))
    assert nodestatus.changed(None, wanted)  # never posted
    missing = dict(first, conditions=first["conditions"][:1])
    assert nodestatus.changed(missing, wanted)


def test_the_first_report_and_the_report_frequency_write_an_unchanged_status():
    first = stored_after(nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0))
    wanted = nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0 + 300)
    assert nodestatus.due(first, wanted, last_report=None, now=5.0)  # a (re)started agent
    assert not nodestatus.due(first, wanted, last_report=0.0, now=299.5, report_seconds=300)
    assert nodestatus.due(first, wanted, last_report=0.0, now=300.0, report_seconds=300)


def test_transition_times_stay_while_a_condition_keeps_its_status():
    first = stored_after(nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0))
    ready = next(c for c in first["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == ready["lastHeartbeatTime"] == now_rfc3339(T0)
    again = nodestatus.with_transitions(first, nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0 + 9))
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert (ready["lastTransitionTime"], ready["lastHeartbeatTime"]) == (now_rfc3339(T0), now_rfc3339(T0 + 9))
    unknown = dict(first, conditions=[dict(c, status="Unknown") for c in first["conditions"]])
    back = nodestatus.with_transitions(unknown, nodestatus.wanted_status("w1", "192.168.56.11", STATIC, T0 + 20))
    assert {c["lastTransitionTime"] for c in back["conditions"]} == {now_rfc3339(T0 + 20)}
    assert "lastTransitionTime" not in nodestatus.wanted_status("w1", "192.168.56.11", STATIC)["conditions"][0]


def test_the_renewal_interval_is_the_one_given_else_a_quarter_of_the_duration():
    assert lease.NodeLease(None, "w1").renew_seconds == 10.0  # kubelet's 40 s * 0.25
    assert lease.NodeLease(None, "w1", renew_seconds=2.0).renew_seconds == 2.0


def test_the_lease_is_made_owned_by_its_node_then_renewed(tmp_path):
    with LocalApiServer(tmp_path) as server:
        server.client().create(by_kind("Node"), None, {"apiVersion": "v1", "kind": "Node",
                                                       "metadata": {"name": "w1"}})

        async def renew_twice() -> tuple[dict, dict]:
            api = AsyncClient("", 0, TOKEN, unix_path=server.socket)
            node_lease = lease.NodeLease(api, "w1", renew_seconds=0.5)
            first = await node_lease.renew_once()
            await trio.sleep(0.01)  # renewTime has microseconds
            return first, await node_lease.renew_once()

        first, second = trio.run(renew_twice)
        stored = server.client().get(by_kind("Lease"), lease.NAMESPACE, "w1")
    assert first["spec"]["holderIdentity"] == "w1"
    assert first["metadata"]["ownerReferences"][0]["name"] == "w1"
    assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert stored["spec"]["renewTime"] == second["spec"]["renewTime"]
    assert int(stored["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_progress_reports_are_spaced_more_past_four_nodes_and_at_most_2_s():
    from knet.node.agent import PROGRESS_MIN_GAP, progress_gap

    assert progress_gap(1) == progress_gap(4) == progress_gap(5) == PROGRESS_MIN_GAP == 0.05
    assert progress_gap(11) == pytest.approx(0.35)
    assert progress_gap(51) == progress_gap(500) == 2.0
