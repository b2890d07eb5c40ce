"""A cluster's lifecycle: up, stop, start, down, status.

`up` builds the fabric (LAN bridge, ext host, node namespaces), starts the
cluster's supervisor (knet.supervisor), which starts the control plane and one
agent per node, and returns when every node is Ready; if anything fails it
tears down what it made. `stop` ends the processes and keeps namespaces, store
and state; `start` (or `up` of a stopped cluster) brings them back.

Ownership is exact, never inferred from a name: cluster "lab" owns
knet-lab-worker-1, cluster "lab-worker" may well exist beside it. A cluster
owns
  - a namespace whose loopback alias is its marker, knet:<cluster>:<id>
    (written inside the namespace before the namespace gets its name, see
    ns.create_netns), or that has no marker but is listed in the cluster's
    state directory (<state>/netns/<name>, written before creation);
  - a process living in one of those namespaces, named by one of its pid
    files (verified: start time and argv, see procs), or a knet component
    or supervisor whose argv says `--cluster <cluster>`;
  - its state directory, and every mount under it.
So `down` works on a half-made or crashed cluster, when the state directory
is gone, and when there is nothing at all, and touches nothing else.

kubectl reaches the API as kind's users do: `up` makes the cluster's PKI
(knet.api.tls), binds a listening socket on 127.0.0.1 in the host's namespace
(a socket only: no address, route or rule changes), hands it down through the
supervisor to the control plane, and merges a `knet-<cluster>` context into
the user's kubeconfig; `start` binds the same port again, `down` takes the
entries out of the file `up` wrote them to.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

from knet import supervisor as sup
from knet.config import (
    CLUSTER_NAME_RE,
    STATE_ROOT,
    ClusterConfig,
    check_cluster_name,
    load_saved,
    state_dir,
)
from knet.net import ns, procs

Say = Callable[[str], None]

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL in `knet stop`


class ClusterError(RuntimeError):
    pass


def checked(cluster: str) -> str:
    """The name, if it is a cluster name. Everything here derives paths from it
    (rmtree of its state directory): "..", "a/b" or "" must never get that far."""
    try:
        check_cluster_name(cluster)
    except ValueError as e:
        raise ClusterError(str(e)) from None
    return cluster


# -- ownership ---------------------------------------------------------------------------


def marker_cluster(marker: str | None) -> str | None:
    """The cluster a namespace marker names (knet:<cluster>:<id>)."""
    if not marker or not marker.startswith("knet:"):
        return None
    parts = marker.split(":")
    return parts[1] if len(parts) == 3 else None


def _recorded(cluster: str) -> set[str]:
    """Namespaces the cluster's state directory says it made."""
    sdir = state_dir(cluster)
    try:
        names = set(os.listdir(os.path.join(sdir, "netns")))
    except OSError:
        names = set()
    try:
        saved = load_saved(cluster)
    except (OSError, ValueError, TypeError, KeyError):
        return names
    if not saved.cluster_id:
        # Made by a knet from before markers and records: its own config and its
        # pods' pod.json name its namespaces, exactly.
        names |= {saved.fabric_netns, saved.ext_netns, *(saved.node_netns(n.name) for n in saved.nodes)}
        nodes_dir = os.path.join(sdir, "nodes")
        for node in os.listdir(nodes_dir) if os.path.isdir(nodes_dir) else []:
            pods = os.path.join(nodes_dir, node, "pods")
            for uid in os.listdir(pods) if os.path.isdir(pods) else []:
                try:
                    with open(os.path.join(pods, uid, "pod.json")) as f:
                        names.add(json.load(f)["netns"])
                except (OSError, ValueError, KeyError, TypeError):
                    pass
    return names


