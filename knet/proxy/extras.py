"""The proxy's kernel work beside its nftables table: the healthCheckNodePort
servers, LoadBalancer IPs announced on the LAN, and UDP conntrack entries
cleared. `NodeExtras` does it on a node; the sync loop takes any object of
the same shape, so its tests can record instead of touching a network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

log = logging.getLogger("knet.proxy")


class Extras(Protocol):
    def announce(self, want: set[str], have: set[str]) -> None:
        """Answer for the LoadBalancer IPs `want` and no longer for the rest of `have` (blocking)."""

    def clear_udp_conntrack(self, pairs: set[tuple[str, str]]) -> None:
        """Forget the UDP flows from these (Service IP, endpoint IP) pairs (blocking)."""

    async def serve_health(self, port: int, local_endpoints: Callable[[], int]) -> None:
        """Serve a healthCheckNodePort until cancelled."""


class NodeExtras:
    def announce(self, want: set[str], have: set[str]) -> None:
        announce(want, have)

    def clear_udp_conntrack(self, pairs: set[tuple[str, str]]) -> None:
        clear_udp_conntrack(pairs)

    async def serve_health(self, port: int, local_endpoints: Callable[[], int]) -> None:
        await serve_health(port, local_endpoints)


async def serve_health(port: int, local_endpoints: Callable[[], int]) -> None:
    """healthCheckNodePort for externalTrafficPolicy: Local, as kube-proxy
    serves it: 200 while this node has a local endpoint, 503 when not."""
    async def one(stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(2):
                await stream.receive_some(4096)
            n = local_endpoints()
            body = f'{{"service": {{}}, "localEndpoints": {n}}}'.encode()
            status = b"200 OK" if n else b"503 Service Unavailable"
            await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    try:
        await trio.serve_tcp(one, port)
    except OSError as e:
        log.error("healthCheckNodePort %d: %s", port, e)


def announce(want: set[str], have: set[str]) -> None:
    """Own LoadBalancer IPs on the LAN as /32s on eth0, so this node answers
    ARP for them (MetalLB's layer-2 mode); the proxy's prerouting DNAT takes
    the traffic before local delivery."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        for ip in have - want:
            try:
                ipr.addr("del", index=idx, address=ip, prefixlen=32)
            except NetlinkError:
                pass
        for ip in want - have:
            try:
                ipr.addr("add", index=idx, address=ip, prefixlen=32)
            except NetlinkError as e:
                if e.code != 17:
                    raise
    for ip in want - have:
        _garp(ip)


def _garp(ip: str) -> None:
    """Tell the LAN at once (gratuitous ARP), as MetalLB does on failover."""
    import shutil
    import subprocess

    if shutil.which("arping"):
        subprocess.run(["arping", "-U", "-c", "1", "-I", "eth0", ip], capture_output=True, timeout=5)


def clear_udp_conntrack(pairs: set[tuple[str, str]]) -> None:
    """UDP has no connection to end: without this, a client that keeps its
    source port stays stuck to the gone endpoint until the entry times out
    (kube-proxy deletes these entries too). conntrack(8) talks netlink."""
    import shutil
    import subprocess

    if not shutil.which("conntrack"):
        log.warning("conntrack(8) missing: stale UDP entries stay until they time out")
        return
    for service_ip, endpoint_ip in sorted(pairs):
        subprocess.run(["conntrack", "-D", "-p", "udp", "--orig-dst", service_ip, "--reply-src", endpoint_ip],
                       capture_output=True, timeout=5)
