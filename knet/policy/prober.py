"""The engine of `knet probe`: one real connection attempt per (client, server,
port, protocol), made from inside the client pod's network namespace, as
upstream's e2e prober runs `agnhost connect` in the client pod. TCP counts as
connected when the handshake completes; UDP when a datagram is answered
(knet's built-in server answers `<namespace>/<pod>`: an answer naming another
pod means the probe reached someone else, and is not counted).

It lives here, below the CLI, because two front ends share it: `knet probe`
(knet.cli.probe: options, the printed matrix, --expect) and the packet-level
test harness (knet.harness.net.probe/reachability), and a second prober would
drift from the first.

Why sockets and not `knet exec ... nc`: a process per pair costs ~30 ms of
start-up each and 81 of them would not fit in 3 s; a socket created in a
network namespace stays in it, so this process opens every client's sockets
after a setns() in a helper thread (the main thread never changes namespace)
and then drives all of them at once from one selector: blocked pairs time out
together, not one after another.

select() and plan() are pure, run() is the kernel seam (it works without root
when no namespace is named), records() and matrices() are pure again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.policy.matrix import Matrix

DEFAULT_TIMEOUT = 1.0    # agnhost connect's --timeout in upstream's prober
UDP_RESEND = 0.25        # a lost datagram is sent again at this interval until the timeout
PAYLOAD = b"probe\n"     # any line but `hostname`/`clientip`: the built-in server answers its identity
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class Target:
    """A selected pod: `name` is "<namespace>/<pod>", `netns` the path of its
    network namespace (None: the calling thread's, for tests without root)."""

    name: str
    ip: str
    netns: str | None
    pod: dict = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Probe:
    client: str
    server: str
    netns: str | None      # where the client's socket is made
    address: str           # the server pod's IP, or a ClusterIP selecting it
    port: int
    protocol: str
    source_port: int | None = None  # bound before connecting (see source_ports); None: the kernel picks


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    connected: bool
    detail: str            # connected, timeout, refused, answered by x/c, ...


# -- selection (pure) -----------------------------------------------------------------------


def pod_name(pod: dict) -> str:
    return f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"


def select(pods: Sequence[dict], netns_of: Callable[[dict], str | None]) -> tuple[list[Target], list[tuple[str, str]]]:
    """The pods that can take part, sorted by name, and the others with the
    reason they are left out. netns_of(pod) is its namespace's path, or None
    when it has none on this machine (a probe needs to enter it)."""
    chosen, skipped = [], []
    for pod in sorted(pods, key=pod_name):
        name = pod_name(pod)
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        if pod["metadata"].get("deletionTimestamp"):
            skipped.append((name, "terminating"))
        elif not (pod.get("spec") or {}).get("nodeName"):
            skipped.append((name, "not scheduled to a node"))
        elif phase != "Running":
            skipped.append((name, f"phase {phase}"))
        elif not status.get("podIP"):
            skipped.append((name, "no IP yet"))
        else:
            netns = netns_of(pod)
            if netns is None:
                skipped.append((name, "its network namespace is not there"))
            else:
                chosen.append(Target(name, status["podIP"], netns or None, pod))
    return chosen, skipped


def service_for(server: Target, port: int, protocol: str, services: Sequence[dict],
                pods: Sequence[dict]) -> tuple[str, str] | None:
    """(ClusterIP, Service name) of a Service in the server's namespace that
    selects it and has `port`/`protocol`; of several, the one selecting the
    fewest pods (the likeliest to land on this pod), then by name."""
    from knet.api.selectors import selector_from_map

    namespace = server.pod["metadata"].get("namespace", "default")
    labels = server.pod["metadata"].get("labels") or {}
    found = []
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if svc["metadata"].get("namespace") != namespace or not ip or ip == "None":
            continue
        if not any(p.get("port") == port and (p.get("protocol") or "TCP") == protocol for p in spec.get("ports") or []):
            continue
        sel = selector_from_map(spec.get("selector"))
        if not sel.matches(labels):
            continue
        selected = sum(1 for p in pods if p["metadata"].get("namespace") == namespace
                       and sel.matches(p["metadata"].get("labels")))
        found.append((selected, svc["metadata"]["name"], ip))
    if not found:
        return None
    _, name, ip = min(found)
    return ip, name


def plan(clients: Sequence[Target], servers: Sequence[Target], ports: Sequence[int], protocols: Sequence[str],
         services: Sequence[dict] | None = None,
         pods: Sequence[dict] = ()) -> tuple[list[Probe], list[str]]:
    """Every (client, server) pair for every port and protocol. With services
    (--to-service) a pair dials the ClusterIP of a Service selecting the
    server; a server no Service selects on that port is not probed, and the
    notes say so."""
    probes, notes = [], []
    for protocol in protocols:
        for port in ports:
            for server in servers:
                address = server.ip
                if services is not None:
                    found = service_for(server, port, protocol, services, pods)
                    if found is None:
                        notes.append(f"no Service selects {server.name} on port {port}/{protocol}: "
                                     "its column is not probed")
                        continue
                    address = found[0]
                for client in clients:
                    probes.append(Probe(client.name, server.name, client.netns, address, port, protocol))
    return probes, notes


# -- UDP source ports -------------------------------------------------------------------------
#
# A UDP probe that happens to reuse the 5-tuple of a flow conntrack still remembers (30 s after its
# last packet on this kernel) is that flow to the kernel: `ct state established` lets it through
# whatever policy now says, so a probe right after a deny could report a pair connected. The kernel
# picks UDP source ports at random out of ~28,000: with dozens of probes per pair in half a minute
# (the e2e suite) a collision comes every run or two (seen). UDP probes therefore take their ports from
# a per-cluster counter that moves on with every run: a port comes back only after the whole range
# has been used. TCP needs none of this: a SYN matching a closed flow starts a new one.

PORT_RANGE = (32768, 61000)   # Linux's default ip_local_port_range, 32768-60999


def source_ports(probes: Sequence[Probe], first: int) -> list[Probe]:
    """The probes with UDP source ports first, first+1, ... per client (the
    tuples differ by server and port, so clients share the numbers)."""
    import dataclasses

    used: dict[str, int] = {}
    out = []
    for p in probes:
        if p.protocol == "UDP":
            n = used.get(p.client, 0)
            used[p.client] = n + 1
            p = dataclasses.replace(p, source_port=first + n)
        out.append(p)
    return out


def ports_needed(probes: Sequence[Probe]) -> int:
    """How many source ports source_ports() hands out: the most UDP probes of one client."""
    used: dict[str, int] = {}
    for p in probes:
        if p.protocol == "UDP":
            used[p.client] = used.get(p.client, 0) + 1
    return max(used.values(), default=0)


def next_ports(state: str | None, count: int, span: tuple[int, int] = PORT_RANGE) -> int | None:
    """The first of `count` consecutive ports not handed out lately: the
    counter in the file `state` moves on by `count` (under a lock: probes may
    run side by side) and wraps to the start of `span`. Without a file the
    start is a random port of the range; None when `count` does not fit."""
    import fcntl
    import os
    import random

    low, high = span
    if count <= 0 or count > high - low:
        return None
    fd = os.open(state, os.O_RDWR | os.O_CREAT, 0o600) if state else None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.read(fd, 32).decode(errors="replace").strip()
        else:
            text = ""
        first = int(text) if text.isdigit() else random.randrange(low, high - count + 1)
        if not low <= first <= high - count:
            first = low
        if fd is not None:
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(first + count).encode())
        return first
    finally:
        if fd is not None:
            os.close(fd)


