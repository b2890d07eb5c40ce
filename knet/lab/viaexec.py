"""Probes and DNS questions from a pod on another machine, run inside it through exec.

The lab checks reach a pod from this host by entering its network namespace
(knet.lab.live). On a machine-mode cluster (knet init/join) a pod on another
machine has no namespace here, so the check runs a small Python program in
the pod through `knet exec`, which goes through the API's pods/exec to that
machine's kubelet as kubectl's does; the program prints one JSON line, read
back here. It runs with this host's interpreter path: every machine has
knet installed the same way (knet join needs it), and for DNS it uses
dnspython from that installation, as the local path does.

Pure here: the programs, their arguments, reading their answers.
"""

from __future__ import annotations

import json
import sys

from knet.lab.checks import DnsAnswer

CONNECT = r"""
import json, socket, sys
address, port, protocol, expected, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
def done(ok, detail):
    print(json.dumps({"connected": ok, "detail": detail})); sys.exit(0)
try:
    if protocol == "TCP":
        socket.create_connection((address, port), timeout=timeout).close(); done(True, "connected")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout); s.connect((address, port))
    s.send(b"probe\n"); data = s.recv(2048)
except ConnectionRefusedError: done(False, "refused")
except (TimeoutError, socket.timeout): done(False, "timeout")
except OSError as e: done(False, (e.strerror or str(e)).lower())
text = data.decode(errors="replace").strip()
if text == expected or not expected: done(True, "connected")
if text.count("/") == 1 and len(text.split()) == 1: done(False, "answered by " + text)
done(True, "connected (answer not from knet's built-in server)")
"""

DNS = r"""
import json, sys
import dns.exception, dns.rcode, dns.rdatatype, dns.resolver
name, qtype, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
r = dns.resolver.Resolver(filename="/etc/resolv.conf"); r.lifetime = timeout
def out(rcode, records=(), qname=name):
    print(json.dumps({"rcode": rcode, "records": list(records), "qname": qname})); sys.exit(0)
try:
    a = r.resolve(name, dns.rdatatype.from_text(qtype), search=True, raise_on_no_answer=False)
except dns.resolver.NXDOMAIN as e: out("NXDOMAIN", (), str((e.kwargs.get("qnames") or [name])[-1]))
except dns.resolver.NoNameservers as e:
    errs = e.kwargs.get("errors") or []
    resp = next((x[4] for x in errs if len(x) > 4 and x[4] is not None), None)
    out(dns.rcode.to_text(resp.rcode()) if resp is not None else "NO ANSWER (no server answered)")
except dns.exception.Timeout: out("TIMEOUT")
out(dns.rcode.to_text(a.response.rcode()), [x.to_text() for x in a.rrset] if a.rrset is not None else (), str(a.qname))
"""


def connect_argv(address: str, port: int, protocol: str, identity: str | None, timeout: float) -> tuple[str, ...]:
    return (sys.executable, "-c", CONNECT, address, str(port), protocol, identity or "", f"{timeout:g}")


def dns_argv(name: str, qtype: str, timeout: float) -> tuple[str, ...]:
    return (sys.executable, "-c", DNS, name, qtype, f"{timeout:g}")


def _last_json(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def read_connect(code: int, output: str) -> tuple[bool, str]:
    """(connected, detail) from the program's answer; a failed exec is 'not connected', with why."""
    value = _last_json(output)
    if value is None or "connected" not in value:
        return False, f"exec in the pod failed (exit {code}): {output.strip()[-200:] or 'no output'}"
    return bool(value["connected"]), str(value.get("detail") or "")


def read_dns(code: int, output: str, name: str) -> DnsAnswer:
    value = _last_json(output)
    if value is None or "rcode" not in value:
        return DnsAnswer(f"NO ANSWER (exec in the pod failed, exit {code}: {output.strip()[-200:] or 'no output'})",
                         (), name)
    return DnsAnswer(str(value["rcode"]), tuple(str(r) for r in value.get("records") or ()),
                     str(value.get("qname") or name))
