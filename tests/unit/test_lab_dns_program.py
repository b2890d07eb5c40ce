"""The stub resolver a lab check runs inside a pod through pods/exec (knet.lab.viaexec.DNS):
run for real with python3, against a DNS server on 127.0.0.1 made here (dnspython builds its
answers), with a resolv.conf as a pod's (search list, ndots:5). Its records must read as
dnspython prints them (dig's form), which the lab files' answers are written in."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from knet.lab import viaexec

ZONE = {
    ("web.default.svc.cluster.local.", "A"): ["10.96.0.10"],
    ("_http._tcp.web.default.svc.cluster.local.", "SRV"): ["0 100 80 web.default.svc.cluster.local."],
    ("txt.example.", "TXT"): ['"hello world" "two"'],
    ("example.", "SOA"): ["ns.example. admin.example. 1 7200 3600 1209600 300"],
    ("10.0.96.10.in-addr.arpa.", "PTR"): ["web.default.svc.cluster.local."],
    ("mx.example.", "MX"): ["10 mail.example."],
    ("v6.example.", "AAAA"): ["fd00::1"],
    ("alias.example.", "CNAME"): ["web.default.svc.cluster.local."],
    ("big.example.", "A"): [f"10.1.0.{i}" for i in range(1, 61)],  # > 512 bytes: truncated over UDP
}
SERVFAIL = "servfail.example."


def answer(wire: bytes, udp: bool) -> bytes | None:
    q = dns.message.from_wire(wire)
    question = q.question[0]
    name, qtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
    r = dns.message.make_response(q)
    if name == SERVFAIL:
        r.set_rcode(dns.rcode.SERVFAIL)
        return r.to_wire()
    chain = [(name, "CNAME")] if (name, "CNAME") in ZONE and qtype != "CNAME" else []
    for owner, rtype in chain + [(ZONE[(name, "CNAME")][0], qtype)] if chain else [(name, qtype)]:
        if (owner, rtype) in ZONE:
            r.answer.append(dns.rrset.from_text_list(owner, 30, "IN", rtype, ZONE[(owner, rtype)]))
    if not r.answer and not any(n == name for n, _ in ZONE):
        r.set_rcode(dns.rcode.NXDOMAIN)
    out = r.to_wire()
    if udp and len(out) > 512:
        r.answer.clear()
        r.flags |= dns.flags.TC
        out = r.to_wire()
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """UDP and TCP on one 127.0.0.1 port; a resolv.conf as a pod in `default` has."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    stop = threading.Event()

    def serve_udp() -> None:
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                wire, peer = udp.recvfrom(4096)
            except TimeoutError:
                continue
            udp.sendto(answer(wire, udp=True), peer)

    def serve_tcp() -> None:
        tcp.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            with conn:  # a client that left (its deadline passed) costs its connection, not this thread
                conn.settimeout(5)
                try:
                    wire = _read_exactly(conn, 2)
                    wire = _read_exactly(conn, struct.unpack(">H", wire)[0]) if wire else b""
                    if wire:
                        out = answer(wire, udp=False)
                        conn.sendall(struct.pack(">H", len(out)) + out)
                except OSError:
                    pass

    threads = [threading.Thread(target=f, daemon=True) for f in (serve_udp, serve_tcp)]
    for t in threads:
        t.start()
    conf = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    conf.write_text("# as knet writes a pod's\nnameserver 127.0.0.1\n"
                    "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
    yield str(conf), port
    stop.set()
    for t in threads:
        t.join(timeout=30)
    udp.close()
    tcp.close()


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    """size bytes, or b"" when the client closes first (recv's b"" would repeat forever)."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def here(argv: tuple[str, ...]) -> list[str]:
    """The program as the pod runs it, with this interpreter in place of the node's python3
    (the same standard library; one less PATH lookup)."""
    assert argv[0] == "python3"
    return [sys.executable, *argv[1:]]


def ask(server, name: str, qtype: str = "A", timeout: float = 5.0) -> dict:
    conf, port = server
    out = subprocess.run(here(viaexec.dns_argv(name, qtype, timeout, conf, port)), capture_output=True, text=True,
                         timeout=30)
    answer = viaexec.read_dns(out.returncode, out.stdout + out.stderr, name)
    return {"rcode": answer.rcode, "records": list(answer.records), "qname": answer.qname}


def test_a_short_name_goes_through_the_search_list(server):
    assert ask(server, "web") == {"rcode": "NOERROR", "records": ["10.96.0.10"],
                                  "qname": "web.default.svc.cluster.local."}
    assert ask(server, "web.default.svc.cluster.local.")["records"] == ["10.96.0.10"]


def test_every_record_type_reads_as_dnspython_prints_it(server):
    for (owner, rtype), records in ZONE.items():
        if owner == "big.example.":
            continue
        got = ask(server, owner, rtype)
        want = sorted(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), r).to_text()
                      for r in records)
        assert (got["rcode"], sorted(got["records"]), got["qname"]) == ("NOERROR", want, owner), (owner, rtype)


def test_a_cname_answers_with_the_records_of_the_asked_type(server):
    assert ask(server, "alias.example.")["records"] == ["10.96.0.10"]


def test_a_truncated_answer_is_asked_again_over_tcp(server):
    got = ask(server, "big.example.")
    assert got["rcode"] == "NOERROR" and sorted(got["records"]) == sorted(ZONE[("big.example.", "A")])


def test_nxdomain_after_every_search_name_and_servfail(server):
    assert ask(server, "nothing") == {"rcode": "NXDOMAIN", "records": [], "qname": "nothing."}
    assert ask(server, "nothing.example.")["rcode"] == "NXDOMAIN"
    assert ask(server, SERVFAIL)["rcode"] == "SERVFAIL"


def test_a_server_that_never_answers_is_a_timeout(tmp_path):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: the question goes unanswered
    silent.bind(("127.0.0.1", 0))
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    try:
        out = subprocess.run(here(viaexec.dns_argv("web.", "A", 0.5, str(conf), silent.getsockname()[1])),
                             capture_output=True, text=True, timeout=30)
    finally:
        silent.close()
    assert json.loads(out.stdout)["rcode"] == "TIMEOUT"
