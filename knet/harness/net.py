"""What a network test does with a cluster: probe who reaches whom, craft and
send packets, capture what arrives, ask the cluster DNS, trace a path.

Everything happens inside the namespaces the cluster made (a pod's, a
node's, `ext`), never in the host's: a socket made in a network namespace
stays in it, so each helper opens its sockets from a short-lived thread that
has entered the namespace (knet.net.ns.entered), and the test's own thread
never changes namespace. Probes are `knet probe`'s own engine
(knet.policy.prober), so a test and the command cannot disagree.

scapy is imported only by send() and by a capture's packets: the module
itself costs no more than the standard library.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from knet.harness.handles import Host, Pod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.policy.matrix import Matrix
    from knet.policy.prober import Outcome

log = logging.getLogger("knet.harness")

Endpoint = Pod | Host

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


def _in_netns(netns: str, fn: Callable[[], object]) -> object:
    """fn() in a helper thread that has entered `netns`; what it returns or
    raises is handed back. Sockets fn makes stay in that namespace."""
    from knet.net import ns

    box: dict[str, object] = {}

    def work() -> None:
        try:
            with ns.entered(net=netns):
                box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=work, name="knet-harness-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# -- probes: knet probe's engine ---------------------------------------------------------------


def _address(dst: Endpoint | str) -> str:
    return dst if isinstance(dst, str) else dst.ip


def _protocol(proto: str) -> str:
    from knet.policy.prober import PROTOCOLS

    p = proto.upper()
    if p not in PROTOCOLS:
        raise ValueError(f"proto: unsupported value {proto!r}: TCP or UDP")
    return p


def _udp_ports(cluster, probes: list) -> list:
    from knet.policy import prober

    first = prober.cluster_ports(cluster.name, prober.ports_needed(probes))
    return prober.source_ports(probes, first) if first is not None else probes


def attempt(src: Endpoint, dst: Endpoint | str, port: int = 80, proto: str = "TCP", *,
            timeout: float = 1.0) -> Outcome:
    """One connection attempt from inside `src`'s network namespace to `dst`
    (a pod, a node, ext, or an address such as a ClusterIP), as `knet probe`
    makes it: the Outcome says connected or not and why (refused, timeout,
    answered by another pod)."""
    from knet.policy import prober

    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port: invalid value {port!r}: must be between 1 and 65535")
    server = str(dst) if isinstance(dst, Pod) else _address(dst)
    p = prober.Probe(str(src), server, src.netns, _address(dst), int(port), _protocol(proto))
    outcome = prober.run(_udp_ports(src.cluster, [p]), timeout)[0]
    if not isinstance(dst, Pod) and outcome.detail.startswith("answered by"):
        # Not aimed at one pod (a ClusterIP, a node's NodePort): whichever pod answers is the answer.
        outcome = prober.Outcome(outcome.probe, True, f"connected ({outcome.detail})")
    log.info("probe %s -> %s %s/%s: %s", src, server, outcome.probe.protocol, port, outcome.detail)
    return outcome


def probe(src: Endpoint, dst: Endpoint | str, port: int = 80, proto: str = "TCP", *,
          timeout: float = 1.0) -> bool:
    """True when `src` reaches `dst` on port/proto (TCP: the handshake
    completed; UDP: the server answered). The detail is logged (pytest shows
    it with a failure); attempt() returns it."""
    return attempt(src, dst, port, proto, timeout=timeout).connected


def reachability(pods: Sequence[Pod], port: int = 80, proto: str = "TCP", *, timeout: float = 1.0,
                 to_service: bool = False) -> Matrix:
    """From every pod (rows) to every pod (columns), all at once, as `knet
    probe` measures it: a knet.policy.matrix.Matrix to compare with an
    expected one (`expected.differences(observed)`, `Matrix.format()`). With
    to_service, each column is dialled through the ClusterIP of a Service
    that selects it (a column no Service selects stays unknown)."""
    from knet.api.resources import by_kind
    from knet.policy import prober

    if not pods:
        raise ValueError("pods: name at least one pod")
    cluster = pods[0].cluster
    if any(p.cluster is not cluster for p in pods):
        raise ValueError("pods: every pod must be of one cluster")
    protocol = _protocol(proto)
    targets = [prober.Target(str(p), p.ip, p.netns, p.obj) for p in pods]
    services = cluster.client.list(by_kind("Service"), None)["items"] if to_service else None
    probes, notes = prober.plan(targets, targets, [int(port)], [protocol], services, [p.obj for p in pods])
    for note in notes:
        log.info("%s", note)
    outcomes = prober.run(_udp_ports(cluster, probes), timeout)
    return prober.matrices(outcomes, [t.name for t in targets], [int(port)], [protocol])[0][2]


# -- crafted packets ----------------------------------------------------------------------------


def send(pkt, from_pod: Endpoint, *, iface: str = "eth0", count: int = 1) -> int:
    """Send a scapy packet from inside `from_pod`'s network namespace (a pod,
    a node or ext); returns the bytes sent per copy.

    An IP packet goes out a raw socket: the namespace's own routes choose
    the way, and an unset source address is the pod's (scapy would pick one
    from the host's routes). An Ethernet frame goes out `iface` as it is; its
    destination MAC must be set (scapy would otherwise ARP for it from the
    host)."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    if count < 1:
        raise ValueError(f"count: invalid value {count}: must be at least 1")
    if pkt.haslayer(Ether):
        if pkt[Ether].fields.get("dst") is None:
            raise ValueError("pkt: an Ether frame needs its dst MAC set (or send the IP packet without Ether: "
                             "the namespace's routes and neighbours then deliver it)")
        if pkt.haslayer(IP) and pkt[IP].fields.get("src") is None:
            pkt[IP].src = from_pod.ip
        wire = bytes(pkt)

        def out_l2() -> int:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
                s.bind((iface, 0))
                return [s.send(wire) for _ in range(count)][-1]
        sent = _in_netns(from_pod.netns, out_l2)
        log.info("sent %s from %s on %s", pkt.summary(), from_pod, iface)
        return sent  # type: ignore[return-value]
    layer = IP if pkt.haslayer(IP) else IPv6 if pkt.haslayer(IPv6) else None
    if layer is None:
        raise ValueError(f"pkt: {pkt.summary()}: send takes an IP/IPv6 packet or an Ether frame")
    ip = pkt[layer]
    if ip.fields.get("src") is None:
        ip.src = from_pod.ip
    wire = bytes(ip)
    family = socket.AF_INET if layer is IP else socket.AF_INET6

    def out_l3() -> int:
        with socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
            return [s.sendto(wire, (ip.dst, 0)) for _ in range(count)][-1]
    sent = _in_netns(from_pod.netns, out_l3)
    log.info("sent %s from %s", pkt.summary(), from_pod)
    return sent  # type: ignore[return-value]