def owned_netns(cluster: str) -> list[str]:
    """The namespaces of this cluster, exactly (see the module's docstring).

    Every name knet gives starts knet-<cluster>-, so that narrows the search;
    the marker (or, without one, the record) decides."""
    candidates = ns.list_netns(f"knet-{checked(cluster)}-")
    if not candidates:
        return []
    recorded = _recorded(cluster)
    markers = ns.netns_markers(candidates)
    out = []
    for name in candidates:
        owner = marker_cluster(markers[name])
        if owner == cluster or (markers[name] is None and name in recorded):
            out.append(name)
    return out


def all_clusters() -> list[str]:
    """Clusters on this machine: by state directory, or by the marker of a
    namespace left behind without one."""
    try:
        names = {d for d in os.listdir(STATE_ROOT)
                 if CLUSTER_NAME_RE.match(d) and os.path.isdir(os.path.join(STATE_ROOT, d))}
    except FileNotFoundError:
        names = set()
    for marker in ns.netns_markers(ns.list_netns("knet-")).values():
        if (owner := marker_cluster(marker)) is not None and CLUSTER_NAME_RE.match(owner):
            names.add(owner)
    return sorted(names)


def exists(cluster: str) -> bool:
    return os.path.exists(os.path.join(state_dir(cluster), "cluster.json")) or bool(owned_netns(cluster))


def _pidfile_pids(cluster: str) -> list[int]:
    pid_dir = os.path.join(state_dir(cluster), "pids")
    try:
        names = os.listdir(pid_dir)
    except OSError:
        return []
    out = []
    for name in names:
        if name.endswith(".pid") and (pid := procs.verified_pid(os.path.join(pid_dir, name))) is not None:
            out.append(pid)
    return out


def _argv_marked(cluster: str, modules: frozenset[str] | None = None) -> list[int]:
    """knet components and supervisors started for this cluster (`-m MODULE ...
    --cluster NAME`): found even when their namespace or pid file is gone."""
    modules = modules or sup.component_modules()
    out = []
    for pid in procs.all_pids():
        argv = procs.cmdline(pid)
        if not argv or "-m" not in argv[1:3]:
            continue
        m = argv.index("-m", 1)
        if argv[m + 1:m + 2] and argv[m + 1] in modules and argv[m + 2:m + 4] == ["--cluster", cluster]:
            out.append(pid)
    return out


def knet_pids(cluster: str, netns_names: list[str]) -> list[int]:
    """Every process of this cluster: in its namespaces, by verified pid file,
    or a component by its argv."""
    pids = set()
    inodes = [i for i in (ns.inode(ns.netns_path(n)) for n in netns_names) if i is not None]
    pids.update(procs.pids_in_netns(inodes))
    pids.update(_pidfile_pids(cluster))
    pids.update(_argv_marked(cluster))
    pids.discard(os.getpid())
    return sorted(p for p in pids if procs.alive(p))


# -- components ----------------------------------------------------------------------------


def supervisor_pid(cluster: str) -> int | None:
    rec = procs.read_pidfile(sup.pid_path(cluster, "supervisor"))
    if procs.matches(rec) and rec["argv"][1:] == sup.supervisor_argv(cluster)[1:]:
        return rec["pid"]
    return None


def component_pid(cluster: str, component: str) -> int | None:
    """The running process of a component ("control-plane", "node-<name>"), verified."""
    try:
        cfg = load_saved(cluster)
        comp = sup.components(cfg)[component]
    except (OSError, ValueError, KeyError):
        return None
    rec = procs.read_pidfile(sup.pid_path(cluster, component))
    if procs.matches(rec) and rec["argv"][1:] == sup.argv_for(cfg, comp)[1:]:
        return rec["pid"]
    return None


def _spawn_supervisor(cfg: ClusterConfig, listener: socket.socket | None = None) -> subprocess.Popen:
    """The supervisor lives in the fabric namespace, so `down` finds it there
    too. It writes its own pid file once it holds the cluster's supervisor lock:
    of two started at once, the one that runs is the one recorded. It gets
    the host listener (see host_listener); our copy is closed once it has its own."""
    try:
        return sup.spawn(cfg, "supervisor", sup.supervisor_argv(cfg.name), cfg.fabric_netns, record=False,
                         cwd=sup.PACKAGE_ROOT, listener=listener.fileno() if listener is not None else None)
    finally:
        if listener is not None:
            listener.close()


