"""Port-forward into a pod, as kubelet serves it.

Each forwarded connection is joined to a connection to 127.0.0.1:<port>
inside the pod's network namespace: a socket opened there (in a thread that
enters the namespace) and then served by the agent's trio loop, as the CNI
datapath does. Two protocols: the WebSocket channels the Python client
speaks (data and error channel per port), and SPDY/3.1 (kubectl's, in a
WebSocket tunnel or on an upgraded connection), two streams per connection.
"""

from __future__ import annotations

import logging

import trio

from knet.net import ns
from knet.node import spdy, wschannel
from knet.node.streamconn import CHUNK, WebSocket, ignore_broken

log = logging.getLogger("knet.kubelet")


class PodDialer:
    """Connections to 127.0.0.1:port inside one pod's network namespace."""

    def __init__(self, worker):
        self.worker = worker

    async def connect(self, port: int) -> trio.SocketStream:
        netns = self.worker.sb.netns_path

        def make():
            import socket

            with ns.entered(net=netns):
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

        sock = trio.socket.from_stdlib_socket(await trio.to_thread.run_sync(make))
        try:
            await sock.connect(("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)

    def error(self, port: int, e: Exception) -> str:
        pod = self.worker
        why = getattr(e, "strerror", None) or str(e)
        return (f"error forwarding port {port} to pod {pod.name}_{pod.namespace}, uid {pod.uid}: "
                f"failed to connect to localhost:{port} inside namespace \"{pod.sb.netns}\": "
                f"dial tcp4 127.0.0.1:{port}: connect: {why.lower()}")


async def channel_port_forward(ws: WebSocket, ports: list[int], dialer: PodDialer) -> None:
    """Port-forward on WebSocket channels (the Python client's): data 2i and
    error 2i+1 per port, each opened with the port number; one connection
    per port, for the life of the WebSocket."""
    conns: dict[int, trio.SocketStream] = {}
    for i, port in enumerate(ports):
        await ws.send(wschannel.frame(2 * i, wschannel.port_prefix(port)))
        await ws.send(wschannel.frame(2 * i + 1, wschannel.port_prefix(port)))
    for i, port in enumerate(ports):
        try:
            conns[i] = await dialer.connect(port)
        except OSError as e:
            await ws.send(wschannel.frame(2 * i + 1, dialer.error(port, e).encode()))
    if not conns:
        return

    async def from_pod(i: int, s: trio.SocketStream) -> None:
        with ignore_broken():
            while data := await s.receive_some(CHUNK):
                await ws.send(wschannel.frame(2 * i, data))
        conns.pop(i, None)
        if not conns:
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for i, s in conns.items():
            nursery.start_soon(from_pod, i, s)
        async for message in ws.messages():
            if len(message) > 1 and message[0] % 2 == 0 and message[0] // 2 in conns:
                with ignore_broken():
                    await conns[message[0] // 2].send_all(message[1:])
        nursery.cancel_scope.cancel()
    for s in list(conns.values()):
        with trio.CancelScope(shield=True):
            await s.aclose()


class SpdyPortForward:
    """kubelet's SPDY port-forward: the client opens an error stream and a
    data stream per connection (same requestID); once both are there, the
    data stream is joined to a connection to the port in the pod, and the
    error stream carries why that failed, if it did."""

    def __init__(self, transport, dialer: PodDialer):
        self.transport, self.dialer = transport, dialer
        self.out, self.inn = spdy.HeaderCodec(), spdy.HeaderCodec()
        self.pairs: dict[str, dict[str, int]] = {}  # requestID -> {"error": sid, "data": sid}
        self.ports: dict[str, int] = {}
        self.sockets: dict[int, trio.SocketStream] = {}  # data stream id -> the pod connection
        self.early: dict[int, list[bytes | None]] = {}  # data that came before the pod connection was up
        self._write = trio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self._write:
            await self.transport.send(frame)

    async def run(self) -> None:
        reader = spdy.Reader(self.inn)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                async for chunk in self.transport.chunks():
                    for f in reader.feed(chunk):
                        if not await self._frame(f):
                            nursery.cancel_scope.cancel()
                            return
                nursery.cancel_scope.cancel()
        except spdy.SpdyError as e:
            log.info("port-forward: %s", e)
            with ignore_broken():
                await self.send(spdy.goaway(0, spdy.PROTOCOL_ERROR))
        finally:
            for s in list(self.sockets.values()):
                with trio.CancelScope(shield=True):
                    await s.aclose()

    async def _frame(self, f: spdy.Frame) -> bool:
        if f.type == spdy.SYN_STREAM:
            await self.send(spdy.syn_reply(self.out, f.stream_id))
            kind, rid, port = f.headers.get("streamtype"), f.headers.get("requestid", ""), f.headers.get("port", "")
            if kind not in ("error", "data"):
                await self.send(spdy.rst_stream(f.stream_id, spdy.PROTOCOL_ERROR))
                return True
            pair = self.pairs.setdefault(rid, {})
            pair[kind] = f.stream_id
            if kind == "data":
                self.early[f.stream_id] = []
                try:
                    self.ports[rid] = int(port)
                except ValueError:
                    self.ports[rid] = -1
            if "error" in pair and "data" in pair:
                self.nursery.start_soon(self._forward, rid)
        elif f.type == 0:
            sock = self.sockets.get(f.stream_id)
            if sock is not None:
                with ignore_broken():
                    if f.data:
                        await sock.send_all(f.data)
                    if f.fin:
                        await sock.send_eof()
            elif f.stream_id in self.early:
                self.early[f.stream_id] += [f.data] + ([None] if f.fin else [])
        elif f.type == spdy.PING:
            await self.send(spdy.ping(f.value))
        elif f.type == spdy.RST_STREAM:
            sock = self.sockets.pop(f.stream_id, None)
            if sock is not None:
                with trio.CancelScope(shield=True):
                    await sock.aclose()
        elif f.type == spdy.GOAWAY:
            return False
        return True

    async def _forward(self, rid: str) -> None:
        pair, port = self.pairs.pop(rid), self.ports.pop(rid, -1)
        error_sid, data_sid = pair["error"], pair["data"]
        try:
            if not 0 < port < 65536:
                raise ValueError(f"invalid port {port}")
            sock = await self.dialer.connect(port)
        except (OSError, ValueError) as e:
            message = self.dialer.error(port, e) if isinstance(e, OSError) else str(e)
            self.early.pop(data_sid, None)
            with ignore_broken():
                await self.send(spdy.data(error_sid, message.encode(), fin=True))
                await self.send(spdy.data(data_sid, b"", fin=True))
            return
        self.sockets[data_sid] = sock
        with ignore_broken():
            for data in self.early.pop(data_sid, []):
                if data is None:
                    await sock.send_eof()
                elif data:
                    await sock.send_all(data)
        with ignore_broken():
            while data := await sock.receive_some(spdy.MAX_DATA):
                await self.send(spdy.data(data_sid, data))
        with ignore_broken():
            await self.send(spdy.data(data_sid, b"", fin=True))
            await self.send(spdy.data(error_sid, b"", fin=True))
