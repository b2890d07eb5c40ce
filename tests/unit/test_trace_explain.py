"""knet trace's pure part: the kernel's trace events decoded, and recorded
captures (tests/unit/trace_fixtures/, made by knet.trace.run(..., save=) on a
live cluster: the raw netlink reads of every namespace, the rule listings,
routes and interfaces they name) explained hop by hop."""

from __future__ import annotations

import json
import re
import socket
import struct
from pathlib import Path

import pytest

from knet.trace import events
from knet.trace.explain import Capture, explain, wanted
from knet.trace.session import TraceError, _port, _service_port, match_rules

FIXTURES = Path(__file__).parent / "trace_fixtures"


def capture(name: str) -> Capture:
    return Capture.from_json(json.loads((FIXTURES / f"{name}.json").read_text()))


# -- decoding ------------------------------------------------------------------------------------


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _message(*attrs: bytes, family: int = 2) -> bytes:
    body = struct.pack("BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("IHHII", 16 + len(body), events.MSG_TYPE, 0, 0, 0) + body


def _ip_tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> tuple[bytes, bytes]:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1234, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 1000, 0, 0)
    return ip, tcp


def test_a_trace_event_is_decoded_from_its_netlink_attributes():
    ip, tcp = _ip_tcp("10.244.1.3", "10.96.0.20", 61234, 80, 0x02)
    verdict = _attr(1, struct.pack(">i", -4)) + _attr(2, b"svc-abc\0")
    msg = _message(_attr(events.TABLE, b"knet-proxy\0"), _attr(events.CHAIN, b"services\0"),
                   _attr(events.RULE_HANDLE, struct.pack(">Q", 26)), _attr(events.TYPE, struct.pack(">I", 3)),
                   _attr(events.VERDICT | 0x8000, verdict), _attr(events.ID, struct.pack(">I", 7)),
                   _attr(events.NETWORK_HEADER, ip), _attr(events.TRANSPORT_HEADER, tcp),
                   _attr(events.IIF, struct.pack(">I", 4)))
    other = struct.pack("IHHII", 20, 0x0A00, 0, 0, 0) + b"\0" * 4  # another nf_tables message: skipped
    (e,) = events.decode(msg + other)
    assert (e.family, e.table, e.chain, e.type, e.verdict, e.target, e.handle, e.trace_id, e.iif, e.oif) == (
        "ip", "knet-proxy", "services", "rule", "goto", "svc-abc", 26, 7, 4, None)
    assert e.packet == events.Packet("10.244.1.3", "10.96.0.20", "tcp", 1234, 61234, 80, 0x02)
    assert e.packet.describe() == "10.244.1.3:61234 -> 10.96.0.20:80 TCP SYN"


def test_policy_events_carry_the_chain_policy_and_truncated_messages_are_left():
    msg = _message(_attr(events.TABLE, b"t\0"), _attr(events.CHAIN, b"c\0"), _attr(events.TYPE, struct.pack(">I", 1)),
                   _attr(events.POLICY, struct.pack(">I", 0)), family=1)
    (e,) = events.decode(msg)
    assert (e.family, e.type, e.verdict, e.packet) == ("inet", "policy", "drop", None)
    assert events.decode(msg[:-4]) == []


def test_icmp_echo_is_named_by_its_identifier():
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 9, 0, 64, 1, 0, socket.inet_aton("10.0.0.1"),
                     socket.inet_aton("10.0.0.2"))
    p = events.decode_packet(ip + struct.pack("!BBHHH", 8, 0, 0, 4242, 1), None)
    assert (p.proto, p.icmp_type, p.sport) == ("icmp", 8, 4242)
    assert p.describe() == "10.0.0.1 -> 10.0.0.2 ICMP echo request id 4242"
    assert events.decode_packet(b"\x60" + b"\0" * 39, None) is None  # IPv6: not traced here


def test_rule_text_by_handle_and_comments():
    listing = ('table inet knet-policy {\n\tchain ingress-x { # handle 33\n'
               '\t\tjump np-1-ingress comment "shop/default-deny" # handle 35\n'
               '\t\tdrop comment "shop/db ingress isolated" # handle 36\n\t}\n}\n')
    rules = events.parse_listing(listing)
    assert rules == {35: 'jump np-1-ingress comment "shop/default-deny"', 36: 'drop comment "shop/db ingress isolated"'}
    assert events.split_comment(rules[36]) == ("drop", "shop/db ingress isolated")
    assert events.split_comment("accept") == ("accept", "")
    answer = ('table ip knet-proxy {\n\tmap no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service : '
              'verdict\n\t\telements = { 10.96.0.5 . tcp . 80 comment "default/empty:80/tcp" : goto reject-chain }\n'
              '\t}\n}\n')
    assert events.element_comment(answer) == "default/empty:80/tcp"


