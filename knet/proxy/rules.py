"""Services to nftables, the pure part: (Services, EndpointSlices) -> one
table's worth of JSON commands, shaped like kube-proxy's nftables mode.

The packet path costs the same whatever the number of Services: one lookup
in a verdict map keyed by (destination, protocol, port) picks the Service's
chain, numgen picks an endpoint chain, which DNATs. Masquerade is a mark set
where kube-proxy sets it (traffic from outside the pod network, a pod
reaching itself) and applied in postrouting. A Service with no ready
endpoint is rejected at once from the filter hooks.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

TABLE = "knet-proxy"
MASQ_MARK = 0x4000


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

    @property
    def chain(self) -> str:
        return "svc-" + _hash(f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol}")


def _hash(text: str) -> str:
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


def _prefix(cidr: str) -> dict:
    net = ipaddress.ip_network(cidr)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _cmd(verb: str, kind: str, **fields) -> dict:
    return {verb: {kind: {"family": "ip", "table": TABLE, **fields}}}


def _rule(chain: str, *expr: dict) -> dict:
    return _cmd("add", "rule", chain=chain, expr=list(expr))


def _match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
L4 = {"meta": {"key": "l4proto"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}
MARK = {"meta": {"key": "mark"}}


def transaction(desired: list[dict], existing: dict[str, set[str]] | None = None) -> list[dict]:
    """The commands that turn the table as it is into `desired`, as one
    transaction: rules and map entries are rewritten whole; chains and sets
    that are no longer wanted go; affinity sets that exist are kept with
    their entries (a client stays pinned across syncs)."""
    existing = existing or {"chain": set(), "set": set(), "map": set()}
    head = [{"add": {"table": {"family": "ip", "name": TABLE}}}, {"flush": {"table": {"family": "ip", "name": TABLE}}}]
    head += [_cmd("flush", "map", name=m) for m in sorted(existing["map"])]
    wanted: dict[str, set[str]] = {"chain": set(), "set": set(), "map": set()}
    body = []
    for c in desired:
        kind, obj = next(iter(c["add"].items())) if "add" in c else (None, None)
        if kind in wanted:
            wanted[kind].add(obj["name"])
            if kind == "set" and obj["name"] in existing["set"]:
                continue
        body.append(c)
    tail = [_cmd("delete", kind, name=name) for kind in ("chain", "set", "map")
            for name in sorted(existing[kind] - wanted[kind])]
    return head + body + tail


def ruleset(ports: list[ServicePort], pod_subnet: str, node: str = "",
            existing: dict[str, set[str]] | None = None) -> list[dict]:
    """The whole table as one transaction (see `transaction`)."""
    return transaction(desired(ports, pod_subnet, node), existing)


def desired(ports: list[ServicePort], pod_subnet: str, node: str = "") -> list[dict]:
    """Every object of the table, as `add` commands."""
    cmds = base(pod_subnet)
    for sp in ports:
        cmds += _service(sp, pod_subnet, node)
    return cmds


def per_service(ports: list[ServicePort], pod_subnet: str, node: str = "") -> dict[str, list[dict]]:
    """Each service port's own commands, keyed by its chain name: the unit a partial sync rewrites."""
    return {sp.chain: _service(sp, pod_subnet, node) for sp in ports}


def partial(old: dict[str, list[dict]], new: dict[str, list[dict]]) -> list[dict]:
    """The transaction that turns the services `old` into `new`, touching only
    the ones that changed: their chains are flushed and refilled, their map
    entries replaced, what they no longer need deleted. Nothing changed, no command."""
    flush, drop_elems, adds, deletes = [], [], [], []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, []), new.get(key, [])
        if before == after:
            continue
        old_objs = _objects(before)
        new_objs = _objects(after)
        for name in sorted(old_objs["chain"]):  # chains that go must be empty before they can be deleted
            flush.append(_cmd("flush", "chain", name=name))
        for c in before:
            if "element" in c.get("add", {}) and c not in after:
                e = c["add"]["element"]
                drop_elems.append(_cmd("delete", "element", name=e["name"], elem=[e["elem"][0][0]]))
        for c in after:
            kind = next(iter(c["add"]))
            if kind in ("chain", "set") and c["add"][kind]["name"] in old_objs[kind]:
                continue  # it exists (flushed above, or a set whose entries must live on)
            if kind == "element" and c in before:
                continue
            adds.append(c)
        for kind in ("chain", "set"):
            for name in sorted(old_objs[kind] - new_objs[kind]):
                deletes.append(_cmd("delete", kind, name=name))
    return flush + drop_elems + adds + deletes


