"""The kubelet's server in each node agent: logs, exec, attach, port-forward.

As on a real node, the API server does not run these itself: it proxies
pods/log, pods/exec, pods/attach and pods/portforward to the kubelet of the
pod's node (knet.api.nodeproxy), at the node's InternalIP, port 10250, with
the cluster's credentials. This server answers there, in the node's network
namespace, with kubelet's paths:

    GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&previous&timestamps&limitBytes&sinceSeconds
    GET /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty    (WebSocket)
    GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty            (WebSocket)
    GET /portForward/{namespace}/{pod}?ports=..   (WebSocket v4.channel.k8s.io, SPDY/3.1 in a
                                                   WebSocket, or a connection upgraded to SPDY/3.1)

Pods reach node addresses, so nothing is served without the bearer token
the API server holds (401 otherwise). exec enters the pod through
knet.node.enter, as containers and `knet exec` do; logs are the files the
containers write (knet.node.sandbox); port-forward connects to 127.0.0.1
inside the pod's network namespace with a socket opened there and served by
this loop, as the CNI datapath does.
"""

from __future__ import annotations

import errno
import fcntl
import hmac
import json
import logging
import os
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

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
from wsproto.utilities import RemoteProtocolError as WsProtocolError

from knet.api import podlogs
from knet.api.errors import ApiError
from knet.net import ns
from knet.node import spdy, wschannel
from knet.node.enter import entering
from knet.node.logclock import LogClock
from knet.node.podspec import container_env
from knet.node.sandbox import sandbox_for

log = logging.getLogger("knet.kubelet")

PORT = 10250  # kubelet's --port
LOG_POLL = 0.1  # how often a followed log is read again
DRAIN_AFTER_EXIT = 2.0  # how long output of an exited command's leftover children is still sent
CHUNK = 32 * 1024
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, OSError)


