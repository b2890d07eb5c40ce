"""knet exec and logs: Mininet's reach into every namespace, kubectl's verbs.

`knet exec POD` becomes the container's process itself (no runtime in
between): it enters the pod through knet.node.enter, the code the node
runtime starts containers with, and then execs the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, cluster_name, require_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.config import ClusterConfig
    from knet.node.sandbox import Sandbox


def _pod(args: argparse.Namespace, client: Client, pod_name: str) -> dict:
    from knet.api.resources import by_kind

    pod = client.get(by_kind("Pod"), args.namespace or "default", pod_name)
    if not pod["spec"].get("nodeName"):
        raise CliError(f"pod {pod_name} is not scheduled to a node yet")
    return pod


def _sandbox(cfg: ClusterConfig, pod: dict) -> Sandbox:
    """The pod's sandbox, found as its node's runtime finds it."""
    from knet.node.sandbox import sandbox_for

    return sandbox_for(cfg, pod["spec"]["nodeName"], pod["metadata"]["uid"])


def _pick_container(pod: dict, name: str | None) -> dict:
    containers = pod["spec"]["containers"]
    if name is None:
        return containers[0]
    for c in containers:
        if c["name"] == name:
            return c
    raise CliError(f"container {name} is not valid for pod {pod['metadata']['name']}")


def cmd_exec(args: argparse.Namespace, connect: Connect) -> int:
    if not args.command:
        raise CliError("you must specify at least one command for the container (knet exec POD -- CMD)")
    if getattr(args, "context", None) or getattr(args, "kubeconfig_file", None):
        return _exec_through_context(args, connect)
    require_root()
    from knet.config import load_saved
    from knet.net import ns

    target = args.target
    try:
        cfg = load_saved(cluster_name(args))
    except OSError:
        raise CliError(f'cluster "{cluster_name(args)}" is not running') from None
    if target == "ext" or target.startswith("node/"):
        netns = cfg.ext_netns if target == "ext" else cfg.node_netns(target[5:])
        if not os.path.exists(ns.netns_path(netns)):
            raise CliError(f"no such node: {target[5:]}")
        fd = os.open(ns.netns_path(netns), os.O_RDONLY)
        ns.setns(fd, ns.CLONE_NEWNET)
        _exec(args.command, os.environ)
    client = connect()
    name = target[4:] if target.startswith(("pod/", "po/")) else target
    name = name.split("/", 1)[-1]
    try:
        pod = _pod(args, client, name)
    except ApiError as e:
        raise CliError(e.message) from None
    container = _pick_container(pod, args.container)
    if cfg.machine and pod["spec"]["nodeName"] != cfg.machine:
        return _through_api(client, pod, container, args.command)  # another machine's pod: its kubelet runs it
    sb = _sandbox(cfg, pod)
    if not sb.complete():
        if cfg.machine:
            return _through_api(client, pod, container, args.command)
        raise CliError(f"pod {name} has no sandbox yet (phase {pod.get('status', {}).get('phase')})")
    from knet.api.resources import by_kind
    from knet.node.enter import entering
    from knet.node.podspec import container_env, service_env

    services = []
    if pod["spec"].get("enableServiceLinks", True):
        services = client.list(by_kind("Service"), pod["metadata"]["namespace"])["items"]
    if pod["metadata"]["namespace"] != "default" or not pod["spec"].get("enableServiceLinks", True):
        services += [s for s in client.list(by_kind("Service"), "default")["items"]
                     if s["metadata"]["name"] == "kubernetes"]
    env = container_env(pod, container, pod.get("status", {}).get("hostIP", ""), service_env(services))
    env["TERM"] = os.environ.get("TERM", "xterm")
    from knet.node.enter import exec_target, fork_in

    join, cgroup = exec_target(sb, container["name"])  # the container's PID and mount namespaces (issue 15)
    with entering(sb, pod, container, join=join, cgroup=cgroup) as entry:
        if entry.pidns is None:
            entry.enter()
            _exec(args.command, env)
        # A PID namespace takes a fork: the child is born in it; this process waits, as nsenter does.
        pid = fork_in(entry.pidns, os.fork)
        if pid == 0:
            try:
                entry.enter()
            except OSError as e:
                print(f"knet exec: entering the pod: {e}", file=sys.stderr)
                os._exit(126)
            _exec(args.command, env)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's ^C reaches the command itself
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _exec_through_context(args: argparse.Namespace, connect: Connect) -> int:
    """--context: every pod through pods/exec, as kubectl execs (no root, no namespace of this
    machine); node/NAME and ext are namespaces of the cluster's machines, with no API to reach them."""
    target = args.target
    if target == "ext" or target.startswith("node/"):
        raise CliError(f"{target}: with --context only pods are reached (through the API's pods/exec); "
                       "a node or the ext host is reached on its machine, without --context")
    client = connect()
    name = target[4:] if target.startswith(("pod/", "po/")) else target
    try:
        pod = _pod(args, client, name.split("/", 1)[-1])
    except ApiError as e:
        raise CliError(e.message) from None
    return _through_api(client, pod, _pick_container(pod, args.container), args.command)


