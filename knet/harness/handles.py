"""Handles on the things a network test points at: a pod, a node, the
outside host. Each knows the network namespace to enter (for probes, crafted
packets, captures and DNS queries, see knet.harness.net) and how to run a
command there (through `knet exec`, exactly what a user would type).

A handle is a snapshot: `Pod.ip` is the address the pod had when it was
looked up; `refresh()` reads it again. Handles are cheap and hold no
resources, so a test may make as many as it likes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.harness.cluster import Cluster

POD_TIMEOUT = 30.0  # a pod on a loaded two-core machine can take a while to be Running


@dataclass(frozen=True)
class Pod:
    """A Running pod with an IP: `str(pod)` is "<namespace>/<name>", the
    name `knet probe` and its matrices use."""

    cluster: Cluster = field(repr=False, compare=False)
    namespace: str
    name: str
    obj: dict = field(repr=False, compare=False, hash=False)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ip(self) -> str:
        return self.obj["status"]["podIP"]

    @property
    def ips(self) -> list[str]:
        return [a["ip"] for a in self.obj["status"].get("podIPs") or [{"ip": self.ip}]]

    @property
    def node(self) -> str:
        return self.obj["spec"]["nodeName"]

    @property
    def uid(self) -> str:
        return self.obj["metadata"]["uid"]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.obj["metadata"].get("labels") or {})

    @property
    def netns(self) -> str:
        """The path of the pod's network namespace (what setns() opens)."""
        return self._sandbox().netns_path

    @property
    def resolv_conf(self) -> str:
        """The pod's /etc/resolv.conf as the node agent wrote it."""
        return self._sandbox().resolv_conf

    def _sandbox(self):
        from knet.node.sandbox import sandbox_for

        return sandbox_for(self.cluster.cfg, self.node, self.uid)

    def exec(self, *argv: str, container: str | None = None, check: bool = False,
             timeout: float = 30) -> subprocess.CompletedProcess:
        """`knet exec -n NS POD -- argv...`: the command runs in the pod's
        namespaces as a container's process would. check=True raises on a
        non-zero exit, with its output."""
        out = self.cluster.exec_pod(self.namespace, self.name, list(argv), container=container, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"exec in pod {self}: {' '.join(argv)} failed ({out.returncode}):\n"
                                 f"{out.stdout}\n{out.stderr}")
        return out

    def refresh(self, timeout: float = POD_TIMEOUT) -> Pod:
        return get_pod(self.cluster, self.name, self.namespace, timeout=timeout)


@dataclass(frozen=True)
class Host:
    """A node (its LAN address) or `ext`, the outside host on the LAN: where
    a NodePort or LoadBalancer is reached from."""

    cluster: Cluster = field(repr=False, compare=False)
    name: str          # "ext" or a node's name
    ip: str
    netns: str         # the path of its network namespace

    def __str__(self) -> str:
        return self.name if self.name == "ext" else f"node/{self.name}"

    def exec(self, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        """`knet exec ext|node/NAME -- argv...`."""
        out = self.cluster.knet("exec", str(self), "--", *argv, check=False, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"exec on {self}: {' '.join(argv)} failed ({out.returncode}):\n"
                                 f"{out.stdout}\n{out.stderr}")
        return out


def _split(name: str, namespace: str | None) -> tuple[str, str]:
    if "/" in name:
        ns, _, pod = name.partition("/")
        if namespace not in (None, ns):
            raise ValueError(f"pod {name!r}: its namespace {ns!r} differs from namespace={namespace!r}")
        return ns, pod
    return namespace or "default", name


def _usable(pod: dict | None) -> bool:
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP")) and bool(pod["spec"].get("nodeName"))


def get_pod(cluster: Cluster, name: str, namespace: str | None = None, timeout: float = POD_TIMEOUT) -> Pod:
    """The pod `name` ("web" or "shop/web"), once it is Running with an IP and
    its network namespace is there: a handle is only given out for a pod one
    can send packets from."""
    ns, pod_name = _split(name, namespace)

    def check() -> Pod | None:
        obj = cluster.get("Pod", ns, pod_name)
        if not _usable(obj):
            return None
        handle = Pod(cluster, ns, pod_name, obj)
        return handle if os.path.exists(handle.netns) else None

    try:
        return cluster.wait_for(f"pod {ns}/{pod_name} Running with an IP", check, timeout, interval=0.05)
    except AssertionError:
        obj = cluster.get("Pod", ns, pod_name)
        if obj is None:
            raise AssertionError(f'pods "{pod_name}" not found in namespace "{ns}"') from None
        status = obj.get("status") or {}
        raise AssertionError(f"pod {ns}/{pod_name} is not Running with an IP after {timeout:g}s: phase "
                             f"{status.get('phase') or 'Pending'}, podIP {status.get('podIP') or 'none'}, "
                             f"node {obj['spec'].get('nodeName') or 'none'}") from None


def list_pods(cluster: Cluster, namespace: str | None = None, selector: str | None = None) -> list[Pod]:
    """Every Running pod with an IP in `namespace` (None: all) matching the
    label selector, sorted by "<namespace>/<name>"; the others are left out,
    as `knet probe` leaves them out."""
    from knet.harness.cluster import PODS

    items = cluster.client.list(PODS, namespace, selector)["items"]
    pods = [Pod(cluster, p["metadata"]["namespace"], p["metadata"]["name"], p) for p in items if _usable(p)]
    return sorted((p for p in pods if os.path.exists(p.netns)), key=str)


def get_host(cluster: Cluster, name: str) -> Host:
    """`ext`, or a node by name ("worker-1" or "node/worker-1")."""
    from knet.net.ns import netns_path

    cfg = cluster.cfg
    if name == "ext":
        return Host(cluster, "ext", cfg.ext_ip, netns_path(cfg.ext_netns))
    node = name.removeprefix("node/")
    try:
        ip = cfg.node(node).ip
    except KeyError:
        known = ", ".join(n.name for n in cfg.nodes)
        raise ValueError(f"node {node!r} is not in cluster {cluster.name!r} (its nodes: {known}; or 'ext')") from None
    return Host(cluster, node, ip, netns_path(cfg.node_netns(node)))

