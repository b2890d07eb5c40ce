"""Link impairments' pure side: the values knet link set and the cluster file's nodes[].link
take (refused with the field named, as the API's errors), the loss table's nft text, and the
listing it is read back from; and knet capture's tcpdump command line."""

from __future__ import annotations

import pytest

from knet.capture import _tcpdump_error, overlay_filter, tcpdump_argv
from knet.config import ConfigError, parse_cluster
from knet.net import impair
from knet.net.impair import ImpairError, Impairment


def _cluster(link) -> dict:
    return {"nodes": [{"role": "control-plane"}, {"role": "worker", "link": link}]}


@pytest.mark.parametrize("text,pct", [("5%", 5.0), ("5", 5.0), ("0.5%", 0.5), ("100%", 100.0), (12, 12.0),
                                      ("0%", None), ("0.01%", 0.01)])
def test_loss_values(text, pct):
    assert impair.parse_loss(text, "--loss") == pct


@pytest.mark.parametrize("text,bps", [("10mbit", 10_000_000), ("512kbit", 512_000), ("1gbit", 10**9),
                                      ("100kbps", 800_000), ("64000", 64_000), ("2.5mbit", 2_500_000)])
def test_rate_values(text, bps):
    assert impair.parse_rate(text, "--rate") == bps


@pytest.mark.parametrize("link,message", [
    ({"loss": "150%"}, 'nodes[1].link.loss: Invalid value: "150%": must be between 0% and 100%'),
    ({"loss": "-1%"}, 'nodes[1].link.loss: Invalid value: "-1%": must be a percentage such as "5%"'),
    ({"loss": True}, 'nodes[1].link.loss: Invalid value: "true": must be a percentage such as "5%"'),
    ({"loss": "0.001%"}, 'nodes[1].link.loss: Invalid value: "0.001%": the smallest loss is 0.01%'),
    ({"rate": "fast"}, 'nodes[1].link.rate: Invalid value: "fast": must be a rate such as "10mbit"'),
    ({"rate": "1bit"}, 'nodes[1].link.rate: Invalid value: "1bit": must be between 8kbit and 10gbit'),
    ({"rate": "20gbit"}, 'nodes[1].link.rate: Invalid value: "20gbit": must be between 8kbit and 10gbit'),
    ({"delay": "20ms"}, 'nodes[1].link.delay: Unsupported value: "20ms": delay is not available here: '
                        "this kernel has no netem qdisc"),
    ({"delay": "soon"}, 'nodes[1].link.delay: Invalid value: "soon": must be a duration such as "20ms"'),
    ({"jitter": "1ms"}, 'nodes[1].link.jitter: Unsupported value: "jitter": supported fields: "loss", "rate"'),
    ("5%", "nodes[1].link: Invalid value: must be a mapping with loss and/or rate"),
])
def test_the_cluster_file_refuses_bad_links_naming_the_field(link, message):
    with pytest.raises(ConfigError) as e:
        parse_cluster(_cluster(link))
    assert str(e.value).startswith(message)


def test_the_cluster_file_keeps_a_canonical_link():
    cfg = parse_cluster(_cluster({"loss": "5", "rate": "10000kbit"}))
    assert cfg.nodes[1].link == {"loss": "5%", "rate": "10mbit"}
    assert cfg.nodes[0].link == {}
    assert impair.parse_link(cfg.nodes[1].link, "x") == Impairment(5.0, 10_000_000)
    assert cfg.lan_port("worker-1") == "to-n1"
    again = type(cfg).from_json(cfg.to_json())
    assert again.nodes[1].link == cfg.nodes[1].link


def test_delay_is_refused_by_the_cli_words_too():
    with pytest.raises(ImpairError, match=r'^--delay: Unsupported value: "20ms": delay is not available here'):
        impair.refuse_delay("20ms", "--delay")


def test_rates_and_losses_print_as_tc_writes_them():
    assert [impair.format_rate(r) for r in (10_000_000, 512_000, 10**9, 2_500_000, 8_000, 1_500)] == \
        ["10mbit", "512kbit", "1gbit", "2500kbit", "8kbit", "1500bit"]
    assert [impair.format_loss(x) for x in (5.0, 0.5, 100.0)] == ["5%", "0.5%", "100%"]


def test_the_loss_table_drops_both_ways_on_the_link_and_is_read_back():
    text = impair.loss_ruleset("eth0", 5.0)
    assert text.splitlines()[:2] == ["add table netdev knet-link", "delete table netdev knet-link"]
    assert 'type filter hook egress device "eth0" priority -500' in text
    assert 'type filter hook ingress device "eth0" priority -500' in text
    assert text.count("numgen random mod 10000 < 500 counter drop") == 2
    listing = {"nftables": [{"metainfo": {}}, {"table": {"family": "netdev", "name": "knet-link"}}] + [
        {"rule": {"family": "netdev", "table": "knet-link", "chain": chain, "expr": [
            {"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 10000, "offset": 0}}, "right": 500}},
            {"counter": {"packets": n, "bytes": 0}}, {"drop": None}]}}
        for chain, n in (("egress", 7), ("ingress", 3))]}
    assert impair.loss_from_listing(listing) == (5.0, 7, 3)
    assert impair.loss_from_listing({"nftables": []}) == (None, 0, 0)


def test_the_shaper_burst_holds_full_frames():
    assert impair.tbf_burst(8_000) == 3200
    assert impair.tbf_burst(10_000_000) == 12_500


def test_tcpdump_runs_in_the_namespace_without_name_lookups():
    argv = tcpdump_argv("/run/netns/x", "eth0", "icmp", 5, "/tmp/a.pcap")
    assert argv[:6] == ["setpriv", "--pdeathsig", "TERM", "nsenter", "--net=/run/netns/x", "tcpdump"]
    assert "-n" in argv and argv[argv.index("-Z") + 1] == "root"
    assert argv[argv.index("-w") + 1] == "/tmp/a.pcap" and "-U" in argv and "-l" not in argv
    assert argv[argv.index("-c") + 1] == "5" and argv[-2:] == ["--", "icmp"]
    live = tcpdump_argv("/run/netns/x", "any")
    assert "-l" in live and "-w" not in live and "--" not in live
    check = tcpdump_argv("/run/netns/x", "eth0", "tcp", 3, "/tmp/b.pcap", check_only=True)
    assert "-d" in check and "-w" not in check and "-c" not in check


def test_the_overlay_is_vxlan_on_port_8472_with_the_inner_headers_decoded():
    assert overlay_filter() == "udp port 8472"
    assert overlay_filter("host 192.168.56.12") == "udp port 8472 and (host 192.168.56.12)"
    argv = tcpdump_argv("/run/netns/n", "eth0", "", overlay=True)
    assert argv[argv.index("-T") + 1] == "vxlan" and argv[-1] == "udp port 8472"


def test_tcpdump_errors_become_one_line():
    assert _tcpdump_error("tcpdump: can't parse filter expression: syntax error\n") == \
        "can't parse filter expression: syntax error"
    assert _tcpdump_error("") == "tcpdump failed"