def cluster_ports(cluster: str, count: int) -> int | None:
    """next_ports() with the cluster's own counter (in its state directory),
    so `knet probe` and the harness's probes in one cluster never hand out
    the same ports lately."""
    import os

    from knet.paths import state_dir

    directory = state_dir(cluster)
    return next_ports(os.path.join(directory, "probe-udp-ports") if os.path.isdir(directory) else None, count)


# -- the kernel part: every probe at once ----------------------------------------------------


def run(probes: Sequence[Probe], timeout: float = DEFAULT_TIMEOUT) -> list[Outcome]:
    """Make every probe's connection attempt at once; outcomes in probe order.
    More probes than this process may open sockets go in waves."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(probes) + 64
    if soft < want and (hard == resource.RLIM_INFINITY or soft < hard):
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wave = max(1, soft - 64)
    out: list[Outcome] = []
    for start in range(0, len(probes), wave):
        out.extend(_run_wave(probes[start:start + wave], timeout))
    return out


def _open_sockets(probes: Sequence[Probe]) -> list:
    """One non-blocking socket per probe, each made in its client's network
    namespace (or the exception that prevented it), by a helper thread: the
    calling thread never changes namespace, and a socket keeps the namespace
    it was made in whoever uses it later."""
    import socket
    import threading

    out: list = [None] * len(probes)
    by_netns: dict[str | None, list[int]] = {}
    for i, p in enumerate(probes):
        by_netns.setdefault(p.netns, []).append(i)

    def make(i: int) -> None:
        p = probes[i]
        family = socket.AF_INET6 if ":" in p.address else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM if p.protocol == "UDP" else socket.SOCK_STREAM)
        s.setblocking(False)
        if p.source_port:
            try:
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", p.source_port))
            except OSError:
                pass  # taken in this pod: the kernel picks one at connect
        out[i] = s

    def work() -> None:
        from knet.net import ns

        for netns, indexes in by_netns.items():
            try:
                if netns is None:
                    for i in indexes:
                        make(i)
                    continue
                with ns.entered(net=netns):
                    for i in indexes:
                        make(i)
            except OSError as e:
                for i in indexes:
                    if out[i] is None:
                        out[i] = e

    t = threading.Thread(target=work, name="knet-probe-sockets")
    t.start()
    t.join()
    return out


def _errno_text(code: int) -> str:
    import errno
    import os

    return {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timeout"}.get(code) or os.strerror(code).lower()


def _run_wave(probes: Sequence[Probe], timeout: float) -> list[Outcome]:
    import errno
    import selectors
    import socket

    results: list[Outcome | None] = [None] * len(probes)
    socks = _open_sockets(probes)
    sel = selectors.DefaultSelector()
    resend: dict[int, float] = {}   # UDP probe -> when to send its datagram again
    now = time.monotonic()
    deadline = now + timeout

    def finish(i: int, connected: bool, detail: str) -> None:
        results[i] = Outcome(probes[i], connected, detail)
        s = socks[i]
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        resend.pop(i, None)
        s.close()

    try:
        for i, (p, s) in enumerate(zip(probes, socks, strict=True)):
            if isinstance(s, BaseException):
                results[i] = Outcome(p, False, f"cannot enter the client's network namespace: {s}")
                socks[i] = None
                continue
            try:
                if p.protocol == "TCP":
                    code = s.connect_ex((p.address, p.port))
                    if code == 0:
                        finish(i, True, "connected")
                    elif code in (errno.EINPROGRESS, errno.EAGAIN):
                        sel.register(s, selectors.EVENT_WRITE, i)
                    else:
                        finish(i, False, _errno_text(code))
                else:
                    s.connect((p.address, p.port))  # a connected UDP socket also hears ICMP errors
                    s.send(PAYLOAD)
                    sel.register(s, selectors.EVENT_READ, i)
                    resend[i] = now + UDP_RESEND
            except OSError as e:
                finish(i, False, _errno_text(e.errno) if e.errno else str(e))
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                break
            wake = min([deadline, *resend.values()])
            for key, _events in sel.select(max(0.0, wake - now)):
                i = key.data
                p, s = probes[i], socks[i]
                if p.protocol == "TCP":
                    code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    finish(i, code == 0, "connected" if code == 0 else _errno_text(code))
                    continue
                try:
                    data = s.recv(65535)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    finish(i, False, _errno_text(e.errno) if e.errno else str(e))
                    continue
                finish(i, *_judge_answer(data, p.server))
            now = time.monotonic()
            for i, when in list(resend.items()):
                if when <= now:
                    try:
                        socks[i].send(PAYLOAD)
                    except OSError:
                        pass  # an ICMP error queued for us: the next recv reports it
                    resend[i] = now + UDP_RESEND
        for i, r in enumerate(results):
            if r is None:
                finish(i, False, "timeout")
    finally:
        for s in socks:
            if s is not None and not isinstance(s, BaseException):
                s.close()
        sel.close()
    return [r for r in results if r is not None]


def _judge_answer(data: bytes, expected: str) -> tuple[bool, str]:
    """A UDP answer: the expected pod's identity is a connection; another
    pod's identity (`<namespace>/<name>`, one word) means the datagram reached
    someone else; anything else is some other server on that address and port,
    which answered, so the path is open."""
    text = data.decode(errors="replace").strip()
    if text == expected:
        return True, "connected"
    if text.count("/") == 1 and len(text.split()) == 1 and "\n" not in text:
        return False, f"answered by {text}"
    return True, "connected (answer not from knet's built-in server)"


# -- the report (pure) ------------------------------------------------------------------------


def records(outcomes: Sequence[Outcome]) -> list[dict]:
    return [{"from": o.probe.client, "to": o.probe.server, "port": o.probe.port, "protocol": o.probe.protocol,
             "connected": o.connected} for o in outcomes]


def matrices(outcomes: Sequence[Outcome], names: Sequence[str], ports: Sequence[int],
             protocols: Sequence[str]) -> list[tuple[int, str, Matrix]]:
    """(port, protocol, observed matrix) in the order asked; a pair not
    probed (no Service with --to-service) stays unknown."""
    from knet.policy.matrix import Matrix

    out = []
    for protocol in protocols:
        for port in ports:
            m = Matrix(names, names, None)
            for o in outcomes:
                if o.probe.port == port and o.probe.protocol == protocol:
                    m.expect(o.probe.client, o.probe.server, o.connected)
            out.append((port, protocol, m))
    return out
