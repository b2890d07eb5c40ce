"""Allocation at admission: ClusterIPs from serviceSubnet and NodePorts from
nodePortRange, as kube-apiserver's bitmap allocators do it.

What is taken is kept in memory, from the store's own events (every write of
a Service, whoever made it), so an allocation costs O(1) amortized instead of
decoding every Service: a random start in the range, then a scan to the first
free value. The state is rebuilt from the store when the allocator first sees
a registry (a restarted control plane), and it is never written ahead of the
store: a value counts as taken only once a Service holding it is stored. The
registry admits and writes in one synchronous step of its single thread, so
two Services can never get the same value, and a rejected Service or a
dry run allocates nothing. A deleted Service, or one whose type no longer
needs a NodePort, frees what it held with the event of that write.

LoadBalancer IPs are not the API server's: knet/controllers/loadbalancer.py
assigns them from the LAN pool, as MetalLB does."""

from __future__ import annotations

import ipaddress
import json
import random

from knet.api.errors import ApiError, FieldError, Invalid
from knet.store import Event

SERVICES_PREFIX = "/registry/services/"


class _AllocationError(FieldError):
    """An IP allocation error, worded as upstream's allocIPs words it: at
    `spec.clusterIPs`, the whole list shown as Go prints a []string."""

    def __str__(self) -> str:
        shown = "[]string{" + ", ".join(json.dumps(ip) for ip in self.value) + "}"
        return f"{self.field}: {self.type}: {shown}: {self.detail}"


