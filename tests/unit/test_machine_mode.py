"""Machine mode's pure parts (knet/machine.py, ClusterConfig.machine): which processes a machine
runs, node names checked with the flag named, and cluster files from before the field."""

from __future__ import annotations

import json

import pytest

from knet import supervisor as sup
from knet.config import ClusterConfig, NodeConfig, default_config
from knet.machine import MachineError, check_node_name


def machine_cfg(machine: str) -> ClusterConfig:
    cfg = ClusterConfig(name="lab")
    cfg.nodes = [NodeConfig("cp", "control-plane", "192.168.56.10"), NodeConfig("w1", "worker", "192.168.56.11")]
    cfg.machine = machine
    return cfg


def test_the_control_plane_machine_runs_the_control_plane_and_its_node_only():
    comps = sup.components(machine_cfg("cp"))
    assert list(comps) == ["control-plane", "runtime-cp", "node-cp"]
    assert {c.netns for c in comps.values()} == {"knet-lab-cp"}


def test_a_joined_machine_runs_its_own_node_only():
    comps = sup.components(machine_cfg("w1"))
    assert list(comps) == ["runtime-w1", "node-w1"]
    assert comps["node-w1"].args == ("--node", "w1")


def test_a_cluster_of_namespaces_runs_every_node_here():
    cfg = default_config("lab")
    assert cfg.machine == ""
    assert list(sup.components(cfg)) == ["control-plane", *[f"{k}-{n.name}" for n in cfg.nodes
                                                             for k in ("runtime", "node")]]


def test_nodes_in_namespaces_yield_the_cpu_to_the_control_plane_and_a_machine_s_node_does_not():
    here = sup.components(default_config("lab"))
    assert here["control-plane"].nice == 0
    assert {c.nice for name, c in here.items() if name != "control-plane"} == {sup.NODE_NICE}
    assert sup.NODE_NICE > 0
    assert {c.nice for c in sup.components(machine_cfg("cp")).values()} == {0}
    assert {c.nice for c in sup.components(machine_cfg("w1")).values()} == {0}


def test_a_saved_cluster_from_before_machine_mode_loads():
    data = json.loads(default_config("old").to_json())
    del data["machine"]
    assert ClusterConfig.from_json(json.dumps(data)).machine == ""


@pytest.mark.parametrize("bad", ["", "Worker", "w_1", "fabric", "pod-x", "a" * 40])
def test_a_bad_node_name_is_refused_naming_the_flag(bad):
    with pytest.raises(MachineError) as e:
        check_node_name(bad)
    assert str(e.value).startswith(f"--node-name: Invalid value: {bad!r}")
