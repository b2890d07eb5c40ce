"""`knet up` and `knet down` on real namespaces: the host is left exactly as it
was, clusters run side by side, down cleans up after crashes and failures, and
up gets past what an interrupted run left (issue 9, finding 8)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from knet.cluster import (
    ClusterError,
    component_pid,
    down,
    knet_pids,
    owned_netns,
    start_component,
    stop_component,
    up,
)
from knet.config import parse_cluster, state_dir
from knet.harness.cluster import Cluster, running, unique_name
from knet.harness.hostsnap import diff, snapshot
from knet.net import ns

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  containers:
  - name: main
    image: agnhost
    command: ["sh", "-c", "sleep 300 & sleep 300"]
  - name: server
    image: agnhost
    ports: [{containerPort: 80}]
"""


def knet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "knet.cli", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def leftovers(name: str) -> list[str]:
    found = [f"netns {n}" for n in owned_netns(name)]
    found += [f"pid {p}" for p in knet_pids(name, [])]
    found += [f"mount {m}" for m in ns.mounts_under(state_dir(name))]
    if os.path.exists(state_dir(name)):
        found.append(f"dir {state_dir(name)}")
    return found


def test_up_down_leaves_the_host_untouched():
    name = unique_name()
    before = snapshot()
    try:
        up_out = knet("up", "--cluster", name)
        assert "4 nodes Ready" in up_out.stdout
        nodes = knet("get", "nodes", "--cluster", name).stdout
        for node in ("control-plane", "worker-1", "worker-2", "worker-3"):
            assert node in nodes
        assert "control-plane" in nodes.splitlines()[1] and " Ready " in nodes
        apply = subprocess.run([sys.executable, "-m", "knet.cli", "--cluster", name, "apply", "-f", "-", "--wait"],
                               input=SLEEPER, capture_output=True, text=True)
        assert apply.returncode == 0, apply.stderr
    finally:
        out = knet("down", "--cluster", name)
    assert "Deleted cluster" in out.stdout
    assert leftovers(name) == []
    assert diff(before, snapshot()) == []


def test_down_when_nothing_is_there():
    name = unique_name()
    out = knet("down", "--cluster", name)
    assert "0 processes, 0 namespaces" in out.stdout


def test_two_clusters_side_by_side():
    a = Cluster.up(workers=1)
    try:
        b = Cluster.up(workers=1)
        try:
            a.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: only-in-a}\nspec: {containers: [{name: c, image: agnhost}]}\n")
            assert a.get("Pod", "default", "only-in-a") is not None
            assert b.get("Pod", "default", "only-in-a") is None
            # Same LAN addresses, separate fabrics: each control plane answers in its own.
            for c in (a, b):
                out = c.exec_node("worker-1", ["ping", "-c1", "-W1", "192.168.56.10"])
                assert out.returncode == 0, out.stderr
        finally:
            b.down()
        assert leftovers(b.name) == []
        assert a.nodes_ready() == {"control-plane": "True", "worker-1": "True"}
    finally:
        a.down()


def test_down_after_kill_9_of_every_process():
    c = Cluster.up(workers=1)
    try:
        c.apply(SLEEPER)
        c.wait_pod("default", "sleeper", running)
        pids = knet_pids(c.name, owned_netns(c.name))
        assert len(pids) >= 4  # control plane, 2 agents, the pod's shells and sleeps
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # a short-lived child may be gone already
                os.kill(pid, signal.SIGKILL)
    finally:
        out = c.down()
    assert leftovers(c.name) == []
    assert out["namespaces"] >= 5  # fabric, ext, 2 nodes, the pod


def test_failed_up_leaves_nothing_behind():
    cfg = parse_cluster({"nodes": [{"role": "control-plane"}, {"role": "worker"}]}, unique_name())
    with pytest.raises(ClusterError, match="within"):
        up(cfg, say=lambda _m: None, timeout=0.0001)
    assert leftovers(cfg.name) == []


