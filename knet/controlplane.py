"""The control-plane process: API server, store and controllers in one trio program.

It runs inside the control-plane node's network namespace (started by
`knet up`), serving the LAN at <control-plane IP>:6443 for node agents and a
root-only unix socket for the CLI. Controllers call the registry in-process:
the same rules as over HTTP without the round trip.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from knet.api.registry import Registry
from knet.api.server import ApiServer, Progress
from knet.config import load_saved
from knet.controllers.loop import Kick
from knet.controllers.nodelifecycle import check_nodes
from knet.controllers.scheduler import schedule_pass
from knet.store.sqlite import SqliteStore

log = logging.getLogger("knet.controlplane")


async def run_scheduler(reg: Registry, server: ApiServer) -> None:
    kick = Kick(reg.store, ("/registry/pods/", "/registry/nodes/"))
    progress = server.progress.setdefault("controllers", Progress())
    while True:
        relevant = await kick.wait()
        observed = reg.store.revision()
        if relevant:
            try:
                schedule_pass(reg)
            except Exception:
                log.exception("scheduler pass failed")
            if reg.store.revision() > observed:  # its own writes: a pass is synchronous
                progress.written = reg.store.revision()
        progress.observed = observed


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
    reg = Registry(store, pod_netns=cfg.pod_netns)
    reg.bootstrap()
    server = ApiServer(reg, token)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_unix, os.path.join(state, "api.sock"))
        await nursery.start(server.serve_tcp, cfg.control_plane.ip, cfg.api_port)
        nursery.start_soon(run_scheduler, reg, server)
        nursery.start_soon(run_node_lifecycle, reg, cfg.node_grace_seconds)
        log.info("control plane of cluster %s serving on %s:%d", cluster, cfg.control_plane.ip, cfg.api_port)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    store.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="knet-controlplane")
    p.add_argument("--cluster", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(main_async, args.cluster)


if __name__ == "__main__":
    main()