# -- recorded traces, explained -------------------------------------------------------------------


def test_clusterip_to_a_pod_on_another_node_names_the_service_endpoint_and_vxlan_hop():
    t = explain(capture("clusterip_cross_node"))
    (svc,) = t.steps("service")
    assert svc.fields["service"] == "default/web:80/tcp" and svc.fields["endpoints"] == 3
    assert 1 <= svc.fields["index"] <= 3
    assert svc.text.startswith(f"Service default/web:80 -> endpoint {svc.fields['endpoint']}, chosen ")
    overlay = [s for s in t.steps("out") if s.fields.get("overlay") == "vxlan"]
    assert len(overlay) == 1 and overlay[0].text.startswith("out knet.1: VXLAN to worker-")
    places = [h.place for h in t.hops]
    assert places[0] == "default/client" and places[1].startswith("node/") and places[2].startswith("node/")
    assert places[-1].startswith("default/web-") and len(places) == 4
    assert overlay[0].fields["node"] == places[2][5:]  # the overlay hop leads where the packet was next seen
    assert t.verdict == "delivered" and t.result == "connected"
    assert t.reply[0] == places[-1] and t.reply[-1] == "default/client"


def test_a_service_without_endpoints_is_named_by_the_reject():
    t = explain(capture("no_endpoints"))
    assert t.verdict == "rejected" and t.result == "refused"
    (step,) = t.steps("reject")
    assert step.fields["service"] == "default/empty:80/tcp"
    assert step.text == "rejected: Service default/empty:80 has no endpoints (ICMP port unreachable sent back)"


def test_a_deny_all_policy_is_named_with_the_isolated_pod():
    t = explain(capture("deny_all"))
    assert t.verdict == "dropped"
    assert t.reason == "pod shop/db isolated for ingress by shop/default-deny; no rule allowed it"
    (drop,) = t.steps("drop")
    assert drop.fields["policy"] == ["shop/default-deny"] and drop.fields["direction"] == "ingress"
    assert t.hops[-1].place != "shop/db"  # dropped on the pod's node, never reaching it


def test_icmp_is_traced_the_same_way():
    t = explain(capture("icmp_deny"))
    assert t.protocol == "ICMP" and t.verdict == "dropped" and "shop/default-deny" in t.reason


def test_an_allowed_connection_names_the_policy_and_rule():
    t = explain(capture("allowed_by_policy"))
    allowed = [s for s in t.steps("policy") if s.fields.get("policy")]
    assert [(s.fields["policy"], s.fields["direction"], s.fields["rule"]) for s in allowed] == [
        ("shop/allow-frontend", "ingress", 0)]
    assert allowed[0].text == "allowed by shop/allow-frontend, ingress rule 0"
    assert t.verdict == "delivered"


def test_names_come_from_the_rule_comments():
    """Renaming a policy in the recorded rule comment renames it in the trace:
    nothing is recomputed from the API."""
    cap = capture("deny_all")
    cap.listings = {k: v.replace('"shop/default-deny"', '"shop/renamed"') for k, v in cap.listings.items()}
    assert "isolated for ingress by shop/renamed;" in explain(cap).reason
    cap = capture("clusterip_cross_node")
    cap.listings = {k: v.replace("default/web:80/tcp", "x/other:81/tcp") for k, v in cap.listings.items()}
    assert explain(cap).steps("service")[0].text.startswith("Service x/other:81 -> endpoint")


def _named_once(listing: str) -> str:
    """A recorded Service chain as knet.proxy.rules now writes it: the ladder's
    DNATs without their "endpoint i of n" comments, the service port named
    once on the chain's first rule."""
    label = re.search(r'comment "(\S+) endpoint \d+ of \d+"', listing)
    if not label:
        return listing
    listing = re.sub(r' comment "\S+ endpoint \d+ of \d+"', "", listing)
    return re.sub(r"(jump mark-for-masquerade)", rf'\1 comment "{label[1]}"', listing, count=1)


@pytest.mark.parametrize("name", ["clusterip_cross_node", "nodeport_from_ext"])
def test_a_ladder_named_once_per_chain_is_explained_the_same(name):
    """The endpoint's number comes from its DNAT's place in the kernel's
    listing: the same trace, word for word, as with a comment per DNAT."""
    before = explain(capture(name))
    cap = capture(name)
    cap.listings = {k: _named_once(v) for k, v in cap.listings.items()}
    assert cap.listings != capture(name).listings and "endpoint 1 of" not in json.dumps(cap.listings)
    after = explain(cap)
    assert after.steps("service") and after.to_dict() == before.to_dict()
    cap.listings = {k: v.replace('"default/', '"x/') for k, v in cap.listings.items()}
    assert explain(cap).steps("service")[0].fields["service"].startswith("x/")  # read from the kernel's text


