"""The control-plane process: API server, store and controllers in one trio program.

It runs inside the control-plane node's network namespace (started by
`knet up`), serving HTTPS on the LAN at <control-plane IP>:6443 for node
agents and pods, HTTPS on the host's loopback listener for kubectl (a socket
`knet up` bound in the host's namespace and the supervisor passes down as
HOST_LISTENER_ENV), and plain HTTP on a root-only unix socket for knet's CLI.
Controllers call the registry in-process: the same rules as over HTTP
without the round trip. They run beside the server as trio tasks, each with
a queue of keys fed by an informer cache of the store (knet/controllers/
loop.py, cache.py), so a request never waits for a reconcile.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import socket
import sys
import weakref
from collections.abc import Callable

import trio

from knet.api.allocators import ServiceAllocator
from knet.api.gcfreeze import GcTimer, collect_and_freeze, collect_when_quiet
from knet.api.looplag import LagProbe, StepTimer
from knet.api.registry import Registry
from knet.api.server import ApiServer, Progress
from knet.api.tls import pki_paths, server_context
from knet.config import ClusterConfig, load_saved
from knet.controllers import (
    daemonset,
    deployment,
    endpointslice,
    gc,
    loadbalancer,
    nodeipam,
    nodelifecycle,
    replicaset,
    scheduler,
    statefulset,
    taints,
)
from knet.controllers.identity import IdentityControllers
from knet.controllers.loop import MAX_BATCH_SECONDS, Controller, Manager
from knet.controllers.nodelifecycle import check_nodes
from knet.net.memory import trim_when_quiet
from knet.paths import HOST_LISTENER_ENV
from knet.store.sqlite import SqliteStore

log = logging.getLogger("knet.controlplane")


# How long a pod event's key waits for the events after it (see Controller.batch):
# 50 ms, plus 5 ms per pod of the owner, at most half a second. A 1,000-pod owner is
# then synced twice a second during a rollout instead of once per pod event (the sum
# was quadratic in its size). A sync's writes (a status, a slice of 100 endpoints sent
# to every watcher) cost what the owner's size says, and there is one per window, so
# with 0.5 ms per pod a 100-pod owner wrote ten times a second: a step of +100 pods
# made as many writes as it lasted tenths of seconds, and cost more CPU the slower
# the agents started its pods. A Service of 10 pods still sees a change within 0.1 s.
POD_BATCH_SECONDS = 0.05
POD_BATCH_PER_POD = 0.005


def _batch(size) -> Callable:
    def delay(key, cache) -> float:
        return min(MAX_BATCH_SECONDS, POD_BATCH_SECONDS + POD_BATCH_PER_POD * size(key, cache))
    return delay


def _replicas(kind: str):
    def size(key, cache) -> int:
        obj = cache.get(kind, key)
        return int(((obj or {}).get("spec") or {}).get("replicas") or 0)
    return size


def _endpoints(key, cache) -> int:
    ns, _, name = key.partition("/")
    return sum(len(s.get("endpoints") or []) for s in cache.slices_of(ns, name))


def controllers(pod_subnet: str | None = None, node_cidr_mask_size: int = 24) -> list[Controller]:
    """kube-controller-manager's controllers and the scheduler, each with its
    own queue of keys (knet/controllers/loop.py)."""
    def keys(kind):
        return lambda cache: cache.keys(kind)


    def tainted_pods(cache):
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for n in cache.list("Node")
                if taints._no_execute(n) for p in cache.pods_on(n["metadata"]["name"])]

    out = [
        Controller("node lifecycle controller", nodelifecycle.WATCHES, nodelifecycle.keys_for,
                   nodelifecycle.sync_key, keys("Node")),
        Controller("deployment controller", deployment.WATCHES, deployment.keys_for, deployment.sync_key,
                   keys("Deployment"),
                   batch={"Pod": _batch(_replicas("Deployment"))}),
        Controller("replicaset controller", replicaset.WATCHES, replicaset.keys_for, replicaset.sync_key,
                   keys("ReplicaSet"),
                   batch={"Pod": _batch(_replicas("ReplicaSet"))}),
        Controller("daemonset controller", daemonset.WATCHES, daemonset.keys_for, daemonset.sync_key,
                   keys("DaemonSet")),
        Controller("statefulset controller", statefulset.WATCHES, statefulset.keys_for, statefulset.sync_key,
                   keys("StatefulSet")),
        Controller("endpointslice controller", endpointslice.WATCHES, endpointslice.keys_for,
                   endpointslice.sync_key, keys("Service"), batch={"Pod": _batch(_endpoints)}),
        Controller("garbage collector", gc.WATCHES, gc.keys_for, gc.sync_key,
                   lambda cache: [(k, key) for k in gc.OWNED_KINDS for key in cache.keys(k)]),
        Controller("taint eviction", taints.WATCHES, taints.keys_for, taints.sync_key, tainted_pods),
        Controller("scheduler", scheduler.WATCHES, scheduler.keys_for, scheduler.sync_key,
                   lambda cache: sorted(cache.unbound, key=lambda k: cache.unbound[k]["metadata"].get(
                       "creationTimestamp", ""))),
    ]
    if pod_subnet:
        out.insert(0, Controller("node ipam", nodeipam.WATCHES, nodeipam.keys_for,
                                 functools.partial(nodeipam.sync_key, pod_subnet=pod_subnet,
                                                   node_prefix=node_cidr_mask_size), keys("Node")))
    return out


_managers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def reconcile(reg: Registry) -> int:
    """Every controller over every key, then whatever that queued, until all
    queues are empty: the synchronous drive tests use (the control plane runs
    the same controllers as trio tasks, `run_controllers`)."""
    manager = _managers.get(reg)
    if manager is None:
        manager = _managers[reg] = Manager(reg, controllers())
    manager.resync()
    return manager.drain()


async def run_controllers(reg: Registry, server: ApiServer, cfg: ClusterConfig) -> None:
    manager = Manager(reg, [*controllers(cfg.pod_subnet, cfg.node_cidr_mask_size), loadbalancer.controller(cfg.lb_pool)])
    progress = server.progress.setdefault("controllers", Progress())

    def idle(observed: int, written: int) -> None:
        progress.observed = max(progress.observed, observed)
        progress.written = max(progress.written, written)

    manager.on_idle = idle
    server.stats_sources["controllers"] = lambda: {
        c.name: {"syncs": c.syncs, "writes": c.writes, "seconds": round(c.seconds, 4), "slowest": round(c.slowest, 4)}
        for c in manager.controllers}
    await manager.run()


def bootstrap_kubernetes_service(reg: Registry, cfg: ClusterConfig) -> None:
    """default/kubernetes: the API server as a Service, at the subnet's first
    address, with a hand-kept EndpointSlice to the control plane's :6443."""
    from knet.api.resources import by_kind

    services, slices = by_kind("Service"), by_kind("EndpointSlice")
    if reg.find(services, "default", "kubernetes") is None:
        reg.create(services, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": cfg.api_port}]}})
    if reg.find(slices, "default", "kubernetes") is None:
        reg.create(slices, "default", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [cfg.control_plane.ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": cfg.api_port, "protocol": "TCP"}]})


COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
DNS_LABELS = {"k8s-app": "kube-dns"}


def coredns_deployment(cfg: ClusterConfig, python: str = sys.executable) -> dict:
    """kube-system/coredns as kubeadm writes it (2 replicas, k8s-app: kube-dns,
    prefer different nodes, tolerate the control plane, dnsPolicy Default, the
    health and ready probes), but its container runs knet's server
    (knet.dns.server) with the cluster's domain and upstreams; the image is
    recorded, not pulled. It reaches the API over HTTPS with the cluster's
    token file and CA until issue 15 gives pods ServiceAccount tokens."""
    args = ["--domain", cfg.dns_domain, "--service-subnet", cfg.service_subnet, "--pod-subnet", cfg.pod_subnet]
    for upstream in cfg.dns_upstreams:
        args += ["--upstream", upstream]
    for node in cfg.nodes:  # hostNetwork pods and the nodes may be forwarded for; the ext host may not
        args += ["--forward-from", f"{node.ip}/32"]
    args += ["--token-file", os.path.join(cfg.state_dir, "token"), "--ca-file", pki_paths(cfg.state_dir).ca_crt]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "labels": dict(DNS_LABELS)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(DNS_LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(DNS_LABELS)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",  # bound to the system:coredns ClusterRole, as kubeadm's
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100, "podAffinityTerm": {
                            "labelSelector": {"matchExpressions": [
                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                            "topologyKey": "kubernetes.io/hostname"}}]}},
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "dnsPolicy": "Default",
                    "containers": [{
                        "name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": [python, "-m", "knet.dns"], "args": args,
                        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                          "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                          "successThreshold": 1, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                                           "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def kube_dns_service(cfg: ClusterConfig) -> dict:
    """kube-system/kube-dns at the serviceSubnet's tenth address, UDP and TCP 53 and metrics."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "labels": {**DNS_LABELS, "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"selector": dict(DNS_LABELS), "clusterIP": cfg.dns_service_ip,
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}


def bootstrap_cluster_dns(reg: Registry, cfg: ClusterConfig) -> None:
    """The cluster DNS, as kubeadm's CoreDNS addon: created once, then the
    cluster's like any workload (a user may scale or edit it)."""
    from knet.api.resources import by_kind

    deployments, services = by_kind("Deployment"), by_kind("Service")
    if reg.find(services, "kube-system", "kube-dns") is None:
        reg.create(services, "kube-system", kube_dns_service(cfg))
    if reg.find(deployments, "kube-system", "coredns") is None:
        reg.create(deployments, "kube-system", coredns_deployment(cfg))


def bootstrap_identity(reg: Registry, cfg: ClusterConfig):
    """ServiceAccounts, tokens and RBAC (knet/api/identity.py): the default
    policy created, pods admitted with their ServiceAccount."""
    from knet.api.identity import Identity

    return Identity.start(reg, cfg.state_dir, cfg.dns_domain, [n.name for n in cfg.nodes])


async def run_node_lifecycle(reg: Registry, grace: float) -> None:
    while True:
        await trio.sleep(min(1.0, grace / 4))
        for name in check_nodes(reg, grace):
            log.warning("node %s stopped posting status: NotReady", name)


async def main_async(cluster: str) -> None:
    cfg = load_saved(cluster)
    state = cfg.state_dir
    with open(os.path.join(state, "token")) as f:
        token = f.read().strip()
    store = SqliteStore(os.path.join(state, "store.db"))
    st = store.stats()
    log.info("store: %d objects, %.1f MiB on disk, history after revision %d of %d",
             st["keys"], st["sizeBytes"] / 1048576, st["compacted"], st["revision"])
    allocator = ServiceAllocator(cfg.service_subnet, cfg.node_port_range)
    reg = Registry(store, allocators={"Service": allocator}, pod_netns=cfg.pod_netns)
    reg.bootstrap()
    identity = bootstrap_identity(reg, cfg)
    bootstrap_kubernetes_service(reg, cfg)
    try:
        bootstrap_cluster_dns(reg, cfg)
    except Exception:  # the cluster still comes up without DNS; the log says why
        log.exception("creating the cluster DNS (kube-system/coredns, kube-dns) failed")
    server = ApiServer(reg, token, tls=server_context(pki_paths(state)))
    identity.configure(server)
    host_listener = inherited_listener()
    gc_timer = GcTimer()
    gc_timer.install()
    server.stats_sources["gc"] = gc_timer.stats
    collect_and_freeze()  # start-up's objects (modules, schemas, the store's listing) are never walked again
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_unix, os.path.join(state, "api.sock"))
        await nursery.start(server.serve_tcp, cfg.control_plane.ip, cfg.api_port)
        if host_listener is not None:
            await nursery.start(server.serve_socket, host_listener)
            log.info("serving kubectl on the host at %s:%d", *host_listener.getsockname()[:2])
        nursery.start_soon(run_controllers, reg, server, cfg)
        nursery.start_soon(IdentityControllers(reg, identity.ca_pem).run)  # default SAs, kube-root-ca.crt
        nursery.start_soon(run_node_lifecycle, reg, cfg.node_grace_seconds)
        nursery.start_soon(collect_when_quiet, store.revision)  # full GC walks follow the change (gcfreeze.py)
        nursery.start_soon(trim_when_quiet, store.revision)  # after start-up and each burst of writes
        probe = LagProbe()
        nursery.start_soon(probe.run)
        server.stats_sources["loopLag"] = probe.stats
        if os.environ.get("KNET_LOOP_STEPS") == "1":  # which task steps held the loop (knet/api/looplag.py)
            steps = StepTimer()
            trio.lowlevel.add_instrument(steps)
            server.stats_sources["loopSteps"] = steps.stats
        log.info("control plane of cluster %s serving on %s:%d", cluster, cfg.control_plane.ip, cfg.api_port)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    store.close()


def inherited_listener() -> socket.socket | None:
    """The host's loopback listener, when the supervisor passed it down (its
    fd number in HOST_LISTENER_ENV). The supervisor keeps its own copy, so a
    restarted control plane gets the same socket, and kubectl's connections
    wait in its backlog meanwhile instead of being refused."""
    fd = os.environ.get(HOST_LISTENER_ENV)
    if not fd:
        return None
    try:
        sock = socket.socket(fileno=int(fd))
    except (ValueError, OSError) as e:
        log.error("the host listener (fd %s) cannot be used: %s", fd, e)
        return None
    if sock.type != socket.SOCK_STREAM:
        log.error("fd %s is not a listening TCP socket: no host listener", fd)
        sock.detach()
        return None
    return sock


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="knet-controlplane")
    p.add_argument("--cluster", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(main_async, args.cluster)


if __name__ == "__main__":
    main()
