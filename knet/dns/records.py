"""The cluster zone: Services, EndpointSlices and Namespaces in, DNS answers out.

Pure (no sockets, no dnspython): answers are `Record`s in presentation form,
so the rules can be read and tested as text; knet.dns.answer renders them.

What is answered, and why it is answered that way (Kubernetes DNS-Based
Service Discovery, schema 1.1.0, and CoreDNS's kubernetes plugin with `pods
insecure`, as kubeadm configures it):

  <zone>                          SOA, NS (kube-dns.kube-system.svc.<zone> + its ClusterIP as glue)
  dns-version.<zone>              TXT "1.1.0" (any other type: NXDOMAIN, as CoreDNS)
  svc.<zone>, pod.<zone>          empty non-terminals: NODATA
  <ns>.svc.<zone>                 NODATA if the namespace exists, else NXDOMAIN
  <svc>.<ns>.svc.<zone>           A/AAAA: the ClusterIPs; headless: the ready endpoint addresses
                                  (NXDOMAIN when none is ready); ExternalName: CNAME;
                                  SRV: one per port, target the Service (headless: each endpoint)
  <ep>.<svc>.<ns>.svc.<zone>      the addresses of the endpoints whose hostname (or dashed IP) is <ep>
  _<port>._<proto>.<svc>...       SRV for a named port; target resolvable (additional section carries it)
  <a-b-c-d>.<ns>.pod.<zone>       A a.b.c.d if the namespace exists ("pods insecure")
  <d>.<c>.<b>.<a>.in-addr.arpa    PTR for ClusterIPs and endpoint addresses, inside the service and
                                  pod subnets (authoritative there; other reverse names are not ours)

A name that exists with other types answers NODATA (so AAAA on an IPv4-only
Service is NODATA, never NXDOMAIN, which would break musl's resolver);
a name that does not exist answers NXDOMAIN; both carry the zone's SOA.
Wildcards are plain labels (CoreDNS >= 1.9).

`generation` changes whenever an answer may change, and `changes_since`
says which answers: every name has a `scope` (a Service's names, a
namespace's, an address's reverse name, or the zone-wide rest), and each
change names the scopes it touched. The wire-answer cache in knet.dns.answer
drops only those, so a Service change is never served stale and the other
hot names stay precomputed (emptying the whole cache on every change made a
busy server rebuild every answer after each one, which pushed the time from
the API's acknowledgement to the answer past 100 ms under load). Negative
answers of untouched names keep the SOA serial they were made with, as
CoreDNS's cache keeps them.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

from knet.api.objects import shared

SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800  # as the spec's example and CoreDNS
DEFAULT_TTL = 5  # CoreDNS kubernetes plugin default
CNAME_CHAIN_LIMIT = 10
# Namespaces every cluster has: they exist before any object is fed.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVICE_LABEL = "kubernetes.io/service-name"
# The scope of the names no Service, namespace or address narrows down (the apex and its SOA and NS,
# dns-version, names outside the zone, CNAME chains): every change touches it.
ZONE_WIDE = ("zone",)
# Changes remembered for changes_since; older readers start over (drop every kept answer). The only reader,
# the answer cache, catches up at each query, so a busy server is a few changes behind; the log is bounded by
# its entries and by the scopes they name, since each holds one per endpoint address: at 4,096 entries it held
# ~4.7 MB per replica after 1,000 Services x 10 endpoints came and went (issue 14), long after they were gone.
CHANGE_LOG = 1024
CHANGE_LOG_SCOPES = 8192


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; `name` is absolute and lower-case, `data` the rdata in presentation form."""
    name: str
    type: str
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What the zone says about one (name, type).

    rcode is "NOERROR" or "NXDOMAIN"; an empty NOERROR answer is NODATA. `soa`
    is the record negative answers carry in their authority section. `chase`
    is an ExternalName target outside the zone whose `qtype` records the server
    should fetch from its upstreams and append after the CNAME.
    """
    rcode: str
    answer: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    soa: Record | None = None
    chase: str | None = None


@dataclass(frozen=True, slots=True)
class _Port:
    name: str  # lower-case; "" when unnamed
    proto: str  # lower-case: tcp, udp, sctp
    port: int


@dataclass(frozen=True, slots=True)
class _Service:
    kind: str  # "ClusterIP" (any type with IPs), "Headless", "ExternalName" or "Pending" (no IP yet)
    ips: tuple[str, ...]
    external: str  # absolute target for ExternalName
    ports: tuple[_Port, ...]
    publish_not_ready: bool


@dataclass(frozen=True, slots=True)
class _Endpoint:
    label: str  # the hostname, or the dashed address
    address: str
    ready: bool


@dataclass(frozen=True, slots=True)
class _Slice:
    service: str
    endpoints: tuple[_Endpoint, ...]
    ports: tuple[_Port, ...]


@dataclass(slots=True)
class _Node:
    """A name that exists: its records by type, and records for the additional section."""
    rrs: dict[str, list[Record]] = field(default_factory=dict)
    extra: list[Record] = field(default_factory=list)


def dashed(ip: str) -> str:
    """CoreDNS's label for an endpoint without a hostname: 10.244.1.5 -> 10-244-1-5 (IPv6: ':' -> '-')."""
    label = ip.replace(".", "-").replace(":", "-")
    if label.endswith("-"):
        label += "0"
    if label.startswith("-"):
        label = "0" + label
    return label


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _ip_family(ip: str) -> str:
    return "AAAA" if ":" in ip else "A"