class _Refused(Exception):
    """Answer the request with this Status instead of serving it."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.error = ApiError(code, reason, message)


def _not_found(message: str) -> _Refused:
    return _Refused(404, "NotFound", message)


def _bad(message: str) -> _Refused:
    return _Refused(400, "BadRequest", message)


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return (query.get(key) or [""])[-1].lower() in ("true", "1")


class KubeletServer:
    def __init__(self, agent, token: str):
        self.agent = agent
        self.token = token.encode()
        self.clock = LogClock(self._log_dirs)

    def _log_dirs(self) -> list[str]:
        return [os.path.join(w.sb.dir, "logs") for w in list(self.agent.workers.values()) if w.sb is not None]

    async def serve(self, host: str, port: int = PORT, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def run(self, host: str, port: int = PORT) -> None:
        """Serve for the agent's life; a port that cannot be bound yet (an
        earlier agent's socket not gone) is tried again, not fatal to the node."""
        delay = 0.1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.clock.run)
            while True:
                try:
                    await self.serve(host, port)
                except OSError as e:
                    log.warning("kubelet server on %s:%d: %s; trying again in %gs", host, port, e, delay)
                    await trio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    # -- HTTP --------------------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        """One request per connection (every answer says Connection: close).
        Nothing a client does may escape: it would stop the listener."""
        conn = h11.Connection(h11.SERVER)
        try:
            req = await self._read_request(conn, stream)
            if req is None:
                return
            try:
                await self._route(conn, stream, req)
            except _Refused as e:
                await self._status(conn, stream, e.error)
            except ApiError as e:
                await self._status(conn, stream, e)
        except (*_BROKEN, h11.ProtocolError, WsProtocolError):
            return
        except Exception:
            log.exception("kubelet server: request failed")
        finally:
            with trio.move_on_after(1):
                await stream.aclose()

    @staticmethod
    async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
        head = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(CHUNK)
                if not data and head is None:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.EndOfMessage):
                return head
            elif isinstance(event, h11.ConnectionClosed):
                return None

    @staticmethod
    async def _status(conn: h11.Connection, stream: trio.abc.Stream, err: ApiError) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = json.dumps(err.status(), separators=(",", ":")).encode()
        await stream.send_all(conn.send(h11.Response(status_code=err.code, headers=[
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")])))
        await stream.send_all(conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    def _authorized(self, req: h11.Request) -> bool:
        auth = dict(req.headers).get(b"authorization", b"")
        return auth.startswith(b"Bearer ") and hmac.compare_digest(auth[7:].strip(), self.token)

    async def _route(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request) -> None:
        if not self._authorized(req):
            raise _Refused(401, "Unauthorized", "Unauthorized")
        target = urlsplit(req.target.decode("latin-1"))
        parts = [unquote(p) for p in target.path.split("/") if p]
        query = parse_qs(target.query, keep_blank_values=True)
        method = req.method.decode()
        if not parts or method not in ("GET", "POST"):
            raise _not_found(f"no such path: {target.path}")
        verb, args = parts[0], parts[1:]
        # kubelet also takes the pod's UID in the path (/exec/{ns}/{pod}/{uid}/{container}): it is not needed here.
        if verb == "containerLogs" and len(args) == 3 and method == "GET":
            return await self._logs(conn, stream, *args, {k: v[-1] for k, v in query.items()})
        if verb in ("exec", "attach") and len(args) in (3, 4):
            return await self._exec(conn, stream, req, verb, args[0], args[1], args[-1], query)
        if verb == "portForward" and len(args) in (2, 3):
            return await self._port_forward(conn, stream, req, args[0], args[1], query)
        raise _not_found(f"no such path: {target.path}")

    # -- pods --------------------------------------------------------------------

    def _worker(self, namespace: str, name: str):
        for w in list(self.agent.workers.values()):
            if w.namespace == namespace and w.name == name:
                return w
        raise _not_found(f'pod "{name}" does not exist')

    def _container(self, namespace: str, name: str, container: str):
        worker = self._worker(namespace, name)
        for c in worker.containers:
            if c.name == container:
                return worker, c
        raise _not_found(f'container "{container}" not found in pod "{name}"')

    # -- logs --------------------------------------------------------------------

    def _log_file(self, worker, c, opts: podlogs.LogOptions) -> tuple[str, bool]:
        """The file the asked-for instance wrote, and whether that instance
        still runs, chosen as kubelet's validateContainerLogStatus chooses."""
        sb = worker.sb or sandbox_for(self.agent.cfg, self.agent.node, worker.uid)
        current, previous = sb.log_path(c.name), sb.previous_log_path(c.name)
        where = f'container "{c.name}" in pod "{worker.name}"'
        if opts.previous:
            if not c.last_state.get("terminated"):
                raise _bad(f'previous terminated container "{c.name}" in pod "{worker.name}" not found')
            # Until the next instance starts, the last one's log is still the current file.
            return (current if "waiting" in c.state else previous), False
        if c.running:
            return current, True
        if "terminated" in c.state or c.last_state.get("terminated"):
            return current, False
        reason = (c.state.get("waiting") or {}).get("reason", "ContainerCreating")
        raise _bad(f"{where} is waiting to start: {reason}")

    async def _logs(self, conn: h11.Connection, stream: trio.SocketStream, namespace: str, name: str,
                    container: str, query: dict[str, str]) -> None:
        opts = podlogs.parse_options(query, name)
        worker, c = self._container(namespace, name, container)
        path, running = self._log_file(worker, c, opts)
        instance = c.restart_count
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"), ("Connection", "close")])))
        out = _LogWriter(opts)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            f = None  # the built-in server writes no log
        try:
            if f is not None:
                data = f.read()
                mtime = os.fstat(f.fileno()).st_mtime

                def when(end: int) -> float:  # when the line ending at `end` was written (knet.node.logclock)
                    return self.clock.time_of(path, end, mtime)
                start = 0
                if opts.since() is not None:
                    start = podlogs.since_start(data, when, opts.since())
                if opts.tail_lines is not None:
                    start = max(start, podlogs.tail_start(data, opts.tail_lines))
                await self._send_chunk(conn, stream, out.render(data[start:], lambda end: when(start + end)))
            if opts.follow and running and not out.full:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_cancel_on_eof, stream, nursery.cancel_scope)
                    while not out.full:
                        await trio.sleep(LOG_POLL)
                        if f is None and os.path.exists(path):
                            f = open(path, "rb")
                        live = c.running and c.restart_count == instance
                        pos = f.tell() if f is not None else 0
                        chunk = f.read() if f is not None else b""
                        now = time.time()
                        await self._send_chunk(conn, stream, out.render(
                            chunk, lambda end, pos=pos, now=now: self.clock.time_of(path, pos + end, now)))
                        if not live:
                            break
                    nursery.cancel_scope.cancel()
            await stream.send_all(conn.send(h11.EndOfMessage()))
        finally:
            if f is not None:
                f.close()

    @staticmethod
    async def _send_chunk(conn: h11.Connection, stream: trio.abc.Stream, data: bytes) -> None:
        if data:
            await stream.send_all(conn.send(h11.Data(data=data)))

    # -- exec and attach ---------------------------------------------------------

    async def _exec(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request, verb: str,
                    namespace: str, name: str, container: str, query: dict[str, list[str]]) -> None:
        worker, c = self._container(namespace, name, container)
        if not c.running or worker.sb is None:
            raise _not_found(f'container not found ("{container}")')
        command = query.get("command") or []
        if verb == "exec" and not command:
            raise _bad("you must specify at least one command for the container")
        stdin, stdout, stderr, tty = (_flag(query, k) for k in ("stdin", "stdout", "stderr", "tty"))
        if not (stdin or stdout or stderr):
            raise _bad("you must specify at least 1 of stdin, stdout, stderr")
        headers = {k.lower(): v for k, v in req.headers}
        if headers.get(b"upgrade", b"").lower().startswith(b"spdy/"):  # client-go's SPDY executor
            io = await _SpdyExec.accept(conn, stream, req, stdin, stdout, stderr, tty)
        else:
            io = await _WebSocket.accept(conn, stream, req, wschannel.EXEC_PROTOCOLS)
        try:
            if verb == "attach":
                await self._attach(io, worker, c)
            else:
                await self._run(io, worker, c, command, stdin, stdout, stderr and not tty, tty)
        finally:
            await io.close()

    async def _run(self, ws: _WebSocket | _SpdyExec, worker, c, command: list[str], stdin: bool, stdout: bool,
                   stderr: bool, tty: bool) -> None:
        """The command in the container's context, its streams on the channels,
        then its exit on the error channel."""
        env = container_env(worker.pod, c.spec, self.agent.node_ip, await self.agent.service_env(worker.pod))
        if tty:
            env.setdefault("TERM", "xterm")
        master = slave = -1
        try:
            with entering(worker.sb, worker.pod, c.spec) as enter:
                if tty:
                    master, slave = os.openpty()

                    def enter_tty() -> None:
                        enter()
                        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                    proc = await trio.lowlevel.open_process(
                        command, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=enter_tty,
                        start_new_session=True, close_fds=True)
                else:
                    proc = await trio.lowlevel.open_process(
                        command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                        stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
                        env=env, preexec_fn=enter, start_new_session=True, close_fds=True)
        except (OSError, subprocess.SubprocessError) as e:
            if master >= 0:
                os.close(master)
            if isinstance(e, FileNotFoundError):
                why = f'exec: "{command[0]}": executable file not found in $PATH'
            else:
                why = f'exec: "{command[0]}": {getattr(e, "strerror", None) or e}'
            await ws.send_error(wschannel.error_status(
                f"error executing command in container: failed to exec in container: {why}"))
            return
        finally:
            if slave >= 0:
                os.close(slave)
        pty = trio.lowlevel.FdStream(master) if tty else None
        outputs = [(pty, wschannel.STDOUT)] if tty else [
            (s, ch) for s, ch in ((proc.stdout, wschannel.STDOUT), (proc.stderr, wschannel.STDERR)) if s]
        sink = pty if tty else proc.stdin
        try:
            async with trio.open_nursery() as nursery:
                gone = trio.Event()  # the client closed the connection: the command is killed
                nursery.start_soon(self._feed, ws, sink if stdin else None, master if tty else -1, gone)
                async with trio.open_nursery() as pumps:
                    for source, channel in outputs:
                        pumps.start_soon(_pump, source, ws, channel)
                    nursery.start_soon(_kill_when, gone, proc)
                    code = await proc.wait()
                    pumps.cancel_scope.deadline = trio.current_time() + DRAIN_AFTER_EXIT
                if gone.is_set():
                    nursery.cancel_scope.cancel()
                    return
                if code < 0:
                    code = 128 - code
                await ws.send_error(wschannel.exit_status(code, command))
                nursery.cancel_scope.cancel()
        finally:
            if proc.returncode is None:
                _kill(proc)
                with trio.CancelScope(shield=True):
                    await proc.wait()
            for s in (pty, proc.stdin, proc.stdout, proc.stderr):
                if s is not None:
                    with trio.CancelScope(shield=True):
                        await s.aclose()

    @staticmethod
    async def _feed(ws: _WebSocket | _SpdyExec, sink, master: int, gone: trio.Event) -> None:
        """The client's messages: stdin, its end (v5's close), terminal resizes."""
        try:
            async for channel, data in ws.inputs():
                if channel == wschannel.STDIN and sink is not None and data:
                    try:
                        await sink.send_all(data)
                    except _BROKEN:
                        sink = None
                elif channel == wschannel.CLOSE and data[:1] == bytes((wschannel.STDIN,)) and sink is not None:
                    if master < 0:
                        with trio.CancelScope(shield=True):
                            await sink.aclose()
                    else:
                        with _suppress():
                            await sink.send_all(b"\x04")  # a terminal has no half-close: end of input is ^D
                    sink = None
                elif channel == wschannel.RESIZE and master >= 0:
                    size = wschannel.parse_resize(data)
                    if size:
                        with _suppress():
                            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        except _BROKEN:
            pass
        gone.set()

    async def _attach(self, ws: _WebSocket | _SpdyExec, worker, c) -> None:
        """A knet container's output goes to its log: attach follows it from
        now until the instance ends (its stdin is not open: input is dropped)."""
        path = worker.sb.log_path(c.name)
        instance = c.restart_count
        f = open(path, "rb") if os.path.exists(path) else None
        if f is not None:
            f.seek(0, os.SEEK_END)
        try:
            async with trio.open_nursery() as nursery:
                gone = trio.Event()
                nursery.start_soon(self._feed, ws, None, -1, gone)
                while not gone.is_set():
                    live = c.running and c.restart_count == instance
                    if f is None and os.path.exists(path):
                        f = open(path, "rb")
                    chunk = f.read() if f is not None else b""
                    if chunk:
                        await ws.send_channel(wschannel.STDOUT, chunk)
                    if not live:
                        break
                    await trio.sleep(LOG_POLL)
                if not gone.is_set():
                    await ws.send_error(wschannel.exit_status(0, []))
                nursery.cancel_scope.cancel()
        finally:
            if f is not None:
                f.close()

    # -- port-forward ------------------------------------------------------------

    async def _port_forward(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request,
                            namespace: str, name: str, query: dict[str, list[str]]) -> None:
        worker = self._worker(namespace, name)
        if worker.sb is None or not worker.sb.exists():
            raise _bad(f'pod "{name}" has no sandbox yet')
        headers = {k.lower(): v for k, v in req.headers}
        upgrade = headers.get(b"upgrade", b"").lower()
        opener = _PodDialer(worker)
        if upgrade.startswith(b"spdy/"):  # client-go's fallback: a connection upgraded to SPDY/3.1 itself
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=[
                ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", "portforward.k8s.io")])))
            leftover, _ = conn.trailing_data
            await _SpdyPortForward(_RawTransport(stream, leftover), opener).run()
            return
        protocols = wschannel.offered(headers.get(b"sec-websocket-protocol", b"").decode("latin-1"))
        if wschannel.SPDY_TUNNEL in protocols:  # kubectl's default: SPDY/3.1 inside the WebSocket
            ws = await _WebSocket.accept(conn, stream, req, (wschannel.SPDY_TUNNEL,))
            try:
                await _SpdyPortForward(_WsTransport(ws), opener).run()
            finally:
                await ws.close()
            return
        ports = []
        for value in query.get("ports") or []:
            for p in value.split(","):
                try:
                    port = int(p)
                except ValueError:
                    raise _bad(f"invalid port number: {p}") from None
                if not 0 < port < 65536:
                    raise _bad(f"port {port} must be > 0 and < 65536")
                ports.append(port)
        if not ports:
            raise _bad("query parameter \"port\" is required")
        ws = await _WebSocket.accept(conn, stream, req, wschannel.PORTFORWARD_PROTOCOLS)
        try:
            await _channel_port_forward(ws, ports, opener)
        finally:
            await ws.close()


# -- helpers --------------------------------------------------------------------


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, et, e, tb) -> bool:
        return et is not None and issubclass(et, (OSError, *_BROKEN))


