"""The node's container runtime: containerd's place in a knet node.

The agent (kubelet's place) can be killed, upgraded or restarted; the
containers it started must not notice, as containers outlive a kubelet. So
the built-in servers are not served by the agent but by this small process,
one per node, which the agent drives over a root-only unix socket
(`<state>/nodes/<node>/runtime.sock`), as kubelet drives containerd over CRI.
A built-in server's sockets are opened inside its pod's network namespace and
served by this process's single event loop, so a pod still costs no process.

The protocol is JSON lines, one request and one answer per line:

    {"op": "ping"}                          -> {"ok": true, "pid": .., "boot": .., "seq": .., ...}
    {"op": "start", "id": "<pod uid>/<container>", "netns": "/run/netns/..",
     "identity": "<namespace>/<pod>", "hostname": "<pod>", "ports": [{"containerPort": 80,
     "protocol": "TCP"}], "labels": {..}}   -> {"ok": true, "container": {..}, "existing": false}
    {"op": "stop", "id": ..}                -> {"ok": true, "stopped": true}
    {"op": "list"}                          -> {"ok": true, "boot": .., "seq": .., "containers": [..]}
    {"op": "watch"}                         -> the list answer, then one line per container that
                                               goes: {"event": "exited", "id": .., "boot": .., "seq": ..}

`start` of a container that already runs answers the running one with
`"existing": true`: that is how a restarted agent adopts it, with its
original startedAt and the labels (restartCount) it was started with, as
kubelet reads them back from containerd's container labels. A container is
named for good by (boot, seq): boot names this runtime process, seq counts
its starts, so an agent can tell "the same server" from "a new one with the
same name". Errors answer {"ok": false, "reason": .., "error": ..}, naming
the field at fault.

Start-up is kept lean (it starts on every node at `knet up`): the standard
library's selectors, no trio, pyroute2 or yaml; the namespace helpers are
imported with the first container.
"""

from __future__ import annotations

import errno
import heapq
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

log = logging.getLogger("knet.runtime")

IPPROTO_SCTP = 132
MAX_LINE = 1 << 20           # a request line longer than this is refused
MAX_WATCH_BUFFER = 4 << 20   # a watcher that stops reading is dropped, not buffered for ever
SILENT_CLIENT_SECONDS = 0.1  # a TCP client that sends nothing gets the identity line after this
PROTOCOLS = ("TCP", "UDP", "SCTP")


def socket_path(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, "nodes", node, "runtime.sock")


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the pure parts: requests and answers ---------------------------------------------------


class BadRequest(ValueError):
    """A request the runtime refuses; the message names the field."""


def parse_start(req: dict) -> dict:
    """The start request's fields, checked; raises BadRequest naming the first bad one."""
    spec = {}
    for key in ("id", "netns", "identity", "hostname"):
        value = req.get(key)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{key}: Required value (a non-empty string)")
        spec[key] = value
    if "/" not in spec["id"]:
        raise BadRequest(f"id: Invalid value {spec['id']!r}: must be <pod uid>/<container name>")
    ports = req.get("ports", [])
    if not isinstance(ports, list):
        raise BadRequest("ports: must be a list")
    spec["ports"] = []
    seen = set()
    for i, p in enumerate(ports):
        if not isinstance(p, dict):
            raise BadRequest(f"ports[{i}]: must be an object")
        port, proto = p.get("containerPort"), p.get("protocol", "TCP")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise BadRequest(f"ports[{i}].containerPort: Invalid value {port!r}: must be between 1 and 65535")
        if proto not in PROTOCOLS:
            raise BadRequest(f"ports[{i}].protocol: Unsupported value {proto!r}: supported values: "
                             + ", ".join(f'"{x}"' for x in PROTOCOLS))
        if (proto, port) not in seen:  # a port listed twice is served once
            seen.add((proto, port))
            spec["ports"].append({"containerPort": port, "protocol": proto})
    labels = req.get("labels", {})
    if not isinstance(labels, dict):
        raise BadRequest("labels: must be an object")
    spec["labels"] = labels
    return spec


