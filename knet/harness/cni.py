"""Driving CNI plugins from outside knet, as cnitool does: plain environment
and stdin, the plugin run inside a "node" namespace of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from knet.net import ns


@dataclass
class CniCall:
    code: int
    out: dict | None
    seconds: float
    stderr: str


def run_plugin(plugin: str, command: str, conf: dict | str, node_netns: str, *, container: str = "c1",
               pod_netns: str | None = None, ifname: str = "eth0", extra_env: dict | None = None,
               cni_path: str = "/usr/lib/cni") -> CniCall:
    env = {"CNI_COMMAND": command, "CNI_PATH": cni_path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if command not in ("VERSION", "GC", "STATUS"):
        env.update(CNI_CONTAINERID=container, CNI_IFNAME=ifname)
        if pod_netns:
            env["CNI_NETNS"] = pod_netns
    env.update(extra_env or {})
    stdin = conf if isinstance(conf, str) else json.dumps(conf)
    fd = os.open(ns.netns_path(node_netns), os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        p = subprocess.run([plugin], input=stdin, env=env, capture_output=True, text=True,
                           preexec_fn=lambda: ns.setns(fd, ns.CLONE_NEWNET))
        took = time.perf_counter() - t0
    finally:
        os.close(fd)
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return CniCall(p.returncode, out, took, p.stderr)


def start_server(node_netns: str, socket_path: str, shim_dir: str) -> subprocess.Popen:
    """The thick plugin's agent half on its own, inside node_netns."""
    fd = os.open(ns.netns_path(node_netns), os.O_RDONLY)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "knet.cni.server", "--socket", socket_path,
                                 "--shim-dir", shim_dir], preexec_fn=lambda: ns.setns(fd, ns.CLONE_NEWNET))
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10
    while not os.path.exists(socket_path) or not os.path.exists(os.path.join(shim_dir, "knet-cni")):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("knet-cni server did not start")
        time.sleep(0.01)
    return proc


def standalone_plugin() -> str:
    return os.path.join(os.path.dirname(sys.executable), "knet-cni")
