"""Proxy benchmark (issue: Services), side by side in one run.

  - Data path: median TCP connect time through a ClusterIP with 10, 1,000,
    10,000 and 30,000 Services (5 endpoints each) programmed, knet's verdict-map
    table against the same Services as one rule per Service in a linear chain
    (kube-proxy's iptables-mode shape), the measured Service last. Each table
    is real nftables in a client namespace of the benchmark's own, all wired
    to one server namespace, and the connects are taken round-robin across
    them, so a ratio compares samples taken in the same moments.
  - Sync, with --sync-services Services present (the issue asks for 10,000):
    nftables operations for a new Service with one endpoint, for one endpoint
    change and for no change; the time of a full sync from nothing.
  - On a live cluster: time from `knet apply` of a new Service (the command
    on PATH, its process start included) to its first successful connection
    from a pod, p50 of 10; beside it the same from the API write itself; and
    iperf3 pod -> ClusterIP -> pod against pod -> pod IP.

Run as root: .venv/bin/python bench/proxy.py [--sizes 10,1000,10000,30000] [--sync-services 10000]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
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
from knet.proxy.model import Endpoint, ServicePort  # noqa: E402
from knet.proxy.rules import Table, per_service  # noqa: E402
from knet.proxy.sync import write_table  # noqa: E402

SERVER_IP, CLIENT_IP = "10.99.0.2", "10.99.0.1"
POD_SUBNET = "10.99.0.0/16"


def service_ports(n: int, real_last: bool = True) -> list[ServicePort]:
    out = []
    svc_net = ipaddress.ip_network("10.100.0.0/16")
    for i in range(n):
        ip = str(svc_net.network_address + 1 + i)
        last = real_last and i == n - 1
        eps = tuple(Endpoint(SERVER_IP if last else f"10.98.{(i * 5 + k) // 250 % 250}.{(i * 5 + k) % 250 + 1}", 8080)
                    for k in range(5))
        out.append(ServicePort("bench", f"s{i}", "", "tcp", ip, 80, None, (), eps))
    return out


def linear_chain(ports: list[ServicePort]) -> str:
    """The iptables-mode shape: one rule per Service, tested in order."""
    lines = ["add table ip knet-linear", "flush table ip knet-linear", "table ip knet-linear {",
             "\tchain out {", "\t\ttype nat hook output priority -100; policy accept;"]
    lines += [f"\t\tip daddr {sp.cluster_ip} tcp dport {sp.port} dnat to {sp.endpoints[0].ip}:{sp.endpoints[0].port}"
              for sp in ports]
    return "\n".join(lines + ["\t}", "}"]) + "\n"


def full_sync(nft: Nft, ports: list[ServicePort]) -> Table:
    """What the agent does on its first sync: compute every Service's objects, read the table, write it whole."""
    table = Table(per_service(ports, POD_SUBNET))
    write_table(nft, table)
    return table


