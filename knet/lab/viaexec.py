"""Probes and DNS questions from a pod, run inside it through exec.

The lab checks reach a pod from this host by entering its network namespace
(knet.lab.live). A pod with no namespace here (on another machine of a
machine-mode cluster, or any pod of a cluster named by a kubeconfig context,
knet.lab.viaapi) is reached through pods/exec instead: the check runs a small
Python program in the pod, which prints one JSON line, read back here. The
programs use only the standard library and run with the node's `python3`
(every knet node has one: knet runs on it), not this host's interpreter, whose
path means nothing on another machine; the DNS one is a stub resolver that asks
as the pod's own resolver does (its resolv.conf's servers, search list and
ndots), so no DNS library is needed in the pod.

Pure here: the programs, their arguments, reading their answers.
"""

from __future__ import annotations

import json

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
import json, random, socket, struct, sys, time
name, qtype, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
conf, port = (sys.argv[4:5] or ["/etc/resolv.conf"])[0], int((sys.argv[5:6] or ["53"])[0])
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
def out(rcode, records=(), qname=name):
    print(json.dumps({"rcode": rcode, "records": list(records), "qname": qname})); sys.exit(0)
servers, search, ndots = [], [], 1
try:
    for line in open(conf):
        w = line.split()
        if not w or w[0][0] in "#;": continue
        if w[0] == "nameserver" and len(w) > 1: servers.append(w[1])
        elif w[0] in ("search", "domain"): search = w[1:]
        elif w[0] == "options":
            for o in w[1:]:
                if o.startswith("ndots:"): ndots = int(o[6:])
except (OSError, ValueError): pass
servers = servers or ["127.0.0.1"]
if name.endswith("."): names = [name]
else:
    rel = [name + "." + d.strip(".") + "." for d in search]
    names = [name + "."] + rel if name.count(".") >= ndots else rel + [name + "."]
def read_name(msg, i):
    labels, end = [], None
    while True:
        n = msg[i]
        if n >= 192:
            end = i + 2 if end is None else end; i = ((n & 63) << 8) | msg[i + 1]; continue
        i += 1
        if n == 0: break
        labels.append(msg[i:i + n].decode("ascii", "replace")); i += n
    return ".".join(labels) + ".", (i if end is None else end)
def text(msg, t, i, n):
    d = msg[i:i + n]
    if t == 1: return socket.inet_ntop(socket.AF_INET, d)
    if t == 28: return socket.inet_ntop(socket.AF_INET6, d)
    if t in (2, 5, 12): return read_name(msg, i)[0]
    if t == 15: return "%d %s" % (struct.unpack(">H", d[:2])[0], read_name(msg, i + 2)[0])
    if t == 33: return "%d %d %d %s" % (struct.unpack(">HHH", d[:6]) + (read_name(msg, i + 6)[0],))
    if t == 6:
        m, j = read_name(msg, i); r, j = read_name(msg, j)
        return "%s %s %d %d %d %d %d" % ((m, r) + struct.unpack(">IIIII", msg[j:j + 20]))
    if t == 16:
        parts, j = [], 0
        while j < len(d): parts.append('"%s"' % d[j + 1:j + 1 + d[j]].decode("utf-8", "replace")); j += 1 + d[j]
        return " ".join(parts)
    return d.hex()
def ask(server, qn, deadline):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in qn.rstrip(".").split("."):
        if label: q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", TYPES[qtype], 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(max(0.05, deadline - time.monotonic())); s.connect((server, port)); s.send(q)
        while True:
            msg = s.recv(65535)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid: break
    if msg[2] & 2:
        with socket.create_connection((server, port), timeout=max(0.05, deadline - time.monotonic())) as s:
            s.sendall(struct.pack(">H", len(q)) + q); buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk: break
                buf += chunk
            msg = buf[2:]
    rcode = msg[3] & 15
    qd, an = struct.unpack(">HH", msg[4:8])
    i = 12
    for _ in range(qd): i = read_name(msg, i)[1] + 4
    records = []
    for _ in range(an):
        i = read_name(msg, i)[1]
        t, _c, _ttl, n = struct.unpack(">HHIH", msg[i:i + 10]); i += 10
        if t == TYPES[qtype]: records.append(text(msg, t, i, n))
        i += n
    return RCODES.get(rcode, str(rcode)), records
deadline = time.monotonic() + timeout
why = "no server answered"
for qn in names:
    answer = None
    for server in servers:
        try:
            answer = ask(server, qn, deadline)
        except (TimeoutError, socket.timeout):
            why = None; continue
        except OSError as e:
            why = (e.strerror or str(e)).lower(); continue
        if answer[0] in ("NOERROR", "NXDOMAIN"): break
    if answer is None:
        out("TIMEOUT" if why is None else "NO ANSWER (%s)" % why)
    if answer[0] != "NXDOMAIN":
        out(answer[0], answer[1], qn)
out("NXDOMAIN", (), names[-1])
"""

INTERPRETER = "python3"  # on the pod's node, in the container's PATH: every knet node has it (knet runs on it)


def _program(source: str) -> str:
    """The program for `python3 -c`, compressed: it travels as one command= argument of the
    exec request's URL (percent-encoded), which a few hundred bytes keep well under any limit."""
    import base64
    import zlib

    packed = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"


def connect_argv(address: str, port: int, protocol: str, identity: str | None, timeout: float) -> tuple[str, ...]:
    return (INTERPRETER, "-c", _program(CONNECT), address, str(port), protocol, identity or "", f"{timeout:g}")


def dns_argv(name: str, qtype: str, timeout: float, resolv_conf: str | None = None,
             port: int | None = None) -> tuple[str, ...]:
    """The pod's own resolv.conf and port 53; another file and port for the unit tests' server."""
    extra = (resolv_conf or "/etc/resolv.conf", str(port or 53)) if resolv_conf or port else ()
    return (INTERPRETER, "-c", _program(DNS), name, qtype, f"{timeout:g}", *extra)


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
