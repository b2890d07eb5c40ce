"""A node's capacity.pods: kubelet's 110 unless the cluster file raises it
(nodes[].maxPods), carried through the saved configuration to the agent's
Node status."""

from __future__ import annotations

import pytest

from knet.config import ConfigError, parse_cluster
from knet.node.nodeinfo import resources, static_status


def test_max_pods_defaults_to_kubelets_and_the_cluster_file_raises_it():
    cfg = parse_cluster({"nodes": [{"role": "control-plane"}, {"role": "worker", "maxPods": 300},
                                   {"role": "worker"}]}, "cap")
    assert [n.max_pods for n in cfg.nodes] == [110, 300, 110]
    capacity, allocatable = resources(2, 1 << 20, 1 << 30, cfg.node("worker-1").max_pods)
    assert capacity["pods"] == allocatable["pods"] == "300"
    assert resources(2, 1 << 20, 1 << 30)[0]["pods"] == "110"
    status = static_status("cap", "worker-1", "v1.37.0", "knet://x", cfg.node("worker-1").max_pods)
    assert status["capacity"]["pods"] == "300"


@pytest.mark.parametrize("value", [0, -5, "300", 1.5, True, 20000])
def test_max_pods_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError) as e:
        parse_cluster({"nodes": [{"role": "control-plane"}, {"role": "worker", "maxPods": value}]}, "cap")
    assert str(e.value).startswith("nodes[1].maxPods: Invalid value:")
