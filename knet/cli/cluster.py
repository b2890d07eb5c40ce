"""knet up, down, stop, start, status and version: a cluster's life, as kind's
commands, and what its supervisor, components, nodes and API server are doing."""

from __future__ import annotations

import argparse
import sys
import time

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, cluster_name, read_cluster_file, require_root


def cmd_up(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.cluster import ClusterError, up

    _doc, cfg = read_cluster_file(args)
    try:
        took = up(cfg, say=print, timeout=args.timeout, kubeconfig=getattr(args, "kubeconfig", None))
    except (ClusterError, OSError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f'Cluster "{cfg.name}" is up in {took:.2f}s. Try:')
    flag = f" --cluster {cfg.name}" if cfg.name != "knet" else ""
    print(f"  knet get nodes{flag}\n  kubectl get nodes\n  knet apply{flag} -f app.yaml --wait\n  knet down{flag}")
    return 0


def cmd_down(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    import os

    from knet.cluster import ClusterError, all_clusters, down
    from knet.paths import state_dir

    names = [cluster_name(args)]
    if args.all:
        names = all_clusters()
        if not names:
            print("No clusters found.")
            return 0
    for name in names:
        try:
            if os.path.exists(os.path.join(state_dir(name), "machine.json")):
                # knet init/join's: the machine's own devices and tables go too (down alone would leave them)
                from knet.machine import MachineError, reset

                try:
                    reset(name)
                except MachineError as e:
                    raise CliError(str(e)) from None
                continue
            down(name)
        except ClusterError as e:
            raise CliError(str(e)) from None
    return 0


def cmd_stop(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.cluster import ClusterError, stop

    try:
        stop(cluster_name(args), grace=args.grace_period)
    except ClusterError as e:
        raise CliError(str(e)) from None
    return 0


def cmd_start(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.cluster import ClusterError, running, start

    name = cluster_name(args)
    try:
        if running(name):
            print(f'Cluster "{name}" is already running.')
            return 0
        print(f'Starting cluster "{name}" ...')
        took = start(name, say=print, timeout=args.timeout)
    except ClusterError as e:
        raise CliError(str(e)) from None
    print(f'Cluster "{name}" is up in {took:.2f}s.')
    return 0


def _print_components(info: dict) -> None:
    """The supervisor and each component it keeps running, with restart counts."""
    spid = info.get("supervisor")
    print(f"Supervisor: {'pid ' + str(spid) if spid else 'not running'}")
    now = time.time()
    for name, st in info.get("components", {}).items():
        line = f"  {name:<22} {st.get('state', '?'):<12} pid {str(st.get('pid') or '-'):<8} restarts {st['restarts']}"
        if st.get("lastExit") and st.get("lastExitTime"):
            line += f"  (last: {st['lastExit']}, {now - st['lastExitTime']:.0f}s ago)"
        if st.get("state") == "backoff" and st.get("nextStartTime"):
            line += f"  next start in {max(0.0, st['nextStartTime'] - now):.1f}s"
        print(line)


def cmd_status(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.resources import by_kind
    from knet.cluster import ClusterError, status

    try:
        info = status(cluster_name(args))
    except ClusterError as e:
        raise CliError(str(e)) from None
    if not info["config"] and not info["netns"]:
        print(f'Cluster "{info["cluster"]}" is not running.')
        return 1
    print(f'Cluster "{info["cluster"]}": {info["netns"]} namespaces, {info["processes"]} processes, '
          f'state in {info["state_dir"]}')
    _print_components(info)
    if not info["supervisor"] and not any(c.get("pid") for c in info["components"].values()):
        flag = f" --cluster {info['cluster']}" if info["cluster"] != "knet" else ""
        print(f'Cluster "{info["cluster"]}" is stopped: knet start{flag} brings it back.')
        return 1
    try:
        client = connect()
        version = client.request("GET", "/version")
        progress = client.request("GET", "/knet/v1/progress")
        nodes = client.list(by_kind("Node"))["items"]
        pods = client.list(by_kind("Pod"))["items"]
    except (CliError, OSError, ApiError) as e:
        print(f"API server: not reachable ({e})")
        return 1
    print(f"API server: {version['gitVersion']}, revision {progress['revision']}")
    from knet.cluster import host_port

    if (port := host_port(info["cluster"])) is not None:
        print(f"  kubectl: https://127.0.0.1:{port} (context knet-{info['cluster']}; knet kubeconfig prints it)")
    if st := progress.get("store"):
        mib = 1024 * 1024
        print(f"  store: {st['sizeBytes'] / mib:.1f} MiB on disk (file {st['fileBytes'] / mib:.1f} MiB, "
              f"WAL {st['walBytes'] / mib:.1f} MiB), {st['keys']} objects ({st['liveBytes'] / mib:.1f} MiB), "
              f"history {st['logEntries']} revisions after compacted revision {st['compacted']}")
    if w := progress.get("watches"):
        print(f"  watches: {w['open']} open, {w['closedBehind']} closed for falling behind")
    for n in nodes:
        name = n["metadata"]["name"]
        ready = next((c["status"] for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready"), "?")
        count = sum(p["spec"].get("nodeName") == name for p in pods)
        report = progress["components"].get(f"node/{name}", {})
        print(f"  node {name:<16} Ready={ready:<8} pods={count:<4} synced to revision {report.get('observed', 0)}")
        if px := report.get("proxy"):
            print(f"       proxy: {px.get('servicePorts', 0)} service ports, {px.get('syncs', 0)} syncs "
                  f"({px.get('fullSyncs', 0)} full), the last {px.get('lastOps', 0)} nftables operations")
        if pol := report.get("policy"):
            print(f"       policy: {pol.get('policies', 0)} policies, {pol.get('syncs', 0)} syncs "
                  f"({pol.get('fullSyncs', 0)} full), the last {pol.get('lastOps', 0)} nftables operations")
        if report.get("error"):
            print(f"       {report['error']}")
    return 0


def cmd_version(args: argparse.Namespace, connect: Connect) -> int:
    from knet import __version__

    print(f"knet {__version__}")
    try:  # as kubectl version: the client's version always, then the server's or why not (exit 1)
        v = connect().request("GET", "/version")
    except (CliError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Server Version: {v['gitVersion']}")
    return 0


def cmd_kubeconfig(args: argparse.Namespace, connect: Connect) -> int:
    require_root()  # it holds the admin's private key
    import yaml

    from knet.cluster import ClusterError, kubeconfig_for

    user = getattr(args, "user", None)
    groups = tuple(getattr(args, "group", None) or ())
    if groups and not user:
        raise CliError("--group needs --user")
    try:
        doc = kubeconfig_for(cluster_name(args), user, groups)
    except ClusterError as e:
        raise CliError(str(e)) from None
    sys.stdout.write(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False))
    return 0
