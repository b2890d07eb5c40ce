"""`knet exec` through the API: pods/exec over WebSocket, as kubectl does.

The local fast path enters a pod's namespaces on this host, which only works
where the pod's sandbox is: every pod of a `knet up` cluster, but on a
machine-mode cluster (knet init/join) only the pods of this machine's node.
For a pod on another machine, this asks the API server, which proxies the
request to that node's kubelet port (knet.api.nodeproxy), speaking the
channel protocol (v5.channel.k8s.io, knet.node.wschannel): stdin is sent as
channel 0 and ended with v5's close, stdout/stderr are written as they
come, and the exit code is read from the error channel's Status, so the
command's code survives the trip as it does in kubectl.

The frame code is pure (build_path, exit_code); wsproto is imported only
when a remote exec runs.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from urllib.parse import quote, urlencode

from knet.node import wschannel as wc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client


class RemoteExecError(RuntimeError):
    """The exec could not start (the API refused it, the upgrade failed)."""


def build_path(namespace: str, pod: str, container: str, command: list[str], stdin: bool = True) -> str:
    """The pods/exec request path with kubectl's query (one command= per argument)."""
    query = [("command", a) for a in command] + [("container", container)]
    query += [("stdin", "true")] if stdin else []
    query += [("stdout", "true"), ("stderr", "true")]
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec?{urlencode(query)}"


def exit_code(error_channel: bytes, protocol: str) -> tuple[int, str]:
    """(exit code, message) from what the error channel carried: a Status from
    v4 (NonZeroExitCode's ExitCode cause is the command's code; any other
    failure is 1 with its message, as kubectl exits), before it a bare message."""
    if not error_channel:
        return 0, ""
    if protocol not in (wc.V5, wc.V4):
        return 1, error_channel.decode(errors="replace")
    try:
        status = json.loads(error_channel)
    except ValueError:
        return 1, error_channel.decode(errors="replace")
    if status.get("status") == "Success":
        return 0, ""
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message")), ""
                except (TypeError, ValueError):
                    break
    return 1, str(status.get("message") or "the command failed")


def _socket(client: Client):
    if client.unix_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(client.unix_path)
        return s
    sock = socket.create_connection((client.host, client.port), timeout=30)  # run() sets the exec's own
    if client.tls is not None:  # a kubeconfig context's server (knet.cli.kubecontext)
        try:
            return _OneAtATime(client.tls.wrap_socket(sock, server_hostname=client.server_hostname or client.host))
        except BaseException:
            sock.close()
            raise
    return sock


