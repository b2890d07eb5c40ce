"""Cluster DNS benchmark (issue 12), side by side in one run.

  - Queries per second and p99 latency with Debian's dnsperf, the same query
    mix everywhere (A records of Services `svc-N.bench.svc.cluster.local`,
    one in five a name that does not exist: NXDOMAIN), the same cores (the
    server on CPU 0, dnsperf on CPU 1), the same duration, at 10, 100 and
    1,000 Services, against:
      knet     knet's DNS server (python -m knet.dns, as a coredns pod runs it)
               alone in a network namespace of the benchmark's, fed through a
               real API server (knet.harness.apiserver's, in that namespace,
               without the Service allocator: the benchmark gives each
               Service its clusterIP, see api_helper);
      dnsmasq  Debian's dnsmasq in a namespace of its own, serving the same
               names and addresses from a hosts file (--addn-hosts), with
               --local=/cluster.local/ so that other names are NXDOMAIN;
      cluster  both coredns replicas behind the kube-dns Service of a real
               cluster (knet.harness.cluster.Cluster), dnsperf in a pod on a
               node without a replica, against dnsmasq in a pod beside a
               replica (same hosts file) behind a ClusterIP Service of its
               own: every query crosses nodes and a DNAT for both, and all
               servers are pinned to the server CPU. This part runs in a
               child process of its own (see cluster_part).
    The two servers of a size are measured in alternating order (ABBA) and
    the ratio knet/dnsmasq is the median of the per-round ratios. Lost
    queries are reported for each.
  - Correctness under change: while dnsperf loads the knet server, 100
    Services are created and deleted one after the other; a checker asks
    for each name until it has its ClusterIP (after the create) and until
    it is NXDOMAIN (after the delete), counting wrong answers (neither the
    old nor the new truth) and timing, p50/p95/max, from the API's
    acknowledgement of the write to the answer (issue 12: within 100 ms).
    The load's rcodes are checked too (only NOERROR and NXDOMAIN, in the
    mix's share).
  - Memory: the knet server's RSS before any Service and with 10,000.

dnsperf has no latency percentiles, so p99 comes from a short second run of
each server at the same load with `-v` (one line per query, its latency).

The benchmark creates only namespaces and processes of its own (unique
names), removes them on exit, also on failure, and never configures the
host's root network namespace.

Run as root: .venv/bin/python bench/dns.py [--sizes 10,100,1000] [--duration 10] [--memory-services 10000]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# This script shares its name with dnspython's package: take its directory off the path before importing
# dnspython (run as a script, Python puts it first), then put it back for the shared helpers.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402

sys.path.insert(0, _HERE)

from common import emit, require_root, round_order, rss_mb  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_PORT = 6443
NAMESPACE = "bench"
ZONE = "cluster.local"
SERVER_CPU, CLIENT_CPU = "0", "1"
# client namespace <-> one server namespace per server, a /30 each
KNET_IP, DNSMASQ_IP = "10.98.1.2", "10.98.2.2"
NX_SHARE = 5  # one query in NX_SHARE is for a name that does not exist
ASSIGNED_FROM = "10.100.0.1"  # Api.assign's first address: inside the default serviceSubnet 10.96.0.0/12


def run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def svc_name(i: int) -> str:
    return f"svc-{i:05d}"


def fqdn(name: str) -> str:
    return f"{name}.{NAMESPACE}.svc.{ZONE}"


# -- the API server the knet server watches --------------------------------------------------------------

def api_helper(directory: str) -> None:
    """Runs in the knet server's namespace (`--api-helper DIR`): knet's API server on 127.0.0.1 there (the
    address the DNS server is told, as a pod is told of the kubernetes Service) and on a unix socket in
    DIR (for the benchmark, which stays in the root namespace)."""
    import trio

    from knet.harness.apiserver import TOKEN, LocalApiServer

    # No Service allocator: knet's picks each address by listing every Service and walking the subnet, so the
    # 10,000 Services of the memory figure came slower and slower (5,500 after 7 minutes, then ~10 a second);
    # the benchmark gives each Service its spec.clusterIP instead (Api.assign), as a user may, and the DNS
    # server sees the same objects.
    srv = LocalApiServer(directory, services=False)
    with open(os.path.join(directory, "token"), "w") as f:
        f.write(TOKEN)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(srv.api.serve_tcp, "127.0.0.1", API_PORT)
            await nursery.start(srv.api.serve_unix, srv.socket)
            open(os.path.join(directory, "ready"), "w").close()
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
    trio.run(serve)
    srv.store.close()


class Api:
    """The benchmark's side of an API server (the helper's, or a cluster's): Services in, ClusterIPs out."""

    def __init__(self, client, assign: bool = False):
        from knet.api.resources import by_kind

        self.client = client
        self.services = by_kind("Service")
        self.namespaces = by_kind("Namespace")
        self.ips: dict[str, str] = {}
        self.assign = assign  # give each Service its clusterIP (an API server without the allocator)
        self._next = int(ipaddress.ip_address(ASSIGNED_FROM))

    def ensure_namespace(self) -> None:
        from knet.api.errors import ApiError

        try:
            self.client.create(self.namespaces, None, {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": NAMESPACE}})
        except ApiError as e:
            if e.code != 409:
                raise

    def create(self, name: str) -> str:
        spec: dict = {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        if self.assign:
            spec["clusterIP"] = str(ipaddress.ip_address(self._next))
            self._next += 1
        obj = self.client.create(self.services, NAMESPACE, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec})
        self.ips[name] = obj["spec"]["clusterIP"]
        return self.ips[name]

    def delete(self, name: str) -> None:
        self.client.delete(self.services, NAMESPACE, name)
        self.ips.pop(name, None)

    def grow(self, n: int) -> list[str]:
        """Services svc-00000 .. svc-(n-1), creating the missing ones."""
        names = [svc_name(i) for i in range(n)]
        for name in names:
            if name not in self.ips:
                self.create(name)
        return names


# -- namespaces and processes ----------------------------------------------------------------------------

class Lab:
    """The benchmark's namespaces (a client one, one per server, veth pairs between) and the processes
    started in them; `close` removes them all, whatever state they are in."""

    def __init__(self, prefix: str):
        from knet.net import ns

        self.ns = ns
        self.prefix = prefix
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.client = self.add(f"{prefix}-c")
        self.tmp = tempfile.mkdtemp(prefix=f"{prefix}-")
        os.chmod(self.tmp, 0o755)  # dnsmasq drops to nobody and reads its hosts file from here

    def add(self, name: str) -> str:
        self.ns.create_netns(name)
        self.names.append(name)
        return name

    def server_ns(self, suffix: str, ip: str) -> str:
        """A server namespace wired to the client namespace: client .1, server .2 of the /24."""
        name = self.add(f"{self.prefix}-{suffix}")
        client_ip = ip.rsplit(".", 1)[0] + ".1"
        run("ip", "-n", self.client, "link", "add", f"to-{suffix}", "type", "veth", "peer", "name", "eth0",
            "netns", name)
        run("ip", "-n", self.client, "addr", "add", f"{client_ip}/24", "dev", f"to-{suffix}")
        run("ip", "-n", self.client, "link", "set", f"to-{suffix}", "up")
        run("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        return name

    def start(self, netns: str, argv: list[str], cpu: str | None = SERVER_CPU, env: dict | None = None,
              log: str | None = None) -> subprocess.Popen:
        """`ip netns exec` and `taskset` both exec, so the Popen's pid is the server's own."""
        cmd = ["ip", "netns", "exec", netns] + (["taskset", "-c", cpu] if cpu else []) + argv
        out = open(log or os.devnull, "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                             start_new_session=True)
        out.close()
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def close(self) -> None:
        for p in list(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # noqa: BLE001 - keep removing the rest
                print(f"stopping {p.args}: {e}", file=sys.stderr)
        for name in reversed(self.names):
            try:
                self.ns.delete_netns(name)
            except OSError as e:
                print(f"removing namespace {name}: {e}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- asking ----------------------------------------------------------------------------------------------

def ask(netns_path: str, server: str, name: str, qtype: str = "A", timeout: float = 1.0):
    """One UDP query from inside a namespace of the benchmark's (dnspython)."""
    from knet.net import ns

    with ns.entered(net=netns_path):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)  # dnspython waits with its own timeout only on a non-blocking socket
    try:
        q = dns.message.make_query(name, qtype)
        return dns.query.udp(q, server, timeout=timeout, sock=s)
    finally:
        s.close()


def answer_of(reply) -> tuple[str, list[str]]:
    return dns.rcode.to_text(reply.rcode()), sorted(rd.to_text() for rs in reply.answer for rd in rs)


def wait_answer(netns_path: str, server: str, name: str, want: tuple[str, list[str]] | str,
                timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = answer_of(ask(netns_path, server, name, timeout=0.5))
            if last == want or last[0] == want:
                return time.monotonic()
        except Exception as e:  # noqa: BLE001 - a timeout while the server starts
            last = repr(e)
        time.sleep(0.02)
    raise SystemExit(f"{server}: {name} never answered {want} (last: {last})")


# -- dnsperf ---------------------------------------------------------------------------------------------

def query_file(path: str, names: list[str]) -> int:
    """The mix: every Service's A record, and after every (NX_SHARE - 1) of them a name that does not exist."""
    lines, nx = [], 0
    for i, name in enumerate(names):
        lines.append(f"{fqdn(name)} A")
        if i % (NX_SHARE - 1) == NX_SHARE - 2:
            lines.append(f"{fqdn(f'nx-{nx:05d}')} A")
            nx += 1
    if nx == 0:
        lines.append(f"{fqdn('nx-00000')} A")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


DNSPERF_ARGS = ["-c", "8", "-q", "200", "-t", "2"]


def dnsperf(netns: str, server: str, qfile: str, seconds: float, verbose: bool = False,
            argv_prefix: list[str] | None = None) -> dict:
    cmd = (argv_prefix or ["ip", "netns", "exec", netns]) + ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", server,
                                                             "-d", qfile, "-l", str(seconds), *DNSPERF_ARGS]
    if verbose:
        cmd.append("-v")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise SystemExit(f"dnsperf failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return parse_dnsperf(out.stdout, verbose)


def parse_dnsperf(text: str, verbose: bool = False) -> dict:
    def num(pattern: str) -> float:
        m = re.search(pattern, text)
        if not m:
            raise SystemExit(f"dnsperf output without {pattern!r}:\n{text[-3000:]}")
        return float(m.group(1))

    res = {"qps": num(r"Queries per second:\s+([\d.]+)"),
           "sent": int(num(r"Queries sent:\s+(\d+)")),
           "completed": int(num(r"Queries completed:\s+(\d+)")),
           "lost": int(num(r"Queries lost:\s+(\d+)")),
           "avg_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000}
    codes = re.search(r"Response codes:\s+(.*)", text)
    res["rcodes"] = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+)", codes.group(1))) if codes else {}
    if verbose:  # "> NOERROR svc-00001.bench.svc.cluster.local. A 0.000123"
        lat = [float(m) for m in re.findall(r"^> \S+ .* ([\d.]+)$", text, re.M)]
        if lat:
            lat.sort()
            res["p99_ms"] = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)] * 1000
            res["p50_ms"] = lat[len(lat) // 2] * 1000
    return res


def passes_for(qps: float, lines: int, seconds: float) -> int:
    """dnsperf -n: whole passes over the file lasting about `seconds` at `qps`. A pass-bounded run waits for
    every answer (up to -t), so its lost count is real; a time-bounded one counts those in flight at the end."""
    return max(1, round(qps * seconds / lines))


def checked_run(netns: str, server: str, qfile: str, lines: int, qps: float, seconds: float,
                argv_prefix: list[str] | None = None) -> dict:
    """The verbose, pass-bounded run: p50/p99 latency and lost answers."""
    n = passes_for(qps, lines, seconds)
    cmd = (argv_prefix or ["ip", "netns", "exec", netns]) + ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", server,
                                                             "-d", qfile, "-n", str(n), "-v", *DNSPERF_ARGS]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 10 + 60)
    if out.returncode != 0:
        raise SystemExit(f"dnsperf failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return parse_dnsperf(out.stdout, verbose=True)


# -- the servers -----------------------------------------------------------------------------------------

def start_knet(lab: Lab, netns: str, apidir: str) -> subprocess.Popen:
    env = {**os.environ, "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(API_PORT),
           "PYTHONPATH": REPO}
    return lab.start(netns, [sys.executable, "-m", "knet.dns", "--address", KNET_IP, "--port", "53",
                             "--health-port", "0", "--ready-port", "0", "--metrics-port", "0",
                             "--token-file", os.path.join(apidir, "token")],
                     env=env, log=os.path.join(lab.tmp, "knet-dns.log"))


def start_dnsmasq(lab: Lab, netns: str, api: Api, names: list[str]) -> subprocess.Popen:
    hosts = os.path.join(lab.tmp, "hosts")
    with open(hosts, "w") as f:
        f.writelines(f"{api.ips[n]} {fqdn(n)}\n" for n in names)
    os.chmod(hosts, 0o644)
    return lab.start(netns, ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                             "--no-hosts", f"--addn-hosts={hosts}", f"--local=/{ZONE}/",
                             f"--listen-address={DNSMASQ_IP}", "--bind-interfaces", "--pid-file=",
                             "--log-facility=-"], log=os.path.join(lab.tmp, "dnsmasq.log"))


def wait_started(p: subprocess.Popen, what: str, netns_path: str, server: str, name: str, want,
                 timeout: float = 30) -> None:
    try:
        wait_answer(netns_path, server, name, want, timeout)
    except SystemExit:
        if p.poll() is not None:
            raise SystemExit(f"{what} exited ({p.returncode}); see its log in the benchmark's directory") from None
        raise


# -- the parts -------------------------------------------------------------------------------------------

def bench_direct(lab: Lab, sizes: list[int], seconds: float, rounds: int, churn: int, memory_services: int,
                 check_seconds: float) -> dict:
    from knet.api.client import Client
    from knet.harness.apiserver import TOKEN

    client_path = lab.ns.netns_path(lab.client)
    knet_ns = lab.server_ns("k", KNET_IP)
    masq_ns = lab.server_ns("m", DNSMASQ_IP)
    apidir = os.path.join(lab.tmp, "api")
    os.makedirs(apidir)
    lab.start(knet_ns, [sys.executable, os.path.abspath(__file__), "--api-helper", apidir], cpu=None,
              env={**os.environ, "PYTHONPATH": REPO}, log=os.path.join(lab.tmp, "api.log"))
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(apidir, "ready")):
        if time.monotonic() > deadline:
            raise SystemExit("the API helper did not start; see api.log in the benchmark's directory")
        time.sleep(0.05)
    api = Api(Client(TOKEN, unix_path=os.path.join(apidir, "api.sock")), assign=True)
    api.ensure_namespace()
    knet = start_knet(lab, knet_ns, apidir)
    # SERVFAIL until it has listed from the API; then NODATA for the namespace's own name
    wait_started(knet, "knet's DNS server", client_path, KNET_IP, f"default.svc.{ZONE}", "NOERROR")
    out: dict = {"rss_mb_0": round(rss_mb([knet.pid]), 1), "sizes": {}}
    masq = None
    for size in sizes:
        names = api.grow(size)
        last = names[-1]
        wait_answer(client_path, KNET_IP, fqdn(last), ("NOERROR", [api.ips[last]]))
        if masq is not None:
            lab.stop(masq)
        masq = start_dnsmasq(lab, masq_ns, api, names)
        wait_started(masq, "dnsmasq", client_path, DNSMASQ_IP, fqdn(last), ("NOERROR", [api.ips[last]]))
        qfile = os.path.join(lab.tmp, f"queries-{size}")
        lines = query_file(qfile, names)
        servers = {"knet": KNET_IP, "dnsmasq": DNSMASQ_IP}
        res: dict[str, list[dict]] = {k: [] for k in servers}
        for r in range(rounds):
            for k in round_order(list(servers), r):
                res[k].append(dnsperf(lab.client, servers[k], qfile, seconds))
        fig: dict = {}
        for k in servers:
            fig[f"{k}_qps"] = statistics.median(x["qps"] for x in res[k])
            chk = checked_run(lab.client, servers[k], qfile, lines, fig[f"{k}_qps"], check_seconds)
            fig[f"{k}_p99_ms"] = chk["p99_ms"]
            fig[f"{k}_p50_ms"] = chk["p50_ms"]
            fig[f"{k}_lost"] = chk["lost"]
            fig[f"{k}_sent"] = chk["sent"]
            fig[f"{k}_rcodes"] = chk["rcodes"]
        fig["ratio"] = statistics.median(a["qps"] / b["qps"] for a, b in zip(res["knet"], res["dnsmasq"], strict=True))
        out["sizes"][size] = fig
        print(f"{size:>6} Services: knet {fig['knet_qps']:>8.0f} q/s p99 {fig['knet_p99_ms']:.2f} ms "
              f"lost {fig['knet_lost']}/{fig['knet_sent']} | dnsmasq {fig['dnsmasq_qps']:>8.0f} q/s "
              f"p99 {fig['dnsmasq_p99_ms']:.2f} ms lost {fig['dnsmasq_lost']}/{fig['dnsmasq_sent']} | "
              f"knet/dnsmasq {fig['ratio']:.2f}", flush=True)
    out["rss_mb_sizes"] = round(rss_mb([knet.pid]), 1)
    biggest = sizes[-1]
    out["churn"] = churn_under_load(lab, api, client_path, os.path.join(lab.tmp, f"queries-{biggest}"),
                                    out["sizes"][biggest]["knet_qps"], churn, seconds)
    c = out["churn"]
    print(f"churn: {churn} Services created and deleted under load ({c['load_qps']:.0f} q/s): "
          f"{c['wrong_answers']} wrong answers, load lost {c['load_lost']}, unexpected rcodes "
          f"{c['load_unexpected_rcodes']}; from the API's acknowledgement to the answer: created p50 "
          f"{c['create_visible_p50_ms']:.1f} p95 {c['create_visible_p95_ms']:.1f} max "
          f"{c['create_visible_max_ms']:.1f} ms, deleted p50 {c['delete_visible_p50_ms']:.1f} p95 "
          f"{c['delete_visible_p95_ms']:.1f} max {c['delete_visible_max_ms']:.1f} ms (bound: 100 ms)", flush=True)
    t0 = time.monotonic()
    names = api.grow(memory_services)
    out["create_seconds"] = round(time.monotonic() - t0, 1)
    wait_answer(client_path, KNET_IP, fqdn(names[-1]), ("NOERROR", [api.ips[names[-1]]]), timeout=120)
    time.sleep(1)
    out["memory_services"] = memory_services
    out["rss_mb_memory"] = round(rss_mb([knet.pid]), 1)
    lab.stop(masq)
    masq = start_dnsmasq(lab, masq_ns, api, names)
    wait_started(masq, "dnsmasq", client_path, DNSMASQ_IP, fqdn(names[-1]), ("NOERROR", [api.ips[names[-1]]]))
    out["dnsmasq_rss_mb_memory"] = round(rss_mb([masq.pid]), 1)
    print(f"memory: knet's server {out['rss_mb_0']} MB with no Service, {out['rss_mb_memory']} MB with "
          f"{memory_services} (dnsmasq with the same names: {out['dnsmasq_rss_mb_memory']} MB)", flush=True)
    return out


def churn_under_load(lab: Lab, api: Api, client_path: str, qfile: str, qps: float, churn: int,
                     seconds: float) -> dict:
    """dnsperf loads the server while Services come and go; a checker follows each name from the API's
    acknowledgement to the answer, and counts answers that were never true."""
    with open(qfile) as f:
        lines = sum(1 for _ in f)
    box: dict = {}

    def load() -> None:
        # pass-bounded, so it runs until the churn is done and every answer is waited for
        box["res"] = checked_run(lab.client, KNET_IP, qfile, lines, qps * 0.7, max(seconds, churn * 0.08))

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1)
    wrong, created_ms, deleted_ms = 0, [], []
    for i in range(churn):
        name = f"churn-{i:03d}"
        ip = api.create(name)
        t0 = time.monotonic()
        while True:
            a = answer_of(ask(client_path, KNET_IP, fqdn(name)))
            if a == ("NOERROR", [ip]):
                created_ms.append((time.monotonic() - t0) * 1000)
                break
            if a[0] != "NXDOMAIN":
                wrong += 1
            if time.monotonic() - t0 > 10:
                raise SystemExit(f"{name} never answered {ip} (last {a})")
            time.sleep(0.002)
        api.delete(name)
        t0 = time.monotonic()
        while True:
            a = answer_of(ask(client_path, KNET_IP, fqdn(name)))
            if a[0] == "NXDOMAIN":
                deleted_ms.append((time.monotonic() - t0) * 1000)
                break
            if a != ("NOERROR", [ip]):
                wrong += 1
            if time.monotonic() - t0 > 10:
                raise SystemExit(f"{name} never went (last {a})")
            time.sleep(0.002)
    t.join()
    res = box["res"]
    expected_nx = sum(1 for ln in open(qfile) if ln.startswith("nx-")) / lines
    total = sum(res["rcodes"].values()) or 1
    unexpected = {k: v for k, v in res["rcodes"].items() if k not in ("NOERROR", "NXDOMAIN")}
    return {"services": churn, "wrong_answers": wrong, "load_qps": res["qps"], "load_lost": res["lost"],
            "load_unexpected_rcodes": sum(unexpected.values()),
            "load_nxdomain_share": round(res["rcodes"].get("NXDOMAIN", 0) / total, 4),
            "expected_nxdomain_share": round(expected_nx, 4),
            "create_visible_p50_ms": statistics.median(created_ms), "create_visible_p95_ms": p95(created_ms),
            "create_visible_max_ms": max(created_ms),
            "delete_visible_p50_ms": statistics.median(deleted_ms), "delete_visible_p95_ms": p95(deleted_ms),
            "delete_visible_max_ms": max(deleted_ms)}


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]


