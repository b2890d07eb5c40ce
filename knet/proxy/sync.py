"""The proxy's sync loop: Services and EndpointSlices in (from the agent's
shared informers), this node's nftables table out (see knet.proxy.rules
for its shape).

Changes are coalesced: a burst of events becomes one sync, applied as one
nftables transaction, so the table is never seen half-programmed; and syncs
are at least `min_interval` apart (kube-proxy's minSyncPeriod, 1 s there):
the first change after a quiet spell is applied at once, but while pods roll
out, a Service's EndpointSlice changes with every pod, and each sync
rewrites that service port's chains whole (O(its endpoints)): 30 syncs a
second in every agent, for a 100-pod Deployment, became at most 10. A pass
that only moves revisions (the watches' BOOKMARKs, which come with every
write in the cluster) recomputes nothing and reports the revision at once. Only the
Services named by events are recomputed (knet.proxy.tracker), and after the
first (full) sync only they are rewritten (a new Service with one endpoint
is 5 operations, a sync with no change is none), so a sync costs the same
with 10 Services or 10,000. Every `resync` seconds, and after any failure,
the whole table is rewritten, which repairs a rule deleted by hand. It
reports the revision it has programmed, for `knet apply --wait`.

The kernel is reached only through `nft` (knet.net.nft.Interface) and
`extras` (knet.proxy.extras), so the loop runs against fakes in tests.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from knet.api.informer import EventHandler, Informer
from knet.api.objects import is_true
from knet.net.nft import Interface, NftError
from knet.proxy.extras import Extras, NodeExtras
from knet.proxy.model import ServicePort, announced_ips
from knet.proxy.rules import TABLE, Table, full
from knet.proxy.tracker import ChangeTracker

log = logging.getLogger("knet.proxy")
MIN_SYNC_INTERVAL = 0.1


class Proxy:
    def __init__(self, services: Informer, slices: Informer, nft: Interface, pod_subnet: str, *,
                 nodes: Informer | None = None, node: str = "", on_synced: Callable[[], None] = lambda: None,
                 resync: float = 30.0, table: str = TABLE, extras: Extras | None = None,
                 run_sync: Callable[..., Any] = trio.to_thread.run_sync, min_interval: float = MIN_SYNC_INTERVAL):
        self.informers = {"Service": services, "EndpointSlice": slices}
        self.nft, self.table_name = nft, table
        self.node, self.resync, self.on_synced = node, resync, on_synced
        self.min_interval = min_interval
        self.extras = extras or NodeExtras()
        self.run_sync = run_sync  # how a blocking kernel call leaves the event loop (tests call it in place)
        self.tracker = ChangeTracker(services, slices, pod_subnet, node)
        self.seen = {"Service": 0, "EndpointSlice": 0}  # the revision each informer has delivered
        self.synced = 0  # the revision the kernel's table reflects
        self._dirty = trio.Event()
        self.syncs = 0
        self.full_syncs = 0
        self.last_ops = 0
        self.last_error = ""
        self.ready_nodes: list[str] = []
        self._nodes_changed = False  # ready_nodes moved since the last sync
        self.revision_only = 0  # passes that only moved `synced` (see _sync_loop)
        self.announced: set[str] = set()
        self.health: dict[int, trio.CancelScope] = {}
        self.local_counts: dict[int, int] = {}
        self.nursery: trio.Nursery | None = None
        services.add_handler(self.tracker.service_handler())
        slices.add_handler(self.tracker.slice_handler())
        for kind, informer in self.informers.items():
            informer.add_handler(EventHandler(on_revision=self._seen_handler(kind)))
        if nodes is not None:
            nodes.add_handler(EventHandler(on_revision=lambda _rv: self.set_ready_nodes(
                [n["metadata"]["name"] for n in nodes.list()
                 if is_true(n, "Ready") and not n.get("spec", {}).get("unschedulable")])))

    def _seen_handler(self, kind: str) -> Callable[[int], None]:
        def seen(rv: int) -> None:
            self.seen[kind] = rv
            self._dirty.set()

        return seen

    def set_ready_nodes(self, names: list[str]) -> None:
        """Node readiness decides which node announces each LoadBalancer IP."""
        names = sorted(names)
        if names != self.ready_nodes:
            self.ready_nodes = names
            self._nodes_changed = True
            self._dirty.set()

    def service_port_count(self) -> int:
        return sum(len(v) for v in self.tracker.ports.values())

    def all_ports(self) -> list[ServicePort]:
        return self.tracker.all_ports()

    def _health_checks(self, ports: list[ServicePort]) -> None:
        """One healthCheckNodePort server per externalTrafficPolicy: Local
        Service, counting this node's endpoints."""
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
        with scope:
            await self.extras.serve_health(port, lambda: self.local_counts.get(port, 0))

    async def run(self) -> None:
        """The sync loop, until cancelled. The informers are run by their owner."""
        async with trio.open_nursery() as n:
            self.nursery = n
            n.start_soon(self._sync_loop)

    async def _sync_loop(self) -> None:
        table: Table | None = None  # what the kernel holds; None: unknown, rewrite it whole
        last = -math.inf  # when the last sync began
        while True:
            with trio.move_on_after(self.resync):
                await self._dirty.wait()
            if not self._dirty.is_set():
                table = None  # the periodic full sync: rewrite the table, repairing any drift
            await trio.sleep(0.002)  # coalesce a burst
            if table is not None and not self.tracker.dirty and not self._nodes_changed:
                # Only revisions moved (the watches' BOOKMARKs, tens per pod started anywhere in the
                # cluster): nothing to recompute, and no walk of every service port as a sync does (its
                # health checks and announcements). Reported at once: no rule waits on it.
                self._dirty = trio.Event()
                if all(i.has_synced() for i in self.informers.values()):
                    self.revision_only += 1
                    self.synced = min(self.seen.values())
                    self.on_synced()
                continue
            await trio.sleep_until(last + self.min_interval)  # and what comes while the last one is recent
            self._dirty = trio.Event()  # what came until now is in this sync
            last = trio.current_time()
            if not all(i.has_synced() for i in self.informers.values()):
                continue
            target = min(self.seen.values())
            self._nodes_changed = False
            changed = self.tracker.recompute()
            ports = self.all_ports()
            self._health_checks(ports)
            try:
                if table is None:
                    entries = self.tracker.entries()
                    fresh = Table(entries, self.table_name)
                    await self.run_sync(write_table, self.nft, fresh)
                    self.last_ops = sum(len(objs) for objs in entries.values())
                    self.full_syncs += 1
                    table = fresh
                else:
                    cmds = table.update(changed)
                    if cmds:
                        await self.run_sync(self.nft.run, "\n".join(cmds) + "\n")
                    self.last_ops = len(cmds)
                self.syncs += 1
                self.last_error = ""
            except NftError as e:
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
                    await self.run_sync(self.extras.announce, want, self.announced)
                    self.announced = want
                except OSError as e:
                    log.error("announcing LoadBalancer IPs failed: %s", e)
            if self.tracker.udp_gone:
                gone, self.tracker.udp_gone = self.tracker.udp_gone, set()
                await self.run_sync(self.extras.clear_udp_conntrack, gone)
            self.synced = target
            self.on_synced()


def write_table(nft: Interface, table: Table) -> None:
    """Read which chains and sets the kernel's table has, then rewrite it whole in one transaction."""
    nft.run(full(table.objects(), nft.list_table("ip", table.name), table.name))
