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


def _socket(client: Client) -> socket.socket:
    if client.unix_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(client.unix_path)
        return s
    return socket.create_connection((client.host, client.port))


def run(client: Client, namespace: str, pod: str, container: str, command: list[str],
        stdin=None, stdout=None, stderr=None) -> int:
    """Run command in the pod's container through the API; its exit code.
    stdin: a binary file to forward (None: the process's), stdout/stderr binary files."""
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
    ws = WSConnection(ConnectionType.CLIENT)
    lock = threading.Lock()

    def send(event) -> None:
        with lock:
            data = ws.send(event)
        sock.sendall(data)

    send(Request(host="localhost", target=build_path(namespace, pod, container, command),
                 subprotocols=[wc.V5, wc.V4],
                 extra_headers=[(b"authorization", f"Bearer {client.token}".encode())]))
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