def answer(identity: str, hostname: str, request: bytes, peer: tuple) -> bytes:
    """What the built-in server replies to one request (a TCP read or a datagram).

    HTTP gets an HTTP 200 (paths /hostname, /clientip, /healthz, anything else
    the identity); a plain line `hostname` or `clientip` gets that; anything
    else, nothing included, the identity line.
    """
    client = f"{_v4(peer[0])}:{peer[1]}"
    line = request.split(b"\n", 1)[0].strip()
    parts = line.split()
    if len(parts) >= 2 and parts[0] in (b"GET", b"HEAD", b"POST", b"PUT") and parts[-1].startswith(b"HTTP/"):
        path = parts[1].decode(errors="replace").split("?")[0]
        body = {"/hostname": hostname, "/clientip": client, "/healthz": "ok"}.get(path, identity)
        data = (body + "\n").encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    word = line.decode(errors="replace").lower()
    return ({"hostname": hostname, "clientip": client}.get(word, identity) + "\n").encode()


def _v4(addr: str) -> str:
    return addr[7:] if addr.startswith("::ffff:") else addr


# -- the event loop -------------------------------------------------------------------------


class Loop:
    """selectors plus timers: all the runtime needs, at a fraction of trio's import cost."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, list]] = []
        self._seq = 0

    def watch(self, sock: socket.socket, events: int, fn: Callable[[int], None]) -> None:
        try:
            self.sel.modify(sock, events, fn)
        except KeyError:
            self.sel.register(sock, events, fn)

    def forget(self, sock: socket.socket) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, fn: Callable[[], None]) -> list:
        """Returns a handle; cancel(handle) stops it from running."""
        self._seq += 1
        handle = [fn]
        heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, handle))
        return handle

    @staticmethod
    def cancel(handle: list) -> None:
        handle[0] = None

    def run_once(self, max_wait: float | None = None) -> None:
        timeout = max_wait
        if self.timers:
            due = max(0.0, self.timers[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        for key, mask in self.sel.select(timeout):
            key.data(mask)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, handle = heapq.heappop(self.timers)
            if handle[0] is not None:
                handle[0]()


# -- a built-in server ---------------------------------------------------------------------


class PortInUse(Exception):
    pass


class BuiltinServer:
    """One container's built-in server: its listening sockets and open connections."""

    def __init__(self, loop: Loop, spec: dict, boot: str, seq: int):
        self.loop = loop
        self.spec = spec
        self.id = spec["id"]
        self.boot, self.seq = boot, seq
        self.started_at = now_rfc3339()
        self.listeners: list[tuple[str, int, socket.socket]] = []
        self.conns: dict[socket.socket, list] = {}

    def record(self) -> dict:
        uid, _, name = self.id.partition("/")
        return {"id": self.id, "uid": uid, "container": name, "identity": self.spec["identity"],
                "hostname": self.spec["hostname"], "netns": self.spec["netns"], "ports": self.spec["ports"],
                "bound": [[proto, port] for proto, port, _ in self.listeners], "labels": self.spec["labels"],
                "startedAt": self.started_at, "boot": self.boot, "seq": self.seq}

    def open(self) -> None:
        """Bind every port inside the pod's namespace (the sockets stay in it)."""
        from knet.net import ns

        out = []
        with ns.entered(net=self.spec["netns"]):
            try:
                for p in self.spec["ports"]:
                    proto, port = p["protocol"], p["containerPort"]
                    kind = socket.SOCK_DGRAM if proto == "UDP" else socket.SOCK_STREAM
                    try:
                        s = socket.socket(socket.AF_INET6, kind, IPPROTO_SCTP if proto == "SCTP" else 0)
                    except OSError as e:
                        if proto == "SCTP" and e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                            log.warning("%s: SCTP port %d not served: this kernel has no SCTP", self.id, port)
                            continue
                        raise
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind(("::", port))
                    except OSError as e:
                        s.close()
                        raise PortInUse(f"{proto} port {port}: {e.strerror}") from None
                    if kind == socket.SOCK_STREAM:
                        s.listen(256)
                    s.setblocking(False)
                    out.append((proto, port, s))
            except BaseException:
                for _, _, s in out:
                    s.close()
                raise
        self.listeners = out
        for proto, _, s in out:
            if proto == "UDP":
                self.loop.watch(s, selectors.EVENT_READ, lambda _m, s=s: self._datagrams(s))
            else:
                self.loop.watch(s, selectors.EVENT_READ, lambda _m, s=s: self._accept(s))

    def close(self) -> None:
        for _, _, s in self.listeners:
            self.loop.forget(s)
            s.close()
        for conn in list(self.conns):
            self._drop(conn)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):  # a burst of clients does not starve the others
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: try again on the next wake-up
                log.warning("%s: accept: %s", self.id, e)
                return
            conn.setblocking(False)
            timer = self.loop.call_later(SILENT_CLIENT_SECONDS, lambda c=conn, p=peer: self._reply(c, p, b""))
            self.conns[conn] = timer
            self.loop.watch(conn, selectors.EVENT_READ, lambda _m, c=conn, p=peer: self._readable(c, p))

    def _readable(self, conn: socket.socket, peer: tuple) -> None:
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self._reply(conn, peer, data)

    def _reply(self, conn: socket.socket, peer: tuple, data: bytes) -> None:
        if conn not in self.conns:
            return
        try:
            conn.send(answer(self.spec["identity"], self.spec["hostname"], data, peer))
        except OSError:
            pass
        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        timer = self.conns.pop(conn, None)
        if timer is not None:
            Loop.cancel(timer)
        self.loop.forget(conn)
        conn.close()

    def _datagrams(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued for an earlier reply
                continue
            try:
                sock.sendto(answer(self.spec["identity"], self.spec["hostname"], data, peer), peer)
            except OSError:
                pass


# -- the runtime: containers and its control socket ---------------------------------------


class Runtime:
    def __init__(self, path: str, loop: Loop | None = None):
        self.path = path
        self.loop = loop or Loop()
        self.boot = f"{os.getpid()}-{time.time_ns()}"
        self.started_at = now_rfc3339()
        self.seq = 0
        self.containers: dict[str, BuiltinServer] = {}
        self.watchers: set[Control] = set()
        self.listener: socket.socket | None = None

    def listen(self) -> None:
        """The control socket, root-only from its creation on."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o077)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        s.listen(64)
        s.setblocking(False)
        self.listener = s
        self.loop.watch(s, selectors.EVENT_READ, lambda _m: self._accept())

    def _accept(self) -> None:
        for _ in range(16):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("control socket accept: %s", e)
                return
            Control(self, conn)

    def listing(self) -> dict:
        return {"ok": True, "boot": self.boot, "seq": self.seq,
                "containers": [c.record() for c in self.containers.values()]}

    def handle(self, req: object, conn: Control) -> dict:
        if not isinstance(req, dict):
            return {"ok": False, "reason": "BadRequest", "error": "a request is a JSON object"}
        op = req.get("op")
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "boot": self.boot, "seq": self.seq,
                        "startedAt": self.started_at, "containers": len(self.containers)}
            if op == "list":
                return self.listing()
            if op == "watch":
                self.watchers.add(conn)
                conn.watching = True
                return self.listing()
            if op == "start":
                return self.start(parse_start(req))
            if op == "stop":
                cid = req.get("id")
                if not isinstance(cid, str) or not cid:
                    raise BadRequest("id: Required value (a non-empty string)")
                return {"ok": True, "stopped": self.stop(cid, "Stopped")}
            raise BadRequest(f"op: Unsupported value {op!r}: supported values: "
                             '"ping", "start", "stop", "list", "watch"')
        except BadRequest as e:
            return {"ok": False, "reason": "BadRequest", "error": str(e)}

    def start(self, spec: dict) -> dict:
        running = self.containers.get(spec["id"])
        if running is not None:
            return {"ok": True, "existing": True, "container": running.record()}
        if not os.path.exists(spec["netns"]):
            return {"ok": False, "reason": "BadRequest", "error": f"netns: Not found: {spec['netns']!r}"}
        self.seq += 1
        server = BuiltinServer(self.loop, spec, self.boot, self.seq)
        try:
            server.open()
        except PortInUse as e:
            return {"ok": False, "reason": "PortInUse", "error": str(e)}
        except OSError as e:
            return {"ok": False, "reason": "StartError", "error": str(e)}
        self.containers[spec["id"]] = server
        log.info("started %s (%s) on %s", spec["id"], spec["identity"],
                 ", ".join(f"{p}/{n}" for p, n, _ in server.listeners) or "no ports")
        return {"ok": True, "existing": False, "container": server.record()}

    def stop(self, cid: str, reason: str) -> bool:
        server = self.containers.pop(cid, None)
        if server is None:
            return False
        server.close()
        log.info("stopped %s (%s)", cid, reason)
        event = {"event": "exited", "id": cid, "boot": server.boot, "seq": server.seq, "reason": reason}
        for w in list(self.watchers):
            w.send(event)
        return True

    def serve_forever(self) -> None:
        while True:
            self.loop.run_once()


class Control:
    """One connection on the control socket: request lines in, answer lines out."""

    def __init__(self, runtime: Runtime, sock: socket.socket):
        self.runtime = runtime
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.watching = False
        self.closed = False
        self.refused = False
        sock.setblocking(False)
        runtime.loop.watch(sock, selectors.EVENT_READ, self._ready)

    def _ready(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ and not self.closed:
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self.refused:  # read to the end, so that the refusal reaches the client (no reset)
            return
        self.inbuf += data
        while b"\n" in self.inbuf and not self.closed:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                self.send({"ok": False, "reason": "BadRequest", "error": f"not a JSON line: {e}"})
                continue
            self.send(self.runtime.handle(req, self))
        if len(self.inbuf) > MAX_LINE:
            self.send({"ok": False, "reason": "BadRequest", "error": f"request line longer than {MAX_LINE} bytes"})
            self.refused, self.inbuf = True, b""
            self._flush()
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def send(self, msg: dict) -> None:
        if self.closed:
            return
        self.outbuf += json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        if self.watching and len(self.outbuf) > MAX_WATCH_BUFFER:
            log.warning("dropping a watcher that stopped reading")
            self.close()
            return
        self._flush()

    def _flush(self) -> None:
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            self.outbuf = self.outbuf[n:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbuf else 0)
        self.runtime.loop.watch(self.sock, events, self._ready)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.runtime.watchers.discard(self)
        self.runtime.loop.forget(self.sock)
        self.sock.close()


def _lock(path: str) -> int:
    """One runtime per node: a second one (a supervisor's and an agent's start
    racing) waits here as a standby and takes over if the first one dies."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another runtime serves this node; standing by")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def main(argv: list[str] | None = None) -> None:
    import argparse

    from knet.paths import state_dir

    p = argparse.ArgumentParser(prog="knet-runtime", description="a knet node's container runtime")
    p.add_argument("--cluster", required=True)
    p.add_argument("--node", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s runtime {args.node}: %(message)s")
    path = socket_path(state_dir(args.cluster), args.node)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _lock(path[:-len(".sock")] + ".lock")
    runtime = Runtime(path)
    runtime.listen()
    log.info("serving on %s", path)
    try:
        runtime.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