def _objects(cmds: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"chain": set(), "set": set()}
    for c in cmds:
        kind, obj = next(iter(c["add"].items()))
        if kind in out:
            out[kind].add(obj["name"])
    return out


def base(pod_subnet: str) -> list[dict]:
    """The table's fixed part: hooks, dispatch chains, maps."""
    cmds: list[dict] = []
    for name, hook, prio, ctype in (("nat-prerouting", "prerouting", -100, "nat"), ("nat-output", "output", -100, "nat"),
                                    ("nat-postrouting", "postrouting", 100, "nat"),
                                    ("filter-forward", "forward", -10, "filter"),
                                    ("filter-output", "output", -10, "filter"),
                                    ("filter-input", "input", -10, "filter")):
        cmds.append(_cmd("add", "chain", name=name, type=ctype, hook=hook, prio=prio, policy="accept"))
    for name in ("services", "mark-for-masquerade", "reject-chain"):
        cmds.append(_cmd("add", "chain", name=name))
    key = ["ipv4_addr", "inet_proto", "inet_service"]
    cmds.append(_cmd("add", "map", name="service-ips", type=key, map="verdict"))
    cmds.append(_cmd("add", "map", name="service-nodeports", type=["inet_proto", "inet_service"], map="verdict"))
    cmds.append(_cmd("add", "map", name="no-endpoint-services", type=key, map="verdict"))
    cmds.append(_cmd("add", "map", name="no-endpoint-nodeports", type=["inet_proto", "inet_service"], map="verdict"))
    vmap3 = {"vmap": {"key": {"concat": [DADDR, L4, DPORT]}, "data": "@service-ips"}}
    for chain in ("nat-prerouting", "nat-output"):
        cmds.append(_rule(chain, {"jump": {"target": "services"}}))
    cmds.append(_rule("services", vmap3))
    local = {"fib": {"result": "type", "flags": ["daddr"]}}
    cmds.append(_rule("services", _match(local, "local"),
                      {"vmap": {"key": {"concat": [L4, DPORT]}, "data": "@service-nodeports"}}))
    cmds.append(_rule("mark-for-masquerade", {"mangle": {"key": MARK, "value": {"|": [MARK, MASQ_MARK]}}}))
    cmds.append(_rule("nat-postrouting", _match({"&": [MARK, MASQ_MARK]}, 0, "=="), {"return": None}))
    cmds.append(_rule("nat-postrouting", {"mangle": {"key": MARK, "value": {"^": [MARK, MASQ_MARK]}}}))
    cmds.append(_rule("nat-postrouting", {"masquerade": None}))
    cmds.append(_rule("reject-chain", {"reject": {"type": "icmp", "expr": "port-unreachable"}}))
    ct_new = _match({"ct": {"key": "state"}}, "new", "in")
    for chain in ("filter-forward", "filter-output", "filter-input"):
        cmds.append(_rule(chain, ct_new, {"vmap": {"key": {"concat": [DADDR, L4, DPORT]},
                                                   "data": "@no-endpoint-services"}}))
    cmds.append(_rule("filter-input", ct_new, _match(local, "local"),
                      {"vmap": {"key": {"concat": [L4, DPORT]}, "data": "@no-endpoint-nodeports"}}))
    return cmds