# -- kubectl's way in: the host listener and the kubeconfig ---------------------------------

HOST_ADDRESS = "127.0.0.1"


def host_endpoint_path(cluster: str) -> str:
    return os.path.join(state_dir(cluster), "host-endpoint.json")


def host_port(cluster: str) -> int | None:
    """The port of the cluster's listener in the host's loopback, as recorded."""
    try:
        with open(host_endpoint_path(cluster)) as f:
            return int(json.load(f)["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def host_listener(cfg: ClusterConfig, say: Say = print) -> socket.socket | None:
    """A listening socket on 127.0.0.1 in this (the host's) namespace for the
    API server: the port recorded for the cluster when there is one, so a
    kubeconfig written before `stop` still works after `start`, else one the
    kernel picks (as kind does). None when the port is held by the cluster's
    own control plane still running (the supervisor takes its copy from it)."""
    port = host_port(cfg.name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST_ADDRESS, port or 0))
    except OSError as e:
        if port is None or e.errno != errno.EADDRINUSE:
            sock.close()
            raise ClusterError(f"cannot listen on {HOST_ADDRESS}:{port or 0} for kubectl: {e.strerror}") from None
        if component_pid(cfg.name, "control-plane") is not None:
            sock.close()
            return None
        sock.bind((HOST_ADDRESS, 0))
        say(f" ! port {port} is taken: the API server listens on {HOST_ADDRESS}:{sock.getsockname()[1]} "
            "now (kubeconfig updated)")
    sock.listen(511)
    with open(host_endpoint_path(cfg.name) + ".tmp", "w") as f:
        json.dump({"host": HOST_ADDRESS, "port": sock.getsockname()[1]}, f)
    os.replace(host_endpoint_path(cfg.name) + ".tmp", host_endpoint_path(cfg.name))
    return sock


def kubeconfig_for(cluster: str, user: str | None = None, groups: tuple[str, ...] = ()) -> dict:
    """The cluster's own kubeconfig (what `knet kubeconfig` prints): the host
    listener's address, the CA, and the admin's client certificate; or, with
    `user`, a new client certificate for that user and its groups (CN and O,
    as Kubernetes reads them), its user entry named after it."""
    from knet.api import kubeconfig, tls

    port = host_port(cluster)
    if port is None:
        raise ClusterError(f'cluster "{cluster}" has no API endpoint for kubectl (is it up? knet up creates it)')
    p = tls.pki_paths(state_dir(cluster))
    try:
        ca, crt, key = (open(f, "rb").read() for f in (p.ca_crt, p.admin_crt, p.admin_key))
    except FileNotFoundError:
        raise ClusterError(f'cluster "{cluster}" has no PKI (made by a knet before TLS): '
                           f"recreate it (knet down --cluster {cluster}, then knet up)") from None
    if not user:
        return kubeconfig.config_for(cluster, f"https://{HOST_ADDRESS}:{port}", ca, crt, key)
    key, crt = tls.user_cert(state_dir(cluster), user, groups)
    doc = kubeconfig.config_for(cluster, f"https://{HOST_ADDRESS}:{port}", ca, crt, key)
    entry = f"{user}@{kubeconfig.context_name(cluster)}"
    doc["users"][0]["name"] = doc["contexts"][0]["context"]["user"] = entry
    doc["contexts"][0]["name"] = doc["current-context"] = entry
    return doc


def _kubeconfig_record(cluster: str) -> str:
    return os.path.join(state_dir(cluster), "kubeconfig-merged")


def export_kubeconfig(cluster: str, path: str | None, say: Say = print) -> str | None:
    """Merge the cluster's context into the kubeconfig at path ($KUBECONFIG's
    first file or ~/.kube/config when None, "" for none) and make it current;
    the path is recorded so `down` cleans exactly that file."""
    from knet.api import kubeconfig

    if path == "":
        return None
    path = path or _recorded_kubeconfig(cluster) or kubeconfig.default_path()
    ours = kubeconfig_for(cluster)
    kubeconfig.update(path, lambda doc: kubeconfig.merge(doc, ours))
    with open(_kubeconfig_record(cluster), "w") as f:
        f.write(path)
    name = kubeconfig.context_name(cluster)
    say(f' ✓ kubeconfig: context "{name}" in {path} (kubectl get nodes)')
    return path


def _recorded_kubeconfig(cluster: str) -> str | None:
    try:
        with open(_kubeconfig_record(cluster)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _unexport_kubeconfig(cluster: str) -> None:
    """Take the cluster's entries out of the kubeconfig `up` wrote them to, if
    they are still there; a file that is gone or unreadable is left alone."""
    path = _recorded_kubeconfig(cluster)
    if not path:
        return
    from knet.api import kubeconfig

    name = kubeconfig.context_name(cluster)
    try:
        doc = kubeconfig.read(path)
    except (OSError, ValueError):
        return
    if doc and kubeconfig.remove(doc, name) != doc:
        try:
            kubeconfig.update(path, lambda d: kubeconfig.remove(d, name))
        except (OSError, ValueError):
            pass


def start_component(cfg: ClusterConfig, component: str, timeout: float = 15.0) -> int:
    """Have a component running again (after stop_component, or a kill) and
    return its pid: with a supervisor, lift any hold and let it start the
    component now; without one, start it directly (a supervisor started later
    adopts it)."""
    comp = sup.components(cfg)[component]
    try:
        os.unlink(sup.held_path(cfg.name, component))
    except FileNotFoundError:
        pass
    spid = supervisor_pid(cfg.name)
    if spid is None:
        if (pid := component_pid(cfg.name, component)) is not None:
            return pid
        listener = host_listener(cfg) if comp.module == "knet.controlplane" else None
        try:
            return sup.spawn(cfg, component, sup.argv_for(cfg, comp), comp.netns, nice=comp.nice,
                             listener=listener.fileno() if listener is not None else None).pid
        finally:
            if listener is not None:
                listener.close()
    os.kill(spid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while (pid := component_pid(cfg.name, component)) is None:
        if time.monotonic() > deadline:
            raise ClusterError(f"{component} did not start within {timeout:g}s")
        time.sleep(0.01)
    return pid


def stop_component(cfg: ClusterConfig | str, component: str, sig: int = signal.SIGKILL) -> int | None:
    """Keep one component down, as `systemctl stop` does: the supervisor is told
    to hold it, then it gets sig. start_component brings it back."""
    cluster = cfg if isinstance(cfg, str) else cfg.name
    path = sup.held_path(cluster, component)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    pid = component_pid(cluster, component)
    if pid is not None:
        procs.kill_all([pid], sig)
    return pid


# -- up ------------------------------------------------------------------------------------


def same_config(a: ClusterConfig, b: ClusterConfig) -> bool:
    da, db = json.loads(a.to_json()), json.loads(b.to_json())
    da.pop("cluster_id", None)
    db.pop("cluster_id", None)
    return da == db


def running(cluster: str) -> bool:
    """Fully running: the supervisor and every component."""
    try:
        cfg = load_saved(checked(cluster))
    except (OSError, ValueError):
        return False
    return supervisor_pid(cluster) is not None and all(
        component_pid(cluster, name) is not None for name in sup.components(cfg))


def ready_timeout(cfg: ClusterConfig) -> float:
    """How long `up` and `start` wait for every node Ready by default: 30 s, and a
    second more per node past the default four (each node starts two processes;
    50 workers take some 20 s of CPU to start on two cores)."""
    return 30.0 + max(0, len(cfg.nodes) - 4)


def up(cfg: ClusterConfig, say: Say = print, timeout: float | None = None, kubeconfig: str | None = None) -> float:
    """Build and start the cluster, or start it again if it is stopped with the
    same config; returns the seconds it took. `kubeconfig`: the file to merge
    the cluster's context into (None: $KUBECONFIG's first file or
    ~/.kube/config, as kubectl; "": none)."""
    t0 = time.monotonic()
    timeout = ready_timeout(cfg) if timeout is None else timeout
    if os.path.exists(os.path.join(state_dir(cfg.name), "cluster.json")):
        try:
            saved = load_saved(cfg.name)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ClusterError(f'cluster "{cfg.name}" has an unreadable cluster.json ({e}): '
                               f"run: knet down --cluster {cfg.name}") from None
        if not same_config(saved, cfg):
            raise ClusterError(f'cluster "{cfg.name}" already exists with a different configuration: '
                               f"delete it first (knet down --cluster {cfg.name})")
        if running(cfg.name):
            raise ClusterError(f'cluster "{cfg.name}" already exists and is running '
                               f"(knet down --cluster {cfg.name} deletes it)")
        say(f'Starting cluster "{cfg.name}" again with its state ...')
        start(cfg.name, say=say, timeout=timeout, kubeconfig=kubeconfig)
        return time.monotonic() - t0
    _check_fresh(cfg, say)
    workers = sum(n.role == "worker" for n in cfg.nodes)
    say(f'Creating cluster "{cfg.name}" (1 control-plane, {workers} worker{"s" if workers != 1 else ""}) ...')
    cfg.cluster_id = secrets.token_hex(8)
    os.makedirs(STATE_ROOT, mode=0o755, exist_ok=True)
    try:
        os.makedirs(cfg.state_dir, mode=0o700)  # the claim: of two `up`s at once, one gets it
    except FileExistsError:
        raise ClusterError(f'cluster "{cfg.name}" is being created by another knet up') from None
    try:
        _build(cfg, say)
        proc = _spawn_supervisor(cfg, host_listener(cfg, say))
        _wait_ready(cfg, say, timeout, proc)
        export_kubeconfig(cfg.name, kubeconfig, say)
    except BaseException as e:
        say(f"✗ bring-up failed: {e}")
        tail = _log_tail(cfg)
        if tail:
            say(tail)
        down(cfg.name, say=lambda _m: None)
        raise
    return time.monotonic() - t0


def _check_fresh(cfg: ClusterConfig, say: Say) -> None:
    """Before creating anything: leftovers of this cluster, a stale state
    directory, and namespaces by our names that are not ours."""
    mine = owned_netns(cfg.name)
    if mine:
        raise ClusterError(f'namespaces of an earlier cluster "{cfg.name}" are left ({", ".join(mine[:3])}'
                           f'{", ..." if len(mine) > 3 else ""}): run: knet down --cluster {cfg.name}')
    for name in [cfg.fabric_netns, cfg.ext_netns, *(cfg.node_netns(n.name) for n in cfg.nodes)]:
        if os.path.lexists(ns.netns_path(name)):
            raise ClusterError(f'network namespace "{name}" already exists and is not cluster "{cfg.name}"\'s '
                               "(another cluster's node, or made by hand): choose another cluster or node name")
    sdir = cfg.state_dir
    if os.path.isdir(sdir):
        if knet_pids(cfg.name, []):
            raise ClusterError(f'processes of cluster "{cfg.name}" are still running: '
                               f"run: knet down --cluster {cfg.name}")
        # No cluster.json, no namespace, no process: what an interrupted up or down left.
        _remove_state_dir(sdir)
        say(f" ✓ removed the stale state directory {sdir}")


def _build(cfg: ClusterConfig, say: Say) -> None:
    from knet.api.tls import write_pki
    from knet.net.links import build_lan

    with open(os.path.join(cfg.state_dir, "cluster.json"), "w") as f:
        f.write(cfg.to_json())
    fd = os.open(os.path.join(cfg.state_dir, "token"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    write_pki(cfg.state_dir, cfg.control_plane.ip, cfg.service_subnet, cfg.dns_domain)
    from knet.api.tls import write_identities
    write_identities(cfg.state_dir, [n.name for n in cfg.nodes])  # node credentials, the token signing key
    owner = cfg.netns_owner
    ns.create_netns(cfg.fabric_netns, owner)
    hosts = [(cfg.ext_netns, "to-ext", cfg.ext_ip)]
    ns.create_netns(cfg.ext_netns, owner)
    for node in cfg.nodes:
        ns.create_netns(cfg.node_netns(node.name), owner)
        hosts.append((cfg.node_netns(node.name), cfg.lan_port(node.name), node.ip))
    build_lan(cfg.fabric_netns, hosts, cfg.lan_prefixlen)
    _impair_links(cfg)
    say(f" ✓ LAN {cfg.lan_subnet}: ext {cfg.ext_ip}, " + ", ".join(f"{n.name} {n.ip}" for n in cfg.nodes))


def _impair_links(cfg: ClusterConfig) -> None:
    """The cluster file's nodes[].link: loss and rate on each node's LAN link (knet link set's
    work), before any component starts, so every packet the node sends meets them."""
    linked = [n for n in cfg.nodes if n.link]
    if not linked:
        return
    from knet.net import impair

    for node in linked:
        imp = impair.parse_link(node.link, f"nodes[{cfg.nodes.index(node)}].link")
        impair.apply(cfg.node_netns(node.name), cfg.fabric_netns, cfg.lan_port(node.name), imp)


def _restarts(cluster: str) -> dict[str, int]:
    comps = sup.read_status(cluster).get("components") or {}
    return {name: int(st.get("restarts", 0)) for name, st in comps.items()}


def _wait_ready(cfg: ClusterConfig, say: Say, timeout: float, proc: subprocess.Popen | None = None,
                since: float | None = None) -> None:
    """Until the API answers and every node is Ready (with a heartbeat from
    after `since`, wall clock, when set: a restarted cluster's nodes still say
    Ready from before it stopped). Fails fast when the supervisor or a
    component dies on the way."""
    from knet.api.objects import is_true
    from knet.api.resources import by_kind

    baseline = _restarts(cfg.name)
    client = connect(cfg.name)
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise ClusterError(f"the API server did not come up within {timeout:g}s")
        try:
            client.request("GET", "/version")
            break
        except OSError:
            _check_alive(cfg, proc, baseline)
            time.sleep(0.02)
    say(f" ✓ control plane serving on {cfg.control_plane.ip}:{cfg.api_port}")
    want = {n.name for n in cfg.nodes}
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if since else ""
    while True:
        nodes = client.list(by_kind("Node"))["items"]
        # A node's liveness is its Lease (the agent writes its Node status only on a change or every
        # nodeStatusReportSeconds): an agent that kept running while the supervisor was replaced
        # renews its Lease but may not write its status again for minutes.
        renewed = _renewals(client) if cutoff else {}
        ready = {n["metadata"]["name"] for n in nodes if is_true(n, "Ready")
                 and max(_beat(n), renewed.get(n["metadata"]["name"], "")) >= cutoff}
        if want <= ready:
            break
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not Ready within {timeout:g}s: {', '.join(sorted(want - ready))}")
        _check_alive(cfg, proc, baseline)
        # Each poll lists every Node: 20 ms apart for a few nodes, but at 50 nodes back-to-back
        # lists took a good part of a starved control plane's CPU in bring-up: the gap grows (0.25 s at 50).
        time.sleep(min(0.25, 0.005 * len(want)))
    say(f" ✓ {len(want)} nodes Ready")


def _renewals(client) -> dict[str, str]:
    """Each node Lease's renewTime, cut to the second as lastHeartbeatTime is written."""
    from knet.api.resources import by_kind

    out = {}
    for lease in client.list(by_kind("Lease"), "kube-node-lease")["items"]:
        renew = (lease.get("spec") or {}).get("renewTime") or ""
        out[lease["metadata"]["name"]] = renew[:19] + "Z" if len(renew) >= 19 else ""
    return out


def _beat(node: dict) -> str:
    for c in node.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("lastHeartbeatTime") or ""
    return ""


def _check_alive(cfg: ClusterConfig, proc: subprocess.Popen | None, baseline: dict[str, int]) -> None:
    if proc is not None and proc.poll() is not None and supervisor_pid(cfg.name) is None:
        raise ClusterError(f"the supervisor {sup.describe_exit(proc.returncode)} during start-up")
    for name, count in _restarts(cfg.name).items():
        if count > baseline.get(name, 0):
            raise ClusterError(f"{name} exited during start-up")


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


# -- stop / start ----------------------------------------------------------------------------


def stop(cluster: str, say: Say = print, grace: float = STOP_GRACE) -> dict:
    """End every process of the cluster (the supervisor first, so nothing is
    restarted; then the components; then what runs in its pods): SIGTERM, and
    SIGKILL after grace seconds. Namespaces, store and state stay."""
    t0 = time.monotonic()
    if not os.path.exists(os.path.join(state_dir(checked(cluster)), "cluster.json")):
        raise ClusterError(f'cluster "{cluster}" does not exist')
    cfg = load_saved(cluster)
    stopped = 0
    spid = supervisor_pid(cluster)
    if spid is not None:
        procs.terminate([spid], grace)
        _reap([spid])
        stopped += 1
    # Any other supervisor of ours (one being started right now) goes too.
    extra = _argv_marked(cluster, frozenset({sup.MODULE}))
    procs.terminate(extra, grace)
    comps = [p for p in (component_pid(cluster, n) for n in sup.components(cfg)) if p is not None]
    comps += [p for p in _argv_marked(cluster) if p not in comps]
    procs.terminate(comps, grace)
    _reap(comps)
    rest = knet_pids(cluster, owned_netns(cluster))
    procs.terminate(rest, grace)
    _reap(rest)
    stopped += len(set(extra) | set(comps) | set(rest))
    status = sup.read_status(cluster)
    for st in (status.get("components") or {}).values():
        st.update(pid=None, state="stopped", nextStartTime=None)
    status["supervisor"] = {"pid": None}
    sup.write_status(cluster, status)
    took = time.monotonic() - t0
    say(f'Stopped cluster "{cluster}": {stopped} processes ({took:.2f}s); namespaces and state kept '
        f"(knet start{'' if cluster == 'knet' else ' --cluster ' + cluster} brings it back)")
    return {"processes": stopped, "seconds": took}


def start(cluster: str, say: Say = print, timeout: float | None = None, kubeconfig: str | None = None) -> float:
    """Bring a stopped (or partly running) cluster back with its state: the
    supervisor adopts what still runs and starts the rest; agents adopt their pods.
    The host listener gets its old port back, so the kubeconfig stays valid;
    when it cannot, the kubeconfig is written again with the new one."""
    t0 = time.monotonic()
    since = time.time()
    try:
        cfg = load_saved(checked(cluster))
    except FileNotFoundError:
        raise ClusterError(f'cluster "{cluster}" does not exist (knet up creates it)') from None
    timeout = ready_timeout(cfg) if timeout is None else timeout
    mine = set(owned_netns(cluster))
    for name in [cfg.fabric_netns, cfg.ext_netns, *(cfg.node_netns(n.name) for n in cfg.nodes)]:
        if name not in mine:
            raise ClusterError(f'namespace "{name}" of cluster "{cluster}" is gone: the cluster cannot be '
                               f"started again (knet down --cluster {cluster}, then knet up)")
    for name in sup.components(cfg):
        try:
            os.unlink(sup.held_path(cluster, name))
        except FileNotFoundError:
            pass
    proc = None
    port = host_port(cluster)
    spid = supervisor_pid(cluster)
    if spid is not None:
        os.kill(spid, signal.SIGHUP)  # restart now what waits in backoff
    else:
        proc = _spawn_supervisor(cfg, host_listener(cfg, say))
    _wait_ready(cfg, say, timeout, proc, since=since)
    if host_port(cluster) != port or kubeconfig is not None:
        export_kubeconfig(cluster, kubeconfig, say)
    if proc is not None:
        _wait_supervisor(cfg.name, proc, t0 + timeout)
    return time.monotonic() - t0


def _wait_supervisor(cluster: str, proc: subprocess.Popen, deadline: float) -> None:
    """Until the supervisor we started has recorded itself. Nodes can be Ready
    before it has (its components may all be adopted, still running), and a
    cluster is not up until something restarts what exits."""
    while supervisor_pid(cluster) is None:
        if proc.poll() is not None:
            raise ClusterError(f"the supervisor exited during start-up (see {state_dir(cluster)}/logs)")
        if time.monotonic() > deadline:
            raise ClusterError("the supervisor did not start")
        time.sleep(0.01)


# -- down -----------------------------------------------------------------------------------


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _remove_state_dir(sdir: str) -> None:
    for point in ns.mounts_under(sdir):
        if os.path.isdir(point) and not os.path.islink(point):  # a pod volume's tmpfs (issue 15)
            try:
                ns.umount(point)
            except OSError:
                pass
            continue
        ns.remove_ns_file(point)
    shutil.rmtree(sdir, ignore_errors=True)


def down(cluster: str, say: Say = print) -> dict:
    """Remove every trace of the cluster and nothing else; safe to run any number of times."""
    t0 = time.monotonic()
    names = set(owned_netns(checked(cluster)))
    killed: set[int] = set()
    # The supervisor first, so it restarts nothing while the rest goes.
    first = [p for p in [supervisor_pid(cluster)] if p is not None]
    first += _argv_marked(cluster, frozenset({sup.MODULE}))
    procs.kill_all(first, signal.SIGKILL)
    killed.update(first)
    for _ in range(3):  # again, for what forked, and the pods made, while we were at it
        names.update(owned_netns(cluster))
        pids = knet_pids(cluster, sorted(names))
        if not pids:
            break
        procs.kill_all(pids, signal.SIGKILL)
        killed.update(pids)
    _reap(sorted(killed))
    from knet.node import cgroups

    cgroups.remove(cgroups.cluster_path(cluster) or "")  # the pods' cgroups (issue 15): whatever escaped the walk
    # Once nothing of the cluster runs, nothing makes another namespace: this last look, taken
    # before the state directory (and its records) goes, finds a pod's namespace made after the
    # first one (a runtime creating a sandbox when `down` came, right after `up`).
    names.update(owned_netns(cluster))
    _unexport_kubeconfig(cluster)
    _remove_state_dir(state_dir(cluster))
    for name in sorted(names):
        ns.delete_netns(name)
    took = time.monotonic() - t0
    say(f"Deleted cluster \"{cluster}\": {len(killed)} processes, {len(names)} namespaces ({took:.2f}s)")
    return {"processes": len(killed), "namespaces": len(names), "seconds": took}


# -- status ---------------------------------------------------------------------------------


def status(cluster: str) -> dict:
    names = owned_netns(cluster)
    pids = knet_pids(cluster, names)
    info = {"cluster": cluster, "netns": len(names), "processes": len(pids), "state_dir": state_dir(cluster),
            "supervisor": supervisor_pid(cluster), "components": {}}
    try:
        cfg = load_saved(cluster)
        info["config"] = json.loads(cfg.to_json())
    except OSError:
        info["config"] = None
        return info
    saved = sup.read_status(cluster).get("components") or {}
    for name in sup.components(cfg):
        st = dict(saved.get(name) or {})
        pid = component_pid(cluster, name)
        st["pid"] = pid
        if pid is not None:
            st["state"] = "running"
        elif st.get("state") in (None, "running", "starting"):
            st["state"] = "not running"
        st.setdefault("restarts", 0)
        info["components"][name] = st
    return info
