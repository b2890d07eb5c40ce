"""`knet trace`'s engine, shared by the command (knet.cli.trace) and the test
harness: resolve the two ends through the API, arm tracing in every namespace
the packet may cross (the source, every node, the outside host, the pods that
may receive it), make one real connection attempt from the source's
namespace, read what the kernel traced and explain it (knet.trace.explain).

The one attempt is recognised by its source port (TCP/UDP; the echo
identifier for ICMP), chosen at random above the kernel's ephemeral range
(61000-64999) and bound before connecting: the trace rules match that port
as source (the request) or destination (the reply), so no other traffic is
traced, in any namespace, whatever NAT does to the addresses.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from knet.trace.explain import Capture, Flow, Place, explain, wanted
from knet.trace.model import Trace

PORTS = (61000, 65000)
DEFAULT_TIMEOUT = 1.0
PROTOCOLS = ("TCP", "UDP", "ICMP")
PAYLOAD = b"trace\n"
QUIET = 0.03  # after the outcome: events still on their way (none expected: they are sent synchronously)
MAX_ENDPOINT_PODS = 64  # a Service's pods armed at most; more than this and the trace names the ones it saw


class TraceError(Exception):
    """Bad input or a state the trace cannot start from; the text names the field."""


@dataclass
class Target:
    place: Place
    netns: str
    address: str


def run(cluster, source: str, dest: str, port: int | str | None = None, protocol: str = "TCP", *,
        namespace: str | None = None, timeout: float = DEFAULT_TIMEOUT, client=None,
        save: str | None = None) -> Trace:
    """Trace one connection attempt from `source` (POD, pod/NAME, node/NAME or
    ext) to `dest` (a pod, a Service `web` / `web.shop`, an IP or node/NAME,
    optionally `:PORT`). `cluster` is a cluster name or a harness Cluster."""
    from knet.config import load_saved

    name = getattr(cluster, "name", cluster)
    client = client or getattr(cluster, "client", None)
    protocol = (protocol or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise TraceError(f"--protocol: unsupported value {protocol!r}: TCP, UDP or ICMP")
    if timeout <= 0:
        raise TraceError(f"--timeout: invalid value {timeout}: must be more than 0 seconds")
    try:
        cfg = load_saved(name)
    except OSError:
        raise TraceError(f'cluster "{name}" is not running') from None
    if client is None:
        from knet.api.client import for_cluster

        client = for_cluster(name)
    world = _World(cfg, client)
    src = world.source(source, namespace)
    dst_text, daddr, dport, extra = world.destination(dest, port, protocol, namespace or src.place.label.split("/")[0]
                                                      if src.place.kind == "pod" else namespace)
    places = {src.place.label: src.place}
    netns = {src.place.label: src.netns}
    for t in world.always() + extra:
        if t.place.label not in places:
            places[t.place.label] = t.place
            netns[t.place.label] = t.netns
    sport = random.randrange(*PORTS) if protocol != "ICMP" else random.randrange(1, 65535)
    flow = Flow(src.place.label, dst_text, src.address, daddr, protocol, dport, sport)
    record_dir = os.path.join(cfg.state_dir, "trace")
    from knet.net import nftrace

    nftrace.sweep(record_dir)
    try:
        cap = _traced(nftrace.Tracer(record_dir, netns, match_rules(protocol, sport)), flow, places, world,
                      src.netns, timeout)
    except nftrace.ArmError as e:  # nft refused the trace table: say so in one line
        raise TraceError(str(e)) from None
    if save:
        import json

        with open(save, "w") as f:
            json.dump(cap.to_json(), f, indent=1)
    return explain(cap)


def _traced(tracer, flow: Flow, places: dict[str, Place], world: _World, netns: str, timeout: float) -> Capture:
    """The attempt, with tracing armed for exactly its duration."""
    protocol, daddr, dport, sport = flow.protocol, flow.daddr, flow.port, flow.sport
    with tracer:
        started = time.monotonic()
        outcome = attempt(netns, protocol, daddr, dport, sport, timeout)
        elapsed = (time.monotonic() - started) * 1000
        tracer.drain()
        tracer.wait(QUIET)
        cap = Capture(flow, places, {lb: [c.hex() for c in chunks] for lb, chunks in tracer.raw.items()},
                      names=world.names, node_cidrs=world.node_cidrs, node_ips=world.node_ips,
                      outcome=outcome, elapsed_ms=elapsed)
        fill(cap, tracer)
    return cap


def fill(cap: Capture, tracer) -> None:
    """Read from the kernel what the explanation needs (rule text, elements, routes, interfaces)."""
    from knet.trace.events import split_listing

    chains, elements, routes = wanted(cap)
    by_label: dict[str, list[tuple[str, str, str]]] = {}
    for label, family, table, chain in sorted(chains):
        by_label.setdefault(label, []).append((family, table, chain))
    texts = tracer.listings(by_label)  # the namespaces at once
    for label, text in texts.items():
        for (family, table, chain), part in split_listing(text).items():
            cap.listings[f"{label} {family} {table} {chain}"] = part
    from knet.proxy.rules import TABLE as PROXY_TABLE

    for label, set_name, key in sorted(elements):
        text = tracer.element(label, "ip", PROXY_TABLE, set_name, key)
        if text:
            cap.elements[f"{label} {set_name} {key}"] = text
    for label, dst in sorted(routes):
        cap.routes[f"{label} {dst}"] = tracer.route(label, dst)
    for label in cap.places:
        if cap.raw.get(label):
            cap.links[label] = {i: list(v) for i, v in tracer.links(label).items()}


def match_rules(protocol: str, sport: int) -> list[str]:
    """The nft matches that pick the traced flow's first packets each way."""
    if protocol == "TCP":
        return [f"tcp sport {sport} tcp flags & (fin|syn|rst|ack) == syn",
                f"tcp dport {sport} tcp flags & (syn|rst) != 0"]
    if protocol == "UDP":
        return [f"udp sport {sport}", f"udp dport {sport}"]
    return [f"icmp type echo-request icmp id {sport}", f"icmp type echo-reply icmp id {sport}"]


