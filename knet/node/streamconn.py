"""The connections exec, attach and port-forward are served on.

kubelet serves them over WebSockets (the channel protocols of
knet.node.wschannel; kubectl's default) and over SPDY/3.1 (knet.node.spdy;
client-go's SPDY executor and kubectl's fallback). WebSocket and SpdyExec
give the exec and attach code one face: send_channel, send_error, inputs,
close. RawTransport and WsTransport carry a SPDY session on the upgraded
connection itself or inside a WebSocket (kubectl's port-forward tunnel).
"""

from __future__ import annotations

import json

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from knet.api.errors import ApiError
from knet.node import spdy, wschannel

CHUNK = 32 * 1024
BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, OSError)


class Refused(Exception):
    """Answer the request with this Status instead of serving it."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.error = ApiError(code, reason, message)


def not_found(message: str) -> Refused:
    return Refused(404, "NotFound", message)


def bad(message: str) -> Refused:
    return Refused(400, "BadRequest", message)


class ignore_broken:
    """A block whose failure only means the other end is gone (a closed
    connection, a broken pipe): it ends quietly."""

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb) -> bool:
        return et is not None and issubclass(et, (OSError, *BROKEN))


class WebSocket:
    """The server end of a WebSocket on a trio stream (wsproto), one sender at a time."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, protocol: str):
        self.stream, self.ws, self.protocol = stream, ws, protocol
        self._lock = trio.Lock()
        self.closed = False

    @classmethod
    async def accept(cls, conn: h11.Connection, stream: trio.abc.Stream, req: h11.Request,
                     supported: tuple[str, ...]) -> WebSocket:
        headers = {k.lower(): v for k, v in req.headers}
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            # A SPDY upgrade (client-go's fallback) or none at all: only WebSockets are served.
            raise bad("Upgrade request required: exec and attach are served over WebSockets "
                       "(v5.channel.k8s.io, v4.channel.k8s.io)")
        protocols = wschannel.offered(headers.get(b"sec-websocket-protocol", b"").decode("latin-1"))
        chosen = wschannel.negotiate(protocols, supported) if protocols else supported[-1]
        if chosen is None:
            raise bad(f"requested protocol(s) are not supported: {protocols}; supports {list(supported)}")
        ws = WSConnection(ConnectionType.SERVER)
        ws.initiate_upgrade_connection(req.headers, req.target)
        for event in ws.events():
            if not isinstance(event, Request):
                raise bad("malformed WebSocket upgrade request")
        await stream.send_all(ws.send(AcceptConnection(subprotocol=chosen if protocols else None)))
        self = cls(stream, ws, chosen)
        leftover, _ = conn.trailing_data
        if leftover:
            self.ws.receive_data(bytes(leftover))
        return self

    async def send(self, data: bytes) -> None:
        async with self._lock:
            if not self.closed:
                await self.stream.send_all(self.ws.send(BytesMessage(data=data)))

    async def send_channel(self, channel: int, data: bytes) -> None:
        await self.send(wschannel.frame(channel, data))

    async def send_error(self, status: dict) -> None:
        message = wschannel.error_message(status, self.protocol)
        if message or self.protocol in (wschannel.V5, wschannel.V4):
            await self.send(wschannel.frame(wschannel.ERROR, message))

    async def inputs(self):
        """(channel, data) of each message the client sends; (CLOSE, channel) for v5's close."""
        async for message in self.messages():
            parsed = wschannel.parse(message, self.protocol)
            if parsed is not None:
                yield parsed

    async def messages(self):
        """Each whole message the client sends, until it closes."""
        parts: list[bytes] = []
        while True:
            for event in self.ws.events():
                if isinstance(event, (BytesMessage, TextMessage)):
                    data = event.data if isinstance(event, BytesMessage) else event.data.encode()
                    parts.append(bytes(data))
                    if event.message_finished:
                        message, parts = b"".join(parts), []
                        yield message
                elif isinstance(event, Ping):
                    async with self._lock:
                        if not self.closed:
                            await self.stream.send_all(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    async with self._lock:
                        if not self.closed:
                            self.closed = True
                            with ignore_broken():
                                await self.stream.send_all(self.ws.send(event.response()))
                    return
                elif isinstance(event, RejectConnection):
                    return
            data = await self.stream.receive_some(CHUNK)
            if not data:
                return
            self.ws.receive_data(data)

    async def close(self, code: int = 1000) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            async with self._lock:
                if self.closed:
                    return
                self.closed = True
                with ignore_broken():
                    await self.stream.send_all(self.ws.send(CloseConnection(code=code)))


class RawTransport:
    """SPDY straight on the upgraded connection."""

    def __init__(self, stream: trio.abc.Stream, leftover: bytes):
        self.stream, self.leftover = stream, bytes(leftover)
        self._lock = trio.Lock()

    async def chunks(self):
        if self.leftover:
            yield self.leftover
        while data := await self.stream.receive_some(CHUNK):
            yield data

    async def send(self, data: bytes) -> None:
        async with self._lock:
            await self.stream.send_all(data)


class WsTransport:
    """SPDY inside a WebSocket's binary messages (client-go's tunneling connection)."""

    def __init__(self, ws: WebSocket):
        self.ws = ws

    def chunks(self):
        return self.ws.messages()

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)


