"""LoadBalancer IPs from the cluster's LAN pool, as MetalLB's controller
assigns them: a LoadBalancer Service gets the pool's first free address (or
the one its spec.loadBalancerIP asks for) in status.loadBalancer.ingress, with
an `IPAllocated` event; when the pool has none it stays `<pending>` with an
`AllocationFailed` warning, and is tried again as soon as an address frees (a
Service deleted, or no longer of type LoadBalancer: the API server drops its
status then, knet/api/allocators.py), in the order the Services waited.

Which addresses are taken is kept from the Service events the controller
sees (`keys_for`, called inside each store write), and rebuilt from the
informer cache on every resync (`all_keys`), so an assignment never scans
the cluster's Services. A Service with a spec.loadBalancerClass belongs to
another implementation and is left alone, as MetalLB leaves it."""

from __future__ import annotations

import ipaddress
import json

from knet.controllers.base import View

WATCHES = ("Service",)
COMPONENT = "metallb-controller"


def _ingress_ips(svc: dict | None) -> list[str]:
    lb = ((svc or {}).get("status") or {}).get("loadBalancer") or {}
    return [i["ip"] for i in lb.get("ingress") or [] if isinstance(i, dict) and i.get("ip")]


def wants_ip(svc: dict | None) -> bool:
    spec = (svc or {}).get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _key(svc: dict) -> str:
    m = svc["metadata"]
    return f"{m['namespace']}/{m['name']}"


class LoadBalancerController:
    """The pool's state and the three hooks a `loop.Controller` takes."""

    def __init__(self, pool: tuple[str, str] | None):
        self.first = self.last = 0
        if pool:
            self.first, self.last = (int(ipaddress.ip_address(x)) for x in pool)
        self.owner: dict[int, str] = {}  # address -> the Service key holding it
        self.held: dict[str, list[int]] = {}
        self.waiting: dict[str, None] = {}  # Services left <pending> for want of an address, in order

    def in_pool(self, ip: int) -> bool:
        return self.first <= ip <= self.last and self.first > 0

    def _set(self, key: str, svc: dict | None) -> bool:
        """Record what `key` holds now; returns whether an address was freed."""
        mine = []
        for text in _ingress_ips(svc) if wants_ip(svc) else ():
            try:
                ip = int(ipaddress.ip_address(text))
            except ValueError:
                continue
            if self.in_pool(ip):
                mine.append(ip)
        freed = False
        for ip in self.held.pop(key, ()):
            if ip not in mine and self.owner.get(ip) == key:
                del self.owner[ip]
                freed = True
        for ip in mine:
            self.owner.setdefault(ip, key)
        if mine:
            self.held[key] = mine
        return freed

    # -- loop.Controller hooks ---------------------------------------------------

    def keys_for(self, kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
        svc = new if new is not None else old
        key = _key(svc)
        freed = self._set(key, new)
        out: set[str] = set()
        if new is None or not wants_ip(new):
            self.waiting.pop(key, None)
        elif not _ingress_ips(new):
            out.add(key)
        if freed and self.waiting:
            out |= set(self.waiting)
        return out

    def all_keys(self, cache) -> list[str]:
        """The resync: the pool rebuilt from the cache, every Service still
        without an address queued again."""
        self.owner.clear()
        self.held.clear()
        pending = []
        for svc in sorted(cache.list("Service"), key=lambda s: s["metadata"].get("creationTimestamp", "")):
            self._set(_key(svc), svc)
            if wants_ip(svc) and not _ingress_ips(svc):
                pending.append(_key(svc))
        return pending

    def sync_key(self, view: View, key: str) -> None:
        svc = view.get("Service", key)
        if svc is None or not wants_ip(svc) or _ingress_ips(svc):
            self.waiting.pop(key, None)
            return
        if not self.first:
            return  # no pool: <pending> for ever, as with no load-balancer implementation
        wanted = svc["spec"].get("loadBalancerIP")
        ip, why = self._choose(wanted)
        if ip is None:
            self.waiting[key] = None
            view.event(svc, "Warning", "AllocationFailed", f"Failed to allocate IP for {json.dumps(key)}: {why}",
                       COMPONENT)
            return
        status = dict(svc.get("status") or {})
        text = str(ipaddress.ip_address(ip))
        status["loadBalancer"] = {"ingress": [{"ip": text, "ipMode": "VIP"}]}
        before = view.writes
        view.update_status("Service", svc, status)
        if view.writes == before:
            return  # refused or conflicted: the view asked for a retry
        self.waiting.pop(key, None)
        view.event(svc, "Normal", "IPAllocated", f'Assigned IP ["{text}"]', COMPONENT)

    def _choose(self, wanted: str | None) -> tuple[int | None, str]:
        if wanted:
            try:
                ip = int(ipaddress.ip_address(wanted))
            except ValueError:
                return None, f'invalid IP "{wanted}"'
            if not self.in_pool(ip):
                return None, f'"{wanted}" is not allowed in config'
            if ip in self.owner:
                return None, f'"{wanted}" is already in use'
            return ip, ""
        if len(self.owner) > self.last - self.first:
            return None, "no available IPs"
        ip = next((n for n in range(self.first, self.last + 1) if n not in self.owner), None)
        return (ip, "") if ip is not None else (None, "no available IPs")


def controller(pool: str | None):
    """The controller for a cluster's `lb_pool` ("first-last", or empty: none)."""
    from knet.controllers.loop import Controller

    lb = LoadBalancerController(tuple(pool.split("-")) if pool else None)  # type: ignore[arg-type]
    return Controller("loadbalancer controller", WATCHES, lb.keys_for, lb.sync_key, lb.all_keys)
