"""Exact ownership (issue 9, finding 1): a cluster owns what it marked, never
what merely starts with its name. Cluster <u> has namespaces knet-<u>-worker-1..;
cluster <u>-worker must be able to come and go beside it without touching them."""

from __future__ import annotations

import os
import subprocess
import sys

from knet.cluster import all_clusters, component_pid, down, knet_pids, owned_netns
from knet.config import state_dir
from knet.harness.cluster import Cluster, ready, unique_name
from knet.net import ns

SERVER = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: worker-2
  containers: [{name: s, image: agnhost, ports: [{containerPort: 80}]}]
"""


def knet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "knet.cli", *args], capture_output=True, text=True, timeout=60)


def snapshot(c: Cluster) -> dict:
    """What must stay exactly as it is while another cluster comes and goes."""
    comps = {name: component_pid(c.name, name) for name in ("control-plane", "node-worker-1", "node-worker-2")}
    return {"netns": owned_netns(c.name), "components": comps}


def answers(c: Cluster, pod: str = "web") -> str:
    ip = c.get("Pod", "default", pod)["status"]["podIP"]
    return c.exec_node("worker-1", ["sh", "-c", f"echo hostname | nc -w2 {ip} 80"]).stdout.strip()


def test_down_of_a_prefix_named_cluster_leaves_the_other_working():
    u = unique_name()
    lab = Cluster.up(name=u, workers=2)
    try:
        lab.apply(SERVER)
        lab.wait_pod("default", "web", ready)
        assert answers(lab) == "web"
        before = snapshot(lab)
        assert None not in before["components"].values()
        assert f"knet-{u}-worker-1" in before["netns"]

        # Nothing of the names "<u>-worker" or "<u>-control" exists: down finds nothing at all.
        for other in (f"{u}-worker", f"{u}-control"):
            assert owned_netns(other) == [] and knet_pids(other, []) == []
            out = knet("--cluster", other, "down")
            assert out.returncode == 0 and "0 processes, 0 namespaces" in out.stdout, out.stdout + out.stderr
        assert snapshot(lab) == before
        assert answers(lab) == "web"

        # A real <u>-worker beside it: its own namespaces, knet-<u>-worker-worker-1 and so on.
        other = Cluster.up(name=f"{u}-worker", workers=1)
        try:
            assert set(owned_netns(other.name)).isdisjoint(before["netns"])
            assert f"knet-{u}-worker-worker-1" in owned_netns(other.name)
            other.apply(SERVER.replace("worker-2", "worker-1"))
            other.wait_pod("default", "web", ready)
            assert {u, f"{u}-worker"} <= set(all_clusters())
            assert snapshot(lab) == before
        finally:
            gone = other.down()
        assert gone["namespaces"] == 7  # fabric, ext, its 2 nodes, its pod and its 2 coredns pods
        assert owned_netns(other.name) == [] and not os.path.exists(state_dir(other.name))
        # <u> is whole: same namespaces, same component processes, its pod still answers, its API works.
        assert snapshot(lab) == before
        assert answers(lab) == "web"
        assert lab.nodes_ready() == {"control-plane": "True", "worker-1": "True", "worker-2": "True"}
    finally:
        lab.down()
    assert owned_netns(u) == []


def test_down_of_the_shorter_name_leaves_the_longer_one_working():
    u = unique_name()
    longer = Cluster.up(name=f"{u}-worker", workers=1)
    try:
        longer.apply(SERVER.replace("worker-2", "worker-1"))
        longer.wait_pod("default", "web", ready)
        before = {"netns": owned_netns(longer.name),
                  "components": {n: component_pid(longer.name, n) for n in ("control-plane", "node-worker-1")}}
        # Cluster <u> (never created) matches knet-<u>-* by prefix: none of it is its own.
        out = knet("--cluster", u, "down")
        assert out.returncode == 0 and "0 processes, 0 namespaces" in out.stdout, out.stdout + out.stderr
        assert owned_netns(longer.name) == before["netns"]
        assert {n: component_pid(longer.name, n) for n in before["components"]} == before["components"]
        assert answers(longer) == "web"
    finally:
        longer.down()


def test_up_refuses_a_namespace_name_it_needs_that_is_not_its_own(tmp_path):
    u = unique_name()
    lab = Cluster.up(name=u, workers=1)
    try:
        # Cluster "<u>-worker" with a node named "1" would need knet-<u>-worker-1: <u>'s node.
        spec = tmp_path / "c.yaml"
        spec.write_text("kind: Cluster\nnodes:\n- role: control-plane\n- role: worker\n  name: '1'\n")
        lab.wait_for("the cluster DNS's pods (their namespaces are made after up returns)",
                     lambda: [p["status"].get("phase") for p in lab.list("Pod", "kube-system")] == ["Running"] * 2)
        before = ns.list_netns(f"knet-{u}")
        out = knet("--cluster", f"{u}-worker", "up", "-f", str(spec))
        assert out.returncode != 0
        assert f'"knet-{u}-worker-1" already exists and is not cluster "{u}-worker"\'s' in out.stderr
        assert "Traceback" not in out.stderr
        assert ns.list_netns(f"knet-{u}") == before  # nothing made, nothing removed
        assert not os.path.exists(state_dir(f"{u}-worker"))
        assert lab.nodes_ready() == {"control-plane": "True", "worker-1": "True"}
    finally:
        lab.down()


def test_a_namespace_made_by_hand_is_never_taken():
    u = unique_name()
    stray = f"knet-{u}-mine"
    ns.create_netns(stray)  # no marker, no record: not the cluster's, whatever its name
    try:
        c = Cluster.up(name=u, workers=1)
        try:
            assert stray not in owned_netns(u)
        finally:
            c.down()
        assert os.path.exists(ns.netns_path(stray))
    finally:
        ns.delete_netns(stray)


def test_leftovers_without_a_state_directory_are_found_by_their_marker():
    c = Cluster.up(workers=1)
    try:
        c.apply(SERVER.replace("worker-2", "worker-1"))
        c.wait_pod("default", "web", ready)
        names = owned_netns(c.name)
        markers = ns.netns_markers(names)
        assert set(markers.values()) == {c.cfg.owner_marker}  # nodes, ext, fabric and the agent's pod
        # A crash that lost the state directory (kill everything, remove the directory).
        for pid in knet_pids(c.name, names):
            os.kill(pid, 9)
        for point in ns.mounts_under(c.cfg.state_dir):
            ns.remove_ns_file(point)
        subprocess.run(["rm", "-rf", c.cfg.state_dir], check=True)
        assert c.name in all_clusters()
        # `up` refuses to build over them, naming the way out.
        out = knet("--cluster", c.name, "up")
        assert out.returncode != 0 and f"knet down --cluster {c.name}" in out.stderr, out.stderr
        assert sorted(owned_netns(c.name)) == sorted(names)
    finally:
        out = down(c.name, say=lambda _m: None)
    assert out["namespaces"] == len(names)
    assert owned_netns(c.name) == [] and c.name not in all_clusters()


def test_a_cluster_made_before_markers_is_still_removed_exactly():
    """A cluster made by a knet without markers or records: its saved config and
    its pods' pod.json name its namespaces (exactly, not by prefix)."""
    c = Cluster.up(workers=1)
    try:
        c.apply(SERVER.replace("worker-2", "worker-1"))
        c.wait_pod("default", "web", ready)
        names = owned_netns(c.name)
        for name in names:  # as that knet left them: no alias, no record, no id
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "alias", ""], check=True)
        assert set(ns.netns_markers(names).values()) == {None}
        subprocess.run(["rm", "-rf", os.path.join(c.cfg.state_dir, "netns")], check=True)
        path = os.path.join(c.cfg.state_dir, "cluster.json")
        with open(path) as f:
            text = f.read().replace(c.cfg.cluster_id, "")
        with open(path, "w") as f:
            f.write(text)
        assert sorted(owned_netns(c.name)) == sorted(names)
    finally:
        out = c.down()
    assert out["namespaces"] == len(names) == 7  # fabric, ext, 2 nodes, the pod, 2 coredns pods
    assert owned_netns(c.name) == []


def test_a_pod_namespace_made_while_down_kills_is_removed_too(monkeypatch):
    """`down` right after `up` can meet a runtime creating a sandbox: the namespace it makes
    after `down` first listed the cluster's is removed with the rest, not left behind."""
    import knet.cluster as kc

    c = Cluster.up(workers=1)
    late = f"knet-{c.name}-pod-made-late"
    real_kill_all = kc.procs.kill_all

    def kill_all(pids, sig):
        if not os.path.exists(ns.netns_path(late)):  # the runtime, between the listing and its kill
            ns.create_netns(late, c.cfg.netns_owner)
        return real_kill_all(pids, sig)

    monkeypatch.setattr(kc.procs, "kill_all", kill_all)
    try:
        out = down(c.name, say=lambda _m: None)
        left = os.path.exists(ns.netns_path(late))
    finally:  # whatever happened, nothing of the test stays
        monkeypatch.undo()
        if os.path.exists(ns.netns_path(late)):
            ns.delete_netns(late)
        c.down()
    assert not left, f"{late} was left behind"
    assert out["namespaces"] >= 5  # fabric, ext, 2 nodes and the late one (coredns's pods if made)
    assert owned_netns(c.name) == []
