"""CNI and pod-network benchmark (issue: pod networking), side by side in one run.

  - ADD and DEL latency (p50, p95) of knet-cni (the thick plugin: shim + agent
    server) against Debian's reference `bridge` + `host-local` (/usr/lib/cni),
    both driven the same way (env + stdin, from a node namespace), for 100 pods
    one at a time and 8 in parallel;
  - pods per second: a 100-replica Deployment from `knet apply` to all pods
    Running with IPs, against the reference plugins attaching 100 namespaces;
  - iperf3 TCP throughput, every path once per round for --rounds rounds
    (order reversed every other round, one uncounted second on each path
    first, TCP's first second of each run left out with iperf3 -O 1; medians
    reported, and each ratio is the median of its per-round ratios):
      pod-to-pod on one node against a bare veth pair between two namespaces
      (target >= 0.9);
      pod-to-pod across nodes over knet's VXLAN overlay against Flannel's vxlan
      backend built by hand in the same run over the same kind of LAN bridge,
      without any nftables (target >= 0.95), and against node-to-node over the
      LAN (for reference);
      pod-to-pod across nodes in a second cluster with `backend: host-gw`
      against node-to-node over its LAN (target >= 0.9).
    Everything is built in namespaces the benchmark creates and deletes, also
    on failure; the host's own network namespace is never configured.

Run as root: .venv/bin/python bench/cni.py [--pods 100] [--rounds 7] [--throughput-only]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, knet, per_round_ratios, require_root, round_order  # noqa: E402

from knet.api.resources import by_kind  # noqa: E402
from knet.cluster import connect  # noqa: E402
from knet.harness.cluster import unique_name  # noqa: E402
from knet.harness.cni import run_plugin, start_server  # noqa: E402
from knet.net import ns  # noqa: E402
from knet.net.links import build_lan  # noqa: E402


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
    spec: {{containers: [{{name: c, image: agnhost, ports: [{{containerPort: 8080}}]}}]}}
"""

PERF_PODS = """apiVersion: v1
kind: Pod
metadata: {name: perf-srv}
spec: {nodeName: worker-1, containers: [{name: s, image: agnhost, command: [iperf3, -s]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-near}
spec: {nodeName: worker-1, containers: [{name: c, image: agnhost, command: [sleep, "600"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: perf-far}
spec: {nodeName: worker-2, containers: [{name: c, image: agnhost, command: [sleep, "600"]}]}
"""


# iperf3 leaves TCP's first second (slow start, buffers growing) out of its figure.
OMIT = ("-O", "1")


def gbps(iperf3_json: str) -> float:
    return json.loads(iperf3_json)["end"]["sum_received"]["bits_per_second"] / 1e9


def iperf(cluster: str, where: list[str], server_ip: str, seconds: int = 3, port: int = 5201) -> float:
    out = knet("--cluster", cluster, "exec", *where, "--", "iperf3", "-c", server_ip, "-p", str(port),
               "-t", str(seconds), *OMIT, "-J")
    return gbps(out.stdout)


def _ip(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True).stdout