def _ports(items: list | None) -> tuple[_Port, ...]:
    out = []
    for p in items or []:
        if not isinstance(p, dict) or p.get("port") is None:
            continue
        out.append(_Port(str(p.get("name") or "").lower(), str(p.get("protocol") or "TCP").lower(), int(p["port"])))
    return tuple(out)


def _service(obj: dict) -> _Service:
    spec = obj.get("spec") or {}
    ports = _ports(spec.get("ports"))
    pnr = bool(spec.get("publishNotReadyAddresses"))
    if spec.get("type") == "ExternalName":
        return _Service("ExternalName", (), _absolute(str(spec.get("externalName") or "")), ports, pnr)
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
    if ips and ips[0] == "None":
        return _Service("Headless", (), "", ports, pnr)
    if not ips:
        return _Service("Pending", (), "", ports, pnr)
    return _Service("ClusterIP", tuple(ips), "", ports, pnr)


def _slice(obj: dict) -> _Slice | None:
    svc = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL)
    if not svc or obj.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
        return None  # FQDN slices and slices of no Service make no records
    eps = []
    for ep in obj.get("endpoints") or []:
        ready = (ep.get("conditions") or {}).get("ready")
        ready = True if ready is None else bool(ready)  # nil means ready (the API's rule)
        hostname = str(ep.get("hostname") or "").lower()
        for addr in ep.get("addresses") or []:
            eps.append(_Endpoint(hostname or dashed(addr), addr, ready))
    return _Slice(svc, tuple(eps), _ports(obj.get("ports")))


