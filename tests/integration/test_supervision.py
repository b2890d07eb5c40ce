"""Supervised components (issue 9, finding 4, the supervision half): a killed
component is restarted, with its restart count in `knet status`; `knet stop`
and `knet start` bring a cluster back with its state; a killed supervisor is
restored without second copies of what still runs."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from knet import supervisor as sup
from knet.cluster import component_pid, down, knet_pids, owned_netns, supervisor_pid
from knet.config import default_config
from knet.harness.cluster import Cluster, ready, running, unique_name
from knet.net import ns, procs

APP = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: worker-1
  containers: [{name: s, image: agnhost, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  nodeName: worker-1
  containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


@pytest.fixture(scope="module")
def c():
    with Cluster.up(workers=1) as cluster:
        cluster.apply(APP)
        cluster.wait_pod("default", "web", ready)
        cluster.wait_pod("default", "sleeper", running)
        yield cluster


@pytest.fixture
def same_spec(tmp_path) -> str:
    """A cluster file for the config the fixture's cluster was made with."""
    path = tmp_path / "c.yaml"
    path.write_text("kind: Cluster\nnodes:\n- role: control-plane\n- role: worker\n")
    return str(path)


def status_line(c: Cluster, component: str) -> str:
    out = c.knet("status", check=False).stdout  # exits 1 while the API server is (re)starting
    return next(line for line in out.splitlines() if line.split()[:1] == [component])


def restarts(c: Cluster, component: str) -> int:
    return int(re.search(r"restarts (\d+)", status_line(c, component))[1])


def answers(c: Cluster) -> str:
    ip = c.get("Pod", "default", "web")["status"]["podIP"]
    return c.exec_node("control-plane", ["sh", "-c", f"echo hostname | nc -w2 {ip} 80"]).stdout.strip()


def one_copy_each(c: Cluster) -> None:
    """Exactly one process per component, once any fork-before-exec window has passed: a child
    the component is starting carries its argv until its exec, and is not a second copy."""
    c.wait_for("one process per component", lambda: set(copies(c).values()) == {1}, timeout=5, interval=0.1)
    assert copies(c) == dict.fromkeys(copies(c), 1)


def copies(c: Cluster) -> dict[str, int]:
    """How many processes run each component's (and the supervisor's) exact argv."""
    want = {name: sup.argv_for(c.cfg, comp)[1:] for name, comp in sup.components(c.cfg).items()}
    want["supervisor"] = sup.supervisor_argv(c.name)[1:]
    counts = dict.fromkeys(want, 0)
    for pid in procs.all_pids():
        argv = procs.cmdline(pid)
        for name, tail in want.items():
            if argv and argv[1:] == tail and procs.alive(pid):
                counts[name] += 1
    return counts


def all_ready(c: Cluster) -> bool:
    """Every node Ready, once the API server answers again."""
    try:
        return set(c.nodes_ready().values()) == {"True"}
    except OSError:
        return False


def restarted(c: Cluster, component: str, old: int) -> int:
    return c.wait_for(f"{component} restarted", lambda: (p := component_pid(c.name, component)) not in (None, old) and p,
                      timeout=15)


@pytest.mark.parametrize("component", ["control-plane", "node-worker-1"])
def test_a_killed_component_is_restarted_and_counted(c, component):
    before = restarts(c, component)
    old = component_pid(c.name, component)
    os.kill(old, signal.SIGKILL)
    new = restarted(c, component, old)
    assert new != old
    assert f"restarts {before + 1}" in status_line(c, component)
    assert "killed by SIGKILL" in status_line(c, component)
    log = open(os.path.join(c.cfg.state_dir, "logs", f"{component}.log")).read()
    assert f"restarting {component} (restart {before + 1}; last exit: killed by SIGKILL)" in log
    c.wait_for("nodes Ready", lambda: all_ready(c), timeout=20)
    c.wait_for("web answers", lambda: answers(c) == "web", timeout=20)
    one_copy_each(c)