def _iperf_between(server_ns: str, client_ns: str, server_ip: str, seconds: int):
    """Start an iperf3 server in server_ns; return (server, a function running one client from client_ns).

    The server gets a session of its own, as a knet pod's process and `iperf3 -D`
    have: with the scheduler's autogroups each session is one group for CPU
    fairness, so on a busy machine a server left in the benchmark's session
    gets less CPU than knet's and the yardstick reads low (measured: the
    hand-built VXLAN at 0.6-0.8 of knet's overlay with the same data path)."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s"], stdout=subprocess.DEVNULL,
                           start_new_session=True)
    time.sleep(0.3)

    def once(secs: int = seconds) -> float:
        out = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-t", str(secs),
                              *OMIT, "-J"],
                             capture_output=True, text=True, check=True)
        return gbps(out.stdout)
    return srv, once


@contextlib.contextmanager
def _netns_set(names: list[str]):
    """Create the namespaces; on the way out (error or not) kill their iperf3
    server and delete every one, which deletes every link inside it."""
    made: list[str] = []
    procs: list[subprocess.Popen] = []
    try:
        for name in names:
            ns.create_netns(name)
            made.append(name)
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        for name in made:
            ns.delete_netns(name)


@contextlib.contextmanager
def bare_veth(seconds: int = 3):
    """The same-node baseline: two namespaces joined by one veth pair, nothing
    else. Yields a function that runs one iperf3 across it."""
    prefix = unique_name("kv")
    a, b = f"{prefix}-a", f"{prefix}-b"
    with _netns_set([a, b]) as procs:
        _ip(a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for n, dev, ip in ((a, "va", "10.254.0.1/24"), (b, "vb", "10.254.0.2/24")):
            _ip(n, "addr", "add", ip, "dev", dev)
            _ip(n, "link", "set", dev, "up")
        srv, once = _iperf_between(a, b, "10.254.0.1", seconds)
        procs.append(srv)
        yield once


# What Flannel's default manifest (--ip-masq) adds on every node: a masquerade
# rule for pod traffic leaving the pod network. Its nat chain makes the kernel
# track every forwarded packet, as knet's (and kube-proxy's) nat chains do.
FLANNEL_IP_MASQ = """table ip flannel-bench {
  chain raw-prerouting { type filter hook prerouting priority raw; udp dport 8472 notrack; }
  chain raw-output { type filter hook output priority raw; udp dport 8472 notrack; }
  chain postrouting { type nat hook postrouting priority srcnat; ip saddr 10.249.0.0/16 ip daddr != 10.249.0.0/16 masquerade; }
}
"""


@contextlib.contextmanager
def flannel_vxlan(seconds: int = 3, ip_masq: bool = False):
    """The overlay's yardstick: Flannel's vxlan backend built by hand with ip(8),
    no nftables and no conntrack at all (with ip_masq: plus Flannel's default
    masquerade rule, and so conntrack on every forwarded packet). Two "nodes" on the same LAN bridge knet
    builds (knet.net.links.build_lan: a bridge in a fabric namespace, a veth per
    node), each with a VXLAN device (VNI 1, port 8472, no learning, MTU 1450),
    a permanent neighbour + FDB entry and an onlink route for the peer's pod
    subnet, and one "pod" namespace behind a bridge holding the gateway.
    Yields a function running one iperf3 from pod 2 to pod 1 across it."""
    prefix = unique_name("kf")
    fabric, nodes, pods = f"{prefix}-fab", [f"{prefix}-n1", f"{prefix}-n2"], [f"{prefix}-p1", f"{prefix}-p2"]
    lan = [f"10.250.0.{i}" for i in (1, 2)]
    subnets = ["10.249.1", "10.249.2"]
    with _netns_set([fabric, *nodes, *pods]) as procs:
        build_lan(fabric, [(node, f"to-n{i}", lan[i]) for i, node in enumerate(nodes)], 24)
        macs = []
        for node, pod, local, sub in zip(nodes, pods, lan, subnets, strict=True):
            subprocess.run(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
            _ip(node, "link", "add", "flannel.1", "mtu", "1450", "type", "vxlan", "id", "1", "dstport", "8472",
                "local", local, "dev", "eth0", "nolearning")
            _ip(node, "addr", "add", f"{sub}.0/32", "dev", "flannel.1")
            _ip(node, "link", "set", "flannel.1", "up")
            macs.append(json.loads(_ip(node, "-j", "link", "show", "flannel.1"))[0]["address"])
            _ip(node, "link", "add", "cni0", "mtu", "1450", "type", "bridge")
            _ip(node, "addr", "add", f"{sub}.1/24", "dev", "cni0")
            _ip(node, "link", "set", "cni0", "up")
            _ip(node, "link", "add", "veth0", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", pod)
            _ip(node, "link", "set", "veth0", "master", "cni0", "up")
            _ip(pod, "link", "set", "lo", "up")
            _ip(pod, "addr", "add", f"{sub}.2/24", "dev", "eth0")
            _ip(pod, "link", "set", "eth0", "up")
            _ip(pod, "route", "add", "default", "via", f"{sub}.1")
        for i, node in enumerate(nodes):
            j = 1 - i
            _ip(node, "neigh", "replace", f"{subnets[j]}.0", "lladdr", macs[j], "dev", "flannel.1", "nud", "permanent")
            subprocess.run(["bridge", "-n", node, "fdb", "append", macs[j], "dev", "flannel.1", "dst", lan[j],
                            "self", "permanent"], check=True)
            _ip(node, "route", "replace", f"{subnets[j]}.0/24", "via", f"{subnets[j]}.0", "dev", "flannel.1", "onlink")
            if ip_masq:
                subprocess.run(["ip", "netns", "exec", node, "nft", "-f", "-"], input=FLANNEL_IP_MASQ, text=True,
                               check=True)
        srv, once = _iperf_between(pods[0], pods[1], f"{subnets[0]}.2", seconds)
        procs.append(srv)
        yield once


def run_rounds(paths: dict[str, Callable[..., float]], rounds: int) -> dict[str, list[float]]:
    """Every path once per round, the order reversed every other round, after
    one uncounted second on each (socket buffers, page cache and CPU clocks settle)."""
    for once in paths.values():
        once(1)
    rates: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(rounds):
        for k in round_order(list(paths), r):
            rates[k].append(paths[k]())
        print("  iperf3 round: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " Gbit/s", flush=True)
    return rates


def node_ip(client, node: str) -> str:
    n = client.get(by_kind("Node"), None, node)
    return next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")


def perf_pods(cluster: str) -> tuple[str, str]:
    """perf-srv (iperf3 server) and perf-near on worker-1, perf-far on worker-2, and
    an iperf3 server on node worker-1 itself (port 5202). Returns (pod IP, node IP)."""
    client = connect(cluster)
    knet("apply", "--cluster", cluster, "-f", "-", "--wait", input=PERF_PODS)
    srv_ip = None
    while not srv_ip:
        srv_ip = client.get(by_kind("Pod"), "default", "perf-srv").get("status", {}).get("podIP")
        time.sleep(0.05)
    knet("--cluster", cluster, "exec", "node/worker-1", "--", "iperf3", "-s", "-D", "-p", "5202")
    time.sleep(0.5)
    return srv_ip, node_ip(client, "worker-1")


def down_quietly(cluster: str) -> None:
    """`knet down` on the way out, also after a failed `up` (then there may be nothing to delete)."""
    out = subprocess.run([sys.executable, "-m", "knet.cli", "down", "--cluster", cluster], capture_output=True, text=True)
    if out.returncode:
        print(f"knet down --cluster {cluster}: {out.stderr.strip()}", file=sys.stderr)


def bench_cluster(n: int, rounds: int) -> dict:
    name = unique_name("kn")
    try:
        knet("up", "--cluster", name)
        client = connect(name)
        pods_s = None
        if n:
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
        srv_ip, w1 = perf_pods(name)
        # One 2-core machine runs client and server: every round runs all six
        # paths, so a ratio compares runs made in the same minute.
        with bare_veth() as veth_once, flannel_vxlan() as vxlan_once, \
                flannel_vxlan(ip_masq=True) as masq_once:
            rates = run_rounds({
                "veth": veth_once,
                "same": lambda secs=3: iperf(name, ["perf-near"], srv_ip, secs),
                "cross": lambda secs=3: iperf(name, ["perf-far"], srv_ip, secs),
                "flannel": vxlan_once,
                "flannel+masq": masq_once,
                "lan": lambda secs=3: iperf(name, ["node/worker-2"], w1, secs, port=5202),
            }, rounds)
    finally:
        down_quietly(name)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"pods_running_with_ip_s": pods_s, "pod_pod_same_node_gbps": med["same"],
            "pod_pod_cross_node_gbps": med["cross"], "node_node_lan_gbps": med["lan"], "bare_veth_gbps": med["veth"],
            "flannel_vxlan_gbps": med["flannel"], "flannel_vxlan_ip_masq_gbps": med["flannel+masq"],
            "cross_node_vs_flannel_vxlan_ip_masq_per_round": per_round_ratios(rates["cross"], rates["flannel+masq"]),
            "same_node_vs_veth_per_round": per_round_ratios(rates["same"], rates["veth"]),
            "cross_node_vs_lan_per_round": per_round_ratios(rates["cross"], rates["lan"]),
            "cross_node_vs_flannel_vxlan_per_round": per_round_ratios(rates["cross"], rates["flannel"])}


HOST_GW_CLUSTER = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking: {backend: host-gw}
nodes: [{role: control-plane}, {role: worker}, {role: worker}]
"""