def _service(sp: ServicePort, pod_subnet: str, node: str) -> list[dict]:
    """One service port: its map entries, its cluster chain and, with
    externalTrafficPolicy Local, an external chain that keeps the client's
    address and uses only this node's endpoints (pods still get the cluster
    chain, as kube-proxy does)."""
    cmds: list[dict] = []
    externals = [*sp.external_ips, *sp.lb_ips]
    if not sp.endpoints:
        for ip in [sp.cluster_ip, *externals]:
            cmds.append(_cmd("add", "element", name="no-endpoint-services",
                             elem=[[{"concat": [ip, sp.protocol, sp.port]}, {"goto": {"target": "reject-chain"}}]]))
        if sp.node_port:
            cmds.append(_cmd("add", "element", name="no-endpoint-nodeports",
                             elem=[[{"concat": [sp.protocol, sp.node_port]}, {"goto": {"target": "reject-chain"}}]]))
        return cmds
    local = tuple(e for e in sp.endpoints if e.node == node)
    cluster_eps = local if sp.itp_local else sp.endpoints
    ext_chain = "ext-" + sp.chain[4:] if sp.etp_local else sp.chain
    cmds.append(_cmd("add", "chain", name=sp.chain))
    if sp.etp_local:
        cmds.append(_cmd("add", "chain", name=ext_chain))  # before the map entries that name it
    cmds.append(_cmd("add", "element", name="service-ips",
                     elem=[[{"concat": [sp.cluster_ip, sp.protocol, sp.port]}, {"goto": {"target": sp.chain}}]]))
    fw_chain = "fw-" + sp.chain[4:]
    if sp.lb_ips and sp.source_ranges:
        # loadBalancerSourceRanges: only these sources reach the LoadBalancer IP.
        cmds.append(_cmd("add", "chain", name=fw_chain))
        ranges = {"set": [_prefix(r) for r in sp.source_ranges]}
        cmds.append(_rule(fw_chain, _match(SADDR, ranges, "!="), {"drop": None}))
        cmds.append(_rule(fw_chain, {"goto": {"target": ext_chain}}))
    for ip in externals:
        target = fw_chain if ip in sp.lb_ips and sp.source_ranges else ext_chain
        cmds.append(_cmd("add", "element", name="service-ips",
                         elem=[[{"concat": [ip, sp.protocol, sp.port]}, {"goto": {"target": target}}]]))
    if sp.node_port:
        cmds.append(_cmd("add", "element", name="service-nodeports",
                         elem=[[{"concat": [sp.protocol, sp.node_port]}, {"goto": {"target": ext_chain}}]]))
    for ep in sp.endpoints:
        ep_chain = _ep_chain(sp, ep)
        cmds.append(_cmd("add", "chain", name=ep_chain))
        if sp.affinity_seconds:
            # sessionAffinity ClientIP, as kube-proxy's nftables mode: a timed set per endpoint.
            cmds.append(_cmd("add", "set", name=_affinity_set(sp, ep), type="ipv4_addr",
                             flags=["timeout"], timeout=sp.affinity_seconds))
            cmds.append(_rule(ep_chain, {"set": {"op": "update", "elem": {"elem": {"val": SADDR,
                                                                                    "timeout": sp.affinity_seconds}},
                                                 "set": "@" + _affinity_set(sp, ep)}}))
        cmds.append(_rule(ep_chain, _match(SADDR, ep.ip), {"jump": {"target": "mark-for-masquerade"}}))  # hairpin
        cmds.append(_rule(ep_chain, _match(L4, sp.protocol), {"dnat": {"addr": ep.ip, "port": ep.port}}))
    # From outside the pod network (nodes, ext, NodePort): masquerade, as kube-proxy does.
    cmds.append(_rule(sp.chain, _match(SADDR, _prefix(pod_subnet), "!="), {"jump": {"target": "mark-for-masquerade"}}))
    cmds += _pick(sp, sp.chain, cluster_eps)
    if sp.etp_local:
        cmds.append(_rule(ext_chain, _match(SADDR, _prefix(pod_subnet)), {"goto": {"target": sp.chain}}))
        cmds.append(_rule(ext_chain, _match({"fib": {"result": "type", "flags": ["saddr"]}}, "local"),
                          {"mangle": {"key": MARK, "value": {"|": [MARK, MASQ_MARK]}}}, {"goto": {"target": sp.chain}}))
        cmds += _pick(sp, ext_chain, local)
    return cmds


def _ep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return "sep-" + _hash(f"{sp.chain}/{ep.ip}:{ep.port}")


def _affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    return "affinity-" + _ep_chain(sp, ep)[4:]


def _pick(sp: ServicePort, chain: str, eps: tuple[Endpoint, ...]) -> list[dict]:
    """numgen over the endpoints (after the affinity sets, when ClientIP
    affinity is on), or drop when a Local policy leaves none here."""
    if not eps:
        return [_rule(chain, {"drop": None})]
    out = []
    if sp.affinity_seconds:
        for e in eps:
            out.append(_rule(chain, _match(SADDR, "@" + _affinity_set(sp, e)),
                             {"goto": {"target": _ep_chain(sp, e)}}))
    return out + [_rule(chain, {"vmap": {"key": {"numgen": {"mode": "random", "mod": len(eps)}},
                                  "data": {"set": [[i, {"goto": {"target": _ep_chain(sp, e)}}]
                                                   for i, e in enumerate(eps)]}}})]