def test_up_refuses_an_existing_cluster_and_bad_cluster_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Cluster\nnodes:\n- role: control-plane\n- role: boss\n")
    out = knet("up", "-f", str(bad), "--cluster", unique_name(), check=False)
    assert out.returncode != 0 and "nodes[1].role" in out.stderr
    bad.write_text("kind: Cluster\nnetworking:\n  podSubnet: 10.244.0.0/33\n")
    out = knet("up", "-f", str(bad), "--cluster", unique_name(), check=False)
    assert out.returncode != 0 and "networking.podSubnet" in out.stderr
    c = Cluster.up(workers=1)
    try:
        out = knet("up", "--cluster", c.name, check=False)
        assert out.returncode != 0 and "already exists" in out.stderr
        assert c.nodes_ready() == {"control-plane": "True", "worker-1": "True"}
    finally:
        c.down()


def test_cluster_file_sets_nodes_labels_and_subnets(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        "networking:\n  lanSubnet: 10.77.0.0/24\n"
        "nodes:\n- role: control-plane\n- role: worker\n  name: edge\n  labels: {zone: east}\n")
    name = unique_name()
    try:
        knet("up", "-f", str(spec), "--cluster", name)
        nodes = knet("get", "nodes", "-o", "wide", "--cluster", name).stdout
        assert "edge" in nodes and "10.77.0.11" in nodes
        labelled = knet("get", "nodes", "-l", "zone=east", "-o", "name", "--cluster", name).stdout.split()
        assert labelled == ["node/edge"]
    finally:
        down(name, say=lambda _m: None)
    assert leftovers(name) == []


def test_node_turns_not_ready_when_its_agent_stops():
    c = Cluster.up(workers=2, heartbeatSeconds=0.5, nodeGracePeriodSeconds=2)
    try:
        # Held down (the supervisor would restart a plain kill -9 at once), then SIGKILL.
        assert stop_component(c.cfg, "node-worker-2") is not None
        t0 = time.monotonic()
        c.wait_for("worker-2 NotReady", lambda: c.nodes_ready()["worker-2"] == "Unknown", timeout=10)
        assert time.monotonic() - t0 >= 1.0  # not before the grace period
        assert c.nodes_ready()["worker-1"] == "True"
        out = c.knet("get", "nodes").stdout
        assert any(line.startswith("worker-2") and "NotReady" in line for line in out.splitlines())
        # New pods avoid the NotReady node.
        c.apply("".join(f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec: {{containers: [{{name: c, image: agnhost}}]}}\n"
                        for i in range(3)))
        for i in range(3):
            assert c.get("Pod", "default", f"p{i}")["spec"]["nodeName"] == "worker-1"
        assert component_pid(c.name, "node-worker-2") is None  # still held down
        # The agent comes back: Ready again, and it adopts its pods.
        start_component(c.cfg, "node-worker-2")
        c.wait_for("worker-2 Ready", lambda: c.nodes_ready()["worker-2"] == "True", timeout=10)
    finally:
        c.down()


def test_up_over_an_empty_leftover_state_directory():
    name = unique_name()
    os.makedirs(state_dir(name))  # what an interrupted up or down can leave
    try:
        out = subprocess.run([sys.executable, "-m", "knet.cli", "--cluster", name, "up", "-f", "/dev/stdin"],
                             input="kind: Cluster\nnodes:\n- role: control-plane\n", capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "removed the stale state directory" in out.stdout
        assert "Traceback" not in out.stderr
        assert knet("get", "nodes", "-o", "name", "--cluster", name).stdout.split() == ["node/control-plane"]
    finally:
        down(name, say=lambda _m: None)
    assert leftovers(name) == []


def test_a_name_that_is_not_a_cluster_name_never_reaches_the_file_system(tmp_path):
    """`--cluster ..` would make the state directory the state root's parent:
    down must refuse the name, not remove that directory. A private state root
    here, so that even a regression removes only this test's sentinel."""
    root, keep = tmp_path / "root", tmp_path / "keep"
    root.mkdir()
    keep.write_text("still here")
    env = {**os.environ, "KNET_STATE_ROOT": str(root)}
    for name in ("..", "a/b", "Lab"):
        for verb in ("down", "stop", "start", "status"):
            out = subprocess.run([sys.executable, "-m", "knet.cli", "--cluster", name, verb], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode != 0 and "name: Invalid value" in out.stderr, (verb, out.stdout + out.stderr)
            assert "Traceback" not in out.stderr
    assert keep.read_text() == "still here" and root.is_dir()