def _range_full(what: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: failed to allocate a {what}: range is full")


def range_offset(size: int, lo: int, hi: int, step: int) -> int:
    """Upstream's calculateRangeOffset: the low band kept for static values
    (kube-dns's .10, a user's chosen NodePort) that dynamic allocation uses last."""
    if size < lo:
        return 0
    return min(max(lo, size // step), hi)


class Bitmap:
    """Which values of [first, first+size) are taken, and by whom (a store key);
    values below first+offset are the static band.

    A dict rather than an int bitmap: the owner lets an update keep its own
    values, and a Service's values are released only by that Service's events."""

    def __init__(self, first: int, size: int, offset: int, rng: random.Random):
        self.first, self.size, self.offset = first, size, offset
        self.owner: dict[int, str] = {}
        self.rng = rng

    def free(self, value: int, key: str | None = None) -> bool:
        return self.owner.get(value, key) == key

    def next_free(self, skip: set[int] | frozenset[int] = frozenset()) -> int | None:
        """A random start in the dynamic (upper) band, scan to its end and round,
        then the static band: upstream's randomScanStrategyWithOffset. Full is
        known from the count, without a scan."""
        skipped = sum(1 for v in skip if v not in self.owner and self.first <= v < self.first + self.size)
        if len(self.owner) + skipped >= self.size:
            return None
        upper = self.size - self.offset
        if upper > 0:
            start = self.rng.randrange(upper)
            for i in range(upper):
                v = self.first + self.offset + (start + i) % upper
                if v not in self.owner and v not in skip:
                    return v
        for i in range(self.offset):
            v = self.first + i
            if v not in self.owner and v not in skip:
                return v
        return None

    def take(self, value: int, key: str) -> None:
        """Only values in the range count (a Service kept from a wider range
        before a configuration change holds nothing here)."""
        if self.first <= value < self.first + self.size:
            self.owner.setdefault(value, key)

    def release(self, value: int, key: str) -> None:
        if self.owner.get(value) == key:
            del self.owner[value]


def _holdings(svc: dict) -> tuple[list[str], list[tuple[int, str]]]:
    """The ClusterIPs and (nodePort, protocol)s a stored Service holds."""
    spec = svc.get("spec") or {}
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    ports = [(p["nodePort"], p.get("protocol", "TCP")) for p in spec.get("ports") or [] if p.get("nodePort")]
    if spec.get("healthCheckNodePort"):
        ports.append((spec["healthCheckNodePort"], "TCP"))
    return ips, ports


class ServiceAllocator:
    def __init__(self, service_subnet: str, node_port_range: str, *, rng: random.Random | None = None):
        self.net = ipaddress.ip_network(service_subnet)
        lo, hi = node_port_range.split("-")
        self.ports = (int(lo), int(hi))
        self.rng = rng or random.Random()
        hosts = self.net.num_addresses - 2 if self.net.num_addresses > 2 else self.net.num_addresses
        first_host = int(self.net.network_address) + (1 if self.net.num_addresses > 2 else 0)
        # .1 is default/kubernetes's: dynamic allocation starts past it
        self.ips = Bitmap(first_host, hosts, range_offset(hosts, 16, 256, 16), self.rng)
        size = self.ports[1] - self.ports[0] + 1
        offset = range_offset(size, 16, 128, 32)
        self.node_ports = {proto: Bitmap(self.ports[0], size, offset, self.rng) for proto in ("TCP", "UDP", "SCTP")}
        self._held: dict[str, tuple[list[str], list[tuple[int, str]]]] = {}
        self._store = None
        self._unsubscribe = None

    def kubernetes_ip(self) -> str:
        return str(self.net.network_address + 1)

    # -- the state, from the store ---------------------------------------------

    def bind(self, store) -> None:
        """Follow `store` from now on: subscribe, then read what is there (one
        thread: no event can fall between the two)."""
        if self._store is store:
            return
        if self._unsubscribe is not None:  # another store (a test's second registry): forget the first's
            self._unsubscribe()
        self._store = store
        self._held.clear()
        self.ips.owner.clear()
        for bitmap in self.node_ports.values():
            bitmap.owner.clear()
        self._unsubscribe = store.subscribe(self._on_event)
        for key, value, _ in store.list(SERVICES_PREFIX)[0]:
            self._hold(key, json.loads(value))

    def _on_event(self, ev: Event) -> None:
        if not ev.key.startswith(SERVICES_PREFIX):
            return
        self._drop(ev.key)
        if ev.value is not None:
            self._hold(ev.key, json.loads(ev.value))

    def _hold(self, key: str, svc: dict) -> None:
        ips, ports = _holdings(svc)
        self._held[key] = (ips, ports)
        for ip in ips:
            try:
                self.ips.take(int(ipaddress.ip_address(ip)), key)
            except ValueError:
                pass
        for port, proto in ports:
            self._port_map(proto).take(port, key)

    def _drop(self, key: str) -> None:
        ips, ports = self._held.pop(key, ((), ()))
        for ip in ips:
            try:
                self.ips.release(int(ipaddress.ip_address(ip)), key)
            except ValueError:
                pass
        for port, proto in ports:
            self._port_map(proto).release(port, key)

    def _port_map(self, proto: str) -> Bitmap:
        if proto not in self.node_ports:
            lo, hi = self.ports
            self.node_ports[proto] = Bitmap(lo, hi - lo + 1, self.node_ports["TCP"].offset, self.rng)
        return self.node_ports[proto]

    # -- admission ---------------------------------------------------------------

    def __call__(self, reg, svc: dict, old: dict | None) -> None:
        self.bind(reg.store)
        m, spec = svc["metadata"], svc["spec"]
        key = f"{SERVICES_PREFIX}{m['namespace']}/{m['name']}"
        errors: list[FieldError] = []
        stype = spec.get("type", "ClusterIP")
        if old is not None and not spec.get("clusterIP") and old["spec"].get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]  # a PUT that left it out keeps it, as upstream
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            self._cluster_ip(svc, key, errors)
        if stype in ("NodePort", "LoadBalancer"):
            self._node_ports(svc, old, key, errors)
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
            spec.pop("healthCheckNodePort", None)
        if errors:
            raise Invalid("Service", m["name"], errors)
        if stype != "LoadBalancer" and "status" in svc:
            svc["status"].pop("loadBalancer", None)  # its IP goes back to the pool

    def _cluster_ip(self, svc: dict, key: str, errors: list[FieldError]) -> None:
        spec = svc["spec"]
        ip = spec.get("clusterIP")
        if ip == "None":
            spec["clusterIPs"] = ["None"]
            return
        if ip:
            addr = ipaddress.ip_address(ip)
            reason = None
            if addr not in self.net or addr in (self.net.network_address, self.net.broadcast_address):
                reason = f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.net}"
            elif not self.ips.free(int(addr), key):
                reason = "provided IP is already allocated"
            if reason:
                ips = [str(x) for x in spec.get("clusterIPs") or [ip]]
                errors.append(_AllocationError("spec.clusterIPs", "Invalid value", ips,
                                               f"failed to allocate IP {ip}: {reason}"))
        else:
            kubernetes = svc["metadata"]["namespace"] == "default" and svc["metadata"]["name"] == "kubernetes"
            first = int(self.net.network_address) + 1
            if kubernetes and self.ips.free(first, key):
                ip = self.kubernetes_ip()
            else:
                found = self.ips.next_free(skip={first})
                if found is None:
                    raise _range_full("serviceIP")
                ip = str(ipaddress.ip_address(found))
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _node_ports(self, svc: dict, old: dict | None, key: str, errors: list[FieldError]) -> None:
        spec = svc["spec"]
        lo, hi = self.ports
        before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in ((old or {}).get("spec", {}).get("ports") or [])}
        mine: dict[str, set[int]] = {}
        for i, p in enumerate(spec.get("ports") or []):
            proto = p.get("protocol", "TCP")
            bitmap, taken = self._port_map(proto), mine.setdefault(proto, set())
            want = p.get("nodePort") or before.get((p.get("port"), proto))
            if want:
                if not lo <= want <= hi:
                    errors.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", want,
                                             f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
                elif not bitmap.free(want, key) or want in taken:
                    errors.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", want,
                                             "provided port is already allocated"))
                p["nodePort"] = want
            else:
                free = bitmap.next_free(taken)
                if free is None:
                    raise _range_full("nodePort")
                p["nodePort"] = free
            taken.add(p["nodePort"])
        if spec.get("externalTrafficPolicy") == "Local" and spec.get("type") == "LoadBalancer":
            if not spec.get("healthCheckNodePort"):
                taken = mine.setdefault("TCP", set())
                hc = (old or {}).get("spec", {}).get("healthCheckNodePort") or self._port_map("TCP").next_free(taken)
                if hc is None:
                    raise _range_full("nodePort")
                spec["healthCheckNodePort"] = hc
        else:
            spec.pop("healthCheckNodePort", None)


