"""Which Services changed, and what they now want in the table.

Events name Services (a Service event its own, an EndpointSlice event the
Service its kubernetes.io/service-name label names, before and after), and
only those are recomputed: so a sync costs the same with 10 Services or
10,000 (kube-proxy's ServiceChangeTracker and EndpointsChangeTracker in
one). The objects themselves are read from the shared informers' caches;
slices are found through their "service-name" index.
"""

from __future__ import annotations

from knet.api.informer import SERVICE_NAME, EventHandler, Informer, by_service_name, key_of
from knet.proxy.model import ServicePort, service_ports
from knet.proxy.rules import Obj, per_service


class ChangeTracker:
    def __init__(self, services: Informer, slices: Informer, pod_subnet: str, node: str = ""):
        self.services, self.slices = services, slices
        self.pod_subnet, self.node = pod_subnet, node
        slices.add_index(SERVICE_NAME, by_service_name)
        self.dirty: set[str] = set()  # "namespace/name" of Services to recompute
        self.ports: dict[str, list[ServicePort]] = {}  # per Service: its ports, endpoints included
        self.wanted: dict[str, dict[str, list[Obj]]] = {}  # per Service: its objects, per service port chain
        self.udp_gone: set[tuple[str, str]] = set()  # (Service IP, endpoint IP) no longer served over UDP

    def service_handler(self) -> EventHandler:
        def changed(*objs: dict) -> None:
            self.dirty.update(key_of(o) for o in objs)

        return EventHandler(on_add=changed, on_update=changed, on_delete=changed)

    def slice_handler(self) -> EventHandler:
        def changed(*objs: dict) -> None:  # an update names the Service before and after (a relabelled slice)
            for o in objs:
                self.dirty.update(by_service_name(o))

        return EventHandler(on_add=changed, on_update=changed, on_delete=changed)

    def recompute(self) -> dict[str, list[Obj] | None]:
        """Bring the per-Service caches up to date for the Services events
        named; return what changed, per service port chain (None: gone)."""
        changes: dict[str, list[Obj] | None] = {}
        dirty, self.dirty = self.dirty, set()
        for key in dirty:
            ns, name = key.split("/", 1)
            svc = self.services.get(ns, name)
            ports = service_ports([svc], self.slices.by_index(SERVICE_NAME, key)) if svc else []
            objs = per_service(ports, self.pod_subnet, self.node)
            old = self.wanted.pop(key, {})
            self.udp_gone |= udp_pairs(self.ports.pop(key, [])) - udp_pairs(ports)
            if ports:
                self.ports[key], self.wanted[key] = ports, objs
            changes.update({chain: None for chain in old.keys() - objs.keys()})
            changes.update({chain: o for chain, o in objs.items() if old.get(chain) != o})
        return changes

    def all_ports(self) -> list[ServicePort]:
        return [sp for ports in self.ports.values() for sp in ports]

    def entries(self) -> dict[str, list[Obj]]:
        """Every service port's objects, by chain: what a full sync writes."""
        return {chain: objs for per in self.wanted.values() for chain, objs in per.items()}


def udp_pairs(ports: list[ServicePort]) -> set[tuple[str, str]]:
    """(Service IP, endpoint IP) of UDP service ports: when one goes, its conntrack entries must too."""
    return {(sp.cluster_ip, e.ip) for sp in ports if sp.protocol == "udp" for e in sp.endpoints}
