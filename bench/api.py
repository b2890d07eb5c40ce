"""What TLS costs the API: the same requests over HTTPS (127.0.0.1, the
listener kubectl uses) and over the plain unix socket (knet's CLI), on one
API server process (ApiServer + Registry + SqliteStore, TLS from a cluster
PKI made as `knet up` makes it; no namespaces needed), at 10, 100 and 1,000
pods:

- `kubectl get pods -A` (the real kubectl v1.37, a kubeconfig with the CA and
  a token): end-to-end latency p50/p99;
- the list request kubectl makes (GET /api/v1/pods?limit=500 with its Table
  Accept header), on a kept-alive connection and on a new connection each time,
  HTTPS and unix in alternation: p50/p99 and the ratio of the medians;
- 100 parallel list+watch clients (knet's async client, as node agents and
  informers use it), each transport on a freshly started server process (the
  same store; the order alternates from size to size): the lists' latency
  under that load, the delay from a write to each watcher's event (p50/p99),
  and the server's RSS with the 100 clients connected above its RSS before.

Usage: .venv/bin/python bench/api.py [--sizes 10,100,1000] [--runs 20] [--clients 100] [--writes 20]
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, rss_mb  # noqa: E402
from knet.api.client import Client  # noqa: E402
from knet.api.resources import by_kind  # noqa: E402

TOKEN = "bench-token"
PODS, NAMESPACES = by_kind("Pod"), by_kind("Namespace")
KUBECTL = os.path.join(sys.prefix, "bin", "kubectl")
# What kubectl get sends (a server-side Table, JSON as the fallback), and its page size.
TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                "application/json")
LIST_PATH = "/api/v1/pods?limit=500"

SERVER = """
import os, socket, sys, trio
from knet.api.registry import Registry
from knet.api.server import ApiServer
from knet.api.tls import pki_paths, server_context, write_pki
from knet.store.sqlite import SqliteStore
d, token = sys.argv[1], sys.argv[2]
pki = pki_paths(d)
if not os.path.exists(pki.ca_crt):  # kept across restarts, as a cluster's
    write_pki(d, "127.0.0.1", "10.96.0.0/12", "cluster.local")
reg = Registry(SqliteStore(os.path.join(d, "store.db")))
reg.bootstrap()
server = ApiServer(reg, token, tls=server_context(pki))
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(512)

async def main():
    async with trio.open_nursery() as n:
        await n.start(server.serve_unix, os.path.join(d, "api.sock"))
        await n.start(server.serve_socket, sock)
        with open(os.path.join(d, "port.tmp"), "w") as f:
            f.write(str(sock.getsockname()[1]))
        os.replace(os.path.join(d, "port.tmp"), os.path.join(d, "port"))

trio.run(main)
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(xs: list[float]) -> dict:
    """Milliseconds."""
    return {"p50": round(statistics.median(xs) * 1000, 3), "p99": round(pct(xs, 0.99) * 1000, 3), "n": len(xs)}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def connection(kind: str, d: str, port: int, ctx: ssl.SSLContext) -> http.client.HTTPConnection:
    if kind == "tls":
        return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    return UnixHTTPConnection(os.path.join(d, "api.sock"))


