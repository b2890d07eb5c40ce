"""What authorization costs the API: `get pod` requests per second as the
cluster admin (system:masters: no RBAC evaluation) against as a ServiceAccount
bound to `view` (its JWT verified once, its pod and ServiceAccount looked up
on each request as the bound-token validator does, RBAC from the cached rule
set), side by side on one API server process (ApiServer + Registry +
SqliteStore with the control plane's identity setup), on a kept-alive
connection over the unix socket (no TLS in the way), in alternating rounds.
The namespace holds 10, 100 and 1,000 other RoleBindings: an authorization's
cost must not grow with them (bindings are indexed by subject).

Also, in-process: microseconds per authorization decision alone (admin, the
bound ServiceAccount, a user no binding allows) at each size.

Usage: .venv/bin/python bench/authz.py [--sizes 10,100,1000] [--requests 2000] [--rounds 4]
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, median, per_round_ratios, round_order  # noqa: E402

TOKEN = "bench-admin-token"
PATH = "/api/v1/namespaces/default/pods/p"

SERVER = """
import os, sys, trio
from knet.api.identity import Identity
from knet.api.registry import Registry
from knet.api.server import ApiServer
from knet.api.tls import write_pki
from knet.store.sqlite import SqliteStore
d, token = sys.argv[1], sys.argv[2]
if not os.path.exists(os.path.join(d, "pki", "ca.crt")):
    write_pki(d, "127.0.0.1", "10.96.0.0/12", "cluster.local")
reg = Registry(SqliteStore(os.path.join(d, "store.db")))
reg.bootstrap()
identity = Identity.start(reg, d, "cluster.local", [])
server = ApiServer(reg, token)
identity.configure(server)

async def main():
    async with trio.open_nursery() as n:
        await n.start(server.serve_unix, os.path.join(d, "api.sock"))
        open(os.path.join(d, "ready"), "w").close()

trio.run(main)
"""


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def setup(d: str, size: int) -> str:
    """The pod, the `view` binding of default/default, `size` other RoleBindings;
    the ServiceAccount's token bound to the pod."""
    from knet.api import serviceaccounts
    from knet.api.identity import Identity
    from knet.api.registry import Registry
    from knet.api.resources import by_kind
    from knet.api.tls import write_pki
    from knet.store.sqlite import SqliteStore

    write_pki(d, "127.0.0.1", "10.96.0.0/12", "cluster.local")
    reg = Registry(SqliteStore(os.path.join(d, "store.db")))
    reg.bootstrap()
    identity = Identity.start(reg, d, "cluster.local", [])
    reg.create(by_kind("ServiceAccount"), "default", {"metadata": {"name": "default"}})
    pod = reg.create(by_kind("Pod"), "default", {"metadata": {"name": "p"},
                                                  "spec": {"containers": [{"name": "c", "image": "i"}]}})
    rb = by_kind("RoleBinding")
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    reg.create(rb, "default", {"metadata": {"name": "sa-view"}, "roleRef": ref,
                               "subjects": [{"kind": "ServiceAccount", "name": "default"}]})
    for i in range(size):
        reg.create(rb, "default", {"metadata": {"name": f"other-{i}"}, "roleRef": ref, "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"user-{i}"}]})
    out = serviceaccounts.token_request(reg, identity.signer, "default", "default", {"spec": {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}}})
    reg.store.close()
    return out["status"]["token"]


def decisions(d: str, token: str, n: int = 20000) -> dict[str, float]:
    """Microseconds per authorization decision, in-process (the server's calls)."""
    from knet.api import rbac
    from knet.api.authz import ADMIN, User
    from knet.api.identity import Identity
    from knet.api.registry import Registry
    from knet.store.sqlite import SqliteStore

    reg = Registry(SqliteStore(os.path.join(d, "store.db")))
    identity = Identity.start(reg, d, "cluster.local", [])
    from knet.api.serviceaccounts import TokenAuthenticator

    sa_user = TokenAuthenticator(identity.signer, reg.store).authenticate(token)
    stranger = User("stranger", ("system:authenticated",))
    out = {}
    for label, user in (("admin", ADMIN), ("serviceaccount", sa_user), ("denied", stranger)):
        start = time.perf_counter()
        for _ in range(n):
            identity.authorizer.check(user, rbac.request_info("GET", PATH, {}))
        out[label] = (time.perf_counter() - start) / n * 1e6
    auth = TokenAuthenticator(identity.signer, reg.store)
    auth.authenticate(token)
    start = time.perf_counter()
    for _ in range(n // 10):
        auth.authenticate(token)
    out["token_authentication"] = (time.perf_counter() - start) / (n // 10) * 1e6
    reg.store.close()
    return out


def rate(conn: http.client.HTTPConnection, bearer: str, n: int) -> float:
    headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
    start = time.perf_counter()
    for _ in range(n):
        conn.request("GET", PATH, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {PATH}: {resp.status} {body[:200]!r}")
    return n / (time.perf_counter() - start)


def run_size(size: int, requests: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="knet-bench-authz-") as d:
        token = setup(d, size)
        micro = decisions(d, token)
        proc = subprocess.Popen([sys.executable, "-c", SERVER, d, TOKEN])
        try:
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(d, "ready")):
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("the API server did not start")
                time.sleep(0.05)
            conns = {"admin": UnixConnection(os.path.join(d, "api.sock")),
                     "serviceaccount": UnixConnection(os.path.join(d, "api.sock"))}
            bearer = {"admin": TOKEN, "serviceaccount": token}
            for who in conns:
                rate(conns[who], bearer[who], 50)  # warm: connection, caches
            rates: dict[str, list[float]] = {"admin": [], "serviceaccount": []}
            for r in range(rounds):
                for who in round_order(list(conns), r):
                    rates[who].append(rate(conns[who], bearer[who], requests))
        finally:
            proc.terminate()
            proc.wait(10)
    ratios = per_round_ratios(rates["serviceaccount"], rates["admin"])
    return {"admin_rps": round(median(rates["admin"])), "serviceaccount_rps": round(median(rates["serviceaccount"])),
            "serviceaccount_vs_admin": round(median(ratios), 3),
            "decision_us": {k: round(v, 2) for k, v in micro.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    figures: dict = {}
    for size in (int(s) for s in args.sizes.split(",")):
        f = figures[f"bindings_{size}"] = run_size(size, args.requests, args.rounds)
        print(f"{size:>5} other RoleBindings: get pod {f['admin_rps']}/s as admin, {f['serviceaccount_rps']}/s as "
              f"a ServiceAccount bound to view ({f['serviceaccount_vs_admin']}x); decision "
              f"{f['decision_us']['admin']} us admin, {f['decision_us']['serviceaccount']} us SA, "
              f"{f['decision_us']['denied']} us denied; token check {f['decision_us']['token_authentication']} us",
              flush=True)
    emit(figures)


if __name__ == "__main__":
    main()
