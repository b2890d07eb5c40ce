"""A minimal rtnetlink client for the node agent's own netlink work.

First for the per-pod hot path (CNI ADD/DEL): each pyroute2 request costs
about a millisecond of Python; a pod attachment needs six, and the reference
plugins do the whole ADD in a few milliseconds of Go. Then for the rest of
what a node agent does on every node (the bridge, the VXLAN device, routes,
neighbour and FDB entries to its peers, the CNI GC's port list): importing
pyroute2 loads some 380 modules (NDB, sqlite3, asyncio, unittest.mock) and
costs each agent about 11 MB of resident memory for a dozen requests. These
are the same netlink messages, packed with struct: one socket, no event loop.
pyroute2 stays for rarer paths (CNI CHECK, LoadBalancer addresses, links).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import NamedTuple

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_DELROUTE = 20, 22, 24, 25
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLM_F_REPLACE, NLM_F_DUMP = 0x100, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO, IFLA_LINKINFO = 1, 3, 4, 10, 12, 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_OIF = 5, 4
RTA_DST = 1
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 3, 4, 7
IFLA_VXLAN_PORT, IFLA_VXLAN_UDP_CSUM = 15, 18
NDA_DST, NDA_LLADDR = 1, 2
NTF_SELF, NUD_PERMANENT = 0x2, 0x80
RTNH_F_ONLINK = 4
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
IFF_UP = 1
AF_BRIDGE = 7


class RtnlError(OSError):
    @property
    def code(self) -> int:
        """The errno, under the name pyroute2's NetlinkError gives it."""
        return self.errno


class Link(NamedTuple):
    index: int
    name: str
    flags: int
    mac: str | None
    kind: str | None
    master: int | None


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return struct.pack("BxHiII", family, 0, index, flags, change)


