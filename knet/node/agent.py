"""The node agent: the kubelet part of a knet node.

It runs inside the node's network namespace and talks to the API server over
the LAN like a kubelet: registers its Node, heartbeats through its Lease
(knet.node.lease; the Node status is written only when it changes,
knet.node.nodestatus), watches the pods bound to it and runs each in a
PodWorker. It reports the revision it has acted on, so `knet apply --wait`
can return once the data plane has converged.

It composes the node's engines and holds none: one shared informer per kind
(knet.api.informer) feeds its own pod and node handling, the Service
variables, the proxy (knet.proxy) and the policy engine (knet.policy), which
it hands this node's nftables (knet.net.nft) as it hands the pod network
(knet.node.network) its own. The policy engine needs every pod, not only
this node's: it reads a second, cluster-wide Pod informer.

What runs in the pods does not depend on it: built-in servers live in the
node runtime (knet.node.runtime, driven through knet.node.cri), command
containers in sessions of their own. A new agent after a kill -9 adopts
them, the sandboxes and their CNI results as they are.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time

import trio

from knet import __version__
from knet.api.aclient import AsyncClient
from knet.api.errors import ApiError
from knet.api.informer import NAMESPACE, EventHandler, Informers
from knet.api.objects import now_rfc3339
from knet.api.reflector import retry_delay
from knet.api.resources import by_kind
from knet.api.tls import pki_paths
from knet.config import ClusterConfig, load_saved
from knet.controllers.events import make_event
from knet.net.memory import trim_when_quiet
from knet.net.nft import Nft
from knet.node import nodestatus
from knet.node import sandbox as sandboxes
from knet.node.cri import RuntimeClient, RuntimeRefused, RuntimeUnavailable
from knet.node.lease import NodeLease
from knet.node.network import VTEP_ANNOTATION, NodeNetwork
from knet.node.nodeinfo import KUBELET_VERSION, static_status
from knet.node.podspec import service_env
from knet.node.podworker import PodWorker
from knet.node.runtime import socket_path
from knet.policy.model import slim_pod
from knet.policy.sync import KINDS as POLICY_KINDS
from knet.policy.sync import PolicyEngine
from knet.proxy.model import slim_slice
from knet.proxy.sync import Proxy

log = logging.getLogger("knet.node")

# How long a starting pod waits for the Service cache to reach the pod's own revision. The
# bookmarks bring it there within one watch chunk; the bound only keeps a stalled watch from
# holding pods back (they start with the Services the cache has, as kubelet's would).
SERVICE_CACHE_WAIT_SECONDS = 2.0
# An agent's TLS handshakes (each watch and the heartbeat open connections of their own) wait this
# long, not an interactive client's 10 s: at 50 workers the API server's accept queue held ~500
# connections for longer than 10 s, so every handshake was given up before it was served and tried
# again, and nodes that had registered never renewed their Lease. A dead server still fails at once.
HANDSHAKE_TIMEOUT_SECONDS = 60.0


def progress_gap(nodes: int) -> float:
    """Seconds between one agent's progress reports while changes keep coming
    (the first after a quiet spell goes at once). Any write in the cluster (a
    Lease renewal) moves every agent's revision through its watches' BOOKMARKs,
    so each agent reported ~3 times a second even when idle: ~33 POSTs/s at 10
    workers, O(nodes) of them. The gap grows past four nodes (0.05 s per node, up
    to 2 s at 44 and more), which bounds the cluster's reports to ~25/s; `knet
    apply --wait` waits that much longer at most. Below that, at least
    PROGRESS_MIN_GAP: while pods roll out, revisions move with every event, and
    an agent answered each reply with its next POST (a report per ~20 ms, an
    eighth of a pod-less agent's CPU, and as many requests for the API server)."""
    return max(PROGRESS_MIN_GAP, min(2.0, 0.05 * max(0, nodes - 4)))


PROGRESS_MIN_GAP = 0.05


class Agent:
    PODS = by_kind("Pod")
    NODES = by_kind("Node")
    EVENTS = by_kind("Event")
    SERVICES = by_kind("Service")

    def __init__(self, cfg: ClusterConfig, node: str, token: str, cert: tuple[str, str] | None = None):
        """token: what the kubelet port accepts (the API server's kubelet client credential);
        cert: the node's own client certificate and key (CN=system:node:<node>), its API credential."""
        self.cfg = cfg
        self.node = node
        self.node_cfg = cfg.node(node)
        self.node_ip = self.node_cfg.ip
        self.api = AsyncClient(cfg.control_plane.ip, cfg.api_port, "" if cert else token,
                               ca_file=pki_paths(cfg.state_dir).ca_crt,  # HTTPS, trusting the cluster CA
                               cert_file=cert[0] if cert else None, key_file=cert[1] if cert else None,
                               handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS)
        self.workers: dict[str, PodWorker] = {}
        # The workers that have not acted on their pod's newest revision: a progress report reads
        # these, not every pod on the node (it runs at every bit of progress).
        self.behind: set[PodWorker] = set()
        # Sandboxes are made in a worker thread, one at a time: the kernel serializes namespace
        # creation anyway, and /run/netns is made a shared mount once, not by racing threads.
        self.sandbox_limiter = trio.CapacityLimiter(1)
        self.observed = 0
        self.activity = 0  # moves with every bit of progress: memory is trimmed once it stands still
        self._progress = trio.Event()
        self._events_send, self._events_recv = trio.open_memory_channel(math.inf)
        self.nursery: trio.Nursery | None = None
        # One list+watch per kind, shared by every engine here (the proxy, the Service variables, ...).
        self.informers = Informers(self.api)
        self.nodes = self.informers.for_kind("Node")
        self.pods = self.informers.for_kind("Pod", fieldSelector=f"spec.nodeName={node}")
        self.services = self.informers.for_kind("Service")
        self.nodes.add_handler(EventHandler(on_add=self._node_changed, on_update=self._node_changed,
                                            on_delete=self._node_changed, on_revision=self._nodes_revision))
        self.pods.add_handler(EventHandler(on_add=lambda p: self.on_pod("ADDED", p), on_update=self._pod_updated,
                                           on_delete=lambda p: self.on_pod("DELETED", p),
                                           on_revision=self._pods_revision))
        self._nodes_dirty = False
        self._cleaned_listing = 0
        self.nft = Nft()  # this node's nftables: the agent runs in the node's network namespace
        self.network = NodeNetwork(cfg, node, self.nft)
        # The slices are kept as the proxy reads them (no targetRefs): every endpoint of the cluster is in every agent.
        self.proxy = Proxy(self.services, self.informers.for_kind("EndpointSlice", transform=slim_slice), self.nft,
                           cfg.pod_subnet, nodes=self.nodes, node=node, on_synced=self.progress_changed,
                           resync=cfg.proxy_resync_seconds)
        # Every pod of the cluster (peers are selected anywhere), namespaces, nodes and the policy kinds
        # this API serves; its own libnftables context, as the proxy's runs in another thread. The
        # cluster's Pods are kept slim (what policy reads): a whole Pod per pod per agent was most
        # of an agent's memory at 1,000 pods.
        policy_informers = {"Pod": self.informers.for_kind("Pod", transform=slim_pod), "Node": self.nodes}
        policy_informers.update({k: self.informers.for_kind(k) for k in POLICY_KINDS
                                 if k not in policy_informers and by_kind(k) is not None})
        self.policy = PolicyEngine(policy_informers, Nft(), node, on_synced=self.progress_changed,
                                   resync=cfg.proxy_resync_seconds)
        # The node runtime serves the built-in servers; the cluster's supervisor keeps it running.
        self.cri = RuntimeClient(socket_path(cfg.state_dir, node))
        self.kubelet = None  # kubelet's port 10250 (knet.node.kubeletserver), once the node is up
        self._token = token
        self.heartbeat_api = self.api.sibling()  # never queued behind a burst of pod status writes
        # kube-node-lease/<node>: the liveness heartbeat, renewed every heartbeatSeconds (see knet.node.lease)
        self.lease = NodeLease(self.heartbeat_api, node, renew_seconds=cfg.heartbeat_seconds)
        self.status_static = static_status(cfg.name, node, KUBELET_VERSION, f"knet://{__version__}",
                                           cfg.node(node).max_pods)
        self._reported: float | None = None  # monotonic time of the last Node status write
        self._posted: tuple[int, dict] | None = None  # (its resourceVersion, the status written)
        self.status_writes = 0

    # -- helpers for workers ---------------------------------------------------------

    def event(self, obj: dict, etype: str, reason: str, message: str) -> None:
        self._events_send.send_nowait(make_event(obj, etype, reason, message, "kubelet", self.node))

    def progress_changed(self) -> None:
        self.activity += 1
        self._progress.set()

    def forget(self, uid: str) -> None:
        self.behind.discard(self.workers.pop(uid, None))
        self.progress_changed()

    def worker_moved(self, worker: PodWorker) -> None:
        """A worker's handling or handled revision moved."""
        if worker.handled_revision < worker.handling_revision:
            self.behind.add(worker)
        else:
            self.behind.discard(worker)

    def sandbox_made(self, worker: PodWorker) -> None:
        """A pod's sandbox is there: its log directory is watched for the log times."""
        if self.kubelet is not None:
            self.kubelet.clock.add(worker.sb.log_dir)

    async def service_env(self, pod: dict) -> dict[str, str]:
        """The Service variables for this pod: its namespace's Services (when
        enableServiceLinks) and always default/kubernetes, as kubelet does."""
        ns = pod["metadata"]["namespace"]
        links = pod["spec"].get("enableServiceLinks", True)
        if self.services.has_synced():  # the shared informer holds every Service: no round trip per pod
            # A Service made just before the pod (one `knet apply` of both) may not be in the
            # cache yet: wait (briefly) until it reflects the pod's revision, so it is.
            with trio.move_on_after(SERVICE_CACHE_WAIT_SECONDS):
                await self.services.wait_revision(int(pod["metadata"].get("resourceVersion") or 0))
            services = self.services.by_index(NAMESPACE, ns) if links else []
            kubernetes = self.services.get("default", "kubernetes")
            if kubernetes and not (links and ns == "default"):
                services.append(kubernetes)
            return service_env(services)
        services = []
        try:
            if links:
                services = (await self.api.list(self.SERVICES, ns))["items"]
            if not any(s["metadata"]["name"] == "kubernetes" and s["metadata"]["namespace"] == "default"
                       for s in services):
                services.append(await self.api.get(self.SERVICES, "default", "kubernetes"))
        except (OSError, ApiError) as e:
            log.warning("service variables for %s: %s", pod["metadata"]["name"], e)
        return service_env(services)

    # -- the agent's loops -----------------------------------------------------------

    async def wait_for_api(self) -> None:
        while True:
            try:
                await self.api.request("GET", "/version")
                return
            except (OSError, ApiError) as e:
                log.debug("API not up yet: %s", e)
                await trio.sleep(0.05)

    def node_object(self) -> dict:
        n = self.node_cfg
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node, "labels": dict(n.labels),
                         "annotations": {"knet.dev/netns": self.cfg.node_netns(self.node)}},
            "spec": {"taints": [dict(t) for t in n.taints]} if n.taints else {},
        }

    def node_status(self) -> dict:
        return nodestatus.wanted_status(self.node, self.node_ip, self.status_static)

    async def register(self) -> None:
        """Create the Node, or take over the one a previous agent registered."""
        try:
            await self.api.create(self.NODES, None, self.node_object())
        except ApiError as e:
            if e.code != 409:
                raise
            await self.api.patch(self.NODES, None, self.node, {
                "metadata": {"labels": self.node_object()["metadata"]["labels"]}})
        # Always written, as this agent has not reported yet: the node is back. Through the connection
        # registration opened: the heartbeat's own would be one more TLS handshake before the node is
        # Ready, and 50 agents starting at once keep the API server's accept queue long.
        await self.sync_node_status(self.api)

    async def _stored_node(self, api: AsyncClient) -> dict:
        """Our Node as stored: from the Node informer once it has synced (no
        round trip per heartbeat), unless it has not yet seen our last write."""
        if self.nodes.has_synced():
            node = self.nodes.get(None, self.node)
            if node is not None:
                rv = int(node["metadata"].get("resourceVersion") or 0)
                if self._posted is not None and rv < self._posted[0]:
                    return dict(node, status=self._posted[1])
                return node
        return await api.get(self.NODES, None, self.node)

    async def sync_node_status(self, api: AsyncClient | None = None) -> bool:
        """kubelet's tryUpdateNodeStatus: write the Node status if it changed
        (e.g. the lifecycle controller set it Unknown) or is due; returns
        whether it wrote. Liveness is the Lease's, not this."""
        api = api or self.heartbeat_api
        wanted = self.node_status()
        stored = (await self._stored_node(api)).get("status")
        if not nodestatus.due(stored, wanted, self._reported, time.monotonic(), self.cfg.node_status_report_seconds):
            return False
        status = nodestatus.with_transitions(stored, wanted)
        out = await api.patch(self.NODES, None, self.node, {"status": status}, "status")
        self._reported = time.monotonic()
        self._posted = (int(out["metadata"].get("resourceVersion") or 0), status)
        self.status_writes += 1
        return True

    async def heartbeat(self) -> None:
        """The Node status loop (kubelet's nodeStatusUpdateFrequency): checked
        every heartbeatSeconds, written only when due."""
        while True:
            await trio.sleep(self.cfg.heartbeat_seconds)
            try:
                await self.sync_node_status()
            except (OSError, ApiError) as e:
                log.warning("node status update failed: %s", e)

    async def send_events(self) -> None:
        async for ev in self._events_recv:
            try:
                await self.api.create(self.EVENTS, ev["metadata"]["namespace"], ev)
            except (OSError, ApiError) as e:
                log.debug("event dropped: %s", e)

    async def report_progress(self) -> None:
        """Tell the API server the newest revision this node has fully acted on."""
        sent, sent_error = -1, ""
        gap = progress_gap(len(self.cfg.nodes))
        while True:
            await self._progress.wait()
            self._progress = trio.Event()
            await trio.sleep(0)
            busy = [w.handling_revision for w in self.behind if w.handled_revision < w.handling_revision]
            acted = min([self.observed, self.proxy.synced, self.policy.synced, *[r - 1 for r in busy]])
            error = "; ".join(f"{what} sync failing: {e}" for what, e in (
                ("proxy", self.proxy.last_error), ("policy", self.policy.last_error)) if e)
            if acted <= sent and error == sent_error:
                continue
            try:
                # The error lets `apply --wait` say why this node is behind instead of timing out silently.
                proxy = {"servicePorts": self.proxy.service_port_count(), "syncs": self.proxy.syncs,
                         "fullSyncs": self.proxy.full_syncs, "lastOps": self.proxy.last_ops}
                await self.api.request("POST", "/knet/v1/progress", {"component": f"node/{self.node}",
                                                                      "observed": acted, "error": error, "proxy": proxy,
                                                                      "policy": self.policy.status()})
                sent, sent_error = acted, error
                if gap:
                    await trio.sleep(gap)  # what changes meanwhile goes in the next report
            except (OSError, ApiError) as e:
                log.debug("progress report failed: %s", e)
                await trio.sleep(0.2)
                self._progress.set()

    async def _wait_network_or_cidr(self) -> None:
        await self.network.ready.wait()

    def on_pod(self, etype: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if etype == "DELETED":
            if worker:
                worker.pod["metadata"].setdefault("deletionTimestamp", now_rfc3339())
                worker.pod["metadata"]["deletionGracePeriodSeconds"] = 0
                worker.update(worker.pod)
            return
        if worker:
            worker.update(pod)
            return
        worker = PodWorker(self, pod)
        if pod["metadata"].get("deletionTimestamp"):
            worker.terminating.set()
        self.workers[uid] = worker
        self.worker_moved(worker)
        self.nursery.start_soon(self._run_worker, worker)

    async def _run_worker(self, worker: PodWorker) -> None:
        """A bug in one pod's worker must not take the node down with it."""
        try:
            await worker.run()
        except Exception:
            log.exception("%s/%s: pod worker failed", worker.namespace, worker.name)
            self.workers.pop(worker.uid, None)
            self.behind.discard(worker)
            self.progress_changed()

    async def cleanup_orphans(self, live: set[str]) -> None:
        """Remove sandboxes an earlier agent left for pods the API no longer has
        (their built-in servers first), and let the CNI plugins collect every
        attachment that is not a live pod's."""
        try:
            for c in await self.cri.list():
                if c["uid"] not in live:
                    log.info("stopping built-in server %s of vanished pod", c["id"])
                    await self.cri.stop(c["id"])
        except (RuntimeUnavailable, RuntimeRefused) as e:
            log.warning("node runtime: cannot collect the servers of vanished pods: %s", e)
        for uid in sandboxes.existing(self.cfg, self.node):
            if uid not in live:
                log.info("removing the sandbox of vanished pod %s", uid)
                sb = sandboxes.sandbox_for(self.cfg, self.node, uid)
                try:
                    await self.network.runtime.delete(uid.replace("-", ""), sb.netns_path)
                except Exception as e:
                    log.warning("CNI DEL for vanished pod %s: %s", uid, e)
                await trio.to_thread.run_sync(sandboxes.remove, sb)
        if self.network.ready.is_set():
            try:
                await self.network.runtime.gc([(u.replace("-", ""), "eth0") for u in live])
            except Exception as e:
                log.warning("CNI GC failed: %s", e)

    def _node_changed(self, *_objs: dict) -> None:
        self._nodes_dirty = True

    async def _nodes_revision(self, _rv: int) -> None:
        """Our podCIDR (to set the network up) and the peers (for routes), once per listing or event."""
        if self._nodes_dirty:
            self._nodes_dirty = False
            await self.on_nodes(self.nodes.list())

    async def on_nodes(self, nodes: list[dict]) -> None:
        me = next((n for n in nodes if n["metadata"]["name"] == self.node), None)
        net = self.network
        if me is not None and not net.ready.is_set() and me.get("spec", {}).get("podCIDR"):
            await trio.to_thread.run_sync(net.configure, me["spec"]["podCIDR"])
            net.ready.set()
            log.info("pod network %s ready (%s backend)", net.pod_cidr, self.cfg.backend)
        if me is not None and net.vtep_mac and (me["metadata"].get("annotations") or {}).get(
                VTEP_ANNOTATION) != net.vtep_mac:
            await self.api.patch(self.NODES, None, self.node, {"metadata": {"annotations": {
                VTEP_ANNOTATION: net.vtep_mac, "knet.dev/public-ip": self.node_ip,
                "knet.dev/backend": self.cfg.backend}}})
        if net.ready.is_set():
            await trio.to_thread.run_sync(net.sync_peers, nodes)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if old["metadata"]["uid"] != new["metadata"]["uid"]:  # deleted and made again while a relist was due
            self.on_pod("DELETED", old)
            self.on_pod("ADDED", new)
        else:
            self.on_pod("MODIFIED", new)

    async def _pods_revision(self, rv: int) -> None:
        """The pods bound to this node are each handed to their worker; after
        a listing, what earlier agents left for pods that are gone is removed."""
        if self.pods.listings != self._cleaned_listing:
            self._cleaned_listing = self.pods.listings
            await self.cleanup_orphans({p["metadata"]["uid"] for p in self.pods.list()} | set(self.workers))
        self.observed = rv
        self.progress_changed()

    async def serve_kubelet_port(self) -> None:
        """kubelet's port 10250: logs, exec, attach and port-forward, which the
        API server proxies here. Imported only now: its modules (wsproto, ...)
        are not on a restarted agent's way to its first heartbeat."""
        from knet.node.kubeletserver import KubeletServer

        self.kubelet = KubeletServer(self, self._token)
        await self.kubelet.run(self.node_ip)

    async def run(self) -> None:
        failures = 0
        while True:
            await self.wait_for_api()
            try:
                # The heartbeat's connection now, ahead of this node's watches: at 50 workers a
                # connection opened after them waited in the API server's accept queue longer than
                # the grace period, and registered nodes went Unknown before their first renewal.
                await self.heartbeat_api.request("GET", "/version")
                await self.register()
                break
            except (OSError, ApiError) as e:
                # Backed off with jitter, as the reflectors: 50 agents retrying at once every
                # 0.2 s behind a swamped API server kept its accept queue full.
                failures += 1
                log.warning("registering the node failed (%s); trying again", e)
                await trio.sleep(retry_delay(failures))
        log.info("node %s registered (%s)", self.node, self.node_ip)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            # Heartbeats first (the Lease and the Node status loop), as kubelet's run apart from its pod
            # work: a restarted agent still setting up its network and adopting pods must not look dead
            # to the node lifecycle controller (which would mark every pod here Ready=False after the
            # grace period). They share a connection of their own (heartbeat_api).
            nursery.start_soon(self.lease.run)
            nursery.start_soon(self.heartbeat)
            await nursery.start(self.network.serve)
            self.nodes.start(nursery)
            with trio.move_on_after(5):
                await self._wait_network_or_cidr()
            nursery.start_soon(self.send_events)
            nursery.start_soon(self.report_progress)
            await nursery.start(self.cri.monitor)  # before the pods: their built-in servers are adopted from it
            self.informers.start(nursery)  # the pods, Services, EndpointSlices and what policy reads
            nursery.start_soon(self.proxy.run)
            nursery.start_soon(self.policy.run)
            nursery.start_soon(trim_when_quiet, lambda: self.activity)
            nursery.start_soon(self.serve_kubelet_port)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    # Like kubelet: stopping the agent leaves pods running; `knet down` removes them.
                    nursery.cancel_scope.cancel()
                    break


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="knet-agent")
    p.add_argument("--cluster", required=True)
    p.add_argument("--node", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {args.node}: %(message)s")
    cfg = load_saved(args.cluster)
    trio.run(Agent(cfg, args.node, *node_credentials(cfg.state_dir, args.node)).run)


def node_credentials(state_dir: str, node: str) -> tuple[str, tuple[str, str] | None]:
    """(the kubelet port's token, the node's client certificate and key): the
    node's own identity (system:node:<node>, node rights only), never the
    admin's token; a cluster made before nodes had certificates falls back to it."""
    from knet.api.tls import kubelet_token_path, node_cert_paths

    cert = node_cert_paths(state_dir, node)
    if os.path.exists(cert[0]) and os.path.exists(kubelet_token_path(state_dir)):
        with open(kubelet_token_path(state_dir)) as f:
            return f.read().strip(), cert
    log.warning("node %s has no credential of its own: using the cluster's token", node)
    with open(os.path.join(state_dir, "token")) as f:
        return f.read().strip(), None


if __name__ == "__main__":
    main()