def _through_api(client: Client, pod: dict, container: dict, command: list[str]) -> int:
    """pods/exec through the API server to the pod's node (knet.cli.execremote), as kubectl execs."""
    from knet.cli.execremote import RemoteExecError, run

    try:
        return run(client, pod["metadata"]["namespace"], pod["metadata"]["name"], container["name"], command)
    except RemoteExecError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"exec through the API server: {(e.strerror or str(e)).lower()}") from None


def _exec(argv: list[str], env) -> None:
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f'knet exec: "{argv[0]}": executable file not found in $PATH', file=sys.stderr)
        os._exit(127)
    except OSError as e:  # not executable, a bad format...: 126, as a shell or container runtime says
        print(f'knet exec: "{argv[0]}": {(e.strerror or str(e)).lower()}', file=sys.stderr)
        os._exit(126)


def _follow(paths: list[str], follow: bool, tail: int | None) -> None:
    files = []
    for p in paths:
        f = open(p, "rb")
        data = f.read()
        if tail is not None:
            data = b"\n".join(data.split(b"\n")[-tail - 1:]) if data else data
        sys.stdout.buffer.write(data)
        files.append(f)
    sys.stdout.flush()
    while follow:
        time.sleep(0.1)
        for f in files:
            chunk = f.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()


def cmd_logs(args: argparse.Namespace, connect: Connect) -> int:
    from knet.config import state_dir

    sdir = state_dir(cluster_name(args))
    target = args.target
    if target in ("control-plane", "controlplane", "api-server") or target.startswith("node/"):
        name = "control-plane" if not target.startswith("node/") else f"node-{target[5:]}"
        path = os.path.join(sdir, "logs", f"{name}.log")
        if not os.path.exists(path):
            raise CliError(f"no log for {target} (is the cluster running?)")
        _follow([path], args.follow, args.tail)
        return 0
    client = connect()
    name = target.split("/", 1)[-1]
    try:
        pod = _pod(args, client, name)
    except ApiError as e:
        raise CliError(e.message) from None
    containers = pod["spec"]["containers"]
    if args.container is None and len(containers) > 1:
        raise CliError(f"a container name must be specified for pod {name}, choose one of: "
                       f"[{' '.join(c['name'] for c in containers)}]")
    c = _pick_container(pod, args.container)
    pdir = os.path.join(sdir, "nodes", pod["spec"]["nodeName"], "pods", pod["metadata"]["uid"])
    path = os.path.join(pdir, "logs", f"{c['name']}.log")
    if not os.path.exists(path):
        if not c.get("command") and not c.get("args"):
            return 0  # the built-in server writes nothing
        raise CliError(f"container {c['name']} in pod {name} has not started")
    _follow([path], args.follow, args.tail)
    return 0
