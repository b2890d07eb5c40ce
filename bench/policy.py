"""Policy benchmark (issue 11), side by side in one run.

  - Data path: median TCP connect time between two pods through a node's
    forward hook (the bridge a node's pods share, br_netfilter on, as on a
    knet node) with the policy engine's table for 0, 10, 100 and 1,000
    NetworkPolicies over 200 pods in 20 namespaces, beside the same node with
    no table at all. Both pods are selected (the server for ingress, the
    client for egress) by several policies, one of which allows the pair.
    Every node is real nftables in namespaces of the benchmark's own, loaded
    with knet.policy.rules' text; each node holds each table in turn, and
    within a turn connects are taken round-robin across them, so each ratio
    compares samples taken in the same moments on the same nodes.
  - Sync, with 10, 100 and 1,000 policies present: nftables operations for
    one new policy selecting a pod of the node, one selecting only a pod of
    another node, one pod label change and no change, the time to apply
    each to the kernel (median, each change undone in between), and a full
    sync from nothing.
  - On a live cluster (3 workers, --cluster-policies policies over
    --cluster-pods pods in 20 namespaces in force meanwhile): time from
    `knet apply` of an allowing policy (this tree's knet, started as the
    installed command starts, its process start included) to the first
    connection it lets through (a new connect every millisecond), p50 and p95,
    beside the same policy applied as JSON and POSTed to the API directly
    (what the CLI's start costs, and what is the engine's);
    the same for a pod label change (the API PATCH knet's apply sends)
    admitting a client; and iperf3 pod to pod with an allow policy in force
    against no policy, in alternating rounds.

Run as root: .venv/bin/python bench/policy.py [--sizes 10,100,1000] [--rounds 2000] [--runs 20]
[--iperf-rounds 8] [--no-cluster]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, knet, require_root  # noqa: E402

from knet.harness.cluster import unique_name  # noqa: E402
from knet.net import ns  # noqa: E402
from knet.net.nft import Nft  # noqa: E402
from knet.policy.rules import TABLE, Compiler  # noqa: E402

NODE = "bench"
BRIDGE_IP, CLIENT_IP, SERVER_IP = "10.244.0.1", "10.244.0.2", "10.244.0.3"
NAMESPACES, PODS_PER_NS = 20, 10


# -- a synthetic cluster: 200 pods in 20 namespaces, N policies over them ------------------


def namespace(i: int) -> dict:
    name = f"ns{i}"
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, "team": f"t{i % 5}"}}}


def pods() -> list[dict]:
    """200 pods; ns0/app0 is the server, ns1/app1 the client (both at the addresses the
    benchmark's namespaces hold), the rest on this node and others at addresses nobody uses."""
    out = []
    for i in range(NAMESPACES):
        for j in range(PODS_PER_NS):
            k = i * PODS_PER_NS + j
            ip = {(0, 0): SERVER_IP, (1, 1): CLIENT_IP}.get((i, j), f"10.244.{1 + k // 250}.{k % 250 + 2}")
            local = (i, j) in ((0, 0), (1, 1)) or k % 3 == 0
            out.append({"metadata": {"namespace": f"ns{i}", "name": f"p{j}", "uid": f"u-{i}-{j}",
                                     "labels": {"app": f"app{j}", "tier": f"tier{j % 3}"}},
                        "spec": {"nodeName": NODE if local else "other",
                                 "containers": [{"name": "c", "ports": [
                                     {"containerPort": 80, "name": "http"},
                                     {"containerPort": 53, "protocol": "UDP", "name": "dns"}]}]},
                        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
    return out


def policy(n: int) -> dict:
    """Policy n of the background: in namespace n % 20, selecting app(n // 20 % 10), with
    ingress from a pod label, a namespace label (AND and OR), ports by number and name,
    ranges, an ipBlock; every fourth one also isolates for egress."""
    i, j = n % NAMESPACES, n // NAMESPACES % PODS_PER_NS
    spec: dict = {
        "podSelector": {"matchLabels": {"app": f"app{j}"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": f"app{(j + 1 + n % 7) % 10}"}}},
                      {"namespaceSelector": {"matchLabels": {"team": f"t{n % 5}"}},
                       "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                                             "values": [f"tier{n % 3}"]}]}}],
             "ports": [{"protocol": "TCP", "port": 8000 + n % 50}, {"protocol": "TCP", "port": "http"}]},
            {"from": [{"ipBlock": {"cidr": f"172.{16 + n % 16}.0.0/16", "except": [f"172.{16 + n % 16}.1.0/24"]}}],
             "ports": [{"protocol": "TCP", "port": 9000, "endPort": 9000 + n % 100}]},
        ],
        "policyTypes": ["Ingress"],
    }
    if n % 4 == 0:
        spec["policyTypes"].append("Egress")
        spec["egress"] = [{"to": [{"namespaceSelector": {"matchLabels": {"team": f"t{(n + 1) % 5}"}}}],
                           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
    return {"metadata": {"namespace": f"ns{i}", "name": f"bg{n}"}, "spec": spec}


def pair_policies() -> list[dict]:
    """What lets the measured pair through: ingress to the server from the client's
    namespace and label, egress from the client to the server's namespace."""
    return [
        {"metadata": {"namespace": "ns0", "name": "allow-client"},
         "spec": {"podSelector": {"matchLabels": {"app": "app0"}}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns1"}},
                                         "podSelector": {"matchLabels": {"app": "app1"}}}],
                               "ports": [{"protocol": "TCP", "port": 80}]}]}},
        {"metadata": {"namespace": "ns1", "name": "client-egress"},
         "spec": {"podSelector": {"matchLabels": {"app": "app1"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns0"}}}],
                              "ports": [{"protocol": "TCP", "port": 80}]}]}},
    ]


def compiler_with(n_policies: int) -> Compiler:
    """A compiler holding the synthetic cluster and n policies (the pair's two among them)."""
    c = Compiler(NODE)
    c.upsert("Node", {"metadata": {"name": NODE}, "status": {"addresses": [{"type": "InternalIP",
                                                                            "address": "192.168.56.11"}]}})
    for i in range(NAMESPACES):
        c.upsert("Namespace", namespace(i))
    for p in pods():
        c.upsert("Pod", p)
    pols = pair_policies() if n_policies else []
    pols += [policy(n) for n in range(max(0, n_policies - len(pols)))]
    for p in pols:
        c.upsert("NetworkPolicy", p)
    return c


# -- data path -------------------------------------------------------------------------------


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def build_node(prefix: str, tag: str) -> tuple[str, str, str]:
    """A node namespace with a bridge, and a client and a server namespace on it."""
    node, cli, srv = f"{prefix}-{tag}n", f"{prefix}-{tag}c", f"{prefix}-{tag}s"
    for name in (node, cli, srv):
        ns.create_netns(name)
    sh("ip", "-n", node, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", node, "addr", "add", f"{BRIDGE_IP}/16", "dev", "br0")
    sh("ip", "-n", node, "link", "set", "br0", "up")
    for pod, ip in ((cli, CLIENT_IP), (srv, SERVER_IP)):
        sh("ip", "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{pod[-1]}", "netns", node)
        sh("ip", "-n", pod, "addr", "add", f"{ip}/16", "dev", "eth0")
        sh("ip", "-n", pod, "link", "set", "eth0", "up")
        sh("ip", "-n", pod, "link", "set", "lo", "up")
        sh("ip", "-n", node, "link", "set", f"v{pod[-1]}", "master", "br0", "up")
    return node, cli, srv


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80))
s.listen(4096)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""


def start_server(netns: str) -> subprocess.Popen:
    """A server accepting on port 80 in the namespace, in a process of its own: in a thread
    here its accepts would take the GIL from the measuring thread at the very moment a
    connect returns, which weighed on some tables more than others."""
    proc = subprocess.Popen(["nsenter", f"--net={ns.netns_path(netns)}", sys.executable, "-c", SERVER, SERVER_IP],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit(f"the server in {netns} did not start")
    return proc


def dropped(path: str, port: int) -> bool:
    """Whether a connect from the client namespace to the server's `port` is dropped (a
    time-out), rather than refused by the server's kernel (no listener: the packet got through)."""
    with ns.entered(net=path):
        s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((SERVER_IP, port))
        return False
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def connect_rounds(clients: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """TCP connect times (us) from each client namespace to its server, one connect
    per client per round in a shuffled order, so load drift weighs on all alike."""
    times: dict[str, list[float]] = {k: [] for k in clients}
    order = list(clients)
    batch = 50
    for start in range(0, rounds, batch):
        n = min(batch, rounds - start)
        socks = {}
        for k, path in clients.items():
            with ns.entered(net=path):
                socks[k] = [socket.socket() for _ in range(n)]
        for i in range(n):
            random.shuffle(order)
            for k in order:
                s = socks[k][i]
                s.settimeout(2)
                t0 = time.perf_counter()
                s.connect((SERVER_IP, 80))
                times[k].append(time.perf_counter() - t0)
                s.close()
    return {k: [t * 1e6 for t in v] for k, v in times.items()}


def bench_datapath(sizes: list[int], rounds: int) -> dict:
    """Each node (bridge, client, server) holds each table in turn, one turn per table
    (a Latin square), so what differs between the nodes themselves weighs on every
    table alike; within a turn connects go round-robin across the nodes."""
    prefix = unique_name("kq")
    cases = ["bare", *[str(n) for n in [0, *sizes]]]
    made: list[str] = []
    servers: list[subprocess.Popen] = []
    out: dict = {}
    empty = f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
    try:
        texts = {"bare": empty}
        for case in cases[1:]:
            compiler = compiler_with(int(case))
            texts[case] = compiler.full()
            out[f"full_sync_ops_{case}"] = compiler.ops(texts[case])
        nodes: list[tuple[Nft, str]] = []
        for idx in range(len(cases)):
            node, cli, srv = build_node(prefix, f"{idx}")
            made += [node, cli, srv]
            servers.append(start_server(srv))
            with ns.entered(net=ns.netns_path(node)):
                nodes.append((Nft(), ns.netns_path(cli)))
        samples: dict[str, list[float]] = {c: [] for c in cases}
        for turn in range(len(cases)):
            clients = {}
            for k, (nft, cli_path) in enumerate(nodes):
                case = cases[(k + turn) % len(cases)]
                t0 = time.perf_counter()
                nft.run(texts[case])
                if turn == 0 and case != "bare":
                    out[f"full_sync_ms_{case}"] = (time.perf_counter() - t0) * 1000
                    print(f"  {int(case):>5} policies: table of {out[f'full_sync_ops_{case}']} ops loaded in "
                          f"{out[f'full_sync_ms_{case}']:.1f} ms", flush=True)
                if case not in ("bare", "0") and (turn == 0 or case == cases[-1]) and not dropped(cli_path, 81):
                    raise SystemExit(f"{case} policies: the client reaches the server's port 81, which no "
                                     "policy allows: the pair is not judged by the table, nothing to measure")
                clients[case] = cli_path
            connect_rounds(clients, 3)  # each pair connects before measuring (ARP, caches)
            for case, times in connect_rounds(clients, max(1, rounds // len(cases))).items():
                samples[case] += times
        medians = {c: statistics.median(v) for c, v in samples.items()}
        out["connect_us"] = medians
        for case in cases:
            print(f"  connect with {'no table' if case == 'bare' else case + ' policies':>14}: "
                  f"{medians[case]:7.1f} us", flush=True)
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        for name in made:
            ns.delete_netns(name)
    return out


# -- sync cost --------------------------------------------------------------------------------


def bench_sync(sizes: list[int], repeats: int = 11) -> dict:
    """Operation counts and apply times (median of `repeats`, each change undone between) for
    one change with n policies present, in a namespace of the benchmark's own holding the
    n-policy table: a new policy selecting a pod of this node, a new policy selecting only a
    pod elsewhere (its chains live on that pod's node), a pod label change, and no change."""
    name = unique_name("kq") + "-sync"
    out: dict = {}
    ns.create_netns(name)
    try:
        with ns.entered(net=ns.netns_path(name)):
            nft = Nft()
            for n in sizes:
                c = compiler_with(n)
                nft.run(c.full())
                here, elsewhere = new_policy(n, local=True), new_policy(n, local=False)
                changes = {  # (verb, kind, object) to make the change, and to undo it
                    "new_policy": (("upsert", "NetworkPolicy", here), ("delete", "NetworkPolicy", here)),
                    "new_policy_elsewhere": (("upsert", "NetworkPolicy", elsewhere),
                                             ("delete", "NetworkPolicy", elsewhere)),
                    "label_change": (("upsert", "Pod", relabelled()), ("upsert", "Pod", relabelled(False))),
                    "no_change": (("upsert", "Pod", relabelled(False)), None),
                }
                for key, (do, undo) in changes.items():
                    times = []
                    for _ in range(repeats):
                        getattr(c, do[0])(do[1], do[2])
                        text = c.changes()
                        t0 = time.perf_counter()
                        if text:
                            nft.run(text)
                        times.append((time.perf_counter() - t0) * 1000)
                        out[f"{key}_ops_{n}"] = c.ops(text) if text else 0
                        if undo is not None:
                            getattr(c, undo[0])(undo[1], undo[2])
                            if text := c.changes():
                                nft.run(text)
                    out[f"{key}_apply_ms_{n}"] = statistics.median(times)
                print(f"  {n:>5} policies: new policy {out[f'new_policy_ops_{n}']} ops "
                      f"({out[f'new_policy_apply_ms_{n}']:.2f} ms), one selecting a pod elsewhere "
                      f"{out[f'new_policy_elsewhere_ops_{n}']} ops ({out[f'new_policy_elsewhere_apply_ms_{n}']:.2f} ms), "
                      f"pod label change {out[f'label_change_ops_{n}']} ops "
                      f"({out[f'label_change_apply_ms_{n}']:.2f} ms), no change {out[f'no_change_ops_{n}']} ops",
                      flush=True)
    finally:
        ns.delete_netns(name)
    return out


def new_policy(n: int, local: bool) -> dict:
    """The background's next policy (after the n present) whose selected pod is on this node, or is not."""
    on_node = {(p["metadata"]["namespace"], p["metadata"]["labels"]["app"]) for p in pods()
               if p["spec"]["nodeName"] == NODE}
    m = n + 7
    while True:
        p = policy(m)
        if ((p["metadata"]["namespace"], p["spec"]["podSelector"]["matchLabels"]["app"]) in on_node) == local:
            p["metadata"]["name"] = "new-policy"
            return p
        m += 1


def relabelled(changed: bool = True) -> dict:
    """ns3/p4 (on this node), taking another app label: it leaves and joins selector sets."""
    p = next(p for p in pods() if p["metadata"]["namespace"] == "ns3" and p["metadata"]["name"] == "p4")
    if changed:
        p["metadata"]["labels"] = {"app": "app5", "tier": "tier1"}
    return p


# -- live cluster -----------------------------------------------------------------------------


def live_manifest(n_pods: int) -> str:
    docs = []
    for i in range(NAMESPACES):
        docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{i}, labels: {{team: t{i % 5}}}}}\n")
    for k in range(n_pods):
        i, j = k % NAMESPACES, k // NAMESPACES
        docs.append(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{j}, namespace: ns{i}, labels: "
                    f"{{app: app{j % 10}, tier: tier{j % 3}}}}}\nspec: {{containers: [{{name: c, image: agnhost, "
                    f"ports: [{{containerPort: 80, name: http}}]}}]}}\n")
    docs.append("""apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {nodeName: worker-1, containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench, labels: {role: none}}
spec: {nodeName: worker-2, containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-srv, namespace: bench, labels: {app: perf}}
spec: {nodeName: worker-1, containers: [{name: s, image: agnhost, command: [iperf3, -s],
       ports: [{containerPort: 5201}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-cli, namespace: bench, labels: {role: perf}}
spec: {nodeName: worker-2, containers: [{name: c, image: agnhost, command: [sleep, "3600"]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: bench}
spec: {podSelector: {matchLabels: {app: server}}, policyTypes: [Ingress]}
""")
    return "---\n".join(docs)


ALLOW_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-NAME, namespace: bench}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {role: NAME}}}], ports: [{port: 80}]}]
"""

PERF_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: perf, namespace: bench}
spec:
  podSelector: {matchLabels: {app: perf}}
  ingress: [{from: [{podSelector: {matchLabels: {role: perf}}}], ports: [{port: 5201}]}]
"""