def get(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", LIST_PATH, headers={"Authorization": f"Bearer {TOKEN}", "Accept": TABLE_ACCEPT})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"list answered {r.status}: {body[:200]!r}")
    return len(body)


def raw_lists(d: str, port: int, ctx: ssl.SSLContext, runs: int) -> dict:
    """Kept-alive and new-connection lists, HTTPS and unix alternating (ABAB), so
    a busy moment on the machine moves both."""
    out: dict = {}
    for mode in ("warm", "cold"):
        times: dict[str, list[float]] = {"tls": [], "unix": []}
        conns = {k: connection(k, d, port, ctx) for k in times}
        for c in conns.values():
            get(c)  # connect (and handshake) before the warm runs
        size = 0
        for _ in range(runs):
            for k in ("tls", "unix"):
                if mode == "cold":
                    conns[k].close()
                    conns[k] = connection(k, d, port, ctx)
                t0 = time.perf_counter()
                size = get(conns[k])
                times[k].append(time.perf_counter() - t0)
        for c in conns.values():
            c.close()
        out[mode] = {"tls": summary(times["tls"]), "unix": summary(times["unix"]), "bytes": size,
                     "tlsOverUnixP50": round(statistics.median(times["tls"]) / statistics.median(times["unix"]), 3)}
    return out


def kubeconfig(d: str, port: int) -> str:
    import base64

    ca = base64.b64encode(open(os.path.join(d, "pki", "ca.crt"), "rb").read()).decode()
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "b",
           "clusters": [{"name": "b", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                  "certificate-authority-data": ca}}],
           "users": [{"name": "b", "user": {"token": TOKEN}}],
           "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}]}
    path = os.path.join(d, "kubeconfig")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def kubectl_get(d: str, path: str, runs: int, n: int) -> dict:
    env = {**os.environ, "KUBECONFIG": path, "KUBECACHEDIR": os.path.join(d, "kubecache")}
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        out = subprocess.run([KUBECTL, "get", "pods", "-A", "--no-headers"], capture_output=True, text=True, env=env,
                             timeout=120)
        took = time.perf_counter() - t0
        if out.returncode != 0 or len(out.stdout.splitlines()) != n:
            raise SystemExit(f"kubectl get pods -A: {out.returncode} {out.stderr[:300]} ({len(out.stdout.splitlines())} lines)")
        if i:  # the first one fills the discovery cache
            times.append(took)
    return summary(times)


def watchers(d: str, port: int, server_pid: int, kinds: dict[str, int], writes: int) -> dict:
    """kinds[k] clients of each transport at once, each listing the pods and
    watching from the list's revision; then `writes` annotations of one pod,
    each carrying its write time. Both transports' clients run in the same
    moments, so what the machine is doing meanwhile falls on both alike."""
    import trio

    from knet.api.aclient import AsyncClient

    ca = os.path.join(d, "pki", "ca.crt")

    def client(kind: str) -> AsyncClient:
        if kind == "tls":
            # The bench's own clients wait longer for a handshake than an agent does: 100 at once on
            # a busy 2-core machine is the point here, not a failure.
            return AsyncClient("127.0.0.1", port, TOKEN, ca_file=ca, handshake_timeout=120)
        return AsyncClient("", 0, TOKEN, unix_path=os.path.join(d, "api.sock"))

    list_times: dict[str, list[float]] = {k: [] for k in kinds}
    delays: dict[str, list[float]] = {k: [] for k in kinds}
    total = sum(kinds.values())
    out: dict = {}

    async def watcher(kind: str, ready: trio.Semaphore, done: trio.Event) -> None:
        api = client(kind)
        t0 = time.perf_counter()
        listed = await api.list(PODS)
        list_times[kind].append(time.perf_counter() - t0)
        ready.release()
        seen = 0
        async for ev in api.watch(PODS, None, resource_version=listed["metadata"]["resourceVersion"]):
            stamp = (ev["object"].get("metadata", {}).get("annotations") or {}).get("bench/t")
            if ev["type"] == "MODIFIED" and stamp:
                delays[kind].append(time.time() - float(stamp))
                seen += 1
                if seen == writes:
                    break
        if sum(map(len, delays.values())) == total * writes:
            done.set()

    async def main() -> None:
        ready = trio.Semaphore(0, max_value=total)
        done = trio.Event()
        before = rss_mb([server_pid])
        async with trio.open_nursery() as nursery:
            for kind, count in kinds.items():
                for _ in range(count):
                    nursery.start_soon(watcher, kind, ready, done)
            for _ in range(total):
                await ready.acquire()
            await trio.sleep(0.5)  # every watch is open on the server
            out["serverRssMbBefore"] = round(before, 1)
            out["serverRssMbWatching"] = round(rss_mb([server_pid]), 1)
            writer = AsyncClient("", 0, TOKEN, unix_path=os.path.join(d, "api.sock"))
            for _ in range(writes):
                await writer.patch(PODS, "ns0", "p0", {"metadata": {"annotations": {"bench/t": repr(time.time())}}})
                await trio.sleep(0.05)
            with trio.move_on_after(60):
                await done.wait()
            nursery.cancel_scope.cancel()

    trio.run(main)
    for kind in kinds:
        out[kind] = {"lists": summary(list_times[kind]),
                     "eventDelay": summary(delays[kind]) if delays[kind] else None, "events": len(delays[kind])}
    out["expectedEvents"] = writes * total
    out["serverRssMbPerWatcher"] = round((out["serverRssMbWatching"] - out["serverRssMbBefore"]) / total, 3)
    return out


