"""The node agent's proxy: Services and EndpointSlices in, this node's
nftables table out (see knet.proxy.rules for its shape).

Changes are coalesced: a burst of events becomes one sync, applied as one
nftables transaction, so the table is never seen half-programmed. After the
first (full) sync, a change rewrites only the Services that changed (a new
Service with one endpoint is 7 operations, a sync with no change is none);
every `resync` seconds, and after any failure, the whole table is rewritten,
which repairs a rule deleted by hand. It reports the revision it has
programmed, for `knet apply --wait`.
"""

from __future__ import annotations

import logging

import trio

from knet.api.aclient import AsyncClient
from knet.api.reflector import reflect
from knet.api.resources import by_kind
from knet.net import nft
from knet.proxy.rules import (
    TABLE,
    announced_ips,
    base,
    partial,
    per_service,
    service_ports,
    transaction,
)

log = logging.getLogger("knet.proxy")
SERVICES, SLICES = by_kind("Service"), by_kind("EndpointSlice")


class Proxy:
    def __init__(self, api: AsyncClient, pod_subnet: str, on_synced, node: str = "", resync: float = 30.0):
        self.api = api
        self.pod_subnet = pod_subnet
        self.objects: dict[str, dict[tuple[str, str], dict]] = {"Service": {}, "EndpointSlice": {}}
        self.seen = {"Service": 0, "EndpointSlice": 0}
        self.synced = 0
        self._dirty = trio.Event()
        self._listed = {"Service": False, "EndpointSlice": False}
        self.on_synced = on_synced
        self.syncs = 0
        self.full_syncs = 0
        self._udp: set[tuple[str, str]] = set()
        self.last_ops = 0
        self.node = node
        self.resync = resync
        self.ready_nodes: list[str] = []
        self.announced: set[str] = set()
        self.health: dict[int, trio.CancelScope] = {}
        self.local_counts: dict[int, int] = {}
        self.nursery: trio.Nursery | None = None

    def listed(self, kind: str) -> bool:
        """Whether the watch of `kind` has delivered its first full listing."""
        return self._listed[kind]

    def set_ready_nodes(self, names: list[str]) -> None:
        """Node readiness decides which node announces each LoadBalancer IP."""
        names = sorted(names)
        if names != self.ready_nodes:
            self.ready_nodes = names
            self._dirty.set()

    def _handlers(self, kind: str):
        store = self.objects[kind]

        def key(o: dict) -> tuple[str, str]:
            return o["metadata"]["namespace"], o["metadata"]["name"]

        async def on_list(items: list[dict], rv: int) -> None:
            store.clear()
            store.update({key(o): o for o in items})
            self._listed[kind] = True
            self.seen[kind] = rv
            self._dirty.set()

        async def on_event(etype: str, obj: dict, rv: int) -> None:
            if etype == "DELETED":
                store.pop(key(obj), None)
            elif etype in ("ADDED", "MODIFIED"):
                store[key(obj)] = obj
            self.seen[kind] = rv
            self._dirty.set()

        return on_list, on_event

    def _health_checks(self, ports) -> None:
        """healthCheckNodePort for externalTrafficPolicy: Local, as kube-proxy
        serves it: 200 while this node has a local endpoint, 503 when not."""
        want: dict[int, int] = {}
        for sp in ports:
            if sp.etp_local and sp.health_check_node_port:
                want[sp.health_check_node_port] = sum(e.node == self.node for e in sp.endpoints)
        for port in set(want) - set(self.health):
            scope = trio.CancelScope()
            self.health[port] = scope
            self.nursery.start_soon(self._serve_health, port, scope)
        for port in set(self.health) - set(want):
            self.health.pop(port).cancel()
        self.local_counts = want

    async def _serve_health(self, port: int, scope: trio.CancelScope) -> None:
        async def one(stream: trio.SocketStream) -> None:
            async with stream:
                with trio.move_on_after(2):
                    await stream.receive_some(4096)
                n = self.local_counts.get(port, 0)
                body = f'{{"service": {{}}, "localEndpoints": {n}}}'.encode()
                status = b"200 OK" if n else b"503 Service Unavailable"
                await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

        with scope:
            try:
                await trio.serve_tcp(one, port)
            except OSError as e:
                log.error("healthCheckNodePort %d: %s", port, e)

    async def run(self) -> None:
        async with trio.open_nursery() as n:
            self.nursery = n
            for kind, res in (("Service", SERVICES), ("EndpointSlice", SLICES)):
                n.start_soon(reflect, self.api, res, *self._handlers(kind))
            n.start_soon(self._sync_loop)

    async def _sync_loop(self) -> None:
        current: dict[str, list[dict]] | None = None  # what the table holds, per service port
        while True:
            with trio.move_on_after(self.resync):
                await self._dirty.wait()
            if not self._dirty.is_set():
                current = None  # the periodic full sync: rewrite the table, repairing any drift
            self._dirty = trio.Event()
            await trio.sleep(0.005)  # coalesce a burst
            if not all(self._listed.values()):
                continue
            target = min(self.seen.values())
            ports = service_ports(list(self.objects["Service"].values()), list(self.objects["EndpointSlice"].values()))
            wanted = per_service(ports, self.pod_subnet, self.node)
            self._health_checks(ports)
            try:
                if current is None:
                    cmds = base(self.pod_subnet) + [c for chunk in wanted.values() for c in chunk]
                    await trio.to_thread.run_sync(apply_table, cmds)
                    self.full_syncs += 1
                else:
                    cmds = partial(current, wanted)
                    if cmds:
                        await trio.to_thread.run_sync(nft.apply, cmds)
                self.last_ops = len(cmds)
                current = wanted
                self.syncs += 1
            except nft.NftError as e:
                log.error("proxy sync failed (a full sync follows): %s", e)
                current = None
                await trio.sleep(1)
                self._dirty.set()
                continue
            want = announced_ips(ports, self.node, self.ready_nodes) if self.node else set()
            if want != self.announced:
                try:
                    await trio.to_thread.run_sync(announce, want, self.announced)
                    self.announced = want
                except OSError as e:
                    log.error("announcing LoadBalancer IPs failed: %s", e)
            gone = removed_udp_endpoints(self._udp, ports)
            self._udp = {(sp.cluster_ip, e.ip) for sp in ports if sp.protocol == "udp" for e in sp.endpoints}
            if gone:
                await trio.to_thread.run_sync(clear_udp_conntrack, gone)
            self.synced = target
            self.on_synced()