# -- captures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One captured frame as the wire had it (an Ethernet header first)."""

    time: float
    iface: str
    data: bytes


# The captures of the running test, for the pytest plugin's pcap on failure (take_sniffers); bounded so a
# script outside pytest that sniffs in a loop does not keep every capture alive.
_recent: deque[Sniffer | Capture] = deque(maxlen=64)


def take_sniffers() -> list[Sniffer | Capture]:
    """The captures started since the last call (the plugin calls it per test)."""
    out = list(_recent)
    _recent.clear()
    return out


class Sniffer:
    """A capture running in a namespace: started (socket bound, filter on)
    before sniff() returns, so a packet sent after it is seen. wait() gives
    the packets once `count` arrived or `timeout` passed."""

    def __init__(self, on: Endpoint, filter: str | Callable | None = None, count: int | None = 1,
                 timeout: float = 5.0, iface: str | None = None):
        if count is not None and count < 0:
            raise ValueError(f"count: invalid value {count}: 0 or None captures until the timeout")
        if timeout <= 0:
            raise ValueError(f"timeout: invalid value {timeout}: must be more than 0 seconds")
        self.on, self.filter, self.count, self.timeout, self.iface = on, filter, count or None, timeout, iface
        self.frames: list[Frame] = []
        self._decoded: list | None = None
        self._predicate = filter if callable(filter) else None
        self._stop = threading.Event()
        self._sock = _in_netns(on.netns, self._open)
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the reader through it
        self._deadline = time.monotonic() + timeout
        self._thread = threading.Thread(target=self._read, name=f"knet-sniff-{on}", daemon=True)
        self._thread.start()
        _recent.append(self)

    def __repr__(self) -> str:
        what = self.filter if isinstance(self.filter, str) else "a predicate" if self.filter else "everything"
        return f"sniff(on={self.on}, filter={what!r}, {len(self.frames)} frames)"

    def _open(self) -> socket.socket:
        # As libpcap does: a filter that drops everything, the queue drained, then the real filter, so no
        # frame from before the filter is seen. (An unbound socket of protocol 0 would queue nothing, but
        # binding to "every interface" is not something Python's bind can say.)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            _set_filter(s, DROP_ALL)
            if self.iface:
                s.bind((self.iface, ETH_P_ALL))
            s.setblocking(False)
            while True:
                try:
                    s.recv(SNAPLEN)
                except BlockingIOError:
                    break
            s.setblocking(True)
            if isinstance(self.filter, str) and self.filter.strip():
                _attach_bpf(s, self.filter)
            else:
                s.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        except BaseException:
            s.close()
            raise
        return s

    def _read(self) -> None:
        import select

        try:
            while not self._stop.is_set():
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([self._sock, self._wake_r], [], [], left)
                if self._sock not in ready:
                    continue
                data, addr = self._sock.recvfrom(SNAPLEN)
                iface, proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
                if pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK:
                    continue  # the loopback shows each packet twice; libpcap keeps the incoming copy
                if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                    data = b"\0" * 12 + struct.pack("!H", proto) + data  # an IP-only device: a blank Ethernet header
                frame = Frame(time.time(), iface, data)
                if self._predicate is not None and not self._predicate(_decode(frame)):
                    continue
                self.frames.append(frame)
                if self.count and len(self.frames) >= self.count:
                    break
        finally:
            self._sock.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def stop(self) -> list:
        """End the capture now; the packets so far."""
        if self._thread.is_alive():
            self._stop.set()
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        self._thread.join()
        return self.packets

    def wait(self, timeout: float | None = None) -> list:
        """The packets, once `count` arrived or the capture's timeout passed
        (or `timeout` more seconds, then the capture ends there)."""
        self._thread.join(timeout)
        return self.stop()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def packets(self) -> list:
        """The frames as scapy packets (Ether first), each with .time and .sniffed_on."""
        if self._decoded is None or len(self._decoded) != len(self.frames):
            self._decoded = [_decode(f) for f in list(self.frames)]
        return list(self._decoded)

    def write_pcap(self, path: str) -> str:
        """The frames in a pcap file Wireshark and tcpdump -r open."""
        write_pcap(path, self.frames)
        return path

    def __enter__(self) -> Sniffer:
        return self

    def __exit__(self, *exc) -> None:
        self.wait()