def _kill(proc: trio.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        with _suppress():
            proc.kill()


async def _kill_when(gone: trio.Event, proc: trio.Process) -> None:
    await gone.wait()
    if proc.returncode is None:
        _kill(proc)


async def _pump(source: trio.abc.ReceiveStream, ws: _WebSocket | _SpdyExec, channel: int) -> None:
    try:
        while data := await source.receive_some(CHUNK):
            await ws.send_channel(channel, data)
    except OSError as e:  # a pty master reads EIO once the terminal's last holder is gone
        if e.errno != errno.EIO:
            raise
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _cancel_on_eof(stream: trio.abc.ReceiveStream, scope: trio.CancelScope) -> None:
    """A client that goes away ends a followed log."""
    try:
        while await stream.receive_some(CHUNK):
            pass
    except _BROKEN:
        pass
    scope.cancel()


class _LogWriter:
    """Log bytes as the options want them: timestamps, and at most limitBytes."""

    def __init__(self, opts: podlogs.LogOptions):
        self.opts = opts
        self.partial = False
        self.sent = 0

    @property
    def full(self) -> bool:
        return self.opts.limit_bytes is not None and self.sent >= self.opts.limit_bytes

    def render(self, data: bytes, at: Callable[[int], float]) -> bytes:
        if not data or self.full:
            return b""
        if self.opts.timestamps:
            data, self.partial = podlogs.stamp_lines(data, at, self.partial)
        if self.opts.limit_bytes is not None:
            data = data[:self.opts.limit_bytes - self.sent]
        self.sent += len(data)
        return data


class _WebSocket:
    """The server end of a WebSocket on a trio stream (wsproto), one sender at a time."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, protocol: str):
        self.stream, self.ws, self.protocol = stream, ws, protocol
        self._lock = trio.Lock()
        self.closed = False

    @classmethod
    async def accept(cls, conn: h11.Connection, stream: trio.abc.Stream, req: h11.Request,
                     supported: tuple[str, ...]) -> _WebSocket:
        headers = {k.lower(): v for k, v in req.headers}
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            # A SPDY upgrade (client-go's fallback) or none at all: only WebSockets are served.
            raise _bad("Upgrade request required: exec and attach are served over WebSockets "
                       "(v5.channel.k8s.io, v4.channel.k8s.io)")
        protocols = wschannel.offered(headers.get(b"sec-websocket-protocol", b"").decode("latin-1"))
        chosen = wschannel.negotiate(protocols, supported) if protocols else supported[-1]
        if chosen is None:
            raise _bad(f"requested protocol(s) are not supported: {protocols}; supports {list(supported)}")
        ws = WSConnection(ConnectionType.SERVER)
        ws.initiate_upgrade_connection(req.headers, req.target)
        for event in ws.events():
            if not isinstance(event, Request):
                raise _bad("malformed WebSocket upgrade request")
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
                            with _suppress():
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
                with _suppress():
                    await self.stream.send_all(self.ws.send(CloseConnection(code=code)))


class _PodDialer:
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


async def _channel_port_forward(ws: _WebSocket, ports: list[int], dialer: _PodDialer) -> None:
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
        with _suppress():
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
                with _suppress():
                    await conns[message[0] // 2].send_all(message[1:])
        nursery.cancel_scope.cancel()
    for s in list(conns.values()):
        with trio.CancelScope(shield=True):
            await s.aclose()


class _RawTransport:
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


class _WsTransport:
    """SPDY inside a WebSocket's binary messages (client-go's tunneling connection)."""

    def __init__(self, ws: _WebSocket):
        self.ws = ws

    def chunks(self):
        return self.ws.messages()

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)


class _SpdyPortForward:
    """kubelet's SPDY port-forward: the client opens an error stream and a
    data stream per connection (same requestID); once both are there, the
    data stream is joined to a connection to the port in the pod, and the
    error stream carries why that failed, if it did."""

    def __init__(self, transport, dialer: _PodDialer):
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
            with _suppress():
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
                with _suppress():
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
            with _suppress():
                await self.send(spdy.data(error_sid, message.encode(), fin=True))
                await self.send(spdy.data(data_sid, b"", fin=True))
            return
        self.sockets[data_sid] = sock
        with _suppress():
            for data in self.early.pop(data_sid, []):
                if data is None:
                    await sock.send_eof()
                elif data:
                    await sock.send_all(data)
        with _suppress():
            while data := await sock.receive_some(spdy.MAX_DATA):
                await self.send(spdy.data(data_sid, data))
        with _suppress():
            await self.send(spdy.data(data_sid, b"", fin=True))
            await self.send(spdy.data(error_sid, b"", fin=True))


class _SpdyExec:
    """exec and attach over SPDY/3.1 (client-go's SPDY executor, kubectl's
    fallback): the client opens one stream per channel (streamType error,
    stdin, stdout, stderr, resize); output goes out as DATA on its stream, the
    exit status on the error stream, and FIN ends each."""

    CHANNELS = {"stdin": wschannel.STDIN, "stdout": wschannel.STDOUT, "stderr": wschannel.STDERR,
                "error": wschannel.ERROR, "resize": wschannel.RESIZE}
    OPEN_TIMEOUT = 30.0  # kubelet's stream creation timeout

    def __init__(self, transport: _RawTransport, protocol: str, expected: set[str]):
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
                     stdout: bool, stderr: bool, tty: bool) -> _SpdyExec:
        offered = [p for k, v in req.headers if k.lower() == b"x-stream-protocol-version"
                   for p in wschannel.offered(v.decode("latin-1"))]
        supported = (wschannel.V5, wschannel.V4, wschannel.V3, wschannel.V2)
        chosen = wschannel.negotiate(offered, supported)
        if chosen is None:
            raise _Refused(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                             f"{offered}, server accepts {list(supported)}")
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=[
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", chosen)])))
        expected = {"error"} | {name for name, on in (("stdin", stdin), ("stdout", stdout),
                                                      ("stderr", stderr and not tty),
                                                      ("resize", tty and chosen != wschannel.V2)) if on}
        self = cls(_RawTransport(stream, conn.trailing_data[0]), chosen, expected)
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
        with trio.CancelScope(shield=True), trio.move_on_after(1), _suppress():
            for channel in (wschannel.STDOUT, wschannel.STDERR, wschannel.ERROR):
                if channel in self.streams:
                    await self._send(spdy.data(self.streams[channel], b"", fin=True))
            self.ended = True
            await self._send(spdy.goaway(max(self.channels, default=0)))


def _json_objects(session: _SpdyExec) -> list[bytes]:
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
