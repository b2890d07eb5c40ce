"""knet's API server in this process, for tests that need a real server but
no cluster: the ApiServer over a Registry over a SqliteStore in a directory
of the test's, serving on a unix socket from a thread. No root, no
namespaces, no controllers or agents: what is stored is only what the test
writes, so a command's output is exactly determined.

    with LocalApiServer(tmp_path) as server:
        client = server.client()
        client.create(by_kind("Pod"), "default", pod)
"""

from __future__ import annotations

import os
import threading

import trio

from knet.api.allocators import ServiceAllocator
from knet.api.client import Client
from knet.api.registry import Registry
from knet.api.server import ApiServer
from knet.config import default_config
from knet.controlplane import bootstrap_kubernetes_service
from knet.store.sqlite import SqliteStore

TOKEN = "local-test-token"


class LocalApiServer:
    """Started as the control plane starts its API server: the system
    namespaces, Service addresses allocated from a default cluster's subnet,
    and default/kubernetes already there. `services=False` leaves out the
    Service allocator and default/kubernetes, for tests of the bare API
    machinery; `store_args` go to the SqliteStore (its history window)."""

    def __init__(self, directory: str | os.PathLike, name: str = "local", *, services: bool = True,
                 **store_args: int):
        self.cfg = default_config(name)
        self.socket = os.path.join(directory, "api.sock")
        self.store = SqliteStore(os.path.join(directory, "store.db"), **store_args)
        allocators = {"Service": ServiceAllocator(self.cfg.service_subnet, self.cfg.node_port_range)}
        self.registry = Registry(self.store, allocators=allocators if services else None,
                                 pod_netns=self.cfg.pod_netns)
        self.registry.bootstrap()
        if services:
            bootstrap_kubernetes_service(self.registry, self.cfg)
        self.api = ApiServer(self.registry, TOKEN)
        self._started = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._serve,), daemon=True)
        self._cancel: trio.CancelScope | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None

    async def _serve(self) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            await nursery.start(self.api.serve_unix, self.socket)
            self._started.set()

    def start(self) -> LocalApiServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the in-process API server did not start in 10s")
        return self

    def stop(self) -> None:
        if self._cancel is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._trio_token)
            self._thread.join(10)
        self.store.close()

    def client(self) -> Client:
        return Client(TOKEN, unix_path=self.socket)

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
