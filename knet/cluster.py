"""Bringing a cluster up and tearing it down.

`up` builds the fabric (LAN bridge, ext host, node namespaces), starts the
control plane and one agent per node, and returns when every node is Ready;
if anything fails it tears down what it made. `down` finds everything by the
cluster's names (namespaces, processes living in them, mounts and files under
the state directory), so it works on a half-made or crashed cluster, and when
there is nothing at all.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from knet.config import STATE_ROOT, ClusterConfig, load_saved, state_dir
from knet.net import ns, procs

Say = Callable[[str], None]


class ClusterError(RuntimeError):
    pass


def _spawn(cfg: ClusterConfig, netns: str, name: str, module: str, *args: str) -> int:
    """Start a knet component inside a node namespace, detached from the CLI,
    logging to the state directory."""
    logdir = os.path.join(cfg.state_dir, "logs")
    os.makedirs(logdir, exist_ok=True)
    fd = os.open(ns.netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    logf = open(os.path.join(logdir, f"{name}.log"), "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--cluster", cfg.name, *args],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            preexec_fn=lambda: ns.setns(fd, ns.CLONE_NEWNET), close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        os.close(fd)
        logf.close()
    pids = os.path.join(cfg.state_dir, "pids")
    os.makedirs(pids, exist_ok=True)
    with open(os.path.join(pids, f"{name}.pid"), "w") as f:
        f.write(str(proc.pid))
    return proc.pid


def exists(cluster: str) -> bool:
    return os.path.exists(os.path.join(state_dir(cluster), "cluster.json")) or bool(owned_netns(cluster))


def up(cfg: ClusterConfig, say: Say = print, timeout: float = 30.0) -> float:
    """Build and start the cluster; returns the seconds it took."""
    t0 = time.monotonic()
    if exists(cfg.name):
        raise ClusterError(f'cluster "{cfg.name}" already exists (run: knet down --cluster {cfg.name})')
    try:
        _build(cfg, say)
        _start(cfg, say)
        _wait_ready(cfg, say, timeout)
    except BaseException as e:
        say(f"✗ bring-up failed: {e}")
        tail = _log_tail(cfg)
        if tail:
            say(tail)
        down(cfg.name, say=lambda _m: None)
        raise
    return time.monotonic() - t0


def _build(cfg: ClusterConfig, say: Say) -> None:
    from knet.net.links import build_lan

    os.makedirs(STATE_ROOT, mode=0o755, exist_ok=True)
    os.makedirs(cfg.state_dir, mode=0o700)
    with open(os.path.join(cfg.state_dir, "cluster.json"), "w") as f:
        f.write(cfg.to_json())
    fd = os.open(os.path.join(cfg.state_dir, "token"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    ns.create_netns(cfg.fabric_netns)
    hosts = [(cfg.ext_netns, "to-ext", cfg.ext_ip)]
    ns.create_netns(cfg.ext_netns)
    for i, node in enumerate(cfg.nodes):
        ns.create_netns(cfg.node_netns(node.name))
        hosts.append((cfg.node_netns(node.name), f"to-n{i}", node.ip))
    build_lan(cfg.fabric_netns, hosts, cfg.lan_prefixlen)
    say(f" ✓ LAN {cfg.lan_subnet}: ext {cfg.ext_ip}, " + ", ".join(f"{n.name} {n.ip}" for n in cfg.nodes))


def _start(cfg: ClusterConfig, say: Say) -> None:
    cp = cfg.control_plane
    _spawn(cfg, cfg.node_netns(cp.name), "control-plane", "knet.controlplane")
    for node in cfg.nodes:
        _spawn(cfg, cfg.node_netns(node.name), f"node-{node.name}", "knet.node.agent", "--node", node.name)


def start_component(cfg: ClusterConfig, component: str) -> int:
    """(Re)start one component by its log name: "control-plane" or "node-<name>"."""
    if component == "control-plane":
        return _spawn(cfg, cfg.node_netns(cfg.control_plane.name), component, "knet.controlplane")
    node = component.removeprefix("node-")
    cfg.node(node)
    return _spawn(cfg, cfg.node_netns(node), component, "knet.node.agent", "--node", node)


def component_pid(cluster: str, component: str) -> int | None:
    try:
        with open(os.path.join(state_dir(cluster), "pids", f"{component}.pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if procs.alive(pid) else None


def _wait_ready(cfg: ClusterConfig, say: Say, timeout: float) -> None:
    from knet.api.client import Client
    from knet.api.objects import is_true
    from knet.api.resources import by_kind

    client = connect(cfg.name)
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise ClusterError(f"the API server did not come up within {timeout:g}s")
        try:
            client.request("GET", "/version")
            break
        except OSError:
            _check_alive(cfg)
            time.sleep(0.02)
    say(f" ✓ control plane serving on {cfg.control_plane.ip}:{cfg.api_port}")
    want = {n.name for n in cfg.nodes}
    while True:
        nodes = client.list(by_kind("Node"))["items"]
        ready = {n["metadata"]["name"] for n in nodes if is_true(n, "Ready")}
        if want <= ready:
            break
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not Ready within {timeout:g}s: {', '.join(sorted(want - ready))}")
        _check_alive(cfg)
        time.sleep(0.02)
    assert isinstance(client, Client)
    say(f" ✓ {len(want)} nodes Ready")


def _check_alive(cfg: ClusterConfig) -> None:
    for pid_file in os.listdir(os.path.join(cfg.state_dir, "pids")):
        with open(os.path.join(cfg.state_dir, "pids", pid_file)) as f:
            pid = int(f.read())
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, _status = pid, 0
        if done or not procs.alive(pid):
            raise ClusterError(f"{pid_file[:-4]} exited during start-up")


def _log_tail(cfg: ClusterConfig, lines: int = 15) -> str:
    out = []
    logdir = os.path.join(cfg.state_dir, "logs")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        with open(os.path.join(logdir, name), errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
        if tail:
            out.append(f"--- {name} ---\n" + "\n".join(tail))
    return "\n".join(out)


def connect(cluster: str):
    """A CLI client for a running cluster (unix socket + the root-only token)."""
    from knet.api.client import NotRunning, for_cluster

    try:
        return for_cluster(cluster)
    except NotRunning as e:
        raise ClusterError(str(e)) from None


# -- teardown --------------------------------------------------------------------------


def other_clusters(cluster: str) -> list[str]:
    try:
        return [d for d in os.listdir(STATE_ROOT) if d != cluster]
    except FileNotFoundError:
        return []


def all_clusters() -> list[str]:
    """Clusters on this machine: by state directory, or by a fabric namespace left behind."""
    names = set(other_clusters(""))
    for netns in ns.list_netns("knet-"):
        if netns.endswith("-fabric"):
            names.add(netns[len("knet-"):-len("-fabric")])
    return sorted(names)


def owned_netns(cluster: str) -> list[str]:
    """The namespaces of this cluster: knet-<cluster>-*, except those that are
    really another cluster's whose name extends this one (cluster "a" vs "a-b")."""
    prefix = f"knet-{cluster}-"
    others = [f"knet-{o}-" for o in other_clusters(cluster) if o.startswith(cluster + "-")]
    try:
        saved = load_saved(cluster)
        known = {saved.fabric_netns, saved.ext_netns, *(saved.node_netns(n.name) for n in saved.nodes)}
    except (OSError, ValueError, KeyError, TypeError):
        known = set()
    pod_re = re.compile(re.escape(prefix) + r"pod-[0-9a-f]{12}$")
    out = []
    for name in ns.list_netns(prefix):
        if name in known or pod_re.match(name):
            out.append(name)
        elif not any(name.startswith(o) for o in others):
            out.append(name)
    return out