def start_server(d: str) -> tuple[subprocess.Popen, int]:
    """The API server on the store in d (made on first start, kept after), HTTPS on a free port."""
    try:
        os.unlink(os.path.join(d, "port"))
    except FileNotFoundError:
        pass
    proc = subprocess.Popen([sys.executable, "-c", SERVER, d, TOKEN])
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(d, "port")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the API server did not start")
        time.sleep(0.05)
    return proc, int(open(os.path.join(d, "port")).read())


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def populate(c: Client, have: int, want: int) -> None:
    for i in range(have, want):
        c.create(PODS, f"ns{i % 10}", {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": f"p{i}", "labels": {"app": f"a{i % 7}"}},
                                        "spec": {"containers": [{"name": "c", "image": "agnhost",
                                                                 "ports": [{"containerPort": 80}]}]}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--kubectl-runs", type=int, default=10)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--writes", type=int, default=20)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    figures: dict = {"sizes": {}, "clients": args.clients, "writes": args.writes}
    with tempfile.TemporaryDirectory(prefix="knet-bench-api-") as d:
        proc, port = start_server(d)
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(d, "pki", "ca.crt"))
            c = Client(TOKEN, unix_path=os.path.join(d, "api.sock"))
            for i in range(10):
                c.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{i}"}})
            have = 0
            for n in sizes:
                populate(c, have, n)
                have = n
                fig: dict = {"kubectlGetPodsA": kubectl_get(d, kubeconfig(d, port), args.kubectl_runs, n),
                             "list": raw_lists(d, port, ctx, args.runs)}
                # Each transport on a freshly started server process (same store), in alternating order
                # from size to size: its clients' latency, and its RSS with them connected.
                order = ("tls", "unix") if len(figures["sizes"]) % 2 == 0 else ("unix", "tls")
                for kind in order:
                    stop_server(proc)
                    proc, port = start_server(d)
                    fig[f"listWatch_{kind}"] = watchers(d, port, proc.pid, {kind: args.clients}, args.writes)
                lw_t, lw_u = fig["listWatch_tls"], fig["listWatch_unix"]
                fig["listWatchTlsOverUnix"] = {
                    "listsP50": round(lw_t["tls"]["lists"]["p50"] / lw_u["unix"]["lists"]["p50"], 3),
                    "eventDelayP50": round(lw_t["tls"]["eventDelay"]["p50"] / lw_u["unix"]["eventDelay"]["p50"], 3)
                    if lw_t["tls"]["eventDelay"] and lw_u["unix"]["eventDelay"] else None,
                    "serverRssPerClient": round(lw_t["serverRssMbPerWatcher"] / lw_u["serverRssMbPerWatcher"], 3)
                    if lw_u["serverRssMbPerWatcher"] > 0 else None}
                figures["sizes"][str(n)] = fig
                print(f"{n} pods: kubectl get pods -A p50 {fig['kubectlGetPodsA']['p50']} ms; list TLS/unix p50 "
                      f"kept-alive {fig['list']['warm']['tlsOverUnixP50']}x, new connection "
                      f"{fig['list']['cold']['tlsOverUnixP50']}x; {args.clients} list+watch clients: lists p50 "
                      f"TLS {lw_t['tls']['lists']['p50']} / unix {lw_u['unix']['lists']['p50']} ms, event delay p50 "
                      f"TLS {(lw_t['tls']['eventDelay'] or {}).get('p50')} / unix "
                      f"{(lw_u['unix']['eventDelay'] or {}).get('p50')} ms; server MB per client TLS "
                      f"{lw_t['serverRssMbPerWatcher']} / unix {lw_u['serverRssMbPerWatcher']}", flush=True)
            figures["serverRssMb"] = round(rss_mb([proc.pid]), 1)
        finally:
            stop_server(proc)
    emit(figures)


if __name__ == "__main__":
    main()