def test_nodeport_from_outside_is_masqueraded_and_delivered():
    t = explain(capture("nodeport_from_ext"))
    assert t.hops[0].place == "ext" and t.verdict == "delivered"
    assert t.steps("service")[0].fields["service"] == "default/webnp:80/tcp"
    assert len(t.steps("masquerade")) == 1


def test_pod_to_the_outside_is_masqueraded_by_the_node():
    t = explain(capture("pod_to_ext_masquerade"))
    (masq,) = t.steps("masquerade")
    assert "pod traffic leaving the pod network" in masq.text
    assert [h.place for h in t.hops] == ["default/client", t.hops[1].place, "ext"]
    arrived = t.hops[-1].steps[0].fields["packet"]
    assert not arrived.startswith("10.244.")  # the outside host sees the node's address


def test_records_are_json_and_say_the_same():
    t = explain(capture("deny_all"))
    records = json.loads(json.dumps(t.records()))
    assert records[0]["record"] == "trace" and records[0]["protocol"] == "TCP"
    assert records[-1]["record"] == "result" and records[-1]["verdict"] == "dropped"
    steps = [r for r in records if r["record"] == "step"]
    assert [r["text"] for r in steps] == [s.text for h in t.hops for s in h.steps]
    assert {r["place"] for r in steps} == {h.place for h in t.hops}
    text = t.render()
    assert "isolated for ingress by shop/default-deny" in text and text.splitlines()[-1].startswith("result: dropped")


def test_a_capture_without_events_says_nothing_was_sent():
    cap = capture("deny_all")
    cap.raw = {k: [] for k in cap.raw}
    cap.outcome = "timeout"
    t = explain(cap)
    assert t.hops == [] and t.verdict == "unknown" and "could not send" in t.reason
    cap.outcome = "unreachable (network unreachable)"  # the sender's kernel had no route: nothing left it
    t = explain(cap)
    assert t.verdict == "dropped" and t.reason == "no route to 10.244.0.4 in default/client: nothing was sent"


def test_what_the_explanation_reads_from_the_kernel():
    chains, elements, routes = wanted(capture("no_endpoints"))
    assert any(c[2:] == ("knet-proxy", "reject-chain") for c in chains)
    assert not any(c[2].startswith("knet-trace-") for c in chains)  # the tracer's own table is not explained
    assert {e[1] for e in elements} == {"no-endpoint-services", "no-endpoint-nodeports"}
    assert routes


# -- options -----------------------------------------------------------------------------------------


def test_the_trace_rules_match_only_the_flows_first_packets():
    assert match_rules("TCP", 61234) == ["tcp sport 61234 tcp flags & (fin|syn|rst|ack) == syn",
                                         "tcp dport 61234 tcp flags & (syn|rst) != 0"]
    assert match_rules("UDP", 7) == ["udp sport 7", "udp dport 7"]
    assert match_rules("ICMP", 9) == ["icmp type echo-request icmp id 9", "icmp type echo-reply icmp id 9"]


def test_ports_are_checked_and_named():
    assert _port(None, 80, "TCP") == 80 and _port("8080", 80, "TCP") == 8080 and _port("5", 80, "ICMP") == 0
    with pytest.raises(TraceError, match="--to: invalid port 70000"):
        _port("70000", 80, "TCP")
    with pytest.raises(TraceError, match="--to: invalid port 'http'"):
        _port("http", 80, "TCP")
    svc = {"metadata": {"namespace": "default", "name": "web"},
           "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}}
    assert _service_port(svc, "https", "TCP") == 443
    with pytest.raises(TraceError, match=r"several TCP ports \(80, 443\): name one as web:PORT"):
        _service_port(svc, None, "TCP")
    with pytest.raises(TraceError, match="has no UDP port"):
        _service_port(svc, None, "UDP")


def test_several_chain_listings_in_one_answer_are_split_by_chain():
    text = ("table ip knet-proxy {\n\tchain services { # handle 7\n\t\tjump x # handle 26\n\t}\n}\n"
            "table inet knet-policy {\n\tchain ingress { # handle 3\n\t\taccept # handle 9\n\t}\n}\n")
    parts = events.split_listing(text)
    assert set(parts) == {("ip", "knet-proxy", "services"), ("inet", "knet-policy", "ingress")}
    assert events.parse_listing(parts[("ip", "knet-proxy", "services")]) == {26: "jump x"}
    assert events.parse_listing(parts[("inet", "knet-policy", "ingress")]) == {9: "accept"}


def test_a_client_known_to_a_sessionaffinity_service_goes_back_to_its_endpoint():
    (svc,) = explain(capture("affinity_sticky")).steps("service")
    assert svc.fields["service"] == "default/sticky:80/tcp"
    assert svc.text == f"Service default/sticky:80 -> endpoint {svc.fields['endpoint']}, by ClientIP affinity"
