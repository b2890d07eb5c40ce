"""The node agent's proxy: Services and EndpointSlices in, this node's
nftables table out (see knet.proxy.rules for its shape).

Changes are coalesced: a burst of events becomes one sync, applied as one
nftables transaction, so the table is never seen half-programmed. Only the
Services named by events are recomputed, and after the first (full) sync
only they are rewritten (a new Service with one endpoint is 5 operations, a
sync with no change is none), so a sync costs the same with 10 Services or
10,000. Every `resync` seconds, and after any failure, the whole table is
rewritten, which repairs a rule deleted by hand. It reports the revision it
has programmed, for `knet apply --wait`.
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
    Obj,
    ServicePort,
    Table,
    announced_ips,
    full,
    per_service,
    service_ports,
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
        self.last_ops = 0
        self.last_error = ""
        # Per Service (namespace, name): its ports and their objects, recomputed only when an event names it.
        self._dirty_services: set[tuple[str, str]] = set()
        self._slices_of: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._slice_owner: dict[tuple[str, str], tuple[str, str]] = {}
        self.ports: dict[tuple[str, str], list[ServicePort]] = {}
        self.wanted: dict[tuple[str, str], dict[str, list[Obj]]] = {}
        self._udp_gone: set[tuple[str, str]] = set()
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
            for k in list(store):
                self._forget(kind, k)
            for o in items:
                self._remember(kind, key(o), o)
            self._listed[kind] = True
            self.seen[kind] = rv
            self._dirty.set()

        async def on_event(etype: str, obj: dict, rv: int) -> None:
            if etype == "DELETED":
                self._forget(kind, key(obj))
            elif etype in ("ADDED", "MODIFIED"):
                self._remember(kind, key(obj), obj)
            self.seen[kind] = rv
            self._dirty.set()

        return on_list, on_event

    def _remember(self, kind: str, k: tuple[str, str], obj: dict) -> None:
        self._forget(kind, k)
        self.objects[kind][k] = obj
        if kind == "Service":
            self._dirty_services.add(k)
            return
        name = (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if name:
            owner = (k[0], name)
            self._slice_owner[k] = owner
            self._slices_of.setdefault(owner, set()).add(k)
            self._dirty_services.add(owner)

    def _forget(self, kind: str, k: tuple[str, str]) -> None:
        if self.objects[kind].pop(k, None) is None:
            return
        if kind == "Service":
            self._dirty_services.add(k)
            return
        owner = self._slice_owner.pop(k, None)
        if owner:
            self._slices_of[owner].discard(k)
            if not self._slices_of[owner]:
                del self._slices_of[owner]
            self._dirty_services.add(owner)

    def _recompute(self) -> dict[str, list[Obj] | None]:
        """Bring the per-Service caches up to date for the Services events
        named; return what changed, per service port (None: gone)."""
        changes: dict[str, list[Obj] | None] = {}
        dirty, self._dirty_services = self._dirty_services, set()
        for k in dirty:
            svc = self.objects["Service"].get(k)
            slices = [self.objects["EndpointSlice"][s] for s in self._slices_of.get(k, ())]
            ports = service_ports([svc], slices) if svc else []
            objs = per_service(ports, self.pod_subnet, self.node)
            old = self.wanted.pop(k, {})
            self._udp_gone |= udp_pairs(self.ports.pop(k, [])) - udp_pairs(ports)
            if ports:
                self.ports[k], self.wanted[k] = ports, objs
            changes.update({chain: None for chain in old.keys() - objs.keys()})
            changes.update({chain: o for chain, o in objs.items() if old.get(chain) != o})
        return changes

    def all_ports(self) -> list[ServicePort]:
        return [sp for ports in self.ports.values() for sp in ports]

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
        table: Table | None = None  # what the kernel holds; None: unknown, rewrite it whole
        while True:
            with trio.move_on_after(self.resync):
                await self._dirty.wait()
            if not self._dirty.is_set():
                table = None  # the periodic full sync: rewrite the table, repairing any drift
            self._dirty = trio.Event()
            await trio.sleep(0.002)  # coalesce a burst
            if not all(self._listed.values()):
                continue
            target = min(self.seen.values())
            changed = self._recompute()
            ports = self.all_ports()
            self._health_checks(ports)
            try:
                if table is None:
                    entries = {chain: objs for per in self.wanted.values() for chain, objs in per.items()}
                    fresh = Table(entries)
                    await trio.to_thread.run_sync(apply_table, fresh)
                    self.last_ops = sum(len(objs) for objs in entries.values())
                    self.full_syncs += 1
                    table = fresh
                else:
                    cmds = table.update(changed)
                    if cmds:
                        await trio.to_thread.run_sync(nft.run, "\n".join(cmds) + "\n")
                    self.last_ops = len(cmds)
                self.syncs += 1
                self.last_error = ""
            except nft.NftError as e:
                log.error("proxy sync failed (a full sync follows): %s", e)
                self.last_error = str(e)
                self.on_synced()  # not synced, but the error is news for `apply --wait`
                table = None
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
            if self._udp_gone:
                gone, self._udp_gone = self._udp_gone, set()
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


def apply_table(table: Table) -> None:
    """Read which chains and sets the kernel's table has, then rewrite it in one transaction."""
    nft.run(full(table.objects(), nft.table_objects("ip", TABLE)))


def udp_pairs(ports: list[ServicePort]) -> set[tuple[str, str]]:
    """(Service IP, endpoint IP) of UDP service ports: when one goes, its conntrack entries must too."""
    return {(sp.cluster_ip, e.ip) for sp in ports if sp.protocol == "udp" for e in sp.endpoints}


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
