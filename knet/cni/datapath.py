"""The kernel side of a pod attachment (pyroute2): the node's bridge, the
pod's veth pair, its address and default route.

It runs in the node's network namespace (the CNI caller's); the pod end is
created straight into the pod's namespace, which is entered only through a
netlink socket opened there, so the calling thread never changes namespace
for long.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import threading
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from knet.net import ns

_bridge_lock = threading.Lock()
EEXIST, ENODEV, ENOENT, ESRCH = 17, 19, 2, 3


def host_veth_name(container_id: str, ifname: str) -> str:
    return "veth" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:8]


@contextmanager
def netlink(netns_path: str | None = None):
    """A netlink socket in the current namespace, or opened inside another one."""
    if netns_path:
        with ns.entered(net=netns_path):
            ipr = IPRoute()
    else:
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _mac(ipr: IPRoute, index: int) -> str:
    return ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")


_bridges: dict[tuple[int | None, str], tuple[int, str]] = {}


def _random_mac() -> str:
    """A locally administered unicast MAC, chosen here so no netlink read is needed for the result."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def ensure_bridge(ipr: IPRoute, name: str, gateway: str | None, prefixlen: int, mtu: int) -> tuple[int, str]:
    """The node bridge holding the gateway address; created once, shared by
    pods, and remembered per namespace so an ADD costs no lookups for it."""
    key = (ns.inode("/proc/thread-self/ns/net"), name)
    with _bridge_lock:
        if key in _bridges:
            return _bridges[key]
        idx = _index(ipr, name)
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=_random_mac())
            except NetlinkError as e:
                if e.code != EEXIST:
                    raise
            idx = _index(ipr, name)
        link = ipr.get_links(idx)[0]
        info = link.get_attr("IFLA_LINKINFO")
        if not info or info.get_attr("IFLA_INFO_KIND") != "bridge":
            raise RuntimeError(f"{name} exists but is not a bridge")
        if gateway:
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx, family=2)}
            if gateway not in have:
                try:
                    ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
                except NetlinkError as e:
                    if e.code != EEXIST:
                        raise
        if not link["flags"] & 1:
            ipr.link("set", index=idx, state="up")
        _bridges[key] = (idx, link.get_attr("IFLA_ADDRESS"))
        return _bridges[key]


def forget_bridge(name: str) -> None:
    with _bridge_lock:
        _bridges.pop((ns.inode("/proc/thread-self/ns/net"), name), None)


def add_pod_interface(netns_path: str, container_id: str, ifname: str, bridge_idx: int, address: str,
                      prefixlen: int, gateway: str, mtu: int, hairpin: bool = True) -> dict:
    """veth pair: host end on the bridge (hairpin on), pod end `ifname` with the
    address and a default route via the gateway. Six netlink requests: the
    MACs are chosen here and the pair is created already enslaved and up."""
    host = host_veth_name(container_id, ifname)
    host_mac, pod_mac = _random_mac(), _random_mac()
    with netlink() as ipr, netlink(netns_path) as pod:
        for attempt in (0, 1):
            try:
                ipr.link("add", ifname=host, kind="veth", mtu=mtu, address=host_mac, master=bridge_idx,
                         state="up", peer={"ifname": ifname, "net_ns_fd": netns_path, "mtu": mtu,
                                           "address": pod_mac})
                break
            except NetlinkError as e:
                if e.code != EEXIST or attempt:
                    raise
                if _index(pod, ifname) is not None:
                    raise FileExistsError(f"container veth name provided ({ifname}) already exists") from None
                ipr.link("del", ifname=host)  # a stale host end from an attachment that was never deleted
        if hairpin:
            ipr.brport("set", ifname=host, hairpin_mode=1)
        pod_idx = _index(pod, ifname)
        pod.addr("add", index=pod_idx, address=address, prefixlen=prefixlen)
        pod.link("set", index=pod_idx, state="up")
        pod.route("add", dst="0.0.0.0/0", gateway=gateway, oif=pod_idx)
        return {"host": host, "host_mac": host_mac, "pod_mac": pod_mac}


def del_pod_interface(netns_path: str | None, container_id: str, ifname: str) -> None:
    """Remove the pair, quietly when it is already gone (DEL is idempotent)."""
    host = host_veth_name(container_id, ifname)
    with netlink() as ipr:
        try:
            ipr.link("del", ifname=host)
            return
        except NetlinkError as e:
            if e.code not in (ENODEV, ENOENT):
                raise
    if netns_path:
        try:
            with netlink(netns_path) as pod:
                idx = _index(pod, ifname)
                if idx is not None:
                    pod.link("del", index=idx)
        except (OSError, NetlinkError):
            pass  # the namespace is gone: so is the interface


def check_pod_interface(netns_path: str, container_id: str, ifname: str, bridge: str, address: str,
                        gateway: str) -> list[str]:
    """What is missing or wrong, in words (empty when the attachment is intact)."""
    problems = []
    host = host_veth_name(container_id, ifname)
    with netlink() as ipr:
        idx = _index(ipr, host)
        bridge_idx = _index(ipr, bridge)
        if bridge_idx is None:
            problems.append(f"bridge {bridge} is missing")
        if idx is None:
            problems.append(f"host interface {host} is missing")
        elif ipr.get_links(idx)[0].get_attr("IFLA_MASTER") != bridge_idx:
            problems.append(f"host interface {host} is not attached to {bridge}")
    try:
        with netlink(netns_path) as pod:
            pidx = _index(pod, ifname)
            if pidx is None:
                return problems + [f"interface {ifname} is missing in {netns_path}"]
            ip = str(ipaddress.ip_interface(address).ip)
            have = {a.get_attr("IFA_ADDRESS") for a in pod.get_addr(index=pidx, family=2)}
            if ip not in have:
                problems.append(f"address {address} is missing on {ifname}")
            gws = {r.get_attr("RTA_GATEWAY") for r in pod.get_routes(family=2) if r["dst_len"] == 0}
            if gateway not in gws:
                problems.append(f"default route via {gateway} is missing")
    except OSError as e:
        problems.append(f"cannot enter {netns_path}: {e}")
    return problems


def bridge_ports(bridge: str) -> list[str]:
    with netlink() as ipr:
        idx = _index(ipr, bridge)
        if idx is None:
            return []
        return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links() if link.get_attr("IFLA_MASTER") == idx]


def delete_link(name: str) -> None:
    with netlink() as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            ipr.link("del", index=idx)
