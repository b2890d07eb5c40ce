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

Beside it: knet.node.streamconn (the WebSocket and SPDY connections exec and
attach run on), knet.node.portforward, and knet.node.logclock (when each
log line was written, for --timestamps and --since).
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
from wsproto.utilities import RemoteProtocolError as WsProtocolError

from knet.api import podlogs
from knet.api.errors import ApiError
from knet.node import wschannel
from knet.node.containers import open_in_pod
from knet.node.enter import entering, exec_target
from knet.node.logclock import LogClock
from knet.node.nodeinfo import KUBELET_PORT
from knet.node.podspec import container_env
from knet.node.portforward import PodDialer, SpdyPortForward, channel_port_forward
from knet.node.sandbox import sandbox_for
from knet.node.streamconn import (
    BROKEN,
    CHUNK,
    RawTransport,
    Refused,
    SpdyExec,
    WebSocket,
    WsTransport,
    bad,
    ignore_broken,
    not_found,
)

log = logging.getLogger("knet.kubelet")

PORT = KUBELET_PORT  # kubelet's --port, as the Node's daemonEndpoints tell the API server
LOG_POLL = 0.5  # a followed log is read when inotify says it grew (knet.node.logclock), and at least this often
REQUEST_TIMEOUT = 10.0  # for a request's head and body to arrive
DRAIN_AFTER_EXIT = 2.0  # how long output of an exited command's leftover children is still sent


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return (query.get(key) or [""])[-1].lower() in ("true", "1")


