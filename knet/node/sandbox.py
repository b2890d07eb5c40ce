"""The pod sandbox: what a pod is before any container runs.

A pod is a named network namespace (`ip netns list` shows it), a UTS namespace
with the pod's hostname, and the files kubelet would mount into it
(resolv.conf, hosts, hostname) and the nsswitch.conf that makes glibc read
them (files, then DNS), all kept under the pod's own directory so
removal is one walk. No process is needed to keep it alive, which is what
makes a pod cost almost nothing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, field

from knet.config import STATE_ROOT, ClusterConfig
from knet.net import ns, procs
from knet.node import podspec


@dataclass
class Sandbox:
    uid: str
    netns: str
    dir: str
    sandboxed: bool = True  # the cluster's knet.podSandbox: processes isolated as a runtime does
    hidden: list[str] = field(default_factory=list)  # knet's state, never in a pod's view
    cluster: str = ""

    def volume_dir(self, name: str) -> str:
        """Where an emptyDir (configMap, secret, ...) volume's files live: under
        the pod's directory, so removing the pod removes them."""
        return os.path.join(self.dir, "volumes", name)

    def volume_sources(self, pod: dict) -> dict[str, str]:
        """Each volume's host path (knet.node.volumes prepares them)."""
        out = {}
        for v in pod["spec"].get("volumes") or []:
            host = v.get("hostPath")
            out[v["name"]] = host["path"] if host else self.volume_dir(v["name"])
        return out

    def exposed_files(self, pod: dict, container: dict) -> list[str]:
        """TEMPORARY (until the coredns pods mount a ServiceAccount token, issue 15's
        identity half): the cluster's token and CA files the coredns Deployment names
        with --token-file/--ca-file, shown read-only at their own paths in that pod
        only; every other pod sees nothing of knet's state."""
        m = pod["metadata"]
        if m.get("namespace") != "kube-system" or (m.get("labels") or {}).get("k8s-app") != "kube-dns":
            return []
        args = [*(container.get("command") or []), *(container.get("args") or [])]
        return [args[i + 1] for i, a in enumerate(args[:-1])
                if a in ("--token-file", "--ca-file") and os.path.isfile(args[i + 1])]

    @property
    def netns_path(self) -> str:
        return ns.netns_path(self.netns)

    @property
    def uts_path(self) -> str:
        return os.path.join(self.dir, "uts")

    @property
    def resolv_conf(self) -> str:
        return os.path.join(self.dir, "resolv.conf")

    @property
    def hosts(self) -> str:
        return os.path.join(self.dir, "hosts")

    @property
    def hostname_file(self) -> str:
        return os.path.join(self.dir, "hostname")

    @property
    def nsswitch(self) -> str:
        return os.path.join(self.dir, "nsswitch.conf")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.dir, "logs")

    def log_path(self, container: str) -> str:
        return os.path.join(self.log_dir, f"{container}.log")

    def previous_log_path(self, container: str) -> str:
        """The log of the container's instance before this one (`logs --previous`):
        each start moves the last instance's log here."""
        return os.path.join(self.dir, "logs", f"{container}.previous.log")

    def files(self) -> list[tuple[str, str]]:
        """The pod's files, each with the path a process in the pod sees it at
        (knet.node.enter binds them there)."""
        return [(self.resolv_conf, "/etc/resolv.conf"), (self.hosts, "/etc/hosts"),
                (self.hostname_file, "/etc/hostname"), (self.nsswitch, "/etc/nsswitch.conf")]

    def exists(self) -> bool:
        return os.path.exists(self.netns_path) and os.path.exists(self.uts_path)

    def complete(self) -> bool:
        """Its namespaces and its files are all there: a process can enter it."""
        return self.exists() and all(os.path.exists(src) for src, _ in self.files())


def pods_dir(cfg: ClusterConfig, node: str) -> str:
    return os.path.join(cfg.state_dir, "nodes", node, "pods")


@functools.lru_cache(maxsize=8)
def _hidden(state_dir: str) -> list[str]:
    """Resolved once per state directory: realpath's lstat per component ran twice per pod start."""
    return sorted({STATE_ROOT, state_dir, ns.NETNS_RUN_DIR, os.path.realpath("/var/run/netns")})


def sandbox_for(cfg: ClusterConfig, node: str, uid: str) -> Sandbox:
    hidden = list(_hidden(cfg.state_dir))
    return Sandbox(uid, cfg.pod_netns(uid), os.path.join(pods_dir(cfg, node), uid),
                   sandboxed=getattr(cfg, "pod_sandbox", True), hidden=hidden, cluster=cfg.name)


