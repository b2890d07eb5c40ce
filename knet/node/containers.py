"""Running a container: a process inside the pod's namespaces, or knet's
built-in server.

A container with a command runs that command from the host's filesystem in
the pod's network and UTS namespaces and in a mount namespace of its own whose
/etc/resolv.conf, /etc/hosts and /etc/hostname are the pod's (as `ip netns
exec` does for resolv.conf), with the user, group and no-new-privileges its
securityContext asks for.

A container without one runs the built-in server, which answers on every
containerPort with `<namespace>/<pod>`, like the agnhost image upstream
conformance tests use. Its sockets are opened inside the pod's namespace but
served by the node agent, so a pod costs no process of its own.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess

import trio

from knet.net import ns
from knet.node.podspec import expand, security
from knet.node.sandbox import Sandbox

log = logging.getLogger("knet.node")

IPPROTO_SCTP = 132


async def spawn(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                argv: list[str] | None = None, capture: bool = False) -> trio.Process:
    """Start the container's command (or argv, for exec probes and `knet exec`)
    inside the pod; stdout and stderr go to its log unless captured."""
    if argv is None:
        argv = [expand(a, env) for a in (container.get("command") or [])] + \
               [expand(a, env) for a in (container.get("args") or [])]
    uid, gid, groups, no_new_privs = security(pod, container)
    workdir = container.get("workingDir") or "/"
    binds = [(sb.resolv_conf, "/etc/resolv.conf"), (sb.hosts, "/etc/hosts"), (sb.hostname_file, "/etc/hostname")]
    net_fd = os.open(sb.netns_path, os.O_RDONLY | os.O_CLOEXEC)
    uts_fd = os.open(sb.uts_path, os.O_RDONLY | os.O_CLOEXEC)
    logf = subprocess.PIPE if capture else open(sb.log_path(container["name"]), "ab")

    def preexec() -> None:  # runs in the child between fork and exec
        ns.setns(net_fd, ns.CLONE_NEWNET)
        ns.setns(uts_fd, ns.CLONE_NEWUTS)
        ns.unshare(ns.CLONE_NEWNS)
        ns.private_mounts_for_netns()
        for src, dst in binds:
            if os.path.exists(dst):
                ns.mount(src, dst, None, ns.MS_BIND)
        if no_new_privs:
            ns.no_new_privs()
        if gid is not None or uid is not None:
            os.setgroups(groups)
        if gid is not None:
            os.setgid(gid)
        elif uid is not None:
            os.setgid(0)
        if uid is not None:
            os.setuid(uid)
        os.chdir(workdir)

    try:
        return await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT if capture else logf, env=env, preexec_fn=preexec,
            start_new_session=True, close_fds=True)
    finally:
        os.close(net_fd)
        os.close(uts_fd)
        if not capture:
            logf.close()


async def spawn_exec(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                     argv: list[str]) -> tuple[int, str]:
    """Run a command to completion inside the container's context (exec probes)."""
    proc = await spawn(sb, pod, container, env, argv, capture=True)
    try:
        out = b""
        async with proc.stdout:
            while chunk := await proc.stdout.receive_some(65536):
                out += chunk
        return await proc.wait(), out.decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()


class PortInUse(Exception):
    pass


class BuiltinServer:
    """Answers on a pod's declared ports with `<namespace>/<pod>`.

    TCP: an HTTP request gets an HTTP 200 (paths /hostname, /clientip, /healthz,
    anything else the identity); a plain line `hostname` or `clientip` gets that;
    a client that sends nothing gets the identity line after 100 ms. UDP: every
    datagram is answered the same way. SCTP where the kernel has it.
    """

    def __init__(self, sb: Sandbox, namespace: str, name: str, ports: list[dict]):
        self.sb = sb
        self.identity = f"{namespace}/{name}"
        self.hostname = name
        self.ports = ports
        self.bound: list[tuple[str, int]] = []

    def _open(self) -> list[tuple[str, int, socket.socket]]:
        out = []
        with ns.entered(net=self.sb.netns_path):
            try:
                for p in self.ports:
                    proto = p.get("protocol", "TCP")
                    port = int(p["containerPort"])
                    if proto == "UDP":
                        kind, sproto = socket.SOCK_DGRAM, 0
                    elif proto == "SCTP":
                        kind, sproto = socket.SOCK_STREAM, IPPROTO_SCTP
                    else:
                        kind, sproto = socket.SOCK_STREAM, 0
                    try:
                        s = socket.socket(socket.AF_INET6, kind, sproto)
                    except OSError as e:
                        if proto == "SCTP" and e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                            log.warning("%s: SCTP port %d not served: this kernel has no SCTP", self.identity, port)
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
        return out

    def _answer(self, request: bytes, peer: tuple) -> bytes:
        client = f"{_v4(peer[0])}:{peer[1]}"
        line = request.split(b"\n", 1)[0].strip()
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (b"GET", b"HEAD", b"POST", b"PUT") and parts[-1].startswith(b"HTTP/"):
            path = parts[1].decode(errors="replace").split("?")[0]
            body = {"/hostname": self.hostname, "/clientip": client, "/healthz": "ok"}.get(path, self.identity)
            data = (body + "\n").encode()
            return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        word = line.decode(errors="replace").lower()
        return ({"hostname": self.hostname, "clientip": client}.get(word, self.identity) + "\n").encode()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        opened = self._open()
        self.bound = [(proto, port) for proto, port, _ in opened]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)  # with no ports it idles, like a pause container
            for proto, _port, raw in opened:
                sock = trio.socket.from_stdlib_socket(raw)
                if proto == "UDP":
                    nursery.start_soon(self._serve_udp, sock)
                else:
                    nursery.start_soon(self._serve_stream, sock, nursery)
            task_status.started()

    async def _serve_stream(self, sock, nursery: trio.Nursery) -> None:
        with sock:
            while True:
                conn, peer = await sock.accept()
                nursery.start_soon(self._one_stream, conn, peer)

    async def _one_stream(self, conn, peer) -> None:
        with conn:
            data = b""
            with trio.move_on_after(0.1):
                data = await conn.recv(4096)
            try:
                await conn.send(self._answer(data, peer))
            except OSError:
                pass

    async def _serve_udp(self, sock) -> None:
        with sock:
            while True:
                data, peer = await sock.recvfrom(65535)
                try:
                    await sock.sendto(self._answer(data, peer), peer)
                except OSError:
                    pass


def _v4(addr: str) -> str:
    return addr[7:] if addr.startswith("::ffff:") else addr