def live_policies(n: int) -> str:
    """The background: policy(k) of the synthetic cluster, as YAML-compatible JSON documents."""
    return "\n---\n".join(json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                      **policy(k)}) for k in range(n))


def first_connect(path: str, ip: str, deadline: float, stop: threading.Event) -> float | None:
    """The time the first TCP connect from the namespace at `path` gets through: a new
    non-blocking connect every millisecond, each left in flight (a dropped SYN is only
    retried by the kernel a second later), so the answer is late by at most ~1 ms, not by
    a connect time-out."""
    import select

    spare: list[socket.socket] = []
    flying: dict[int, socket.socket] = {}
    poller = select.poll()
    try:
        while time.time() < deadline and not stop.is_set():
            if not spare:
                with ns.entered(net=path):  # a socket stays in the namespace it was made in
                    spare = [socket.socket() for _ in range(100)]
                for x in spare:
                    x.setblocking(False)
            s = spare.pop()
            s.connect_ex((ip, 80))
            flying[s.fileno()] = s
            poller.register(s, select.POLLOUT)
            if len(flying) > 300:  # the oldest gives way (file descriptors are few); newer ones cover it
                fd = next(iter(flying))
                poller.unregister(fd)
                flying.pop(fd).close()
            for fd, _ev in poller.poll(1):
                done = flying.pop(fd)
                poller.unregister(fd)
                ok = done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                done.close()
                if ok:
                    return time.time()
        return None
    finally:
        for x in [*spare, *flying.values()]:
            x.close()


