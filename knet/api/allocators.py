"""Allocation at admission: ClusterIPs from serviceSubnet, NodePorts from
nodePortRange, LoadBalancer IPs from the LAN pool. Each runs after
validation and before the write, inside the registry's single thread, so
"free" means free in the store at that instant: two Services can never get
the same IP or port, and a rejected Service allocates nothing."""

from __future__ import annotations

import ipaddress
import json

from knet.api.errors import ApiError, FieldError, Invalid
from knet.api.resources import by_kind

SERVICES = by_kind("Service")


class _AllocationError(FieldError):
    """An IP allocation error, worded as upstream's allocIPs words it: at
    `spec.clusterIPs`, the whole list shown as Go prints a []string."""

    def __str__(self) -> str:
        shown = "[]string{" + ", ".join(json.dumps(ip) for ip in self.value) + "}"
        return f"{self.field}: {self.type}: {shown}: {self.detail}"


def _range_full(what: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: failed to allocate a {what}: range is full")


class ServiceAllocator:
    def __init__(self, service_subnet: str, node_port_range: str, lb_pool: tuple[str, str] | None = None):
        self.net = ipaddress.ip_network(service_subnet)
        lo, hi = node_port_range.split("-")
        self.ports = (int(lo), int(hi))
        self.lb_pool = lb_pool

    def kubernetes_ip(self) -> str:
        return str(self.net.network_address + 1)

    def __call__(self, reg, svc: dict, old: dict | None) -> None:
        m, spec = svc["metadata"], svc["spec"]
        others = [s for s in reg.list(SERVICES)[0]
                  if (s["metadata"]["namespace"], s["metadata"]["name"]) != (m["namespace"], m["name"])]
        errors: list[FieldError] = []
        stype = spec.get("type", "ClusterIP")
        if old is not None and not spec.get("clusterIP") and old["spec"].get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]  # a PUT that left it out keeps it, as upstream
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            self._cluster_ip(svc, others, errors)
        if stype in ("NodePort", "LoadBalancer"):
            self._node_ports(svc, old, others, errors)
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
            spec.pop("healthCheckNodePort", None)
        if errors:
            raise Invalid("Service", m["name"], errors)
        if stype == "LoadBalancer":
            self._lb_ip(svc, old, others)
        elif "status" in svc:
            svc["status"].pop("loadBalancer", None)

    def _cluster_ip(self, svc: dict, others: list[dict], errors: list[FieldError]) -> None:
        spec = svc["spec"]
        ip = spec.get("clusterIP")
        if ip == "None":
            spec["clusterIPs"] = ["None"]
            return
        used = {s["spec"].get("clusterIP") for s in others}
        if ip:
            addr = ipaddress.ip_address(ip)
            reason = None
            if addr not in self.net or addr in (self.net.network_address, self.net.broadcast_address):
                reason = f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.net}"
            elif ip in used:
                reason = "provided IP is already allocated"
            if reason:
                ips = [str(x) for x in spec.get("clusterIPs") or [ip]]
                errors.append(_AllocationError("spec.clusterIPs", "Invalid value", ips,
                                               f"failed to allocate IP {ip}: {reason}"))
        else:
            kubernetes = svc["metadata"]["namespace"] == "default" and svc["metadata"]["name"] == "kubernetes"
            if kubernetes and self.kubernetes_ip() not in used:
                ip = self.kubernetes_ip()
            else:
                ip = next((str(a) for a in self.net.hosts() if str(a) not in used and str(a) != self.kubernetes_ip()),
                          None)
                if ip is None:
                    raise _range_full("serviceIP")
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _node_ports(self, svc: dict, old: dict | None, others: list[dict], errors: list[FieldError]) -> None:
        spec = svc["spec"]
        lo, hi = self.ports
        used = {(p.get("nodePort"), p.get("protocol", "TCP")) for s in others for p in s["spec"].get("ports") or []}
        used |= {(s["spec"].get("healthCheckNodePort"), "TCP") for s in others}
        before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                  for p in ((old or {}).get("spec", {}).get("ports") or [])}
        mine: set[tuple[int, str]] = set()
        for i, p in enumerate(spec.get("ports") or []):
            proto = p.get("protocol", "TCP")
            want = p.get("nodePort") or before.get((p.get("port"), proto))
            if want:
                if not lo <= want <= hi:
                    errors.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", want,
                                             f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
                elif (want, proto) in used or (want, proto) in mine:
                    errors.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", want,
                                             "provided port is already allocated"))
                p["nodePort"] = want
            else:
                free = next((n for n in range(lo, hi + 1) if (n, proto) not in used and (n, proto) not in mine), None)
                if free is None:
                    raise _range_full("nodePort")
                p["nodePort"] = free
            mine.add((p["nodePort"], proto))
        if spec.get("type") == "LoadBalancer" or spec.get("type") == "NodePort":
            if spec.get("externalTrafficPolicy") == "Local" and spec.get("type") == "LoadBalancer":
                if not spec.get("healthCheckNodePort"):
                    hc = (old or {}).get("spec", {}).get("healthCheckNodePort") or next(
                        (n for n in range(lo, hi + 1) if (n, "TCP") not in used and (n, "TCP") not in mine), None)
                    if hc is None:
                        raise _range_full("nodePort")
                    spec["healthCheckNodePort"] = hc
            else:
                spec.pop("healthCheckNodePort", None)

    def _lb_ip(self, svc: dict, old: dict | None, others: list[dict]) -> None:
        """The MetalLB-style pool: keep an IP once given; leave the Service
        <pending> when the pool is empty (as MetalLB does), never half-allocated."""
        if not self.lb_pool:
            return
        status = svc.setdefault("status", {})
        kept = ((old or {}).get("status", {}).get("loadBalancer") or {}).get("ingress")
        if kept:
            status["loadBalancer"] = {"ingress": kept}
            return
        used = {i.get("ip") for s in others for i in (s.get("status", {}).get("loadBalancer") or {}).get("ingress") or []}
        first, last = (int(ipaddress.ip_address(x)) for x in self.lb_pool)
        wanted = svc["spec"].get("loadBalancerIP")
        candidates = [wanted] if wanted else [str(ipaddress.ip_address(n)) for n in range(first, last + 1)]
        for ip in candidates:
            if ip not in used and first <= int(ipaddress.ip_address(ip)) <= last:
                status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
                return
        status["loadBalancer"] = {}


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