class KubeletServer:
    def __init__(self, agent, token: str):
        self.agent = agent
        self.token = token.encode()
        self.clock = LogClock(self._log_dirs)

    def _log_dirs(self) -> list[str]:
        return [w.sb.log_dir for w in list(self.agent.workers.values()) if w.sb is not None]

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
                except Exception:  # a bug here must not take the node's pods down with the agent
                    log.exception("kubelet server failed; starting it again in %gs", delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- HTTP --------------------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        """One request per connection (every answer says Connection: close).
        Nothing a client does may escape: it would stop the listener."""
        conn = h11.Connection(h11.SERVER)
        try:
            req = None
            with trio.move_on_after(REQUEST_TIMEOUT):  # pods reach this port: a silent client is not kept
                req = await self._read_request(conn, stream)
            if req is None:
                return
            try:
                await self._route(conn, stream, req)
            except Refused as e:
                await self._status(conn, stream, e.error)
            except ApiError as e:
                await self._status(conn, stream, e)
        except (*BROKEN, h11.ProtocolError, WsProtocolError):
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
            raise Refused(401, "Unauthorized", "Unauthorized")
        target = urlsplit(req.target.decode("latin-1"))
        parts = [unquote(p) for p in target.path.split("/") if p]
        query = parse_qs(target.query, keep_blank_values=True)
        method = req.method.decode()
        if not parts or method not in ("GET", "POST"):
            raise not_found(f"no such path: {target.path}")
        verb, args = parts[0], parts[1:]
        # kubelet also takes the pod's UID in the path (/exec/{ns}/{pod}/{uid}/{container}): it is not needed here.
        if verb == "containerLogs" and len(args) == 3 and method == "GET":
            return await self._logs(conn, stream, *args, {k: v[-1] for k, v in query.items()})
        if verb in ("exec", "attach") and len(args) in (3, 4):
            return await self._exec(conn, stream, req, verb, args[0], args[1], args[-1], query)
        if verb == "portForward" and len(args) in (2, 3):
            return await self._port_forward(conn, stream, req, args[0], args[1], query)
        raise not_found(f"no such path: {target.path}")

    # -- pods --------------------------------------------------------------------

    def _worker(self, namespace: str, name: str):
        pod = self.agent.pods.get(namespace, name)  # its uid from the informer: no walk over every pod
        w = self.agent.workers.get(pod["metadata"]["uid"]) if pod is not None else None
        if w is not None:
            return w
        for w in list(self.agent.workers.values()):  # a pod the API has forgotten, still stopping here
            if w.namespace == namespace and w.name == name:
                return w
        raise not_found(f'pod "{name}" does not exist')

    def _container(self, namespace: str, name: str, container: str):
        worker = self._worker(namespace, name)
        for c in worker.containers:
            if c.name == container:
                return worker, c
        raise not_found(f'container "{container}" not found in pod "{name}"')

    # -- logs --------------------------------------------------------------------

    def _log_file(self, worker, c, opts: podlogs.LogOptions) -> tuple[str, bool]:
        """The file the asked-for instance wrote, and whether that instance
        still runs, chosen as kubelet's validateContainerLogStatus chooses."""
        sb = worker.sb or sandbox_for(self.agent.cfg, self.agent.node, worker.uid)
        current, previous = sb.log_path(c.name), sb.previous_log_path(c.name)
        where = f'container "{c.name}" in pod "{worker.name}"'
        if opts.previous:
            if not c.last_state.get("terminated"):
                raise bad(f'previous terminated container "{c.name}" in pod "{worker.name}" not found')
            # Until the next instance starts, the last one's log is still the current file.
            return (current if "waiting" in c.state else previous), False
        if c.running:
            return current, True
        if "terminated" in c.state or c.last_state.get("terminated"):
            return current, False
        reason = (c.state.get("waiting") or {}).get("reason", "ContainerCreating")
        raise bad(f"{where} is waiting to start: {reason}")

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
                        await self.clock.wait_for_write(path, LOG_POLL)
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
            raise not_found(f'container not found ("{container}")')
        command = query.get("command") or []
        if verb == "exec" and not command:
            raise bad("you must specify at least one command for the container")
        stdin, stdout, stderr, tty = (_flag(query, k) for k in ("stdin", "stdout", "stderr", "tty"))
        if not (stdin or stdout or stderr):
            raise bad("you must specify at least 1 of stdin, stdout, stderr")
        headers = {k.lower(): v for k, v in req.headers}
        if headers.get(b"upgrade", b"").lower().startswith(b"spdy/"):  # client-go's SPDY executor
            io = await SpdyExec.accept(conn, stream, req, stdin, stdout, stderr, tty)
        else:
            io = await WebSocket.accept(conn, stream, req, wschannel.EXEC_PROTOCOLS)
        try:
            if verb == "attach":
                await self._attach(io, worker, c, stdin)
            else:
                await self._run(io, worker, c, command, stdin, stdout, stderr and not tty, tty)
        finally:
            await io.close()

    async def _run(self, ws: WebSocket | SpdyExec, worker, c, command: list[str], stdin: bool, stdout: bool,
                   stderr: bool, tty: bool) -> None:
        """The command in the container's context, its streams on the channels,
        then its exit on the error channel."""
        env = container_env(worker.pod, c.spec, self.agent.node_ip, await self.agent.service_env(worker.pod))
        if tty:
            env.setdefault("TERM", "xterm")
        master = slave = -1
        try:
            join, cgroup = exec_target(worker.sb, c.name)  # the container's PID and mount namespaces (issue 15)
            with entering(worker.sb, worker.pod, c.spec, join=join, cgroup=cgroup) as entry:
                if tty:
                    master, slave = os.openpty()
                    proc = await open_in_pod(entry, command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                             after=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
                else:
                    proc = await open_in_pod(
                        entry, command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                        stderr=subprocess.PIPE if stderr else subprocess.DEVNULL, env=env)
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
        if tty:
            inp = _Input(pty.send_all if stdin else None, (lambda: pty.send_all(b"\x04")) if stdin else None,
                         lambda columns, rows: _resize(master, columns, rows))
        else:
            inp = _Input(proc.stdin.send_all, proc.stdin.aclose) if stdin else _Input()
        try:
            async with trio.open_nursery() as nursery:
                gone = trio.Event()  # the client closed the connection: the command is killed
                nursery.start_soon(self._feed, ws, inp, gone)
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
    async def _feed(ws: WebSocket | SpdyExec, inp: _Input, gone: trio.Event) -> None:
        """The client's messages: stdin, its end (v5's close), terminal resizes."""
        try:
            async for channel, data in ws.inputs():
                if channel == wschannel.STDIN and inp.write is not None and data:
                    try:
                        await inp.write(data)
                    except BROKEN:
                        inp.write = None
                elif channel == wschannel.CLOSE and data[:1] == bytes((wschannel.STDIN,)) and inp.end is not None:
                    with trio.CancelScope(shield=True), ignore_broken():
                        await inp.end()
                    inp.write = inp.end = None
                elif channel == wschannel.RESIZE and inp.resize is not None:
                    size = wschannel.parse_resize(data)
                    if size:
                        with ignore_broken():
                            inp.resize(*size)
        except BROKEN:
            pass
        gone.set()

    async def _attach(self, ws: WebSocket | SpdyExec, worker, c, stdin: bool) -> None:
        """A knet container's output goes to its log (a terminal's too: its
        console copies it there): attach follows it from now until the
        instance ends. Input goes to the container's console, when its spec
        asked for stdin or a terminal (knet.node.console); else it is dropped."""
        path = worker.sb.log_path(c.name)
        console = c.console if c.console is not None and not c.console.closed else None
        inp = _Input()
        if console is not None:
            inp.resize = console.resize
            if stdin and console.stdin:
                inp.write, inp.end = console.write, console.end_input
        instance = c.restart_count
        f = open(path, "rb") if os.path.exists(path) else None
        if f is not None:
            f.seek(0, os.SEEK_END)
        try:
            async with trio.open_nursery() as nursery:
                gone = trio.Event()
                nursery.start_soon(self._feed, ws, inp, gone)
                while not gone.is_set():
                    live = c.running and c.restart_count == instance
                    if f is None and os.path.exists(path):
                        f = open(path, "rb")
                    chunk = f.read() if f is not None else b""
                    if chunk:
                        await ws.send_channel(wschannel.STDOUT, chunk)
                    if not live:
                        break
                    await self.clock.wait_for_write(path, LOG_POLL)
                if not gone.is_set():
                    await ws.send_error(wschannel.exit_status(0, []))
                nursery.cancel_scope.cancel()
        finally:
            if f is not None:
                f.close()
            if inp.end is not None and console.once:  # stdinOnce: the first client's leaving ends the input
                with trio.CancelScope(shield=True), ignore_broken():
                    await console.end_input()

    # -- port-forward ------------------------------------------------------------

    async def _port_forward(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request,
                            namespace: str, name: str, query: dict[str, list[str]]) -> None:
        worker = self._worker(namespace, name)
        if worker.sb is None or not worker.sb.exists():
            raise bad(f'pod "{name}" has no sandbox yet')
        headers = {k.lower(): v for k, v in req.headers}
        upgrade = headers.get(b"upgrade", b"").lower()
        opener = PodDialer(worker)
        if upgrade.startswith(b"spdy/"):  # client-go's fallback: a connection upgraded to SPDY/3.1 itself
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=[
                ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", "portforward.k8s.io")])))
            leftover, _ = conn.trailing_data
            await SpdyPortForward(RawTransport(stream, leftover), opener).run()
            return
        protocols = wschannel.offered(headers.get(b"sec-websocket-protocol", b"").decode("latin-1"))
        if wschannel.SPDY_TUNNEL in protocols:  # kubectl's default: SPDY/3.1 inside the WebSocket
            ws = await WebSocket.accept(conn, stream, req, (wschannel.SPDY_TUNNEL,))
            try:
                await SpdyPortForward(WsTransport(ws), opener).run()
            finally:
                await ws.close()
            return
        ports = []
        for value in query.get("ports") or []:
            for p in value.split(","):
                try:
                    port = int(p)
                except ValueError:
                    raise bad(f"invalid port number: {p}") from None
                if not 0 < port < 65536:
                    raise bad(f"port {port} must be > 0 and < 65536")
                ports.append(port)
        if not ports:
            raise bad("query parameter \"port\" is required")
        ws = await WebSocket.accept(conn, stream, req, wschannel.PORTFORWARD_PROTOCOLS)
        try:
            await channel_port_forward(ws, ports, opener)
        finally:
            await ws.close()


# -- helpers --------------------------------------------------------------------


class _Input:
    """Where a client's input goes (a pipe, a terminal, a container's
    console), how it ends, and how the terminal is resized."""

    def __init__(self, write=None, end=None, resize=None):
        self.write, self.end, self.resize = write, end, resize


def _resize(master: int, columns: int, rows: int) -> None:
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _kill(proc: trio.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        with ignore_broken():
            proc.kill()


async def _kill_when(gone: trio.Event, proc: trio.Process) -> None:
    await gone.wait()
    if proc.returncode is None:
        _kill(proc)


async def _pump(source: trio.abc.ReceiveStream, ws: WebSocket | SpdyExec, channel: int) -> None:
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
    except BROKEN:
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
