"""CNI and pod-network benchmark (issue: pod networking), side by side in one run.

  - ADD and DEL latency (p50, p95) of knet-cni (the thick plugin: shim + agent
    server) against Debian's reference `bridge` + `host-local` (/usr/lib/cni),
    both driven the same way (env + stdin, from a node namespace), for 100 pods
    one at a time and 8 in parallel;
  - pods per second: a 100-replica Deployment from `knet apply` to all pods
    Running with IPs, against the reference plugins attaching 100 namespaces;
  - iperf3 TCP throughput: pod-to-pod on one node against a bare veth pair
    between two namespaces, and pod-to-pod across the VXLAN overlay against
    node-to-node over the LAN; the four paths run back to back in each of
    --rounds rounds (medians reported, and every round's ratios).

Run as root: .venv/bin/python bench/cni.py [--pods 100] [--rounds 5]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, knet, require_root  # noqa: E402

from knet.api.resources import by_kind  # noqa: E402
from knet.cluster import connect  # noqa: E402
from knet.harness.cluster import unique_name  # noqa: E402
from knet.harness.cni import run_plugin, start_server  # noqa: E402
from knet.net import ns  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


def latency_run(plugin: str, conf: dict, node: str, pods: list[str], parallel: int) -> dict:
    def add(i: int) -> float:
        r = run_plugin(plugin, "ADD", conf, node, container=f"b{i}", pod_netns=ns.netns_path(pods[i]))
        if r.code:
            raise SystemExit(f"{plugin} ADD failed: {r.out}")
        return r.seconds

    def delete(i: int) -> float:
        r = run_plugin(plugin, "DEL", conf, node, container=f"b{i}", pod_netns=ns.netns_path(pods[i]))
        if r.code:
            raise SystemExit(f"{plugin} DEL failed: {r.out}")
        return r.seconds

    with ThreadPoolExecutor(parallel) as pool:
        t0 = time.perf_counter()
        adds = list(pool.map(add, range(len(pods))))
        add_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        dels = list(pool.map(delete, range(len(pods))))
        del_wall = time.perf_counter() - t0
    return {"add_p50_ms": pct(adds, 0.5) * 1000, "add_p95_ms": pct(adds, 0.95) * 1000, "add_wall_s": add_wall,
            "del_p50_ms": pct(dels, 0.5) * 1000, "del_p95_ms": pct(dels, 0.95) * 1000, "del_wall_s": del_wall}


def bench_latency(n: int) -> dict:
    prefix = unique_name("kn")
    node = f"{prefix}-node"
    pods = [f"{prefix}-{i}" for i in range(n)]
    tmp = tempfile.mkdtemp(prefix="knet-bench-cni-")
    for name in [node, *pods]:
        ns.create_netns(name)
    server = start_server(node, os.path.join(tmp, "agent.sock"), os.path.join(tmp, "bin"))
    out = {}
    try:
        knet_conf = {"cniVersion": "1.0.0", "name": "kb", "type": "knet-cni", "bridge": "kb0",
                     "ipam": {"subnet": "10.251.0.0/16", "dataDir": os.path.join(tmp, "kipam")}}
        ref_conf = {"cniVersion": "1.0.0", "name": "rb", "type": "bridge", "bridge": "rb0", "isGateway": True,
                    "ipam": {"type": "host-local", "subnet": "10.252.0.0/16", "dataDir": os.path.join(tmp, "ripam")}}
        shim = os.path.join(tmp, "bin", "knet-cni")
        for mode, par in (("seq", 1), ("par8", 8)):
            out[f"knet_{mode}"] = latency_run(shim, knet_conf, node, pods, par)
            out[f"ref_{mode}"] = latency_run("/usr/lib/cni/bridge", ref_conf, node, pods, par)
    finally:
        server.kill()
        for name in [node, *pods]:
            ns.delete_netns(name)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def bench_ref_pods(n: int) -> float:
    """Seconds for the reference plugins to give n fresh namespaces an address (netns creation included)."""
    prefix = unique_name("kr")
    node = f"{prefix}-node"
    tmp = tempfile.mkdtemp(prefix="knet-bench-ref-")
    ns.create_netns(node)
    conf = {"cniVersion": "1.0.0", "name": "rp", "type": "bridge", "bridge": "rp0", "isGateway": True,
            "ipam": {"type": "host-local", "subnet": "10.253.0.0/16", "dataDir": tmp}}
    names = [f"{prefix}-{i}" for i in range(n)]
    try:
        t0 = time.perf_counter()
        for i, name in enumerate(names):
            ns.create_netns(name)
            r = run_plugin("/usr/lib/cni/bridge", "ADD", conf, node, container=f"r{i}", pod_netns=ns.netns_path(name))
            if r.code:
                raise SystemExit(f"reference ADD failed: {r.out}")
        return time.perf_counter() - t0
    finally:
        for name in [node, *names]:
            if os.path.exists(ns.netns_path(name)):
                ns.delete_netns(name)
        shutil.rmtree(tmp, ignore_errors=True)


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: net}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: net}}}}
  template:
    metadata: {{labels: {{app: net}}}}
    spec: {{containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}
"""