def resolv_conf_text(cfg: ClusterConfig, pod: dict, warnings: list[str] | None = None) -> str:
    """What kubelet writes for the pod's dnsPolicy (ClusterFirst by default):
    see knet.node.podspec.pod_dns. `warnings` collects what kubelet would say in
    a DNSConfigForming event (limits exceeded)."""
    dns = podspec.pod_dns(pod, cluster_dns=cfg.dns_service_ip, domain=cfg.dns_domain,
                          node=podspec.node_dns(cfg.dns_upstreams), warnings=warnings)
    return podspec.resolv_conf(dns)


def hosts_text(cfg: ClusterConfig, pod: dict, pod_ip: str | None = None) -> str:
    """The pod's /etc/hosts (knet.node.podspec.hosts_file); a knet node has no
    hosts file of its own, so a hostNetwork pod gets the pod's (its network is
    its own namespace in knet)."""
    return podspec.hosts_file(pod, [pod_ip] if pod_ip else [], cfg.dns_domain)


def create(cfg: ClusterConfig, node: str, pod: dict) -> Sandbox:
    """Make the sandbox, or reuse the one an earlier agent made for this pod (its
    namespaces, and its files: their pod IP stays in /etc/hosts)."""
    sb = sandbox_for(cfg, node, pod["metadata"]["uid"])
    reused = sb.complete()
    os.makedirs(os.path.join(sb.dir, "logs"), exist_ok=True)
    meta = {"namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "netns": sb.netns}
    with open(os.path.join(sb.dir, "pod.json"), "w") as f:
        f.write(json.dumps(meta))  # dumps: the C encoder (dump streams through the Python one)
    need_uts = not os.path.exists(sb.uts_path)
    if not os.path.exists(sb.netns_path):  # a new pod: both namespaces from one thread
        ns.create_netns(sb.netns, owner=cfg.netns_owner, ipv6_links=False,
                        uts=(sb.uts_path, podspec.pod_hostname(pod)) if need_uts else None)
    elif need_uts:
        ns.create_uts(sb.uts_path, podspec.pod_hostname(pod))
    if not reused:
        write_files(cfg, sb, pod)
    return sb


def write_files(cfg: ClusterConfig, sb: Sandbox, pod: dict, pod_ip: str | None = None) -> None:
    hostname = podspec.pod_hostname(pod)
    for path, text in ((sb.resolv_conf, resolv_conf_text(cfg, pod)), (sb.hosts, hosts_text(cfg, pod, pod_ip)),
                       (sb.hostname_file, hostname + "\n"), (sb.nsswitch, podspec.NSSWITCH_CONF)):
        _replace(path, text)


def write_hosts(cfg: ClusterConfig, sb: Sandbox, pod: dict, pod_ip: str | None, in_place: bool = False) -> None:
    """Once the pod has its address: only /etc/hosts names it, so only it is
    written again. Rewriting all four files made (and deleted) three inodes
    more per pod for nothing, and on a journal-less ext4 /run each new inode
    costs a scan past every recently deleted one (a fifth of an agent's CPU
    per pod start, measured). `in_place` (a sandbox this agent has just made,
    before any container started) rewrites the same inode: no reader yet to
    see it half-written, and one inode made and deleted less."""
    text = hosts_text(cfg, pod, pod_ip)
    if not in_place:
        _replace(sb.hosts, text)
        return
    with open(sb.hosts, "w") as f:
        f.write(text)


def _replace(path: str, text: str) -> None:
    """Written whole under a temporary name, then renamed: a reader sees the old file or the new."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def remove(sb: Sandbox) -> None:
    """Kill whatever still runs in the pod, then remove its namespaces and files."""
    inode = ns.inode(sb.netns_path)
    if inode is not None:
        procs.kill_all(procs.pids_in_netns([inode]))
    ns.remove_ns_file(sb.netns_path)
    ns.remove_ns_file(sb.uts_path)
    for point in ns.mounts_under(sb.dir):
        remove_mount(point)
    shutil.rmtree(sb.dir, ignore_errors=True)


def remove_mount(point: str) -> None:
    """A namespace file (uts), or a volume's tmpfs (emptyDir medium: Memory) or
    the root scaffold: unmounted, then removed."""
    if os.path.isdir(point) and not os.path.islink(point):
        try:
            ns.umount(point)
        except OSError:
            pass
        return
    ns.remove_ns_file(point)


def existing(cfg: ClusterConfig, node: str) -> list[str]:
    """UIDs of sandboxes on disk for this node (for cleanup after a restart)."""
    try:
        return sorted(os.listdir(pods_dir(cfg, node)))
    except FileNotFoundError:
        return []