def bench_cluster(sizes: list[int], seconds: float, rounds: int, check_seconds: float) -> dict:
    """Both coredns replicas behind kube-dns (10.96.0.10), dnsperf in a pod's namespace, against dnsmasq in a
    pod of the same cluster serving the same names behind a Service of its own (the same DNAT, CNI and nodes),
    ABBA."""
    from knet.harness.cluster import Cluster

    out: dict = {"sizes": {}}
    c = Cluster.up(workers=3)
    tmp = tempfile.mkdtemp(prefix="knet-dns-bench-")
    try:
        os.chmod(tmp, 0o755)  # dnsmasq drops to nobody and reads its hosts file from here
        hosts = os.path.join(tmp, "hosts")
        open(hosts, "w").close()
        os.chmod(hosts, 0o644)
        dns_ip = c.cfg.dns_service_ip
        def ready_coredns() -> list[dict] | None:
            ready = [p for p in c.list("Pod", "kube-system", label_selector="k8s-app=kube-dns")
                     if any(x["type"] == "Ready" and x["status"] == "True"
                            for x in p.get("status", {}).get("conditions") or [])]
            return ready if len(ready) == 2 else None

        coredns = c.wait_for("2 ready coredns pods", ready_coredns, timeout=60)
        # Placement, the same for both: dnsperf on a node without a coredns replica (every query crosses nodes),
        # dnsmasq beside a replica (its queries cross the same way).
        dns_nodes = sorted({p["spec"]["nodeName"] for p in coredns})
        free = [n.name for n in c.cfg.nodes if n.role == "worker" and n.name not in dns_nodes]
        client_node = free[0] if free else next(n.name for n in c.cfg.nodes if n.role == "worker")
        out["nodes"] = {"coredns": dns_nodes, "dnsperf": client_node, "dnsmasq": dns_nodes[0]}
        c.apply(CLIENT_POD.replace("NODE", client_node) + "---"
                + DNSMASQ_POD.replace("HOSTS", hosts).replace("NODE", dns_nodes[0]), wait=True)
        pod = c.wait_pod("default", "dnsperf", lambda p: p.get("status", {}).get("phase") == "Running", timeout=60)
        masq = c.wait_pod("default", "dnsmasq", lambda p: p.get("status", {}).get("phase") == "Running"
                          and p.get("status", {}).get("podIP"), timeout=60)
        # through a ClusterIP Service as kube-dns is, so both paths pay the same DNAT and conntrack
        masq_ip = c.get("Service", "default", "bench-dnsmasq")["spec"]["clusterIP"]
        out["dnsmasq_pod_ip"] = masq["status"]["podIP"]
        client_netns = c.cfg.pod_netns(pod["metadata"]["uid"])
        client_path = f"/run/netns/{client_netns}"
        pinned = pin_pods(c, "kube-system", "k8s-app=kube-dns", b"knet.dns")
        masq_pids = pin_pods(c, "default", "app=bench-dnsmasq", b"dnsmasq")
        if not masq_pids:
            raise SystemExit("dnsmasq's pod runs no dnsmasq")
        out["coredns_pids_pinned"] = len(pinned)
        api = Api(c.client)
        api.ensure_namespace()
        servers = {"cluster": dns_ip, "dnsmasq": masq_ip}
        for size in sizes:
            names = api.grow(size)
            last = (fqdn(names[-1]), ("NOERROR", [api.ips[names[-1]]]))
            wait_answer(client_path, dns_ip, *last, timeout=60)
            with open(hosts, "w") as f:
                f.writelines(f"{api.ips[n]} {fqdn(n)}\n" for n in names)
            for pid in masq_pids:
                os.kill(pid, signal.SIGHUP)  # dnsmasq reads its --addn-hosts again
            wait_answer(client_path, masq_ip, *last, timeout=30)
            qfile = os.path.join(tmp, f"queries-{size}")
            lines = query_file(qfile, names)
            res: dict[str, list[dict]] = {k: [] for k in servers}
            for r in range(rounds):
                for k in round_order(list(servers), r):
                    res[k].append(dnsperf(client_netns, servers[k], qfile, seconds))
            fig: dict = {}
            for k in servers:
                fig[f"{k}_qps"] = statistics.median(x["qps"] for x in res[k])
                chk = checked_run(client_netns, servers[k], qfile, lines, fig[f"{k}_qps"], check_seconds)
                fig[f"{k}_p99_ms"], fig[f"{k}_p50_ms"] = chk["p99_ms"], chk["p50_ms"]
                fig[f"{k}_lost"], fig[f"{k}_sent"] = chk["lost"], chk["sent"]
            fig["ratio"] = statistics.median(
                a["qps"] / b["qps"] for a, b in zip(res["cluster"], res["dnsmasq"], strict=True))
            out["sizes"][size] = fig
            print(f"{size:>6} Services: cluster (2 replicas behind {dns_ip}) {fig['cluster_qps']:>8.0f} q/s p99 "
                  f"{fig['cluster_p99_ms']:.2f} ms lost {fig['cluster_lost']}/{fig['cluster_sent']} | dnsmasq pod "
                  f"behind {masq_ip} "
                  f"{fig['dnsmasq_qps']:>8.0f} q/s p99 {fig['dnsmasq_p99_ms']:.2f} ms lost "
                  f"{fig['dnsmasq_lost']}/{fig['dnsmasq_sent']} | cluster/dnsmasq {fig['ratio']:.2f}", flush=True)
    finally:
        c.down()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cluster_part(sizes: str, seconds: float, rounds: int, check_seconds: float) -> dict:
    """bench_cluster in a process of its own: a cluster brought up by a process that has already made and
    removed the benchmark's namespaces fails to build its LAN (pyroute2 no longer finds the new namespace
    files), and a fresh process also gives the cluster's figures a clean start. Its lines are relayed; its
    last one is its JSON. SIGTERM (not SIGKILL) on the way out, so it takes its cluster down."""
    cmd = [sys.executable, os.path.abspath(__file__), "--cluster-part", "--sizes", sizes, "--duration", str(seconds),
           "--rounds", str(rounds), "--check-seconds", str(check_seconds)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    last = ""
    try:
        for line in p.stdout:
            if line.startswith("{"):
                last = line
            else:
                print(line, end="", flush=True)
        p.wait()
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
    if p.returncode != 0 or not last:
        raise SystemExit(f"the cluster part failed ({p.returncode})")
    out = json.loads(last)
    out["sizes"] = {int(k): v for k, v in out["sizes"].items()}
    return out


CLIENT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: dnsperf, namespace: default}
spec:
  nodeName: NODE
  containers:
  - name: c
    image: debian
    command: ["sleep", "infinity"]