def drop_type_dependent_fields(new: dict, old: dict) -> None:
    """On a type change, drop what the old type needed and the new one forbids,
    when the client left it as it was (upstream's dropTypeDependentFields):
    NodePort -> ClusterIP just works, as with kubectl."""
    ns, os_ = new.get("spec", {}), old.get("spec", {})

    def needs_health_check(spec: dict) -> bool:
        return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"

    # Also without a type change: Local -> Cluster on a LoadBalancer frees the port.
    if needs_health_check(os_) and not needs_health_check(ns) and \
            ns.get("healthCheckNodePort") == os_.get("healthCheckNodePort"):
        ns.pop("healthCheckNodePort", None)
    if ns.get("type", "ClusterIP") == os_.get("type", "ClusterIP"):
        return
    new_type = ns.get("type", "ClusterIP")
    if new_type not in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in os_.get("ports") or []}
        for p in ns.get("ports") or []:
            if p.get("nodePort") and p["nodePort"] == old_ports.get((p.get("port"), p.get("protocol", "TCP"))):
                del p["nodePort"]
        for key in ("externalTrafficPolicy",):
            if key in ns and ns.get(key) == os_.get(key):
                del ns[key]
    if new_type != "LoadBalancer":
        for key in ("loadBalancerSourceRanges", "loadBalancerIP", "allocateLoadBalancerNodePorts"):
            if key in ns and ns.get(key) == os_.get(key):
                del ns[key]
    if new_type == "ExternalName":
        for key in ("clusterIP", "clusterIPs"):
            if key in ns and ns.get(key) == os_.get(key):
                del ns[key]
