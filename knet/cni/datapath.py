"""The kernel side of a pod attachment: the node's bridge, the pod's veth
pair, its address and default route.

It runs in the node's network namespace (the CNI caller's); the pod end is
created straight into the pod's namespace, which is entered only through a
netlink socket opened there, so the calling thread never changes namespace
for long.

ADD, DEL and GC use knet.net.rtnl's hand-made messages: they run inside every
node agent, where importing pyroute2 would cost some 11 MB of memory each.
Only CHECK, rare and read-only, still reads the kernel through pyroute2.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import threading
from contextlib import contextmanager

from knet.net import ns
from knet.net.rtnl import Rtnl, RtnlError

NetlinkError = RtnlError  # what a failed request raises here (.code is its errno)

_bridge_lock = threading.Lock()
EEXIST, ENODEV, ENOENT, ESRCH = 17, 19, 2, 3


def host_veth_name(container_id: str, ifname: str) -> str:
    return "veth" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:8]


@contextmanager
def _socket_in(make, netns_path: str | None):
    """A socket made by `make()` in the current namespace, or opened inside
    another one (a netlink socket stays bound to the namespace it was opened in)."""
    if netns_path:
        with ns.entered(net=netns_path):
            sock = make()
    else:
        sock = make()
    try:
        yield sock
    finally:
        sock.close()


def netlink(netns_path: str | None = None):
    """A netlink socket in the current namespace, or opened inside another one."""
    return _socket_in(Rtnl, netns_path)


def _iproute(netns_path: str | None = None):
    """pyroute2, for CHECK's reads only (see the module docstring)."""
    from pyroute2 import IPRoute

    return _socket_in(IPRoute, netns_path)


def _index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


_bridges: dict[tuple[int | None, str], tuple[int, str]] = {}


def _random_mac() -> str:
    """A locally administered unicast MAC, chosen here so no netlink read is needed for the result."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def ensure_bridge(rtnl: Rtnl, name: str, gateway: str | None, prefixlen: int, mtu: int) -> tuple[int, str]:
    """The node bridge holding the gateway address; created once, shared by
    pods, and remembered per namespace so an ADD costs no lookups for it."""
    key = (ns.inode("/proc/thread-self/ns/net"), name)
    with _bridge_lock:
        if key in _bridges:
            return _bridges[key]
        link = rtnl.link(name)
        if link is None:
            try:
                rtnl.add_link(name, "bridge", mtu, mac=_random_mac())
            except RtnlError as e:
                if e.errno != EEXIST:
                    raise
            link = rtnl.link(name)
        if link is None or link.kind != "bridge":
            raise RuntimeError(f"{name} exists but is not a bridge")
        if gateway and gateway not in rtnl.addresses(link.index):
            try:
                rtnl.add_address(link.index, gateway, prefixlen)
            except RtnlError as e:
                if e.errno != EEXIST:
                    raise
        if not link.flags & 1:
            rtnl.set_up(link.index)
        _bridges[key] = (link.index, link.mac)
        return _bridges[key]


def forget_bridge(name: str) -> None:
    with _bridge_lock:
        _bridges.pop((ns.inode("/proc/thread-self/ns/net"), name), None)


def add_pod_interface(netns_path: str, container_id: str, ifname: str, bridge_idx: int, address: str,
                      prefixlen: int, gateway: str, mtu: int, hairpin: bool = True) -> dict:
    """veth pair: host end on the bridge (hairpin on), pod end `ifname` with the
    address and a default route via the gateway. Raw rtnetlink (knet.net.rtnl):
    six small requests, the MACs chosen here, the pair created enslaved and up."""
    host = host_veth_name(container_id, ifname)
    host_mac, pod_mac = _random_mac(), _random_mac()
    pod_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Rtnl() as node:
            for attempt in (0, 1):
                try:
                    node.add_veth(host, ifname, pod_fd, mtu, host_mac, pod_mac, master=bridge_idx)
                    break
                except RtnlError as e:
                    if e.errno == ENODEV:
                        raise NetlinkError(ENODEV, "bridge is gone") from None
                    if e.errno != EEXIST or attempt:
                        raise
                    with ns.entered(net=netns_path):
                        with Rtnl() as probe:
                            if probe.link_index(ifname) is not None:
                                raise FileExistsError(
                                    f"container veth name provided ({ifname}) already exists") from None
                    node.delete_link(host)  # a stale host end from an attachment that was never deleted
            if hairpin:
                node.set_hairpin(node.link_index(host))
        with ns.entered(net=netns_path):
            with Rtnl() as pod:
                idx = pod.link_index(ifname)
                pod.add_address(idx, address, prefixlen)
                pod.set_up(idx)
                pod.add_default_route(idx, gateway)
    finally:
        os.close(pod_fd)
    return {"host": host, "host_mac": host_mac, "pod_mac": pod_mac}


def del_pod_interface(netns_path: str | None, container_id: str, ifname: str) -> None:
    """Remove the pair, quietly when it is already gone (DEL is idempotent)."""
    host = host_veth_name(container_id, ifname)
    with Rtnl() as node:
        if node.delete_link(host):
            return
    if netns_path:
        try:
            with ns.entered(net=netns_path):
                with Rtnl() as pod:
                    pod.delete_link(ifname)
        except OSError:
            pass  # the namespace is gone: so is the interface


def check_pod_interface(netns_path: str, container_id: str, ifname: str, bridge: str, address: str,
                        gateway: str) -> list[str]:
    """What is missing or wrong, in words (empty when the attachment is intact)."""
    problems = []
    host = host_veth_name(container_id, ifname)
    with _iproute() as ipr:
        idx = _index(ipr, host)
        bridge_idx = _index(ipr, bridge)
        if bridge_idx is None:
            problems.append(f"bridge {bridge} is missing")
        if idx is None:
            problems.append(f"host interface {host} is missing")
        elif ipr.get_links(idx)[0].get_attr("IFLA_MASTER") != bridge_idx:
            problems.append(f"host interface {host} is not attached to {bridge}")
    try:
        with _iproute(netns_path) as pod:
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
    with Rtnl() as rtnl:
        idx = rtnl.link_index(bridge)
        if idx is None:
            return []
        return [link.name for link in rtnl.links() if link.master == idx]


def delete_link(name: str) -> None:
    with Rtnl() as rtnl:
        rtnl.delete_link(name)