def knet_pids(cluster: str, netns_names: list[str]) -> list[int]:
    """Every process of this cluster: its components (by pid file and command
    line) and anything living in one of its namespaces."""
    pids = set()
    inodes = [i for i in (ns.inode(ns.netns_path(n)) for n in netns_names) if i is not None]
    pids.update(procs.pids_in_netns(inodes))
    pid_dir = os.path.join(state_dir(cluster), "pids")
    if os.path.isdir(pid_dir):
        for name in os.listdir(pid_dir):
            try:
                with open(os.path.join(pid_dir, name)) as f:
                    pids.add(int(f.read()))
            except (OSError, ValueError):
                pass
    marker = ["--cluster", cluster]
    for pid in procs.all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.startswith("knet.") for a in argv) and any(
                argv[i:i + 2] == marker for i in range(len(argv) - 1)):
            pids.add(pid)
    pids.discard(os.getpid())
    return sorted(p for p in pids if procs.alive(p))


def down(cluster: str, say: Say = print) -> dict:
    """Remove every trace of the cluster; safe to run any number of times."""
    t0 = time.monotonic()
    names = owned_netns(cluster)
    pids = knet_pids(cluster, names)
    procs.kill_all(pids, signal.SIGKILL)
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    sdir = state_dir(cluster)
    for point in ns.mounts_under(sdir):
        ns.remove_ns_file(point)
    for name in names:
        ns.delete_netns(name)
    shutil.rmtree(sdir, ignore_errors=True)
    took = time.monotonic() - t0
    say(f"Deleted cluster \"{cluster}\": {len(pids)} processes, {len(names)} namespaces ({took:.2f}s)")
    return {"processes": len(pids), "namespaces": len(names), "seconds": took}


def status(cluster: str) -> dict:
    names = owned_netns(cluster)
    pids = knet_pids(cluster, names)
    info = {"cluster": cluster, "netns": len(names), "processes": len(pids), "state_dir": state_dir(cluster)}
    try:
        info["config"] = json.loads(load_saved(cluster).to_json())
    except OSError:
        info["config"] = None
    return info