def bench_host_gw(rounds: int) -> dict:
    """A second cluster with `backend: host-gw`: pod to pod across nodes is plain
    routing over the LAN, so its yardstick is the LAN itself."""
    name = unique_name("kg")
    try:
        knet("up", "--cluster", name, "-f", "/dev/stdin", input=HOST_GW_CLUSTER)
        srv_ip, w1 = perf_pods(name)
        rates = run_rounds({
            "host-gw cross": lambda secs=3: iperf(name, ["perf-far"], srv_ip, secs),
            "lan": lambda secs=3: iperf(name, ["node/worker-2"], w1, secs, port=5202),
        }, rounds)
    finally:
        down_quietly(name)
    return {"host_gw_cross_node_gbps": statistics.median(rates["host-gw cross"]),
            "host_gw_node_node_lan_gbps": statistics.median(rates["lan"]),
            "host_gw_cross_node_vs_lan_per_round": per_round_ratios(rates["host-gw cross"], rates["lan"])}


def _ratios(f: dict, name: str, per_round: list[float]) -> None:
    """The figure is the median of the per-round ratios; the rounds are kept beside it."""
    f[f"{name}_per_round"] = [round(x, 2) for x in per_round]
    f[name] = round(statistics.median(per_round), 2)


_MAIN_PID = os.getpid()


