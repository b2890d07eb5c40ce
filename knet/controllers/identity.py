"""The identity controllers' loop: the ServiceAccounts controller, the root
CA publisher (both one object per namespace) and the ClusterRole
aggregation, driven by the store's events for the kinds they keep.

Apart from the keyed controllers of loop.py because what they watch
(namespaces, ServiceAccounts, ConfigMaps, ClusterRoles) is not in the
informer cache, and keeping it there would cost every cluster memory for
objects only these read: the store's event names the namespace, which is
the whole key. A store callback only notes the key; the writes happen in
this task, never inside another write.
"""

from __future__ import annotations

import logging

import trio

from knet.controllers import clusterroleaggregation, rootca, serviceaccount

log = logging.getLogger("knet.controllers.identity")

_WATCHED = ("/registry/namespaces/", "/registry/serviceaccounts/", "/registry/configmaps/",
            "/registry/clusterroles/")


class IdentityControllers:
    def __init__(self, reg, ca_pem: str):
        self.reg = reg
        self.ca_pem = ca_pem
        self.pending: set[str] = set()
        self.roles = True
        self.wake = trio.Event()
        self.syncs = 0

    def on_event(self, event) -> None:
        key = event.key
        if not key.startswith(_WATCHED):
            return
        parts = key.split("/")  # ["", "registry", plural, ns-or-name, name?]
        if parts[2] == "clusterroles":
            self.roles = True
        elif parts[2] == "namespaces":
            self.pending.add(parts[3])
        elif (parts[2], parts[4]) in (("serviceaccounts", serviceaccount.DEFAULT), ("configmaps", rootca.NAME)):
            self.pending.add(parts[3])
        else:
            return
        self.wake.set()

    def sync_all(self) -> None:
        from knet.api.resources import by_kind

        self.pending.update(ns["metadata"]["name"] for ns in self.reg.list(by_kind("Namespace"))[0])
        self.roles = True
        self.drain()

    def drain(self) -> None:
        while self.pending or self.roles:
            if self.roles:
                self.roles = False
                clusterroleaggregation.sync(self.reg)
            while self.pending:
                ns = self.pending.pop()
                self.syncs += 1
                try:
                    serviceaccount.sync_namespace(self.reg, ns)
                    rootca.sync_namespace(self.reg, ns, self.ca_pem)
                except Exception:  # one namespace's failure must not stop the others'
                    log.exception("syncing namespace %s's ServiceAccount and root CA failed", ns)

    async def run(self) -> None:
        unsubscribe = self.reg.store.subscribe(self.on_event)
        try:
            self.sync_all()
            while True:
                await self.wake.wait()
                self.wake = trio.Event()
                await trio.sleep(0)  # let the burst that woke us finish first
                self.drain()
        finally:
            unsubscribe()