class _OneAtATime:
    """A TLS socket that the stdin thread writes while the main thread reads. One OpenSSL
    connection must not read and write at once (a read that handles a post-handshake message
    while a write runs corrupts it: here 1 exec in 30 ended at once, no output, no status), so
    every read and write takes a lock, non-blocking, and the waiting is done outside the lock."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.timeout: float | None = None
        sock.setblocking(False)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout  # how long recv may wait for data

    def recv(self, size: int) -> bytes:
        import select
        import ssl
        import time

        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            with self.lock:
                try:
                    return self.sock.recv(size)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("timed out")
            select.select([self.sock], [], [], wait)

    def sendall(self, data: bytes) -> None:
        """All of data, within the timeout as a blocking socket's sendall (a peer that stops
        reading is a TimeoutError, not a wait for ever); waiting for room, not for what the
        reader has still to read (that would wake at once, again and again)."""
        import select
        import ssl
        import time

        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        view = memoryview(data)
        while view:
            with self.lock:
                try:
                    view = view[self.sock.send(view):]
                    continue
                except ssl.SSLWantWriteError:
                    wait_for = ([], [self.sock])
                except ssl.SSLWantReadError:  # TLS 1.2 renegotiation: the write needs the peer's answer
                    wait_for = ([self.sock], [])
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("timed out")
            select.select(*wait_for, [], wait)

    def close(self) -> None:
        self.sock.close()


def _sender(ws, sock, ws_lock: threading.Lock):
    """send(event): the event's frame written whole before another's starts. Two threads send
    (stdin's pump; the reader answering a Ping or a Close): a sendall is many writes, and
    another frame's bytes between them corrupt the stream. Over TLS it is worse: a write that
    waits for room must be retried with the same bytes, and OpenSSL fails another write
    meanwhile. ws_lock (the reader's too) guards only the WebSocket state, so the reader
    goes on reading while a frame is written."""
    whole = threading.Lock()

    def send(event) -> None:
        with whole:
            with ws_lock:
                data = ws.send(event)
            sock.sendall(data)

    return send


def run(client: Client, namespace: str, pod: str, container: str, command: list[str],
        stdin=None, stdout=None, stderr=None, timeout: float | None = None) -> int:
    """Run command in the pod's container through the API; its exit code.
    stdin: a binary file to forward (None: the process's), stdout/stderr binary files.
    timeout: seconds the connection may stay silent (TimeoutError after; None: no limit)."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Message,
        Ping,
        RejectConnection,
        RejectData,
        Request,
    )

    stdin = stdin if stdin is not None else sys.stdin.buffer
    out = {wc.STDOUT: stdout or sys.stdout.buffer, wc.STDERR: stderr or sys.stderr.buffer}
    sock = _socket(client)
    sock.settimeout(timeout)
    ws = WSConnection(ConnectionType.CLIENT)
    lock = threading.Lock()
    send = _sender(ws, sock, lock)
    send(Request(host="localhost", target=build_path(namespace, pod, container, command),
                 subprotocols=[wc.V5, wc.V4],
                 extra_headers=[(k.lower().encode(), v.encode()) for k, v in client.auth_headers().items()]))
    protocol, error, buffer, reject = "", b"", b"", b""
    rejected_code = 0
    done = False
    try:
        while not done:
            data = sock.recv(65536)
            with lock:
                ws.receive_data(data or None)
                events = list(ws.events())
            for ev in events:
                if isinstance(ev, AcceptConnection):
                    protocol = ev.subprotocol or wc.V1
                    threading.Thread(target=_pump, args=(stdin, send, protocol), daemon=True).start()
                elif isinstance(ev, RejectConnection):
                    rejected_code = ev.status_code
                    done = not ev.has_body
                elif isinstance(ev, RejectData):
                    reject += ev.data
                    done = ev.body_finished
                elif isinstance(ev, Message):
                    buffer += ev.data if isinstance(ev, BytesMessage) else ev.data.encode()
                    if not ev.message_finished:
                        continue
                    parsed = wc.parse(buffer, protocol)
                    buffer = b""
                    if parsed is None:
                        continue
                    channel, payload = parsed
                    if channel in out:
                        out[channel].write(payload)
                        out[channel].flush()
                    elif channel == wc.ERROR:
                        error += payload
                elif isinstance(ev, Ping):
                    send(ev.response())
                elif isinstance(ev, CloseConnection):
                    try:
                        send(ev.response())
                    except (OSError, Exception):  # noqa: BLE001 - the peer may be gone already
                        pass
                    done = True
            if not data:
                done = True
    finally:
        sock.close()
    if rejected_code:
        try:
            message = json.loads(reject).get("message") or reject.decode(errors="replace")
        except ValueError:
            message = reject.decode(errors="replace") or f"HTTP {rejected_code}"
        raise RemoteExecError(message.strip())
    if not protocol:
        raise RemoteExecError("the API server closed the exec connection before it was upgraded")
    code, message = exit_code(error, protocol)
    if message and code:
        out[wc.STDERR].write(f"error: {message}\n".encode())
        out[wc.STDERR].flush()
    return code


def _pump(stdin, send, protocol: str) -> None:
    """stdin to channel 0; at its end v5's close of that channel, so the command sees EOF."""
    from wsproto.events import BytesMessage

    try:
        fd = stdin.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            send(BytesMessage(data=wc.frame(wc.STDIN, chunk)))
        if protocol == wc.V5:
            send(BytesMessage(data=wc.close_frame(wc.STDIN)))
    except (OSError, ValueError, Exception):  # noqa: BLE001 - the connection ended first: nothing to send to
        pass