# -- the one attempt -------------------------------------------------------------------------------


def _socket_in(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    from knet.net import ns

    box: list = []

    def make() -> None:
        try:
            with ns.entered(net=netns):
                box.append(socket.socket(family, kind, proto))
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def attempt(netns: str, protocol: str, daddr: str, dport: int, sport: int, timeout: float) -> str:
    """One connection attempt; what the sender saw."""
    if protocol == "ICMP":
        return _ping(netns, daddr, sport, timeout)
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    s = _socket_in(netns, socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", sport))
        except OSError as e:
            raise TraceError(f"source port {sport} is in use in the source's namespace ({e.strerror}): "
                             "try again") from None
        s.setblocking(False)
        if protocol == "TCP":
            code = s.connect_ex((daddr, dport))
            if code not in (0, errno.EINPROGRESS):
                return _errtext(code)
            _, ready, _ = select.select([], [s], [], timeout)
            if not ready:
                return "timeout"
            code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return "connected"
            return _errtext(code)
        code = s.connect_ex((daddr, dport))
        if code:
            return _errtext(code)
        try:
            s.send(PAYLOAD)
        except OSError as e:
            return _errtext(e.errno or 0)
        ready, _, _ = select.select([s], [], [], timeout)
        if not ready:
            return "timeout (no answer)"
        try:
            data = s.recv(2048)
        except OSError as e:
            return _errtext(e.errno or 0)
        return f"answered {data.decode(errors='replace').strip()!r}"
    finally:
        s.close()


def _errtext(code: int) -> str:
    return {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "unreachable (no route to host)",
            errno.ENETUNREACH: "unreachable (network unreachable)", errno.ETIMEDOUT: "timeout"}.get(
        code, os.strerror(code).lower())


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ping(netns: str, daddr: str, ident: int, timeout: float) -> str:
    s = _socket_in(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + PAYLOAD
        body = body[:2] + struct.pack("!H", _checksum(body)) + body[4:]
        try:
            s.sendto(body, (daddr, 0))
        except OSError as e:
            return _errtext(e.errno or 0)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([s], [], [], left)
            if not ready:
                break
            data, _addr = s.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _code, _sum, rid = struct.unpack_from("!BBHH", data, ihl)
            if kind == 0 and rid == ident:
                return "answered (echo reply)"
            if kind == 3:
                return "unreachable (ICMP destination unreachable)"
        return "timeout (no echo reply)"
    finally:
        s.close()


# -- the cluster as the trace needs it ---------------------------------------------------------------


class _World:
    def __init__(self, cfg, client):
        from knet.api.resources import by_kind
        from knet.net import ns

        self.cfg, self.client, self.ns = cfg, client, ns
        self.by_kind = by_kind
        self.nodes = client.list(by_kind("Node"))["items"]
        self.pods = client.list(by_kind("Pod"))["items"]
        self._services: list[dict] | None = None  # listed only when a destination needs them all
        self.node_ips: dict[str, str] = {}
        self.node_cidrs: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for n in self.nodes:
            name = n["metadata"]["name"]
            ip = next((a["address"] for a in n.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"), "")
            self.node_ips[name] = ip
            self.node_cidrs[name] = n.get("spec", {}).get("podCIDR", "")
            if ip:
                self.names[ip] = f"node/{name}"
        self.ext_ip = str(next(ipaddress.ip_network(cfg.lan_subnet).hosts())) if hasattr(cfg, "lan_subnet") else ""
        if self.ext_ip:
            self.names[self.ext_ip] = "ext"
        for p in self.pods:
            ip = p.get("status", {}).get("podIP")
            if ip and not p["spec"].get("hostNetwork"):
                self.names[ip] = _pod_label(p)

    @property
    def services(self) -> list[dict]:
        """Every Service (an IP or node destination may be any Service's): the cost grows with them,
        so a destination named as a Service is read alone."""
        if self._services is None:
            self._services = self.client.list(self.by_kind("Service"))["items"]
            for s in self._services:
                self.name_service(s)
        return self._services

    def name_service(self, svc: dict) -> None:
        ip = svc.get("spec", {}).get("clusterIP")
        if ip and ip != "None":
            self.names[ip] = f"Service {svc['metadata']['namespace']}/{svc['metadata']['name']}"

    def get_service(self, namespace: str, name: str) -> dict | None:
        from knet.api.errors import ApiError

        try:
            svc = self.client.get(self.by_kind("Service"), namespace, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        self.name_service(svc)
        return svc

    def _netns(self, name: str) -> str:
        return self.ns.netns_path(name)

    def node_target(self, node: str) -> Target:
        if node not in self.node_ips:
            raise TraceError(f"no such node: {node}")
        return Target(Place(f"node/{node}", "node", node, self.node_ips[node]), self._netns(self.cfg.node_netns(node)),
                      self.node_ips[node])

    def ext_target(self) -> Target:
        return Target(Place("ext", "ext", "", self.ext_ip), self._netns(self.cfg.ext_netns), self.ext_ip)

    def pod_target(self, pod: dict, field: str) -> Target:
        label = _pod_label(pod)
        st = pod.get("status", {})
        if not st.get("podIP") or not pod["spec"].get("nodeName"):
            raise TraceError(f"{field}: pod {label} has no IP yet (phase {st.get('phase', 'Pending')})")
        node = pod["spec"]["nodeName"]
        if pod["spec"].get("hostNetwork"):
            t = self.node_target(node)
            return Target(Place(t.place.label, "node", node, t.address), t.netns, t.address)
        netns = self._netns(self.cfg.pod_netns(pod["metadata"]["uid"]))
        if not os.path.exists(netns):
            raise TraceError(f"{field}: pod {label} has no network namespace on this machine")
        return Target(Place(label, "pod", node, st["podIP"]), netns, st["podIP"])

    def find_pod(self, name: str, namespace: str) -> dict | None:
        return next((p for p in self.pods if p["metadata"]["name"] == name
                     and p["metadata"].get("namespace", "default") == namespace), None)

    def source(self, text: str, namespace: str | None) -> Target:
        if text == "ext":
            return self.ext_target()
        if text.startswith("node/"):
            return self.node_target(text[5:])
        name = text.split("/", 1)[1] if text.startswith(("pod/", "po/")) else text
        pod = self.find_pod(name, namespace or "default")
        if pod is None:
            raise TraceError(f'source: pods "{name}" not found in namespace {namespace or "default"}')
        return self.pod_target(pod, "source")

    def always(self) -> list[Target]:
        """Every node and the outside host: any of them may carry the packet."""
        out = [self.node_target(n) for n in self.node_ips]
        if os.path.exists(self._netns(self.cfg.ext_netns)):
            out.append(self.ext_target())
        return out

    def destination(self, text: str, port, protocol: str, namespace: str | None):
        """(description, address, port, places that may receive it)."""
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
        if port is None and port_text:
            port = port_text
        if not host:
            raise TraceError("--to: empty destination: want a pod, a Service (web, web.shop), an IP or node/NAME")
        if host.startswith("node/"):
            t = self.node_target(host[5:])
            p = _port(port, 80, protocol)
            return f"{t.place.label} ({t.address}{_suffix(p, protocol)})", t.address, p, [t] + self.by_port(t.address, p)
        if host == "ext":
            t = self.ext_target()
            p = _port(port, 80, protocol)
            return f"ext ({t.address}{_suffix(p, protocol)})", t.address, p, [t]
        try:
            ipaddress.IPv4Address(host)
            is_ip = True
        except ValueError:
            is_ip = False
        if is_ip:
            p = _port(port, 80, protocol)
            extra = [self.pod_target(pod, "--to") for pod in self.pods if pod.get("status", {}).get("podIP") == host
                     and not pod["spec"].get("hostNetwork") and _has_netns(self, pod)]
            svc = next((s for s in self.services if s.get("spec", {}).get("clusterIP") == host), None)
            if svc is not None:
                extra += self.endpoint_pods(svc)
            extra += self.by_port(host, p)
            shown = self.names.get(host, host)
            return f"{shown} ({host}{_suffix(p, protocol)})" if shown != host else host + _suffix(p, protocol), \
                host, p, extra
        kind, _, bare = host.partition("/") if host.startswith(("svc/", "service/", "pod/", "po/")) else ("", "", host)
        parts = bare.split(".")
        svc_ns = parts[1] if len(parts) > 1 else (namespace or "default")
        svc_name = parts[0]
        if kind in ("", "svc", "service"):
            svc = self.get_service(svc_ns, svc_name)
            if svc is not None:
                ip = svc.get("spec", {}).get("clusterIP")
                if not ip or ip == "None":
                    raise TraceError(f"--to: Service {svc_ns}/{svc_name} has no ClusterIP (headless): trace to a pod")
                p = _service_port(svc, port, protocol)
                return f"Service {svc_ns}/{svc_name} ({ip}{_suffix(p, protocol)})", ip, p, self.endpoint_pods(svc)
            if kind:
                raise TraceError(f'--to: services "{svc_name}" not found in namespace {svc_ns}')
        pod = self.find_pod(bare, namespace or "default")
        if pod is None and len(parts) == 2:  # NAME.NAMESPACE, as for a Service
            pod = self.find_pod(parts[0], parts[1])
        if pod is None:
            raise TraceError(f"--to: {bare!r} is neither a Service nor a pod in namespace {namespace or 'default'} "
                             "(want a pod, a Service web or web.shop, an IP or node/NAME)")
        t = self.pod_target(pod, "--to")
        p = _port(port, _container_port(pod, protocol), protocol)
        return f"{t.place.label} ({t.address}{_suffix(p, protocol)})", t.address, p, [t]

    def by_port(self, address: str, port: int) -> list[Target]:
        """The endpoint pods of the Services a node's address, an external or a
        LoadBalancer IP reaches at `port` (a NodePort may lead to any of them)."""
        out: list[Target] = []
        node_ip = address in self.node_ips.values()
        for svc in self.services:
            spec = svc.get("spec", {})
            lb = [i.get("ip") for i in (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []]
            for sp in spec.get("ports") or []:
                if (node_ip and sp.get("nodePort") == port) or \
                        (sp.get("port") == port and (address in (spec.get("externalIPs") or []) or address in lb)):
                    out += self.endpoint_pods(svc)
                    break
        return out

    def endpoint_pods(self, svc: dict) -> list[Target]:
        """The pods that may receive the Service's traffic, to arm: those its selector picks (from
        the pods already listed), or those its EndpointSlices name when it has no selector."""
        meta = svc["metadata"]
        selector = svc.get("spec", {}).get("selector")
        if selector:
            from knet.api.selectors import selector_from_map

            sel = selector_from_map(selector)
            picked = [p for p in self.pods if p["metadata"].get("namespace", "default") == meta["namespace"]
                      and sel.matches(p["metadata"].get("labels") or {}) and not p["spec"].get("hostNetwork")
                      and _has_netns(self, p)]
            return [self.pod_target(p, "--to") for p in picked[:MAX_ENDPOINT_PODS]]
        slices = self.client.list(self.by_kind("EndpointSlice"), meta["namespace"],
                                  label_selector=f"kubernetes.io/service-name={meta['name']}")["items"]
        out = []
        for sl in slices:
            for ep in sl.get("endpoints") or []:
                ref = ep.get("targetRef") or {}
                pod = self.find_pod(ref.get("name", ""), ref.get("namespace", meta["namespace"]))
                if pod is not None and not pod["spec"].get("hostNetwork") and _has_netns(self, pod):
                    out.append(self.pod_target(pod, "--to"))
                if len(out) >= MAX_ENDPOINT_PODS:
                    return out
        return out


def _has_netns(world: _World, pod: dict) -> bool:
    return bool(pod.get("status", {}).get("podIP")) and os.path.exists(
        world._netns(world.cfg.pod_netns(pod["metadata"]["uid"])))


def _pod_label(pod: dict) -> str:
    return f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"


def _suffix(port: int, protocol: str) -> str:
    return "" if protocol == "ICMP" else f":{port}"


def _port(port, default: int, protocol: str) -> int:
    if protocol == "ICMP":
        return 0
    if port is None or port == "":
        return default
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise TraceError(f"--to: invalid port {port!r}: a number between 1 and 65535 "
                         "(a port name only for a Service)") from None
    if not 1 <= value <= 65535:
        raise TraceError(f"--to: invalid port {value}: must be between 1 and 65535")
    return value


def _service_port(svc: dict, port, protocol: str) -> int:
    ports = [p for p in svc.get("spec", {}).get("ports") or [] if p.get("protocol", "TCP") == protocol]
    if protocol == "ICMP":
        return 0
    label = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
    if port is None or port == "":
        if len(ports) == 1:
            return int(ports[0]["port"])
        if not ports:
            raise TraceError(f"--to: Service {label} has no {protocol} port")
        raise TraceError(f"--to: Service {label} has several {protocol} ports "
                         f"({', '.join(str(p['port']) for p in ports)}): name one as {label.split('/')[1]}:PORT")
    for p in ports:
        if str(p["port"]) == str(port) or p.get("name") == port:
            return int(p["port"])
    return _port(port, 80, protocol)


def _container_port(pod: dict, protocol: str) -> int:
    for c in pod["spec"].get("containers", []):
        for p in c.get("ports") or []:
            if p.get("protocol", "TCP") == protocol and p.get("containerPort"):
                return int(p["containerPort"])
    return 80