def session_nice(pid: int) -> int:
    """The priority a component runs at: its session's autogroup's (`/autogroup-N nice K`), or its
    own where the kernel has no autogroups."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split()[-1])
    except FileNotFoundError:
        return os.getpriority(os.PRIO_PROCESS, pid)


def test_nodes_run_below_the_control_plane_s_priority_also_when_restarted(c):
    assert session_nice(component_pid(c.name, "control-plane")) == 0
    for name in ("runtime-worker-1", "node-worker-1", "runtime-control-plane", "node-control-plane"):
        assert session_nice(component_pid(c.name, name)) == sup.NODE_NICE, name
    old = component_pid(c.name, "node-worker-1")
    os.kill(old, signal.SIGKILL)
    assert session_nice(restarted(c, "node-worker-1", old)) == sup.NODE_NICE
    c.wait_for("nodes Ready", lambda: all_ready(c), timeout=20)


def test_a_killed_supervisor_is_restored_without_second_copies(c, same_spec):
    pids = {name: component_pid(c.name, name) for name in sup.components(c.cfg)}
    old = supervisor_pid(c.name)
    os.kill(old, signal.SIGKILL)
    c.wait_for("supervisor gone", lambda: supervisor_pid(c.name) is None)
    # The components do not depend on it.
    assert {name: component_pid(c.name, name) for name in pids} == pids
    assert answers(c) == "web"
    out = c.knet("up", "-f", same_spec)  # as on a partly running cluster: start what is missing
    assert "Starting cluster" in out.stdout
    assert supervisor_pid(c.name) not in (None, old)
    assert {name: component_pid(c.name, name) for name in pids} == pids  # adopted, not started again
    one_copy_each(c)
    log = open(os.path.join(c.cfg.state_dir, "logs", "supervisor.log")).read()
    assert all(f"adopted {name} (pid {pid})" in log for name, pid in pids.items())
    # ... and it supervises them: a kill is restarted again.
    victim = pids["node-worker-1"]
    os.kill(victim, signal.SIGKILL)
    restarted(c, "node-worker-1", victim)
    c.wait_for("worker-1 Ready", lambda: all_ready(c), timeout=20)


def test_up_of_a_running_cluster_says_so_and_a_different_config_is_refused(c, same_spec):
    out = c.knet("up", "-f", same_spec, check=False)
    assert out.returncode != 0 and f'cluster "{c.name}" already exists and is running' in out.stderr
    out = c.knet("up", check=False)  # the default: three workers
    assert out.returncode != 0 and "different configuration" in out.stderr and "knet down" in out.stderr
    assert "Traceback" not in out.stderr
    one_copy_each(c)


def test_stop_and_start_keep_the_cluster_s_state(c, same_spec):
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in c.list("Pod", "default")}
    svc_ip = c.get("Service", "default", "web")["spec"]["clusterIP"]
    netns = owned_netns(c.name)
    out = c.knet("stop", "--grace-period", "2")
    assert "Stopped cluster" in out.stdout
    assert knet_pids(c.name, netns) == []  # supervisor, components and the pods' processes
    assert owned_netns(c.name) == netns  # namespaces, store and state stay
    assert os.path.exists(os.path.join(c.cfg.state_dir, "store.db"))
    status = c.knet("status", check=False).stdout
    assert "Supervisor: not running" in status and re.search(r"control-plane\s+stopped", status)
    assert f"is stopped: knet start --cluster {c.name}" in status
    # `up` on the stopped cluster (same config) starts it again; so does `knet start`.
    t0 = time.monotonic()
    out = c.knet("start")
    assert "2 nodes Ready" in out.stdout
    print(f"\nknet start: {time.monotonic() - t0:.2f}s")
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in c.list("Pod", "default")} == uids
    assert c.get("Service", "default", "web")["spec"]["clusterIP"] == svc_ip
    c.wait_pod("default", "web", ready, timeout=30)
    c.wait_pod("default", "sleeper", running, timeout=30)
    c.wait_for("web answers", lambda: answers(c) == "web", timeout=20)
    one_copy_each(c)
    out = c.knet("start")
    assert "already running" in out.stdout
    # Stopped again, `up` with the same config brings it back too.
    c.knet("stop", "--grace-period", "2")
    out = c.knet("up", "-f", same_spec)
    assert "Starting cluster" in out.stdout and "is up" in out.stdout
    c.wait_pod("default", "web", ready, timeout=30)


def test_backoff_grows_and_resets():
    delays, d = [], 0.0
    for _ in range(9):
        d = sup.next_backoff(d, ran=0.5)
        delays.append(d)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and delays[-1] == sup.BACKOFF_MAX
    assert sup.next_backoff(sup.BACKOFF_MAX, ran=sup.RESET_AFTER + 1) == sup.BACKOFF_FIRST


def test_records_of_long_gone_namespaces_are_pruned():
    """A cluster's namespace records stay bounded: a deleted pod's goes, a live
    namespace's and a fresh one's (being created right now) stay."""
    cfg = default_config(unique_name())
    cfg.cluster_id = "t"
    live, gone, fresh = (f"knet-{cfg.name}-pod-{x * 12}" for x in "abc")
    ns.create_netns(live, cfg.netns_owner)
    try:
        rdir = cfg.netns_owner.record_dir
        for name in (gone, fresh):
            open(os.path.join(rdir, name), "w").close()
        old = time.time() - 120
        for name in (live, gone):
            os.utime(os.path.join(rdir, name), (old, old))
        sup.prune_records(cfg)
        assert sorted(os.listdir(rdir)) == sorted([live, fresh])
    finally:
        down(cfg.name, say=lambda _m: None)
    assert not os.path.exists(ns.netns_path(live))
