"""A minimal rtnetlink client for the per-pod hot path (CNI ADD/DEL).

pyroute2 is the right tool for everything else, but each of its requests
costs about a millisecond of Python; a pod attachment needs six, and the
reference plugins do the whole ADD in a few milliseconds of Go. These are the
same netlink messages, packed with struct: one socket, no event loop.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_NEWROUTE = 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO, IFLA_LINKINFO = 1, 3, 4, 10, 12, 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_OIF = 5, 4
NLA_F_NESTED = 0x8000
IFF_UP = 1
AF_BRIDGE = 7


class RtnlError(OSError):
    pass


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return struct.pack("BxHiII", family, 0, index, flags, change)


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

    # -- links -------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        try:
            reply = self.request(RTM_GETLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, name.encode() + b"\0"))
        except RtnlError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return struct.unpack_from("BxHiII", reply)[2] if reply else None

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