# What the Zone reads of each kind, shaped as the object itself: the transforms of the DNS
# server's informers (knet.dns.server.feed). The Zone keeps records of its own and nothing
# reads the informers' caches, so a whole Service and EndpointSlice (targetRefs, annotations,
# the last-applied manifest) per Service in each replica was memory kept for nothing.
def _meta_view(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion", "labels") if k in meta}}


def service_view(obj: dict) -> dict:
    out, spec = _meta_view(obj), obj.get("spec") or {}
    out["spec"] = {k: spec[k] for k in ("type", "externalName", "clusterIP", "clusterIPs", "ports",
                                        "publishNotReadyAddresses") if k in spec}
    return out


def slice_view(obj: dict) -> dict:
    out = _meta_view(obj)
    for k in ("addressType", "ports"):
        if k in obj:
            out[k] = obj[k]
    eps = []
    for ep in obj.get("endpoints") or []:
        view = {k: ep[k] for k in ("addresses", "hostname") if k in ep}
        cond = ep.get("conditions") or {}
        if "ready" in cond:
            view["conditions"] = shared({"ready": cond["ready"]})
        eps.append(view)
    out["endpoints"] = eps
    return out


ZONE_VIEWS = {"Service": service_view, "EndpointSlice": slice_view, "Namespace": _meta_view}


def _meta(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    if not meta.get("name"):
        raise ValueError("metadata.name: Required value")
    return str(meta.get("namespace") or "default"), str(meta["name"])


class Zone:
    """The cluster domain's records, kept from Service/EndpointSlice/Namespace events."""

    def __init__(self, domain: str = "cluster.local", *, service_subnet: str = "10.96.0.0/12",
                 pod_subnet: str = "10.244.0.0/16", ttl: int = DEFAULT_TTL) -> None:
        if not 0 <= ttl <= 3600:
            raise ValueError(f"ttl: Invalid value: {ttl}: must be between 0 and 3600 (CoreDNS's range)")
        self.domain = _absolute(domain.strip("."))
        self._labels = tuple(self.domain[:-1].split("."))
        self.ttl = ttl
        self.subnets = tuple(ipaddress.ip_network(s, strict=False) for s in (service_subnet, pod_subnet))
        self.generation = 0
        self.serial = 1
        self._services: dict[tuple[str, str], _Service] = {}
        self._slices: dict[tuple[str, str], _Slice] = {}
        self._slices_of: dict[tuple[str, str], set[str]] = {}  # (ns, service) -> slice names
        self._ns_services: dict[str, int] = {}
        self._namespaces: set[str] = set(BUILTIN_NAMESPACES)
        self._by_ip: dict[str, set[tuple[str, str]]] = {}  # address -> (ns, service) having it (ClusterIP/endpoint)
        self._log: deque[tuple[int, frozenset | None]] = deque()  # (generation, scopes touched)
        self._log_scopes = 0  # the scopes the log's entries name, together

    # -- feeding -----------------------------------------------------------------------------------------------

    def upsert(self, kind: str, obj: dict) -> None:
        ns, name = _meta(obj)
        if kind == "Service":
            new = _service(obj)
            if self._services.get((ns, name)) == new:
                return
            old = self._services.get((ns, name))
            scopes = self._service_scopes(ns, name, old)
            if old is None:
                self._ns_services[ns] = self._ns_services.get(ns, 0) + 1
            else:
                self._unindex(ns, name, old.ips)
            self._services[(ns, name)] = new
            self._index(ns, name, new.ips)
            more = self._service_scopes(ns, name, new)
            scopes = None if scopes is None or more is None else scopes | more
        elif kind == "EndpointSlice":
            new_slice = _slice(obj)
            old_slice = self._slices.get((ns, name))
            if old_slice == new_slice:
                return
            scopes = self._slice_scopes(ns, old_slice) | self._slice_scopes(ns, new_slice)
            if old_slice is not None:
                self._drop_slice(ns, name, old_slice)
            if new_slice is not None:
                self._slices[(ns, name)] = new_slice
                self._slices_of.setdefault((ns, new_slice.service), set()).add(name)
                self._index(ns, new_slice.service, [e.address for e in new_slice.endpoints])
        elif kind == "Namespace":
            if name in self._namespaces:
                return
            self._namespaces.add(name)
            scopes = {("ns", name)}
        else:
            raise ValueError(f"kind: Unsupported value: {kind!r}: supported values: Service, EndpointSlice, Namespace")
        self._changed(obj, scopes)

    def delete(self, kind: str, obj: dict) -> None:
        ns, name = _meta(obj)
        if kind == "Service":
            old = self._services.get((ns, name))
            if old is None:
                return
            scopes = self._service_scopes(ns, name, old)
            del self._services[(ns, name)]
            self._unindex(ns, name, old.ips)
            self._ns_services[ns] -= 1
            if not self._ns_services[ns]:
                del self._ns_services[ns]
        elif kind == "EndpointSlice":
            old_slice = self._slices.get((ns, name))
            if old_slice is None:
                return
            scopes = self._slice_scopes(ns, old_slice)
            self._drop_slice(ns, name, old_slice)
        elif kind == "Namespace":
            if name not in self._namespaces or name in BUILTIN_NAMESPACES:
                return
            self._namespaces.discard(name)
            scopes = {("ns", name)}
        else:
            raise ValueError(f"kind: Unsupported value: {kind!r}: supported values: Service, EndpointSlice, Namespace")
        self._changed(obj, scopes)

    # -- what a change touches ---------------------------------------------------------------------------------

    def _service_scopes(self, ns: str, name: str, svc: _Service | None) -> set | None:
        """A Service's names, its namespace's (it may make the namespace exist), and the reverse names of its
        addresses and its endpoints' (their PTRs depend on its kind). kube-dns is the apex's NS glue: all."""
        if (ns, name) == ("kube-system", "kube-dns"):
            return None
        out = {("svc", ns, name), ("ns", ns)}
        if svc is not None:
            out.update(("ip", ip) for ip in svc.ips)
        for slice_name in self._slices_of.get((ns, name), ()):
            out.update(("ip", e.address) for e in self._slices[(ns, slice_name)].endpoints)
        return out

    def _slice_scopes(self, ns: str, sl: _Slice | None) -> set:
        if sl is None:
            return set()
        return {("svc", ns, sl.service), *(("ip", e.address) for e in sl.endpoints)}

    def scope(self, name: str) -> tuple:
        """The scope whose changes may change the answers for `name` (any type); see the module docstring."""
        labels = tuple(name.lower().rstrip(".").split(".")) if name.strip(".") else ()
        n = len(self._labels)
        if len(labels) > n and labels[-n:] == self._labels and not any("\\" in label for label in labels):
            rel = labels[:-n]
            if len(rel) >= 3 and rel[-1] == "svc":
                svc = self._services.get((rel[-2], rel[-3]))
                if svc is not None and svc.kind == "ExternalName":
                    return ZONE_WIDE  # a CNAME may lead to any other name of the zone
                return ("svc", rel[-2], rel[-3])
            if len(rel) >= 2 and rel[-1] in ("svc", "pod"):
                return ("ns", rel[-2])
            return ZONE_WIDE
        if len(labels) == 6 and labels[-2:] == ("in-addr", "arpa"):
            try:
                return ("ip", str(ipaddress.IPv4Address(".".join(reversed(labels[:4])))))
            except ValueError:
                return ZONE_WIDE
        return ZONE_WIDE

    def changes_since(self, generation: int) -> set | None:
        """The scopes touched after `generation` (ZONE_WIDE always among them), or None: anything may have
        changed (a change of the apex's records, or more changes than the log keeps)."""
        if generation >= self.generation:
            return set()
        if not self._log or self._log[0][0] > generation + 1:
            return None
        out: set = {ZONE_WIDE}
        for gen, scopes in reversed(self._log):  # newest first: a reader a change or two behind reads a few
            if gen <= generation:
                break
            if scopes is None:
                return None
            out |= scopes
        return out

    def _changed(self, obj: dict, scopes: set | None) -> None:
        self.generation += 1
        entry = None if scopes is None else frozenset(scopes)
        self._log.append((self.generation, entry))
        self._log_scopes += len(entry or ())
        while len(self._log) > CHANGE_LOG or (self._log_scopes > CHANGE_LOG_SCOPES and len(self._log) > 1):
            self._log_scopes -= len(self._log.popleft()[1] or ())
        # The SOA serial follows the API's revision (the same on every replica), else counts changes.
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        serial = int(rv) % (1 << 32) if rv.isdigit() else 0
        self.serial = serial if serial > self.serial else self.serial + 1

    def _drop_slice(self, ns: str, name: str, old: _Slice) -> None:
        del self._slices[(ns, name)]
        names = self._slices_of.get((ns, old.service))
        if names is not None:
            names.discard(name)
            if not names:
                del self._slices_of[(ns, old.service)]
        self._unindex(ns, old.service, [e.address for e in old.endpoints])

    def _index(self, ns: str, svc: str, ips) -> None:
        for ip in ips:
            self._by_ip.setdefault(ip, set()).add((ns, svc))

    def _unindex(self, ns: str, svc: str, ips) -> None:
        for ip in ips:
            owners = self._by_ip.get(ip)
            if owners is not None and (ns, svc) in owners and not self._still_has(ns, svc, ip):
                owners.discard((ns, svc))
                if not owners:
                    del self._by_ip[ip]

    def _still_has(self, ns: str, svc: str, ip: str) -> bool:
        """After removing one source of ip for svc: does another (its ClusterIPs, another slice) still give it?"""
        s = self._services.get((ns, svc))
        if s is not None and ip in s.ips:
            return True
        return any(e.address == ip for name in self._slices_of.get((ns, svc), ())
                   for e in self._slices[(ns, name)].endpoints)

    # -- questions ---------------------------------------------------------------------------------------------

    def namespace_exists(self, ns: str) -> bool:
        return ns in self._namespaces or ns in self._ns_services

    def soa(self, apex: str | None = None) -> Record:
        apex = apex or self.domain
        return Record(apex, "SOA", min(self.ttl, 300),
                      f"ns.dns.{self.domain} hostmaster.{self.domain} {self.serial} 7200 1800 86400 {self.ttl}")

    def lookup(self, name: str, qtype: str) -> Answer | None:
        """The answer for (name, qtype), or None when the name is not in this zone (forward or refuse it)."""
        labels = tuple(name.lower().rstrip(".").split(".")) if name.strip(".") else ()
        n = len(self._labels)
        if labels[-n:] == self._labels and len(labels) >= n:
            if any("\\" in label for label in labels):
                return Answer("NXDOMAIN", soa=self.soa())  # an escaped byte: never a Kubernetes name
            return self._answer(labels[:-n], qtype.upper(), self.domain, 0)
        if labels[-2:] == ("in-addr", "arpa"):
            return self._reverse(labels[:-2], qtype.upper())
        return None

    def _answer(self, rel: tuple[str, ...], qtype: str, apex: str, depth: int) -> Answer:
        fqdn = ".".join(rel) + "." + apex if rel else apex
        soa = self.soa(apex)
        if rel == ("dns-version",) and qtype != "TXT":
            return Answer("NXDOMAIN", soa=soa)  # CoreDNS's answer: its fake A lookup finds nothing there
        node = self._node(rel, fqdn)
        if node is None:
            return Answer("NXDOMAIN", soa=soa)
        if qtype in node.rrs:
            extra = tuple(node.extra) if qtype in ("SRV", "NS") else ()
            return Answer("NOERROR", tuple(node.rrs[qtype]), extra)
        cname = node.rrs.get("CNAME")
        if cname:
            target = cname[0].data
            if qtype not in ("A", "AAAA"):
                return Answer("NOERROR", tuple(cname))
            if depth < CNAME_CHAIN_LIMIT and target.endswith("." + apex):
                rest = self._answer(tuple(target[: -len(apex) - 1].split(".")), qtype, apex, depth + 1)
                return Answer("NOERROR", tuple(cname) + rest.answer, soa=None if rest.answer else soa)
            if target.endswith("." + apex) or target == apex:
                return Answer("NOERROR", tuple(cname), soa=soa)
            return Answer("NOERROR", tuple(cname), chase=target)
        return Answer("NOERROR", soa=soa)  # NODATA

    def _node(self, rel: tuple[str, ...], fqdn: str) -> _Node | None:
        ttl = self.ttl
        if not rel:
            node = _Node()
            node.rrs["SOA"] = [self.soa()]
            kube_dns = self._services.get(("kube-system", "kube-dns"))
            if kube_dns is not None and kube_dns.ips:
                ns_name = f"kube-dns.kube-system.svc.{self.domain}"
                node.extra = [Record(ns_name, _ip_family(ip), ttl, ip) for ip in kube_dns.ips]
            else:
                ns_name = f"ns.dns.{self.domain}"
            node.rrs["NS"] = [Record(fqdn, "NS", ttl, ns_name)]
            return node
        if rel == ("dns-version",):
            return _Node({"TXT": [Record(fqdn, "TXT", DNS_VERSION_TTL, f'"{SCHEMA_VERSION}"')]})
        kind = rel[-1]
        if kind not in ("svc", "pod"):
            return None
        if len(rel) == 1:
            return _Node()
        ns = rel[-2]
        if not self.namespace_exists(ns):
            return None
        if len(rel) == 2:
            return _Node()
        if kind == "pod":
            return self._pod(rel[:-2], fqdn)
        svc = self._services.get((ns, rel[-3]))
        if svc is None or svc.kind == "Pending":
            return None
        if len(rel) == 3:
            return self._service_node(ns, rel[-3], svc, fqdn)
        if svc.kind == "ExternalName":
            return None  # names below an ExternalName do not exist, and it has no SRV
        if len(rel) == 4:
            return self._endpoint_node(ns, rel[-3], svc, rel[0], fqdn)
        if len(rel) == 5:
            return self._srv_node(ns, rel[-3], svc, rel[0].removeprefix("_"), rel[1].removeprefix("_"), fqdn)
        return None

    def _pod(self, rel: tuple[str, ...], fqdn: str) -> _Node | None:
        if len(rel) != 1:
            return None
        label = rel[0]
        text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return None
        return _Node({_ip_family(str(ip)): [Record(fqdn, _ip_family(str(ip)), self.ttl, str(ip))]})

    def _endpoints(self, ns: str, name: str, svc: _Service) -> list[_Endpoint]:
        """The endpoints DNS publishes: ready ones, or all with publishNotReadyAddresses; one per address."""
        seen: dict[str, _Endpoint] = {}
        for slice_name in sorted(self._slices_of.get((ns, name), ())):
            for e in self._slices[(ns, slice_name)].endpoints:
                if (e.ready or svc.publish_not_ready) and e.address not in seen:
                    seen[e.address] = e
        return list(seen.values())

    def _service_node(self, ns: str, name: str, svc: _Service, fqdn: str) -> _Node | None:
        ttl = self.ttl
        node = _Node()
        if svc.kind == "ExternalName":
            node.rrs["CNAME"] = [Record(fqdn, "CNAME", ttl, svc.external)]
            return node
        if svc.kind == "ClusterIP":
            for ip in svc.ips:
                node.rrs.setdefault(_ip_family(ip), []).append(Record(fqdn, _ip_family(ip), ttl, ip))
            if svc.ports:
                weight = 100 // len(svc.ports)
                node.rrs["SRV"] = [Record(fqdn, "SRV", ttl, f"0 {weight} {p.port} {fqdn}") for p in svc.ports]
                node.extra = [r for fam in ("A", "AAAA") for r in node.rrs.get(fam, ())]
            return node
        eps = self._endpoints(ns, name, svc)
        if not eps:
            return None  # headless with no ready endpoint: NXDOMAIN (spec 2.4.1)
        for e in eps:
            node.rrs.setdefault(_ip_family(e.address), []).append(Record(fqdn, _ip_family(e.address), ttl, e.address))
        srv = self._headless_srv(ns, name, svc, None, None, fqdn, eps)
        if srv:
            node.rrs["SRV"], node.extra = srv
        return node

    def _headless_srv(self, ns: str, name: str, svc: _Service, port: str | None, proto: str | None, fqdn: str,
                      eps: list[_Endpoint]) -> tuple[list[Record], list[Record]] | None:
        """SRV per (endpoint, matching port) of a headless Service; the port numbers are the slices'."""
        base = f"{name}.{ns}.svc.{self.domain}"
        pairs: list[tuple[_Endpoint, _Port]] = []
        wanted = {e.address for e in eps}
        for slice_name in sorted(self._slices_of.get((ns, name), ())):
            sl = self._slices[(ns, slice_name)]
            ports = [p for p in sl.ports if port is None or (p.name and p.name == port and p.proto == proto)]
            for e in sl.endpoints:
                if e.address in wanted:
                    pairs.extend((e, p) for p in ports)
        if not pairs:
            return None
        targets: dict[tuple[str, int], None] = {}
        for e, p in pairs:
            targets.setdefault((e.label, p.port), None)
        weight = 100 // len(targets)
        srv = [Record(fqdn, "SRV", self.ttl, f"0 {weight} {p} {label}.{base}") for label, p in targets]
        extra, seen = [], set()
        for e, _ in pairs:
            if (e.label, e.address) not in seen:
                seen.add((e.label, e.address))
                extra.append(Record(f"{e.label}.{base}", _ip_family(e.address), self.ttl, e.address))
        return srv, extra

    def _endpoint_node(self, ns: str, name: str, svc: _Service, label: str, fqdn: str) -> _Node | None:
        eps = [e for e in self._endpoints(ns, name, svc) if e.label == label]
        if not eps:
            return None
        node = _Node()
        for e in eps:
            node.rrs.setdefault(_ip_family(e.address), []).append(Record(fqdn, _ip_family(e.address), self.ttl, e.address))
        return node

    def _srv_node(self, ns: str, name: str, svc: _Service, port: str, proto: str, fqdn: str) -> _Node | None:
        if not port:
            return None
        if svc.kind == "ClusterIP":
            ports = [p for p in svc.ports if p.name and p.name == port and p.proto == proto]
            if not ports:
                return None
            target = f"{name}.{ns}.svc.{self.domain}"
            weight = 100 // len(ports)
            return _Node({"SRV": [Record(fqdn, "SRV", self.ttl, f"0 {weight} {p.port} {target}") for p in ports]},
                         [Record(target, _ip_family(ip), self.ttl, ip) for ip in svc.ips])
        srv = self._headless_srv(ns, name, svc, port, proto, fqdn, self._endpoints(ns, name, svc))
        if srv is None:
            return None
        return _Node({"SRV": srv[0]}, srv[1])

    # -- reverse -----------------------------------------------------------------------------------------------

    def _reverse(self, octets: tuple[str, ...], qtype: str) -> Answer | None:
        """PTR for addresses in the service and pod subnets; None (not ours) for any other reverse name."""
        if len(octets) != 4 or not all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets):
            return None
        ip = ".".join(reversed(octets))
        addr = ipaddress.ip_address(ip)
        net = next((n for n in self.subnets if addr in n), None)
        if net is None:
            return None
        keep = net.prefixlen // 8  # the octet-aligned zone around the subnet holds its SOA
        apex = ".".join(reversed(str(net.network_address).split(".")[:keep])) + ".in-addr.arpa."
        soa = self.soa(apex.lstrip("."))
        owner = ".".join(octets) + ".in-addr.arpa."
        names = self._ptr_names(ip)
        if not names:
            return Answer("NXDOMAIN", soa=soa)
        if qtype != "PTR":
            return Answer("NOERROR", soa=soa)
        return Answer("NOERROR", tuple(Record(owner, "PTR", self.ttl, n) for n in names))

    def _ptr_names(self, ip: str) -> list[str]:
        out: list[str] = []
        for ns, name in sorted(self._by_ip.get(ip, ())):
            svc = self._services.get((ns, name))
            if svc is None:
                continue
            base = f"{name}.{ns}.svc.{self.domain}"
            if ip in svc.ips:
                out.append(base)
            if svc.kind in ("ClusterIP", "Headless"):
                out.extend(f"{e.label}.{base}" for e in self._endpoints(ns, name, svc) if e.address == ip)
        return list(dict.fromkeys(out))