class SpdyExec:
    """exec and attach over SPDY/3.1 (client-go's SPDY executor, kubectl's
    fallback): the client opens one stream per channel (streamType error,
    stdin, stdout, stderr, resize); output goes out as DATA on its stream, the
    exit status on the error stream, and FIN ends each."""

    CHANNELS = {"stdin": wschannel.STDIN, "stdout": wschannel.STDOUT, "stderr": wschannel.STDERR,
                "error": wschannel.ERROR, "resize": wschannel.RESIZE}
    OPEN_TIMEOUT = 30.0  # kubelet's stream creation timeout

    def __init__(self, transport: RawTransport, protocol: str, expected: set[str]):
        self.transport, self.protocol, self.expected = transport, protocol, expected
        self.out, self.inn = spdy.HeaderCodec(), spdy.HeaderCodec()
        self.reader = spdy.Reader(self.inn)
        self.chunks = transport.chunks()
        self.streams: dict[int, int] = {}  # channel -> stream id
        self.channels: dict[int, int] = {}  # stream id -> channel
        self.pending: list[tuple[int, bytes]] = []  # input that came while the streams were being opened
        self.resize_buffer = b""
        self.ended = False
        self._lock = trio.Lock()

    @classmethod
    async def accept(cls, conn: h11.Connection, stream: trio.abc.Stream, req: h11.Request, stdin: bool,
                     stdout: bool, stderr: bool, tty: bool) -> SpdyExec:
        offered = [p for k, v in req.headers if k.lower() == b"x-stream-protocol-version"
                   for p in wschannel.offered(v.decode("latin-1"))]
        supported = (wschannel.V5, wschannel.V4, wschannel.V3, wschannel.V2)
        chosen = wschannel.negotiate(offered, supported)
        if chosen is None:
            raise Refused(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                             f"{offered}, server accepts {list(supported)}")
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=[
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", chosen)])))
        expected = {"error"} | {name for name, on in (("stdin", stdin), ("stdout", stdout),
                                                      ("stderr", stderr and not tty),
                                                      ("resize", tty and chosen != wschannel.V2)) if on}
        self = cls(RawTransport(stream, conn.trailing_data[0]), chosen, expected)
        with trio.move_on_after(cls.OPEN_TIMEOUT) as waited:
            while not expected <= {name for name, ch in cls.CHANNELS.items() if ch in self.streams}:
                if not await self._read():
                    raise trio.BrokenResourceError("the client went away while opening its streams")
        if waited.cancelled_caught:
            await self.close()
            raise trio.BrokenResourceError("timed out waiting for client to create streams")
        return self

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            await self.transport.send(frame)

    async def _read(self) -> bool:
        """Read and act on the next frames; False once the client is gone."""
        try:
            chunk = await self.chunks.__anext__()
        except StopAsyncIteration:
            return False
        for f in self.reader.feed(chunk):
            if f.type == spdy.SYN_STREAM:
                await self._send(spdy.syn_reply(self.out, f.stream_id))
                channel = self.CHANNELS.get(f.headers.get("streamtype", ""))
                if channel is None:
                    await self._send(spdy.rst_stream(f.stream_id, spdy.PROTOCOL_ERROR))
                    continue
                self.streams[channel], self.channels[f.stream_id] = f.stream_id, channel
            elif f.type == 0:
                channel = self.channels.get(f.stream_id)
                if channel == wschannel.STDIN:
                    if f.data:
                        self.pending.append((wschannel.STDIN, f.data))
                    if f.fin:
                        self.pending.append((wschannel.CLOSE, bytes((wschannel.STDIN,))))
                elif channel == wschannel.RESIZE:
                    self.resize_buffer += f.data
                    self.pending += [(wschannel.RESIZE, m) for m in _json_objects(self)]
            elif f.type == spdy.PING:
                await self._send(spdy.ping(f.value))
            elif f.type == spdy.GOAWAY:
                return False
        return True

    async def inputs(self):
        while True:
            while self.pending:
                yield self.pending.pop(0)
            if not await self._read():
                return

    async def send_channel(self, channel: int, data: bytes) -> None:
        sid = self.streams.get(channel)
        if sid is not None and not self.ended:
            for i in range(0, len(data), spdy.MAX_DATA):
                await self._send(spdy.data(sid, data[i:i + spdy.MAX_DATA]))

    async def send_error(self, status: dict) -> None:
        message = wschannel.error_message(status, self.protocol)
        if message:
            await self.send_channel(wschannel.ERROR, message)

    async def close(self) -> None:
        """FIN on every stream the client reads, then the session's end."""
        if self.ended:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(1), ignore_broken():
            for channel in (wschannel.STDOUT, wschannel.STDERR, wschannel.ERROR):
                if channel in self.streams:
                    await self._send(spdy.data(self.streams[channel], b"", fin=True))
            self.ended = True
            await self._send(spdy.goaway(max(self.channels, default=0)))


def _json_objects(session: SpdyExec) -> list[bytes]:
    """Whole JSON objects off the front of the resize stream (one after another, as json.Encoder writes them)."""
    out = []
    decoder = json.JSONDecoder()
    text = session.resize_buffer.decode("utf-8", errors="replace")
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        try:
            _, end = decoder.raw_decode(text, pos)
        except ValueError:
            break
        out.append(text[pos:end].encode())
        pos = end
    session.resize_buffer = text[pos:].encode()
    return out