def _sigterm(signum, frame):
    """SIGTERM unwinds the benchmark, so every finally: removes its namespaces. Only
    in the benchmark itself: a forked child (pyroute2's netns helper is one) has
    the same stack, and unwinding it there would delete the namespaces in use."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise SystemExit(f"terminated by signal {signum}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rounds", type=int, default=7, help="iperf3 rounds (each path 3 s per round)")
    p.add_argument("--throughput-only", action="store_true", help="only the iperf3 figures (no ADD/DEL, pods/s)")
    args = p.parse_args()
    require_root()
    signal.signal(signal.SIGTERM, _sigterm)
    f: dict = {"pods": args.pods, "rounds": args.rounds}
    if not args.throughput_only:
        lat = bench_latency(args.pods)
        ref_pods_s = bench_ref_pods(args.pods)
    cl = bench_cluster(0 if args.throughput_only else args.pods, args.rounds)
    hg = bench_host_gw(args.rounds)
    if not args.throughput_only:
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
    f.update({k: round(v, 2) for k, v in {**cl, **hg}.items() if k.endswith("gbps")})
    for name in ("same_node_vs_veth", "cross_node_vs_lan", "cross_node_vs_flannel_vxlan",
                 "cross_node_vs_flannel_vxlan_ip_masq"):
        _ratios(f, name, cl[f"{name}_per_round"])
    _ratios(f, "host_gw_cross_node_vs_lan", hg["host_gw_cross_node_vs_lan_per_round"])
    if not args.throughput_only:
        for mode in ("seq", "par8"):
            print(f"{mode:>4}: ADD p50 knet {f[f'knet_{mode}_add_p50_ms']} ms vs ref {f[f'ref_{mode}_add_p50_ms']} ms "
                  f"= {f[f'{mode}_add_p50_ratio']}x (target <= 2.0); DEL p50 knet {f[f'knet_{mode}_del_p50_ms']} ms "
                  f"vs ref {f[f'ref_{mode}_del_p50_ms']} ms = {f[f'{mode}_del_p50_ratio']}x (target <= 1.5)")
        print(f"pods/s: knet Deployment {f['knet_pods_per_s']} (Running with IPs) vs reference plugins "
              f"{f['ref_pods_per_s']} = {f['pods_per_s_ratio']}x")
    print(f"iperf3 (Gbit/s, medians of {args.rounds} rounds; ratios: median of the per-round ratios)")
    for label, ratio, num, den, target in (
            ("same node vs bare veth", "same_node_vs_veth", "pod_pod_same_node_gbps", "bare_veth_gbps", 0.9),
            ("cross node (vxlan) vs LAN", "cross_node_vs_lan", "pod_pod_cross_node_gbps", "node_node_lan_gbps", None),
            ("cross node (vxlan) vs hand-built Flannel VXLAN", "cross_node_vs_flannel_vxlan", "pod_pod_cross_node_gbps",
             "flannel_vxlan_gbps", 0.95),
            ("cross node (vxlan) vs the same with Flannel's default ip-masq rule (conntrack on)",
             "cross_node_vs_flannel_vxlan_ip_masq", "pod_pod_cross_node_gbps", "flannel_vxlan_ip_masq_gbps", None),
            ("cross node (host-gw) vs LAN", "host_gw_cross_node_vs_lan", "host_gw_cross_node_gbps",
             "host_gw_node_node_lan_gbps", 0.9)):
        goal = f"target >= {target}" if target else "for reference"
        print(f"  {label}: {f[num]} vs {f[den]} = {f[ratio]} ({goal}); per round {f[ratio + '_per_round']}")
    emit(f)


if __name__ == "__main__":
    main()
