"""A node's liveness is its Lease (issue 14): on a live cluster the agent
renews kube-node-lease/<node> every heartbeat and leaves its Node status
alone while nothing in it changes, and the node stays Ready through many
grace periods of that; a status the lifecycle controller marked Unknown is
put back by the agent at once. (The agent stopping, so its Lease too, turns
the node Unknown: test_lifecycle and test_node_failure.)"""

from __future__ import annotations

import pytest

from knet.api.resources import by_kind
from knet.harness.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

GRACE = 2.0
NODE = "worker-1"


@pytest.fixture(scope="module")
def c():
    with Cluster.up(workers=1, heartbeatSeconds=0.5, nodeGracePeriodSeconds=GRACE) as cluster:
        # Set up: the node's podCIDR and VTEP annotation written (the agent's last Node writes of start-up).
        cluster.wait_for("worker-1's network set up", lambda: (n := cluster.get("Node", None, NODE))
                         and n["spec"].get("podCIDR") and "knet.dev/vtep-mac" in n["metadata"].get("annotations", {}),
                         timeout=30)
        yield cluster


def ready(node: dict) -> dict:
    return next(x for x in node["status"]["conditions"] if x["type"] == "Ready")


def renew_time(c: Cluster) -> str:
    lease = c.get("Lease", "kube-node-lease", NODE)
    return (lease or {}).get("spec", {}).get("renewTime", "")


def test_only_the_lease_moves_while_the_node_is_unchanged(c):
    before = ready(c.get("Node", None, NODE))
    assert before["status"] == "True"
    seen = {renew_time(c)}
    # Eight renewals at 0.5 s: two grace periods with no Node status write.
    c.wait_for("eight Lease renewals", lambda: seen.add(renew_time(c)) or len(seen) > 8, timeout=60, interval=0.1)
    after = ready(c.get("Node", None, NODE))
    assert after["status"] == "True"
    assert after["lastHeartbeatTime"] == before["lastHeartbeatTime"], "the Node status was rewritten unchanged"
    assert after["lastTransitionTime"] == before["lastTransitionTime"]
    assert not [e for e in c.list("Event", "default") if e["reason"] == "NodeNotReady"
                and e["involvedObject"]["name"] == NODE]


def test_a_status_marked_unknown_is_put_back_by_the_live_agent(c):
    node = c.get("Node", None, NODE)
    for cond in node["status"]["conditions"]:  # what the lifecycle controller writes for a quiet node
        if cond["type"] == "Ready":
            cond.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                        lastTransitionTime="2020-01-01T00:00:00Z")
    c.client.update(by_kind("Node"), None, NODE, node, "status")
    back = c.wait_for("worker-1 Ready again", lambda: (n := c.get("Node", None, NODE))
                      and ready(n)["status"] == "True" and n, timeout=20)
    assert ready(back)["reason"] == "KubeletReady"
    assert ready(back)["lastTransitionTime"] > "2020-01-01T00:00:00Z"  # a new transition, from Unknown
    c.wait_for("worker-1 untainted", lambda: not [t for t in c.get("Node", None, NODE)["spec"].get("taints") or []
                                                  if t["key"].startswith("node.kubernetes.io/")], timeout=20)
