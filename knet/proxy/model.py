"""What the proxy programs, as data: each Service port flattened with its
ready endpoints (kube-proxy's ServicePort and endpoints map in one), and
which node announces a LoadBalancer IP. Pure: no kernel, no API."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import cached_property

from knet.api.objects import shared


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp, udp, sctp
    cluster_ip: str | None
    port: int
    node_port: int | None
    external_ips: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    lb_ips: tuple[str, ...] = ()
    etp_local: bool = False  # externalTrafficPolicy: Local
    itp_local: bool = False  # internalTrafficPolicy: Local
    health_check_node_port: int | None = None
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges
    affinity_seconds: int = 0  # sessionAffinity: ClientIP timeout, 0 = none

    @cached_property  # read for every rule and map entry of the port: hashed once (frozen: __dict__ is free)
    def chain(self) -> str:
        return "svc-" + chain_hash(f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol}")


def chain_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def service_ports(services: list[dict], slices: list[dict], node: str | None = None) -> list[ServicePort]:
    """Flatten Services and their slices into one entry per service port,
    with the ready endpoints (serving-terminating ones only if none is ready)."""
    by_service: dict[tuple[str, str], list[dict]] = {}
    for s in slices:
        svc_name = (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if svc_name:
            by_service.setdefault((s["metadata"]["namespace"], svc_name), []).append(s)
    out = []
    for svc in services:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        for sp in spec.get("ports") or []:
            proto = sp.get("protocol", "TCP")
            ready, serving = [], []
            for sl in by_service.get((ns, name), []):
                port = next((p["port"] for p in sl.get("ports") or []
                             if p.get("name", "") == sp.get("name", "") and p.get("protocol", "TCP") == proto), None)
                if port is None:
                    continue
                for e in sl.get("endpoints") or []:
                    cond = e.get("conditions") or {}
                    ep = Endpoint(e["addresses"][0], int(port), e.get("nodeName", ""))
                    if cond.get("ready", True):
                        ready.append(ep)
                    elif cond.get("serving") and cond.get("terminating"):
                        serving.append(ep)
            eps = tuple(sorted(set(ready or serving), key=lambda e: (e.ip, e.port, e.node)))
            lb = tuple(i["ip"] for i in (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
                       if i.get("ip")) if spec.get("type") == "LoadBalancer" else ()
            external = spec.get("type") in ("NodePort", "LoadBalancer") or spec.get("externalIPs")
            out.append(ServicePort(ns, name, sp.get("name", ""), proto.lower(), ip, int(sp["port"]),
                                   sp.get("nodePort"), tuple(spec.get("externalIPs") or []), eps, lb,
                                   etp_local=bool(external) and spec.get("externalTrafficPolicy") == "Local",
                                   itp_local=spec.get("internalTrafficPolicy") == "Local",
                                   health_check_node_port=spec.get("healthCheckNodePort"),
                                   source_ranges=tuple(spec.get("loadBalancerSourceRanges") or []),
                                   affinity_seconds=int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                                                        .get("timeoutSeconds", 10800))
                                   if spec.get("sessionAffinity") == "ClientIP" else 0))
    return out


def slim_slice(obj: dict) -> dict:
    """The fields of an EndpointSlice service_ports reads (and the informer's key and
    service-name index), shaped as the slice: the transform of the agent's slice cache.
    Each endpoint's targetRef, the largest part of it, is left out, its conditions are one
    shared dict per shape and its node name one string: ~1.1 KB an endpoint becomes ~0.4 KB,
    in every agent, for every endpoint of the cluster."""
    meta = obj.get("metadata") or {}
    eps = []
    for e in obj.get("endpoints") or []:
        ep: dict = {"addresses": e.get("addresses") or []}
        if "conditions" in e:
            ep["conditions"] = shared(e["conditions"] or {})
        if e.get("nodeName"):
            ep["nodeName"] = sys.intern(e["nodeName"])
        eps.append(ep)
    out = {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels") if k in meta},
           "endpoints": eps}
    for k in ("addressType", "ports"):
        if k in obj:
            out[k] = obj[k]
    return out


def lb_announcer(svc_key: str, ready_nodes: list[str]) -> str | None:
    """Which node answers ARP for a LoadBalancer IP (MetalLB's layer-2 mode
    elects one): the same on every node, moving only when that node goes."""
    if not ready_nodes:
        return None
    nodes = sorted(ready_nodes)
    return nodes[int(hashlib.sha256(svc_key.encode()).hexdigest(), 16) % len(nodes)]


def announced_ips(ports: list[ServicePort], me: str, ready_nodes: list[str]) -> set[str]:
    """The LB IPs this node must answer for."""
    return {ip for sp in ports for ip in sp.lb_ips
            if sp.endpoints and lb_announcer(f"{sp.namespace}/{sp.name}", ready_nodes) == me}
