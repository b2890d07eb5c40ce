"""The LAN between nodes: a bridge in the fabric namespace and one veth per host.

Every link is created inside a namespace knet owns (the fabric end in the
fabric namespace, the other end straight into the host's namespace), so no
interface ever appears in the host's root namespace, not even for a moment.
"""

from __future__ import annotations

from pyroute2 import IPRoute

LAN_BRIDGE = "knet-lan"


def build_lan(fabric: str, hosts: list[tuple[str, str, str]], prefixlen: int, mtu: int = 1500) -> None:
    """hosts: (netns, fabric-side link name, ip). Each gets eth0 on the bridge."""
    with IPRoute(netns=fabric) as ipr:
        ipr.link("add", ifname=LAN_BRIDGE, kind="bridge", mtu=mtu)
        bridge = ipr.link_lookup(ifname=LAN_BRIDGE)[0]
        for netns, port, _ip in hosts:
            ipr.link("add", ifname=port, kind="veth", mtu=mtu, peer={"ifname": "eth0", "net_ns_fd": netns})
            idx = ipr.link_lookup(ifname=port)[0]
            ipr.link("set", index=idx, master=bridge, state="up")
        ipr.link("set", index=bridge, state="up")
    for netns, _port, ip in hosts:
        with IPRoute(netns=netns) as ipr:
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
            ipr.link("set", index=idx, state="up")