def _parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes from offset on, by type (the first of each kind)."""
    out: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        out.setdefault(kind & NLA_TYPE_MASK, data[offset + 4: offset + length])
        offset += (length + 3) & ~3
    return out


def _mac_text(raw: bytes | None) -> str | None:
    return ":".join(f"{b:02x}" for b in raw) if raw else None


def _link(msg: bytes) -> Link:
    _family, _type, index, flags, _change = struct.unpack_from("BxHiII", msg)
    attrs = _parse_attrs(msg, 16)
    kind = None
    if IFLA_LINKINFO in attrs:
        raw = _parse_attrs(attrs[IFLA_LINKINFO]).get(IFLA_INFO_KIND)
        kind = raw.rstrip(b"\0").decode() if raw else None
    master = struct.unpack("I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else None
    return Link(index, attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(), flags, _mac_text(attrs.get(IFLA_ADDRESS)),
                kind, master)


def _rtmsg(dst: str, table: int = RT_TABLE_MAIN, protocol: int = RTPROT_BOOT, scope: int = RT_SCOPE_UNIVERSE,
           rtype: int = RTN_UNICAST, flags: int = 0) -> bytes:
    net, _, plen = dst.partition("/")
    prefixlen = int(plen) if plen else 32
    return struct.pack("BBBBBBBBI", socket.AF_INET, prefixlen, 0, 0, table, protocol, scope, rtype, flags) \
        + _attr(RTA_DST, socket.inet_aton(net))


def _ndmsg(family: int, index: int, state: int, flags: int) -> bytes:
    return struct.pack("BxxxiHBB", family, index, state, flags, 0)


class Rtnl:
    """One NETLINK_ROUTE socket in the namespace the calling thread is in."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> bytes:
        """Send one request with NLM_F_ACK; return the first non-error reply (or b"")."""
        self.seq += 1
        header = struct.pack("IHHII", 16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        self.sock.send(header + body)
        reply = b""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, rtype, _flags, seq, _pid = struct.unpack_from("IHHII", data, offset)
                if seq == self.seq:
                    if rtype == NLMSG_ERROR:
                        code = struct.unpack_from("i", data, offset + 16)[0]
                        if code:
                            raise RtnlError(-code, os.strerror(-code))
                        return reply
                    reply = data[offset + 16: offset + length]
                offset += (length + 3) & ~3

    def dump(self, msg_type: int, body: bytes) -> list[bytes]:
        """A dump request: every reply message's body, until NLMSG_DONE."""
        self.seq += 1
        header = struct.pack("IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0)
        self.sock.send(header + body)
        out = []
        while True:
            data = self.sock.recv(1 << 17)
            offset = 0
            while offset < len(data):
                length, rtype, _flags, seq, _pid = struct.unpack_from("IHHII", data, offset)
                if seq == self.seq:
                    if rtype == NLMSG_DONE:
                        return out
                    if rtype == NLMSG_ERROR:
                        code = struct.unpack_from("i", data, offset + 16)[0]
                        if code:
                            raise RtnlError(-code, os.strerror(-code))
                        return out
                    out.append(data[offset + 16: offset + length])
                offset += (length + 3) & ~3

    # -- links -------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        link = self.link(name)
        return link.index if link is not None else None

    def link(self, name: str) -> Link | None:
        try:
            reply = self.request(RTM_GETLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0"))
        except RtnlError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link(reply) if reply else None

    def links(self) -> list[Link]:
        return [_link(msg) for msg in self.dump(RTM_GETLINK, _ifinfo())]

    def add_link(self, name: str, kind: str, mtu: int, mac: str | None = None, info_data: bytes = b"") -> None:
        """A new link (EEXIST when there is one of that name), down."""
        attrs = _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu))
        if mac:
            attrs += _attr(IFLA_ADDRESS, _mac(mac))
        info = _attr(IFLA_INFO_KIND, kind.encode())
        if info_data:
            info += _nest(IFLA_INFO_DATA, info_data)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attrs + _nest(IFLA_LINKINFO, info))

    def add_vxlan(self, name: str, vni: int, port: int, local: str, uplink: int | None, mtu: int) -> None:
        """A VXLAN device without learning or outer UDP checksums (the FDB is programmed per peer)."""
        data = _attr(IFLA_VXLAN_ID, struct.pack("I", vni)) + _attr(IFLA_VXLAN_PORT, struct.pack("!H", port)) \
            + _attr(IFLA_VXLAN_LOCAL, socket.inet_aton(local)) + _attr(IFLA_VXLAN_LEARNING, b"\0") \
            + _attr(IFLA_VXLAN_UDP_CSUM, b"\0")
        if uplink is not None:
            data += _attr(IFLA_VXLAN_LINK, struct.pack("I", uplink))
        self.add_link(name, "vxlan", mtu, info_data=data)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int, mac: str, peer_mac: str,
                 master: int | None = None, up: bool = True) -> None:
        peer_msg = _ifinfo() + _attr(IFLA_IFNAME, peer.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
            + _attr(IFLA_ADDRESS, _mac(peer_mac)) + _attr(IFLA_NET_NS_FD, struct.pack("I", peer_netns_fd))
        attrs = _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_MTU, struct.pack("I", mtu)) \
            + _attr(IFLA_ADDRESS, _mac(mac)) \
            + _nest(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth"), _nest(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg)))
        if master is not None:
            attrs += _attr(IFLA_MASTER, struct.pack("I", master))
        flags = IFF_UP if up else 0
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo(flags=flags, change=flags) + attrs)

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index=index, flags=IFF_UP, change=IFF_UP))

    def set_hairpin(self, index: int) -> None:
        self.request(RTM_SETLINK, 0, _ifinfo(index=index, family=AF_BRIDGE)
                     + _nest(IFLA_PROTINFO, _attr(IFLA_BRPORT_MODE, b"\x01")))

    def delete_link(self, name: str) -> bool:
        """True if it was there."""
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0"))
            return True
        except RtnlError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    # -- addresses and routes ------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        raw = socket.inet_aton(address)
        body = struct.pack("BBBBI", socket.AF_INET, prefixlen, 0, 0, index) + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, index: int, gateway: str) -> None:
        body = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0) \
            + _attr(RTA_GATEWAY, socket.inet_aton(gateway)) + _attr(RTA_OIF, struct.pack("I", index))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def addresses(self, index: int) -> set[str]:
        """The IPv4 addresses on a link."""
        out = set()
        for msg in self.dump(RTM_GETADDR, struct.pack("BBBBI", socket.AF_INET, 0, 0, 0, 0)):
            family, _plen, _flags, _scope, idx = struct.unpack_from("BBBBI", msg)
            if family == socket.AF_INET and idx == index:
                attrs = _parse_attrs(msg, 8)
                raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
                if raw:
                    out.add(socket.inet_ntoa(raw))
        return out

    def replace_route(self, dst: str, gateway: str | None = None, oif: int | None = None,
                      scope: int = RT_SCOPE_UNIVERSE, onlink: bool = False) -> None:
        """ip route replace DST [via GATEWAY] [dev OIF] [scope] [onlink], in the main table."""
        body = _rtmsg(dst, scope=scope, flags=RTNH_F_ONLINK if onlink else 0)
        if gateway:
            body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
        if oif is not None:
            body += _attr(RTA_OIF, struct.pack("I", oif))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)

    def delete_route(self, dst: str) -> None:
        """ip route del DST: whatever its gateway, device, scope or protocol."""
        self.request(RTM_DELROUTE, 0, _rtmsg(dst, protocol=0, scope=RT_SCOPE_NOWHERE, rtype=0))

    # -- neighbours and forwarding entries ------------------------------------------

    def _neigh(self, msg_type: int, flags: int, family: int, index: int, ntf: int, ip: str, mac: str | None) -> None:
        body = _ndmsg(family, index, NUD_PERMANENT, ntf) + _attr(NDA_DST, socket.inet_aton(ip))
        if mac:
            body += _attr(NDA_LLADDR, _mac(mac))
        self.request(msg_type, flags, body)

    def replace_neigh(self, index: int, ip: str, mac: str) -> None:
        """A permanent ARP entry: ip neigh replace IP lladdr MAC dev INDEX nud permanent."""
        self._neigh(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, socket.AF_INET, index, 0, ip, mac)

    def delete_neigh(self, index: int, ip: str) -> None:
        self._neigh(RTM_DELNEIGH, 0, socket.AF_INET, index, 0, ip, None)

    def replace_fdb(self, index: int, mac: str, dst: str) -> None:
        """bridge fdb replace MAC dev INDEX dst DST self permanent: where a VXLAN device sends MAC's frames."""
        body = _ndmsg(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF) + _attr(NDA_LLADDR, _mac(mac)) \
            + _attr(NDA_DST, socket.inet_aton(dst))
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)

    def delete_fdb(self, index: int, mac: str, dst: str) -> None:
        body = _ndmsg(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF) + _attr(NDA_LLADDR, _mac(mac)) \
            + _attr(NDA_DST, socket.inet_aton(dst))
        self.request(RTM_DELNEIGH, 0, body)