"""
DNSMASQ_POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: dnsmasq, namespace: default, labels: {{app: bench-dnsmasq}}}}
spec:
  nodeName: NODE
  containers:
  - name: dnsmasq
    image: debian
    command: ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
              "--addn-hosts=HOSTS", "--local=/{ZONE}/", "--pid-file=", "--log-facility=-"]
---
apiVersion: v1
kind: Service
metadata: {{name: bench-dnsmasq, namespace: default}}
spec:
  selector: {{app: bench-dnsmasq}}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
"""


def pin_pods(c, namespace: str, selector: str, marker: bytes) -> list[int]:
    """The servers of the selected pods on SERVER_CPU, as the other servers are: processes found by their pod's
    network namespace (the cluster's own) and a word of their command line, never by name alone."""
    pins = []
    for pod in c.list("Pod", namespace, label_selector=selector):
        try:
            want = os.stat(f"/run/netns/{c.cfg.pod_netns(pod['metadata']['uid'])}").st_ino
        except OSError:
            continue
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino != want:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(marker in a for a in argv[:3]):
                run("taskset", "-a", "-p", "-c", SERVER_CPU, pid, check=False)
                pins.append(int(pid))
    return pins


def exit_on_sigterm() -> None:
    """SIGTERM unwinds this process, so its `finally` blocks remove what it made. Only this process: a child
    forked from it (pyroute2 forks one per namespaced socket, and stops it with SIGTERM) inherits the handler,
    and unwinding the copy of our stack there would run our clean-ups there (a Cluster.up in progress takes its
    cluster down when it fails), so a forked child just exits."""
    me = os.getpid()

    def handler(*_: object) -> None:
        if os.getpid() != me:
            os._exit(1)
        sys.exit(1)

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--duration", type=float, default=10, help="seconds of each timed dnsperf run")
    p.add_argument("--rounds", type=int, default=2, help="timed runs per server and size, in ABBA order")
    p.add_argument("--check-seconds", type=float, default=3, help="length of the verbose p99/loss run")
    p.add_argument("--churn", type=int, default=100, help="Services created and deleted under load")
    p.add_argument("--memory-services", type=int, default=10000)
    p.add_argument("--skip-cluster", action="store_true")
    p.add_argument("--api-helper", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--cluster-part", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.api_helper:
        api_helper(args.api_helper)
        return
    if args.cluster_part:
        exit_on_sigterm()
        emit(bench_cluster([int(x) for x in args.sizes.split(",")], args.duration, args.rounds, args.check_seconds))
        return
    require_root()
    for tool in ("dnsperf", "taskset", "/usr/sbin/dnsmasq"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/setup")
    exit_on_sigterm()
    sizes = [int(x) for x in args.sizes.split(",")]
    from knet.harness.cluster import unique_name

    print(f"dnsperf {' '.join(DNSPERF_ARGS)}, server on CPU {SERVER_CPU}, dnsperf on CPU {CLIENT_CPU}, "
          f"{args.duration:g} s x {args.rounds} rounds per server and size; one query in {NX_SHARE} NXDOMAIN",
          flush=True)
    lab = Lab(unique_name("kd"))
    try:
        direct = bench_direct(lab, sizes, args.duration, args.rounds, args.churn, args.memory_services,
                              args.check_seconds)
    finally:
        lab.close()
    cluster = None if args.skip_cluster else cluster_part(args.sizes, args.duration, args.rounds, args.check_seconds)
    f: dict = {}
    for size, fig in direct["sizes"].items():
        for k in ("knet_qps", "dnsmasq_qps", "ratio"):
            f[f"{k}_{size}"] = round(fig[k], 2 if k == "ratio" else 0)
        for k in ("knet_p99_ms", "dnsmasq_p99_ms", "knet_p50_ms", "dnsmasq_p50_ms"):
            f[f"{k}_{size}"] = round(fig[k], 3)
        f[f"knet_lost_{size}"] = fig["knet_lost"]
        f[f"dnsmasq_lost_{size}"] = fig["dnsmasq_lost"]
        f[f"knet_unexpected_rcodes_{size}"] = sum(v for k, v in fig["knet_rcodes"].items()
                                                  if k not in ("NOERROR", "NXDOMAIN"))
    if cluster:
        for size, fig in cluster["sizes"].items():
            for k in ("cluster", "dnsmasq"):
                p = "cluster" if k == "cluster" else "cluster_dnsmasq_pod"
                f[f"{p}_qps_{size}"] = round(fig[f"{k}_qps"])
                f[f"{p}_p99_ms_{size}"] = round(fig[f"{k}_p99_ms"], 3)
                f[f"{p}_p50_ms_{size}"] = round(fig[f"{k}_p50_ms"], 3)
                f[f"{p}_lost_{size}"] = fig[f"{k}_lost"]
            f[f"cluster_ratio_{size}"] = round(fig["ratio"], 2)
        f["cluster_coredns_pinned"] = cluster["coredns_pids_pinned"]
    f.update({f"churn_{k}": (round(v, 2) if isinstance(v, float) else v) for k, v in direct["churn"].items()})
    f["rss_mb_no_services"] = direct["rss_mb_0"]
    f["rss_mb_10k_services" if args.memory_services == 10000 else f"rss_mb_{args.memory_services}_services"] = \
        direct["rss_mb_memory"]
    f["dnsmasq_rss_mb_same_names"] = direct["dnsmasq_rss_mb_memory"]
    f["api_create_seconds"] = direct["create_seconds"]
    f["ratio_min"] = round(min(fig["ratio"] for fig in direct["sizes"].values()), 2)
    f["target_ratio"] = 0.5
    ratios = ", ".join(f"{s}: {fig['ratio']:.2f}" for s, fig in direct["sizes"].items())
    print(f"knet/dnsmasq qps ratio, one server: {ratios} (target >= 0.5, no lost answers)")
    if cluster:
        f["cluster_ratio_min"] = min(round(fig["ratio"], 2) for fig in cluster["sizes"].values())
        ratios = ", ".join(f"{s}: {fig['ratio']:.2f}" for s, fig in cluster["sizes"].items())
        print(f"knet/dnsmasq qps ratio, both replicas behind kube-dns vs a dnsmasq pod behind a Service: {ratios}")
    emit(f)


if __name__ == "__main__":
    main()