def sniff(on: Endpoint, filter: str | Callable | None = None, count: int | None = 1, timeout: float = 5.0,
          *, iface: str | None = None) -> Sniffer:
    """Capture in `on`'s network namespace (every interface, or `iface`):
    `filter` is a BPF expression as tcpdump takes it (compiled by libpcap
    and run in the kernel) or a function of a scapy packet. The capture is
    running when this returns:

        cap = sniff(server, "tcp[tcpflags] & tcp-syn != 0", count=1)
        send(IP(dst=node.ip) / TCP(dport=30080, flags="S"), client)
        [syn] = cap.wait()
    """
    return Sniffer(on, filter, count, timeout, iface)


DROP_ALL = [(0x06, 0, 0, 0)]  # BPF_RET|BPF_K 0: take no byte of any frame


def _set_filter(sock: socket.socket, insns: Sequence[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER with classic BPF instructions (code, jt, jf, k); the
    kernel copies them, so the buffer need only live through the call."""
    import ctypes

    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(insns), ctypes.addressof(buf)))


class Capture:
    """`knet capture` in a namespace: tcpdump (knet.capture.start, running
    and listening when this is made) writing a pcap file, which stop()
    reads back as scapy packets. Beside sniff(), for what tcpdump does
    better: a node's overlay (`overlay=True`: VXLAN on the LAN link), or any
    interface name tcpdump knows (`iface="any"`)."""

    def __init__(self, on: Endpoint, filter: str = "", count: int | None = None, *, iface: str | None = None,
                 overlay: bool = False):
        import tempfile
        import weakref

        from knet import capture as tcpdump

        self.on, self.filter = on, filter
        fd, self.path = tempfile.mkstemp(prefix="knet-capture-", suffix=".pcap")
        os.close(fd)
        weakref.finalize(self, _unlink, self.path)
        if isinstance(on, Pod):
            target, namespace = on.name, on.namespace
        else:
            target, namespace = str(on), None
        self.frames: list = []
        self._packets: list | None = None
        try:
            self._proc = tcpdump.start(on.cluster.cfg, target, iface, filter, count, self.path, namespace=namespace,
                                       overlay=overlay, client=on.cluster.client, stdout=subprocess.DEVNULL)
        except tcpdump.CaptureError as e:
            raise ValueError(str(e)) from None
        _recent.append(self)

    def __repr__(self) -> str:
        return f"capture(on={self.on}, filter={self.filter!r}, {len(self.frames)} frames)"

    def wait(self, timeout: float = 5.0) -> list:
        """The packets once tcpdump has its count (or after `timeout`, then it is stopped)."""
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop()

    def stop(self) -> list:
        """End the capture as Ctrl-C does (tcpdump flushes the file); its packets."""
        self._proc.stop()
        if self._packets is None:
            from scapy.utils import rdpcap

            self._packets = list(rdpcap(self.path)) if os.path.getsize(self.path) else []
            self.frames = [Frame(float(p.time), "", bytes(p)) for p in self._packets]
        return list(self._packets)

    @property
    def packets(self) -> list:
        """The packets once stopped (tcpdump's file is read then); [] while it runs."""
        return list(self._packets or [])

    def write_pcap(self, path: str) -> str:
        """tcpdump's own pcap file, copied."""
        import shutil

        self.stop()
        shutil.copyfile(self.path, path)
        return path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def capture(on: Endpoint, filter: str = "", count: int | None = None, *, iface: str | None = None,
            overlay: bool = False) -> Capture:
    """`knet capture ON [-i IFACE] [-f FILTER] [-c N]` (--overlay for a node's
    VXLAN packets) for a test: running when it returns; stop() or wait()
    gives the packets."""
    return Capture(on, filter, count, iface=iface, overlay=overlay)


def _attach_bpf(sock: socket.socket, expr: str) -> None:
    """A tcpdump filter expression compiled by libpcap (through scapy) for
    Ethernet frames, run by the kernel on the socket."""
    import ctypes

    from scapy.arch.common import compile_filter, free_filter
    from scapy.error import Scapy_Exception

    try:
        bpf = compile_filter(expr, linktype=LINKTYPE_ETHERNET)
    except Scapy_Exception as e:
        raise ValueError(f"filter: {e}") from None
    try:
        insns = ctypes.cast(bpf.bf_insns, ctypes.POINTER(ctypes.c_uint8 * (8 * bpf.bf_len))).contents
        raw = bytes(insns)
        _set_filter(sock, [struct.unpack_from("HBBI", raw, 8 * n) for n in range(bpf.bf_len)])
    finally:
        free_filter(bpf)


def _decode(frame: Frame):
    from scapy.layers.l2 import Ether

    pkt = Ether(frame.data)
    pkt.time = frame.time
    pkt.sniffed_on = frame.iface
    return pkt


def write_pcap(path: str, frames: Sequence[Frame]) -> None:
    """The classic pcap format (what tcpdump -w writes): Ethernet link type,
    microsecond timestamps."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for fr in frames:
            sec = int(fr.time)
            f.write(struct.pack("<IIII", sec, int((fr.time - sec) * 1e6), len(fr.data), len(fr.data)))
            f.write(fr.data)


def read_pcap(path: str) -> list[Frame]:
    """The frames of a pcap file write_pcap wrote (for checking one)."""
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack_from("<I", data)
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{path}: not a little-endian microsecond pcap file (magic {magic:#x})")
    out, at = [], 24
    while at < len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, at)
        out.append(Frame(sec + usec / 1e6, "", data[at + 16:at + 16 + incl]))
        at += 16 + incl
    return out


# -- DNS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DnsAnswer:
    """What the pod's resolver answered: `records` are the answer's data as
    text ("10.96.0.20", "0 100 80 web.shop.svc.cluster.local."), for the name
    the search list led to (`qname`)."""

    qname: str
    qtype: str
    rcode: str                      # NOERROR, NXDOMAIN, SERVFAIL, ...
    records: tuple[str, ...]
    ttl: int | None
    server: str
    response: object = field(repr=False, compare=False, default=None)  # the dns.message.Message

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, item: object) -> bool:
        return item in self.records


def dns(name: str, qtype: str, from_pod: Endpoint, *, server: str | None = None, timeout: float = 5.0,
        tcp: bool = False) -> DnsAnswer:
    """Ask the pod's resolver, from inside the pod's network namespace, as the
    pod's libc would: its resolv.conf's nameserver, search list and ndots
    (`web` is tried as web.<ns>.svc.cluster.local first). `server` asks
    another server instead (a node or ext has no resolv.conf: name one)."""
    import dns.exception
    import dns.rcode
    import dns.rdatatype
    import dns.resolver

    try:
        rdtype = dns.rdatatype.from_text(qtype)
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"qtype: unknown record type {qtype!r}") from None
    if isinstance(from_pod, Pod):
        resolver = dns.resolver.Resolver(filename=from_pod.resolv_conf)
    elif server is None:
        raise ValueError(f"server: {from_pod} has no resolv.conf: name the server to ask")
    else:
        resolver = dns.resolver.Resolver(configure=False)
    if server is not None:
        resolver.nameservers = [server]
    resolver.lifetime = timeout
    asked = resolver.nameservers[0] if resolver.nameservers else "?"

    def query() -> DnsAnswer:
        try:
            ans = resolver.resolve(name, rdtype, tcp=tcp, search=True, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as e:
            qnames = e.kwargs.get("qnames") or [name]
            return DnsAnswer(str(qnames[-1]), qtype.upper(), "NXDOMAIN", (), None, asked,
                             e.kwargs.get("responses", {}).get(qnames[-1]))
        except dns.resolver.NoNameservers as e:
            errors = e.kwargs.get("errors") or []
            response = next((err[4] for err in errors if len(err) > 4 and err[4] is not None), None)
            if response is None:  # nobody answered: refused, unreachable (no endpoints), a broken reply
                raise ConnectionError(f"dns {name} {qtype} from {from_pod}: {asked} did not answer: "
                                      + "; ".join(str(err[3]) for err in errors if len(err) > 3)) from None
            return DnsAnswer(name, qtype.upper(), dns.rcode.to_text(response.rcode()), (), None, asked, response)
        except dns.exception.Timeout:
            raise TimeoutError(f"dns {name} {qtype} from {from_pod}: no answer from {asked} in {timeout:g}s") from None
        records = tuple(r.to_text() for r in ans.rrset) if ans.rrset is not None else ()
        return DnsAnswer(str(ans.qname), qtype.upper(), dns.rcode.to_text(ans.response.rcode()), records,
                         ans.rrset.ttl if ans.rrset is not None else None, asked, ans.response)

    answer = _in_netns(from_pod.netns, query)
    log.info("dns %s %s from %s: %s %s", name, qtype, from_pod, answer.rcode, " ".join(answer.records))  # type: ignore[union-attr]
    return answer  # type: ignore[return-value]


# -- trace --------------------------------------------------------------------------------------


def trace(src: Endpoint, dst: Endpoint | str, port: int | None = None, proto: str = "TCP", *,
          timeout: float = 1.0):
    """`knet trace SRC --to DST[:PORT]`, through knet trace's own engine
    (knet.trace.run): one real connection attempt from `src`, traced by the
    kernel in every namespace it crosses. `dst` is a pod, a node, ext, or
    what `--to` takes (a Service "web" / "web.shop", an IP, "node/NAME").
    The knet.trace.Trace says `verdict` (delivered, dropped, rejected),
    `reason`, `steps("policy")` etc., and `render()` prints it as the command
    does."""
    from knet.trace import run

    if isinstance(src, Pod):
        source, namespace = src.name, src.namespace
    else:
        source, namespace = str(src), None
    if isinstance(dst, Pod):
        dest = f"pod/{dst.name}" if dst.namespace == (namespace or "default") else f"pod/{dst.name}.{dst.namespace}"
    else:
        dest = str(dst)
    result = run(src.cluster, source, dest, port, proto, namespace=namespace, timeout=timeout)
    log.info("%s", result.render())
    return result