def cpu_seconds() -> float:
    """User and system CPU of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sockets_in(path: str, n: int) -> list[socket.socket]:
    """`n` TCP sockets created inside the namespace at `path` (a socket stays in the netns it was made in)."""
    with ns.entered(net=path):
        return [socket.socket() for _ in range(n)]


def connect_rounds(clients: dict[str, tuple[str, str]], rounds: int) -> dict[str, float]:
    """Median TCP connect time (us) from each client namespace to its target,
    taken round-robin (one connect per client per round, in a shuffled
    order) so that whatever the machine does meanwhile weighs on every
    table alike."""
    import random

    times: dict[str, list[float]] = {k: [] for k in clients}
    batch = 50
    order = list(clients)
    for start in range(0, rounds, batch):
        socks = {k: sockets_in(netns, min(batch, rounds - start)) for k, (netns, _) in clients.items()}
        for i in range(min(batch, rounds - start)):
            random.shuffle(order)
            for k in order:
                ip = clients[k][1]
                s = socks[k][i]
                t0 = time.perf_counter()
                s.connect((ip, 80))
                times[k].append(time.perf_counter() - t0)
                s.close()
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


def server(stop: threading.Event, ready: threading.Event, netns: str) -> None:
    with ns.entered(net=ns.netns_path(netns)):
        s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((SERVER_IP, 8080))
    s.listen(4096)
    s.settimeout(0.2)
    ready.set()
    while not stop.is_set():
        try:
            c, _ = s.accept()
            c.close()
        except TimeoutError:
            pass
    s.close()


def bench_datapath(sizes: list[int], sync_services: int, rounds: int) -> dict:
    """One client namespace per (table, size), all wired to one server
    namespace; every table is loaded first, then measured interleaved."""
    prefix = unique_name("kx")
    srv = f"{prefix}-s"
    clients = {(kind, n): f"{prefix}-{kind[0]}{i}" for i, n in enumerate(sizes) for kind in ("knet", "linear")}
    made = [srv]
    stop, ready = threading.Event(), threading.Event()
    out: dict = {}
    try:
        ns.create_netns(srv)
        subprocess.run(["ip", "-n", srv, "addr", "add", f"{SERVER_IP}/32", "dev", "lo"], check=True)
        for j, cli in enumerate(clients.values(), start=1):
            ns.create_netns(cli)
            made.append(cli)
            here, there = f"10.99.{j}.1", f"10.99.{j}.2"  # clients inside POD_SUBNET, as pods are
            subprocess.run(["ip", "-n", cli, "link", "add", "v0", "type", "veth", "peer", "name", f"v{j}",
                            "netns", srv], check=True)
            for netns, dev, ip in ((cli, "v0", here), (srv, f"v{j}", there)):
                subprocess.run(["ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", dev], check=True)
                subprocess.run(["ip", "-n", netns, "link", "set", dev, "up"], check=True)
            for dst in (f"{SERVER_IP}/32", "10.100.0.0/16", "10.101.0.0/16"):
                subprocess.run(["ip", "-n", cli, "route", "add", dst, "via", there], check=True)
        t = threading.Thread(target=server, args=(stop, ready, srv), daemon=True)
        t.start()
        ready.wait(5)
        targets = {}
        for (kind, n), cli in clients.items():
            ports = service_ports(n)
            targets[(kind, n)] = (ns.netns_path(cli), ports[-1].cluster_ip)
            with ns.entered(net=ns.netns_path(cli)):
                nft = Nft()  # a context talks to the namespace it was made in
                t0 = time.perf_counter()
                full_sync(nft, ports) if kind == "knet" else nft.run(linear_chain(ports))
                print(f"  {kind:>6} table, {n:>6} Services: loaded in {time.perf_counter() - t0:.2f} s", flush=True)
        # Each shape among its own kind: a linear chain's 30,000 rules would flush the caches for the next connect.
        medians = {}
        for kind in ("knet", "linear"):
            medians.update(connect_rounds({k: v for k, v in targets.items() if k[0] == kind}, rounds))
        for n in sizes:
            out[n] = {"knet_us": medians[("knet", n)], "linear_us": medians[("linear", n)]}
            print(f"  {n:>6} Services: knet {out[n]['knet_us']:7.1f} us, linear chain {out[n]['linear_us']:8.1f} us",
                  flush=True)
        for cli in clients.values():  # free the memory before the sync figures
            ns.delete_netns(cli)
            made.remove(cli)
        # Sync with 10,000 Services: a full sync from nothing, then operation counts and apply times.
        sync_ns = f"{prefix}-y"
        ns.create_netns(sync_ns)
        made.append(sync_ns)
        with ns.entered(net=ns.netns_path(sync_ns)):
            nft = Nft()
            ports = service_ports(sync_services, real_last=False)
            t0, c0 = time.perf_counter(), cpu_seconds()
            table = full_sync(nft, ports)
            out["full_sync_10k_s"] = time.perf_counter() - t0
            # CPU of this process (rules in Python, libnftables, the kernel's netlink work): what the
            # sync costs, whatever else the machine runs meanwhile.
            out["full_sync_cpu_s"] = cpu_seconds() - c0
            new = ServicePort("bench", "new", "", "tcp", "10.101.0.1", 80, None, (), (Endpoint(SERVER_IP, 8080),))
            t0 = time.perf_counter()
            ops = table.update(per_service([new], POD_SUBNET))
            nft.run("\n".join(ops) + "\n")
            out["new_service_ops"], out["new_service_apply_ms"] = len(ops), (time.perf_counter() - t0) * 1000
            moved = ServicePort("bench", "new", "", "tcp", "10.101.0.1", 80, None, (), (Endpoint("10.98.200.1", 8080),))
            t0 = time.perf_counter()
            ops = table.update(per_service([moved], POD_SUBNET))
            nft.run("\n".join(ops) + "\n")
            out["endpoint_change_ops"], out["endpoint_change_apply_ms"] = len(ops), (time.perf_counter() - t0) * 1000
            out["no_change_ops"] = len(table.update(per_service([moved], POD_SUBNET)))
    finally:
        stop.set()
        for name in made:
            ns.delete_netns(name)
    return out


APP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
      - {name: web, image: agnhost, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: prober}
spec: {nodeName: worker-1, containers: [{name: c, image: agnhost, command: [sleep, "600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-srv, labels: {app: perf}}
spec: {nodeName: worker-2, containers: [{name: s, image: agnhost, command: [iperf3, -s], ports: [{containerPort: 5201}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: perf}
spec: {selector: {app: perf}, ports: [{port: 5201}]}
"""