def blocked(path: str, ip: str) -> bool:
    with ns.entered(net=path):
        s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect((ip, 80))
        return False
    except OSError:
        return True
    finally:
        s.close()


def timed_to_connect(path: str, ip: str, act) -> float | None:
    """Start polling, then `act`; the time from `act`'s start to the first connection, in ms."""
    result: list[float | None] = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: result.append(first_connect(path, ip, time.time() + 20, stop)))
    t.start()
    time.sleep(0.05)
    t0 = time.time()
    try:
        act()
    finally:
        t.join(25)
        stop.set()
    return (result[0] - t0) * 1000 if result and result[0] else None


def wait_until(cond, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise SystemExit("timed out waiting for the client to be blocked again")
        time.sleep(0.05)


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def knet_command() -> list[str]:
    """This tree's `knet`, started as the installed command starts it (scripts/knet-launch:
    `python -I -S`, sys.path recorded by setup), so `knet apply` is timed as a user runs it,
    of the code under test (the `knet` on PATH may belong to another checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    launcher = os.path.join(root, "scripts", "knet-launch")
    if os.path.exists(os.path.join(root, ".venv", "knet-sys-path")) and os.path.exists(launcher):
        return [sys.executable, "-I", "-S", launcher]
    return [sys.executable, "-m", "knet.cli"]


def bench_cluster(runs: int, n_pods: int, n_policies: int, iperf_rounds: int = 8) -> dict:
    from knet.api.client import for_cluster
    from knet.api.resources import by_kind

    name = unique_name("kq")
    cli = knet_command()
    out: dict = {}
    knet("up", "--cluster", name)
    try:
        t0 = time.perf_counter()
        knet("--cluster", name, "apply", "-f", "-", "--wait", input=live_manifest(n_pods))
        api = for_cluster(name)
        pods = by_kind("Pod")
        deadline = time.time() + 120
        while time.time() < deadline:
            items = api.list(pods)["items"]
            if all(p.get("status", {}).get("phase") == "Running" for p in items):
                break
            time.sleep(0.5)
        if n_policies:
            knet("--cluster", name, "apply", "-f", "-", "--wait", input=live_policies(n_policies))
        out["cluster_setup_s"] = time.perf_counter() - t0
        server = api.get(pods, "bench", "server")
        client = api.get(pods, "bench", "client")
        from knet.config import load_saved

        cfg = load_saved(name)
        path = ns.netns_path(cfg.pod_netns(client["metadata"]["uid"]))
        ip = server["status"]["podIP"]
        if not blocked(path, ip):
            raise SystemExit("the deny-ingress policy does not block the client: nothing to measure")
        # `knet apply` of the policy as YAML (the headline), of the same as JSON (the CLI's parse needs
        # no YAML import then), and the API POST alone (the engine's share), taken in rotation.
        label_ms: list[float] = []
        pol = ALLOW_POLICY.replace("NAME", "none")
        pol_obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "allow-none", "namespace": "bench"},
                   "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "none"}}}],
                                         "ports": [{"port": 80}]}]}}
        netpols = by_kind("NetworkPolicy")
        acts = {
            "yaml": lambda: subprocess.run([*cli, "--cluster", name, "apply", "-f", "-"], input=pol,
                                           capture_output=True, text=True, check=True),
            "json": lambda: subprocess.run([*cli, "--cluster", name, "apply", "-f", "-"], input=json.dumps(pol_obj),
                                           capture_output=True, text=True, check=True),
            "api": lambda: api.create(netpols, "bench", pol_obj),
        }
        apply_ms: dict[str, list[float]] = {k: [] for k in acts}
        for r in range(runs):
            for k in list(acts)[r % 3:] + list(acts)[:r % 3]:
                ms = timed_to_connect(path, ip, acts[k])
                if ms is not None:
                    apply_ms[k].append(ms)
                knet("--cluster", name, "delete", "-f", "-", "--wait", input=pol)
        policy_ms = apply_ms["yaml"]
        knet("--cluster", name, "apply", "-f", "-", "--wait", input=ALLOW_POLICY.replace("NAME", "client"))
        for _ in range(runs):
            ms = timed_to_connect(path, ip, lambda: api.patch(pods, "bench", "client",
                                                              {"metadata": {"labels": {"role": "client"}}}))
            if ms is not None:
                label_ms.append(ms)
            api.patch(pods, "bench", "client", {"metadata": {"labels": {"role": "none"}}})
            wait_until(lambda: blocked(path, ip))
        out.update({"apply_policy_to_enforced_p50_ms": pct(policy_ms, 0.5),
                    "apply_policy_to_enforced_p95_ms": pct(policy_ms, 0.95), "apply_policy_samples": len(policy_ms),
                    "apply_json_policy_to_enforced_p50_ms": pct(apply_ms["json"], 0.5),
                    "apply_json_policy_to_enforced_p95_ms": pct(apply_ms["json"], 0.95),
                    "api_create_policy_to_enforced_p50_ms": pct(apply_ms["api"], 0.5),
                    "api_create_policy_to_enforced_p95_ms": pct(apply_ms["api"], 0.95),
                    "label_change_to_enforced_p50_ms": pct(label_ms, 0.5),
                    "label_change_to_enforced_p95_ms": pct(label_ms, 0.95), "label_change_samples": len(label_ms)})
        status = knet("--cluster", name, "status").stdout
        out["status_policy_lines"] = [x.strip() for x in status.splitlines() if "policy:" in x]
        perf_ip = api.get(pods, "bench", "perf-srv")["status"]["podIP"]
        rates: dict[str, list[float]] = {"none": [], "allow": []}
        for r in range(iperf_rounds):
            for key in (("none", "allow") if r % 2 == 0 else ("allow", "none")):
                if key == "allow":
                    knet("--cluster", name, "apply", "-f", "-", "--wait", input=PERF_POLICY)
                else:
                    knet("--cluster", name, "delete", "-f", "-", "--wait", "--ignore-not-found", input=PERF_POLICY)
                res = knet("--cluster", name, "exec", "-n", "bench", "perf-cli", "--", "iperf3", "-c", perf_ip,
                           "-t", "3", "-J")
                rates[key].append(json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9)
        out["iperf_no_policy_gbps"] = statistics.median(rates["none"])
        out["iperf_allow_policy_gbps"] = statistics.median(rates["allow"])
        out["iperf_ratios"] = [a / b for a, b in zip(rates["allow"], rates["none"], strict=True)]
    finally:
        knet("down", "--cluster", name)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000", help="policy counts for the data path and the sync")
    p.add_argument("--rounds", type=int, default=2000, help="connects per table, taken round-robin")
    p.add_argument("--runs", type=int, default=20, help="apply-to-enforcement samples of each kind")
    p.add_argument("--cluster-pods", type=int, default=200)
    p.add_argument("--cluster-policies", type=int, default=1000)
    p.add_argument("--iperf-rounds", type=int, default=8, help="iperf3 runs (3 s) of each kind, alternating")
    p.add_argument("--no-cluster", action="store_true", help="skip the live cluster part")
    args = p.parse_args()
    require_root()
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` removes the namespaces
    sizes = [int(x) for x in args.sizes.split(",")]
    big = sizes[-1]
    print(f"data path (median TCP connect between two pods, {NAMESPACES * PODS_PER_NS} pods in {NAMESPACES} "
          f"namespaces):")
    dp = bench_datapath(sizes, args.rounds)
    print("sync (nftables operations for one change):")
    sy = bench_sync(sizes)
    f: dict = {f"connect_us_{k}": round(v, 1) for k, v in dp["connect_us"].items()}
    f[f"connect_ratio_{big}_vs_none"] = round(dp["connect_us"][str(big)] / dp["connect_us"]["0"], 3)
    f[f"connect_ratio_{big}_vs_no_table"] = round(dp["connect_us"][str(big)] / dp["connect_us"]["bare"], 3)
    f.update({k: round(v, 2) for k, v in dp.items() if k.startswith("full_sync_ms")})
    f.update({k: v for k, v in dp.items() if k.startswith("full_sync_ops")})
    f.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in sy.items()})
    print(f"connect with {big} policies vs none: {f[f'connect_ratio_{big}_vs_none']}x (target <= 1.10), vs a node "
          f"with no table {f[f'connect_ratio_{big}_vs_no_table']}x")
    print(f"with {big} policies: new policy {sy[f'new_policy_ops_{big}']} ops, pod label change "
          f"{sy[f'label_change_ops_{big}']} ops, no change {sy[f'no_change_ops_{big}']} ops (target 0)")
    if not args.no_cluster:
        cl = bench_cluster(args.runs, args.cluster_pods, args.cluster_policies, args.iperf_rounds)
        f["cluster_pods"], f["cluster_policies"] = args.cluster_pods, args.cluster_policies
        f.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in cl.items() if k != "iperf_ratios"})
        f["iperf_allow_vs_none"] = round(statistics.median(cl["iperf_ratios"]), 3)
        f["iperf_round_ratios"] = [round(x, 3) for x in cl["iperf_ratios"]]
        print(f"`knet apply` of a policy -> enforced: p50 {f['apply_policy_to_enforced_p50_ms']} ms, p95 "
              f"{f['apply_policy_to_enforced_p95_ms']} ms over {f['apply_policy_samples']} (target p50 < 100 ms); "
              f"the same as JSON: p50 {f['apply_json_policy_to_enforced_p50_ms']} ms, p95 "
              f"{f['apply_json_policy_to_enforced_p95_ms']} ms; the API POST alone: p50 "
              f"{f['api_create_policy_to_enforced_p50_ms']} ms, p95 {f['api_create_policy_to_enforced_p95_ms']} ms; "
              f"pod label change -> enforced: p50 {f['label_change_to_enforced_p50_ms']} ms, p95 "
              f"{f['label_change_to_enforced_p95_ms']} ms; with {args.cluster_policies} policies over "
              f"{args.cluster_pods} pods in force")
        print(f"iperf3 pod to pod: allow policy {f['iperf_allow_policy_gbps']} vs none {f['iperf_no_policy_gbps']} "
              f"Gbit/s = {f['iperf_allow_vs_none']} (target >= 0.95)")
    emit(f)


if __name__ == "__main__":
    main()
