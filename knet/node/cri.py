"""The agent's side of the node runtime (knet.node.runtime), as kubelet's CRI
client is containerd's.

Requests retry while the runtime is briefly away (being restarted by its
supervisor), so a pod worker never fails a container because of it. One
long-lived watch connection tells each worker when its built-in server is
gone: at once when the runtime process dies (its sockets died with it), or,
when the connection merely broke, by comparing the runtime's listing on
reconnection with what the workers believe runs.
"""

from __future__ import annotations

import json
import logging
import time

import trio

from knet.net import procs

log = logging.getLogger("knet.node")


class RuntimeUnavailable(OSError):
    pass


class RuntimeRefused(Exception):
    """The runtime refused a request; `reason` is its machine-readable cause."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Handle:
    """What a worker holds for a running built-in server: it is set once the server is gone.
    Of the runtime's record it keeps what is read back (one Handle per pod lives as long as it)."""

    KEPT = ("id", "boot", "seq", "labels", "startedAt")

    def __init__(self, record: dict):
        self.record = {k: record[k] for k in self.KEPT if k in record}
        self.gone = trio.Event()

    @property
    def id(self) -> str:
        return self.record["id"]

    def same(self, other: dict) -> bool:
        return (other.get("boot"), other.get("seq")) == (self.record["boot"], self.record["seq"])

    def newer_than(self, listing: dict) -> bool:
        """Started after this listing was taken (so the listing cannot know it)."""
        return self.record["boot"] == listing.get("boot") and self.record["seq"] > listing.get("seq", 0)


class RuntimeClient:
    def __init__(self, path: str):
        self.path = path
        self.handles: dict[str, Handle] = {}
        self.connected = False
        self.pid: int | None = None  # the runtime process last connected to, and its boot id
        self.pid_start: int | None = None
        self.boot: str | None = None
        self.reconnects = 0

    # -- requests -------------------------------------------------------------------

    async def _open(self) -> trio.SocketStream:
        try:
            return await trio.open_unix_socket(self.path)
        except OSError as e:
            raise RuntimeUnavailable(f"node runtime at {self.path}: {e.strerror or e}") from None

    async def call(self, req: dict, timeout: float = 5.0) -> dict:
        """One request, one answer; RuntimeUnavailable if the runtime is not there."""
        stream = await self._open()
        async with stream:
            try:
                with trio.fail_after(timeout):
                    await stream.send_all(json.dumps(req).encode() + b"\n")
                    line = await _read_line(stream)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError) as e:
                raise RuntimeUnavailable(f"node runtime: {e or type(e).__name__}") from None
        if line is None:
            raise RuntimeUnavailable("node runtime closed the connection")
        msg = json.loads(line)
        if not msg.get("ok"):
            raise RuntimeRefused(msg.get("reason", "Error"), msg.get("error", "unknown error"))
        return msg

    async def call_until(self, req: dict, give_up: trio.Event | None = None) -> dict | None:
        """Retry while the runtime is unavailable; None if `give_up` is set first."""
        delay = 0.05
        while True:
            try:
                return await self.call(req)
            except RuntimeUnavailable as e:
                log.debug("%s; retrying", e)
            if give_up is not None and give_up.is_set():
                return None
            with trio.move_on_after(delay):
                if give_up is not None:
                    await give_up.wait()
                else:
                    await trio.sleep_forever()
            delay = min(1.0, delay * 2)

    async def start(self, spec: dict, give_up: trio.Event | None = None) -> tuple[Handle, bool] | None:
        """Start (or find already running) a built-in server: (its handle, whether it was running)."""
        msg = await self.call_until({"op": "start", **spec}, give_up)
        if msg is None:
            return None
        handle = Handle(msg["container"])
        old = self.handles.get(handle.id)
        if old is not None and not old.same(handle.record):
            old.gone.set()
        self.handles[handle.id] = handle
        return handle, bool(msg.get("existing"))

    async def stop(self, cid: str) -> None:
        self.handles.pop(cid, None)
        await self.call({"op": "stop", "id": cid})

    async def list(self) -> list[dict]:
        return (await self.call({"op": "list"}))["containers"]

    # -- the watch --------------------------------------------------------------------

    def _lost(self, handle: Handle, why: str) -> None:
        if self.handles.get(handle.id) is handle:
            del self.handles[handle.id]
        if not handle.gone.is_set():
            log.info("built-in server %s is gone: %s", handle.id, why)
            handle.gone.set()

    def _reconcile(self, listing: dict) -> None:
        running = {c["id"]: c for c in listing["containers"]}
        for handle in list(self.handles.values()):
            if handle.newer_than(listing):
                continue
            now = running.get(handle.id)
            if now is None or not handle.same(now):
                self._lost(handle, "the runtime no longer runs it")

    def _runtime_died(self) -> bool:
        return self.pid is not None and (not procs.alive(self.pid) or procs.start_time(self.pid) != self.pid_start)

    async def monitor(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Keep the watch open; `started` once the first listing is in (or after a
        few seconds without a runtime, so the agent does not wait on it for ever)."""
        started = False
        delay = 0.05
        deadline = time.monotonic() + 3
        while True:
            try:
                stream = await self._open()
                async with stream:
                    await stream.send_all(b'{"op": "watch"}\n')
                    reader = _Lines(stream)
                    line = await reader.next()
                    if line is None:
                        raise RuntimeUnavailable("node runtime closed the watch")
                    listing = json.loads(line)
                    ping = await self.call({"op": "ping"})
                    self.pid, self.pid_start, self.boot = ping["pid"], procs.start_time(ping["pid"]), ping["boot"]
                    self._reconcile(listing)
                    if self.connected is False and self.reconnects:
                        log.info("node runtime back (pid %d, %d containers)", self.pid, len(listing["containers"]))
                    self.connected, self.reconnects, delay = True, self.reconnects + 1, 0.05
                    if not started:
                        started = True
                        task_status.started()
                    while (line := await reader.next()) is not None:
                        event = json.loads(line)
                        handle = self.handles.get(event.get("id"))
                        if event.get("event") == "exited" and handle is not None and handle.same(event):
                            self._lost(handle, event.get("reason", "exited"))
            except (RuntimeUnavailable, OSError, trio.BrokenResourceError, ValueError) as e:
                log.debug("node runtime watch: %s", e)
            if self.connected:
                log.warning("lost the node runtime's watch")
                self.connected = False
            if self._runtime_died():
                # Its sockets died with it: every built-in server it ran is gone, now (not those
                # a worker has already started in the runtime that replaced it).
                for handle in list(self.handles.values()):
                    if handle.record["boot"] == self.boot:
                        self._lost(handle, "the node runtime exited")
                self.pid = None
            if not started and time.monotonic() > deadline:
                started = True
                log.warning("no node runtime at %s yet; carrying on without it", self.path)
                task_status.started()
            await trio.sleep(delay)
            delay = min(0.5, delay * 2)


class _Lines:
    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buf = b""

    async def next(self) -> bytes | None:
        while b"\n" not in self.buf:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


async def _read_line(stream: trio.SocketStream) -> bytes | None:
    return await _Lines(stream).next()
