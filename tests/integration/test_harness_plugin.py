"""knet's pytest plugin as a user meets it: pytest run on its own (it finds the
plugin through the pytest11 entry point), on examples/ exactly as README says,
and on a failing test that captured packets, whose pcap file must be written
and named in the report.

The pcap test needs no cluster: it sniffs and sends inside a network namespace
it makes itself (the helpers take anything with a namespace), so only the
example brings a cluster up.
"""

from __future__ import annotations

import re
import secrets
import struct
from pathlib import Path

import pytest

import knet
from knet.harness import net
from knet.net import ns

pytestmark = [pytest.mark.root, pytest.mark.cluster]
pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _this_knet(monkeypatch):
    """pytest runs started here import this checkout's knet, as the test process does."""
    monkeypatch.setenv("PYTHONPATH", str(Path(knet.__file__).resolve().parents[1]))


def test_the_worked_example_passes(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", str(EXAMPLES), timeout=600)
    result.assert_outcomes(passed=5)


@pytest.fixture
def netns():
    name = f"knet-harness-{secrets.token_hex(4)}"
    path = ns.create_netns(name)
    try:
        yield path
    finally:
        ns.delete_netns(name)


FAILING = """
import os

from scapy.layers.inet import IP, UDP

from knet.harness import send, sniff
from knet.harness.handles import Host


def host():
    return Host(None, "lab", "127.0.0.1", os.environ["KNET_TEST_NETNS"])


def test_captures_then_fails():
    cap = sniff(host(), "udp dst port 9999", count=3, timeout=10)
    send(IP(dst="127.0.0.1") / UDP(sport=5555, dport=9999) / b"knet", host(), count=3)
    send(IP(dst="127.0.0.1") / UDP(sport=5555, dport=9998) / b"not this one", host())
    assert len(cap.wait()) == 3
    assert False, "on purpose"


def test_captures_and_passes():
    cap = sniff(host(), "udp", count=1, timeout=10)
    send(IP(dst="127.0.0.1") / UDP(dport=9999), host())
    assert len(cap.wait()) == 1
"""


def test_a_failed_test_that_sniffed_leaves_a_pcap_named_in_its_report(pytester: pytest.Pytester, netns, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("KNET_TEST_NETNS", netns)
    pytester.makepyfile(test_lab=FAILING)
    pcaps = tmp_path / "pcaps"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--knet-pcap-dir={pcaps}")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "AssertionError: on purpose" in out
    result.stdout.fnmatch_lines(["*knet captures (pcap)*", "sniff(on=node/lab, filter='udp dst port 9999', 3 frames): *"])
    named = re.findall(r"3 frames\): (\S+\.pcap)", out)
    files = sorted(pcaps.iterdir())
    assert [str(f) for f in files] == named  # one file, for the failed test only
    assert "test_captures_then_fails" in files[0].name
    assert [udp(f.data) for f in net.read_pcap(str(files[0]))] == [(5555, 9999, b"knet")] * 3


def udp(frame: bytes) -> tuple[int, int, bytes]:
    """(source port, destination port, payload) of an Ethernet/IPv4/UDP frame. By hand: scapy
    imported in this process while pytester runs would be unloaded with the cryptography module it
    loads, which cannot be loaded twice in one process (later tests make certificates)."""
    assert frame[12:14] == b"\x08\x00" and frame[23] == 17, frame[:40].hex()
    at = 14 + (frame[14] & 0x0F) * 4
    sport, dport, length = struct.unpack_from("!HHH", frame, at)
    return sport, dport, frame[at + 8:at + length]
