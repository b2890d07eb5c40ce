"""knet.net.rtnl's message packing and parsing, byte for byte (no socket, no root).
The requests themselves run against the kernel in tests/integration/test_networking.py
(VXLAN device, peer routes, neighbour and FDB entries, both backends) and
test_cni_plugin.py (the bridge, ADD/DEL/GC)."""

from __future__ import annotations

import socket
import struct

from knet.net import rtnl


def test_a_link_message_reads_back_as_what_was_packed():
    msg = rtnl._ifinfo(index=7, flags=rtnl.IFF_UP) \
        + rtnl._attr(rtnl.IFLA_IFNAME, b"knet.1\0") \
        + rtnl._attr(rtnl.IFLA_ADDRESS, rtnl._mac("02:aa:bb:cc:dd:0e")) \
        + rtnl._attr(rtnl.IFLA_MASTER, struct.pack("I", 3)) \
        + rtnl._nest(rtnl.IFLA_LINKINFO, rtnl._attr(rtnl.IFLA_INFO_KIND, b"vxlan\0"),
                     rtnl._nest(rtnl.IFLA_INFO_DATA, rtnl._attr(rtnl.IFLA_VXLAN_ID, struct.pack("I", 1))))
    link = rtnl._link(msg)
    assert link == rtnl.Link(index=7, name="knet.1", flags=rtnl.IFF_UP, mac="02:aa:bb:cc:dd:0e", kind="vxlan",
                             master=3)


def test_a_link_without_kind_master_or_address():
    link = rtnl._link(rtnl._ifinfo(index=1) + rtnl._attr(rtnl.IFLA_IFNAME, b"lo\0"))
    assert (link.name, link.kind, link.master, link.mac) == ("lo", None, None, None)


def test_attributes_are_aligned_and_the_first_of_a_kind_wins():
    data = rtnl._attr(1, b"abc") + rtnl._attr(2, b"x") + rtnl._attr(1, b"later")
    assert len(rtnl._attr(1, b"abc")) == 8  # 4 header + 3 data, padded to 4
    assert rtnl._parse_attrs(data) == {1: b"abc", 2: b"x"}


def test_route_message_main_table_prefix_and_onlink():
    body = rtnl._rtmsg("10.244.2.0/24", scope=rtnl.RT_SCOPE_LINK, flags=rtnl.RTNH_F_ONLINK)
    family, dst_len, src_len, tos, table, proto, scope, rtype, flags = struct.unpack_from("BBBBBBBBI", body)
    assert (family, dst_len, src_len, tos) == (socket.AF_INET, 24, 0, 0)
    assert (table, proto, scope, rtype, flags) == (254, rtnl.RTPROT_BOOT, 253, rtnl.RTN_UNICAST, 4)
    assert rtnl._parse_attrs(body, 12) == {rtnl.RTA_DST: socket.inet_aton("10.244.2.0")}
    assert struct.unpack_from("BB", rtnl._rtmsg("10.96.0.1"))[1] == 32  # a bare address is a /32


def test_a_route_delete_matches_any_protocol_scope_and_type():
    body = rtnl._rtmsg("10.244.2.0/24", protocol=0, scope=rtnl.RT_SCOPE_NOWHERE, rtype=0)
    assert struct.unpack_from("BBBBBBBB", body)[4:] == (254, 0, 255, 0)


def test_neighbour_message_layout():
    body = rtnl._ndmsg(rtnl.AF_BRIDGE, 9, rtnl.NUD_PERMANENT, rtnl.NTF_SELF)
    assert len(body) == 12  # struct ndmsg
    assert struct.unpack("BxxxiHBB", body) == (7, 9, 0x80, 0x2, 0)