def announce(want: set[str], have: set[str]) -> None:
    """Own LoadBalancer IPs on the LAN as /32s on eth0, so this node answers
    ARP for them (MetalLB's layer-2 mode); the proxy's prerouting DNAT takes
    the traffic before local delivery."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        for ip in have - want:
            try:
                ipr.addr("del", index=idx, address=ip, prefixlen=32)
            except NetlinkError:
                pass
        for ip in want - have:
            try:
                ipr.addr("add", index=idx, address=ip, prefixlen=32)
            except NetlinkError as e:
                if e.code != 17:
                    raise
    for ip in want - have:
        _garp(ip)


def _garp(ip: str) -> None:
    """Tell the LAN at once (gratuitous ARP), as MetalLB does on failover."""
    import shutil
    import subprocess

    if shutil.which("arping"):
        subprocess.run(["arping", "-U", "-c", "1", "-I", "eth0", ip], capture_output=True, timeout=5)


def apply_table(cmds: list[dict]) -> None:
    """Read what the table has, then rewrite it in one transaction."""
    nft.apply(transaction(cmds, nft.table_objects("ip", TABLE)))


def removed_udp_endpoints(before: set[tuple[str, str]], ports) -> set[tuple[str, str]]:
    """(Service IP, endpoint IP) pairs of UDP Services whose endpoint went away."""
    now = {(sp.cluster_ip, e.ip) for sp in ports if sp.protocol == "udp" for e in sp.endpoints}
    return before - now


def clear_udp_conntrack(pairs: set[tuple[str, str]]) -> None:
    """UDP has no connection to end: without this, a client that keeps its
    source port stays stuck to the gone endpoint until the entry times out
    (kube-proxy deletes these entries too). conntrack(8) talks netlink."""
    import shutil
    import subprocess

    if not shutil.which("conntrack"):
        log.warning("conntrack(8) missing: stale UDP entries stay until they time out")
        return
    for service_ip, endpoint_ip in sorted(pairs):
        subprocess.run(["conntrack", "-D", "-p", "udp", "--orig-dst", service_ip, "--reply-src", endpoint_ip],
                       capture_output=True, timeout=5)