PERF_PODS = """apiVersion: v1
kind: Pod
metadata: {name: perf-srv}
spec: {nodeName: worker-1, containers: [{name: s, command: [iperf3, -s]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-near}
spec: {nodeName: worker-1, containers: [{name: c, command: [sleep, "600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-far}
spec: {nodeName: worker-2, containers: [{name: c, command: [sleep, "600"]}]}
"""


def iperf(cluster: str, where: list[str], server_ip: str, seconds: int = 3, port: int = 5201) -> float:
    out = knet("--cluster", cluster, "exec", *where, "--", "iperf3", "-c", server_ip, "-p", str(port),
               "-t", str(seconds), "-J")
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


@contextlib.contextmanager
def bare_veth(seconds: int = 3):
    """The same-node baseline: two namespaces joined by one veth pair, nothing
    else. Yields a function that runs one iperf3 across it."""
    prefix = unique_name("kv")
    a, b = f"{prefix}-a", f"{prefix}-b"
    ns.create_netns(a)
    ns.create_netns(b)
    srv = None
    try:
        subprocess.run(["ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b], check=True)
        for n, dev, ip in ((a, "va", "10.254.0.1/24"), (b, "vb", "10.254.0.2/24")):
            subprocess.run(["ip", "-n", n, "addr", "add", ip, "dev", dev], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", dev, "up"], check=True)
        srv = subprocess.Popen(["ip", "netns", "exec", a, "iperf3", "-s"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)

        def once(secs: int = seconds) -> float:
            out = subprocess.run(["ip", "netns", "exec", b, "iperf3", "-c", "10.254.0.1", "-t", str(secs), "-J"],
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9

        yield once
    finally:
        if srv:
            srv.kill()
            srv.wait(timeout=10)
        ns.delete_netns(a)
        ns.delete_netns(b)


def bench_cluster(n: int, rounds: int) -> dict:
    name = unique_name("kn")
    knet("up", "--cluster", name)
    try:
        client = connect(name)
        t0 = time.perf_counter()
        knet("apply", "--cluster", name, "-f", "-", input=DEPLOY.format(n=n))
        while True:
            pods = client.list(by_kind("Pod"), "default", label_selector="app=net")["items"]
            if len(pods) == n and all(p.get("status", {}).get("phase") == "Running" and p["status"].get("podIP")
                                      for p in pods):
                break
            time.sleep(0.01)
        pods_s = time.perf_counter() - t0
        knet("delete", "--cluster", name, "deploy", "net")
        knet("apply", "--cluster", name, "-f", "-", "--wait", input=PERF_PODS)
        srv_ip = None
        while not srv_ip:
            srv_ip = client.get(by_kind("Pod"), "default", "perf-srv").get("status", {}).get("podIP")
            time.sleep(0.05)
        time.sleep(0.5)
        # Alternate the paths and take medians: one 2-core machine runs client and server.
        knet("--cluster", name, "exec", "node/worker-1", "--", "iperf3", "-s", "-D", "-p", "5202")
        time.sleep(0.3)
        # Each round runs all four paths back to back, so a ratio compares runs made in the same minute.
        rates: dict[str, list[float]] = {"veth": [], "same": [], "cross": [], "lan": []}
        with bare_veth() as veth_once:
            # A first, uncounted second on each path: socket buffers, page cache and CPU clocks settle.
            veth_once(1)
            for where, ip, port in ((["perf-near"], srv_ip, 5201), (["perf-far"], srv_ip, 5201),
                                    (["node/worker-2"], "192.168.56.11", 5202)):
                iperf(name, where, ip, seconds=1, port=port)
            for _ in range(rounds):
                rates["veth"].append(veth_once())
                rates["same"].append(iperf(name, ["perf-near"], srv_ip))
                rates["cross"].append(iperf(name, ["perf-far"], srv_ip))
                rates["lan"].append(iperf(name, ["node/worker-2"], "192.168.56.11", port=5202))
                print("  iperf3 round: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " Gbit/s",
                      flush=True)
    finally:
        knet("down", "--cluster", name)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"pods_running_with_ip_s": pods_s, "pod_pod_same_node_gbps": med["same"],
            "pod_pod_cross_node_gbps": med["cross"], "node_node_lan_gbps": med["lan"], "bare_veth_gbps": med["veth"],
            "same_node_vs_veth_per_round": [round(s / v, 2) for s, v in zip(rates["same"], rates["veth"], strict=True)],
            "cross_node_vs_lan_per_round": [round(c / lan, 2) for c, lan in zip(rates["cross"], rates["lan"], strict=True)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rounds", type=int, default=7, help="iperf3 rounds (each path 3 s per round)")
    args = p.parse_args()
    require_root()
    lat = bench_latency(args.pods)
    ref_pods_s = bench_ref_pods(args.pods)
    cl = bench_cluster(args.pods, args.rounds)
    veth = cl["bare_veth_gbps"]
    f: dict = {"pods": args.pods}
    for mode in ("seq", "par8"):
        for k, v in lat[f"knet_{mode}"].items():
            f[f"knet_{mode}_{k}"] = round(v, 2)
        for k, v in lat[f"ref_{mode}"].items():
            f[f"ref_{mode}_{k}"] = round(v, 2)
        f[f"{mode}_add_p50_ratio"] = round(lat[f"knet_{mode}"]["add_p50_ms"] / lat[f"ref_{mode}"]["add_p50_ms"], 2)
        f[f"{mode}_del_p50_ratio"] = round(lat[f"knet_{mode}"]["del_p50_ms"] / lat[f"ref_{mode}"]["del_p50_ms"], 2)
    f["knet_pods_per_s"] = round(args.pods / cl["pods_running_with_ip_s"], 1)
    f["ref_pods_per_s"] = round(args.pods / ref_pods_s, 1)
    f["pods_per_s_ratio"] = round(f["knet_pods_per_s"] / f["ref_pods_per_s"], 2)
    f["bare_veth_gbps"] = round(veth, 2)
    f.update({k: round(v, 2) for k, v in cl.items() if k.endswith("gbps")})
    f.update({k: v for k, v in cl.items() if k.endswith("per_round")})
    f["same_node_vs_veth"] = round(cl["pod_pod_same_node_gbps"] / veth, 2)
    f["cross_node_vs_lan"] = round(cl["pod_pod_cross_node_gbps"] / cl["node_node_lan_gbps"], 2)
    for mode in ("seq", "par8"):
        print(f"{mode:>4}: ADD p50 knet {f[f'knet_{mode}_add_p50_ms']} ms vs ref {f[f'ref_{mode}_add_p50_ms']} ms "
              f"= {f[f'{mode}_add_p50_ratio']}x (target <= 2.0); DEL p50 knet {f[f'knet_{mode}_del_p50_ms']} ms "
              f"vs ref {f[f'ref_{mode}_del_p50_ms']} ms = {f[f'{mode}_del_p50_ratio']}x (target <= 1.5)")
    print(f"pods/s: knet Deployment {f['knet_pods_per_s']} (Running with IPs) vs reference plugins "
          f"{f['ref_pods_per_s']} = {f['pods_per_s_ratio']}x")
    print(f"iperf3: same node {f['pod_pod_same_node_gbps']} Gbit/s vs bare veth {f['bare_veth_gbps']} = "
          f"{f['same_node_vs_veth']} (target >= 0.9); cross node {f['pod_pod_cross_node_gbps']} vs LAN "
          f"{f['node_node_lan_gbps']} = {f['cross_node_vs_lan']} (target >= 0.8)")
    emit(f)


if __name__ == "__main__":
    main()
