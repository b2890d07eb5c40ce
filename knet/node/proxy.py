"""The node agent's proxy: Services and EndpointSlices in, this node's
nftables table out (see knet.proxy.rules for its shape).

Changes are coalesced: a burst of events becomes one sync, applied as one
nftables transaction, so the table is never seen half-programmed. This is a
full sync each time; partial syncs that touch only what changed are the next
step. It reports the revision it has programmed, for `knet apply --wait`.
"""

from __future__ import annotations

import logging

import trio

from knet.api.aclient import AsyncClient
from knet.api.reflector import reflect
from knet.api.resources import by_kind
from knet.net import nft
from knet.proxy.rules import ruleset, service_ports

log = logging.getLogger("knet.proxy")
SERVICES, SLICES = by_kind("Service"), by_kind("EndpointSlice")


class Proxy:
    def __init__(self, api: AsyncClient, pod_subnet: str, on_synced):
        self.api = api
        self.pod_subnet = pod_subnet
        self.objects: dict[str, dict[tuple[str, str], dict]] = {"Service": {}, "EndpointSlice": {}}
        self.seen = {"Service": 0, "EndpointSlice": 0}
        self.synced = 0
        self._dirty = trio.Event()
        self._listed = {"Service": False, "EndpointSlice": False}
        self.on_synced = on_synced
        self.syncs = 0

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

    async def run(self) -> None:
        async with trio.open_nursery() as n:
            for kind, res in (("Service", SERVICES), ("EndpointSlice", SLICES)):
                n.start_soon(reflect, self.api, res, *self._handlers(kind))
            n.start_soon(self._sync_loop)

    async def _sync_loop(self) -> None:
        applied = None
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            await trio.sleep(0.005)  # coalesce a burst
            if not all(self._listed.values()):
                continue
            target = min(self.seen.values())
            ports = service_ports(list(self.objects["Service"].values()), list(self.objects["EndpointSlice"].values()))
            cmds = ruleset(ports, self.pod_subnet)
            if cmds != applied:
                try:
                    await trio.to_thread.run_sync(nft.apply, cmds)
                    applied = cmds
                    self.syncs += 1
                except nft.NftError as e:
                    log.error("proxy sync failed: %s", e)
                    await trio.sleep(1)
                    self._dirty.set()
                    continue
            self.synced = target
            self.on_synced()