PROBE = """
import socket, sys, time
ip = sys.argv[1]
end = time.time() + 10
while time.time() < end:
    s = socket.socket(); s.settimeout(0.005)
    try:
        s.connect((ip, 80)); print(time.time()); break
    except OSError:
        time.sleep(0.001)
    finally:
        s.close()
"""


def first_connect_ms(name: str, ip: str, create) -> float | None:
    """Start a pod polling `ip` (a 5 ms connect time-out, then again), make
    the Service with `create`, and return the time to the first connection."""
    probe = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", name, "exec", "prober", "--",
                              "python3", "-c", PROBE, ip], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    t0 = time.time()
    create()
    first = probe.communicate(timeout=20)[0].strip()
    return (float(first) - t0) * 1000 if first else None


def bench_cluster(runs: int = 10) -> dict:
    import yaml  # the manifest as users write it: YAML

    from knet.api.client import for_cluster
    from knet.api.resources import by_kind

    name = unique_name("kx")
    knet("up", "--cluster", name)
    # The command users run: the launcher scripts/setup installs (Python without site's .pth processing).
    cli = [shutil.which("knet")] if shutil.which("knet") else [sys.executable, "-m", "knet.cli"]
    try:
        knet("--cluster", name, "apply", "-f", "-", "--wait", input=APP)
        time.sleep(2)
        api = for_cluster(name)
        latencies: dict[str, list[float]] = {"cli": [], "api": []}
        for i in range(runs):
            for way in ("cli", "api"):
                ip = f"10.96.200.{2 * i + 10 + (way == 'api')}"
                svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"quick-{way}{i}"},
                       "spec": {"clusterIP": ip, "selector": {"app": "backend"},
                                "ports": [{"port": 80, "targetPort": 8080}]}}
                if way == "cli":
                    def create(svc=svc):
                        subprocess.run([*cli, "--cluster", name, "apply", "-f", "-"], input=yaml.safe_dump(svc),
                                       capture_output=True, text=True, check=True)
                else:
                    def create(svc=svc):
                        api.create(by_kind("Service"), "default", svc)
                ms = first_connect_ms(name, ip, create)
                if ms is not None:
                    latencies[way].append(ms)
        out = json.loads(knet("--cluster", name, "get", "pod", "perf-srv", "-o", "json").stdout)
        pod_ip = out["status"]["podIP"]
        svc_ip = json.loads(knet("--cluster", name, "get", "svc", "perf", "-o", "json").stdout)["spec"]["clusterIP"]
        rates = {"pod": [], "svc": []}
        for _ in range(3):
            for key, ip in (("pod", pod_ip), ("svc", svc_ip)):
                r = knet("--cluster", name, "exec", "prober", "--", "iperf3", "-c", ip, "-t", "3", "-J")
                rates[key].append(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9)
    finally:
        knet("down", "--cluster", name)
    return {"apply_to_first_connect_p50_ms": statistics.median(latencies["cli"]) if latencies["cli"] else None,
            "apply_samples": len(latencies["cli"]),
            "api_create_to_first_connect_p50_ms": statistics.median(latencies["api"]) if latencies["api"] else None,
            "iperf_pod_ip_gbps": statistics.median(rates["pod"]), "iperf_cluster_ip_gbps": statistics.median(rates["svc"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,1000,10000,30000")
    p.add_argument("--sync-services", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=2000, help="connects per table, taken round-robin")
    args = p.parse_args()
    require_root()
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` removes the namespaces
    sizes = [int(x) for x in args.sizes.split(",")]
    print("data path (median TCP connect through a ClusterIP):")
    dp = bench_datapath(sizes, args.sync_services, args.rounds)
    cl = bench_cluster()
    small, big = sizes[0], sizes[-1]
    f = {f"connect_us_{n}": round(dp[n]["knet_us"], 1) for n in sizes}
    f.update({f"linear_connect_us_{n}": round(dp[n]["linear_us"], 1) for n in sizes})
    f["knet_big_vs_small"] = round(dp[big]["knet_us"] / dp[small]["knet_us"], 3)
    f["linear_big_vs_small"] = round(dp[big]["linear_us"] / dp[small]["linear_us"], 3)
    f["linear_vs_knet_at_big"] = round(dp[big]["linear_us"] / dp[big]["knet_us"], 2)
    for k in ("new_service_ops", "endpoint_change_ops", "no_change_ops"):
        f[k] = dp[k]
    f["sync_services"] = args.sync_services
    f["new_service_apply_ms"] = round(dp["new_service_apply_ms"], 2)
    f["endpoint_change_apply_ms"] = round(dp["endpoint_change_apply_ms"], 2)
    f["full_sync_s"] = round(dp["full_sync_10k_s"], 2)
    f["full_sync_cpu_s"] = round(dp["full_sync_cpu_s"], 2)
    f.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in cl.items()})
    f["cluster_ip_vs_pod_ip_throughput"] = round(cl["iperf_cluster_ip_gbps"] / cl["iperf_pod_ip_gbps"], 2)
    print(f"connect at {big} vs {small} Services: knet {f['knet_big_vs_small']}x (target <= 1.10), "
          f"linear chain {f['linear_big_vs_small']}x; at {big} the linear chain is {f['linear_vs_knet_at_big']}x slower")
    n = args.sync_services
    print(f"sync with {n} Services: new Service {f['new_service_ops']} ops (target <= 10, applied in "
          f"{f['new_service_apply_ms']} ms), endpoint change {f['endpoint_change_ops']} ops (in "
          f"{f['endpoint_change_apply_ms']} ms), no change "
          f"{f['no_change_ops']} ops (target 0); full sync of {n} Services / {5 * n} endpoints from nothing "
          f"{f['full_sync_s']} s, {f['full_sync_cpu_s']} s of CPU (target for 10,000: < 5 s)")
    print(f"`knet apply` -> first connection p50 {f['apply_to_first_connect_p50_ms']} ms over {f['apply_samples']} "
          f"(target < 100 ms; the API write alone -> first connection {f['api_create_to_first_connect_p50_ms']} ms); iperf3 via ClusterIP {f['iperf_cluster_ip_gbps']} vs pod IP {f['iperf_pod_ip_gbps']} "
          f"Gbit/s = {f['cluster_ip_vs_pod_ip_throughput']} (target >= 0.95)")
    emit(f)


if __name__ == "__main__":
    main()
