"""What the pod sandbox (issue 15) costs: pods with it against pods without it, in one run.

Two clusters side by side, control-plane + one worker each, one with the
sandbox (the default) and one with `knet: {podSandbox: false}` in its cluster
file (the pod as before: network and UTS namespaces only). Rounds alternate
between them, so a busy moment on the shared machine weighs on both sides:

  - pod start: one command pod (`sleep`), apply -> Running, --starts times
    each; p50 and the ratio sandbox/plain (the issue allows 1.3);
  - N command pods (a Deployment) apply -> all Running, for each N of --sizes;
  - per-pod memory of built-in-server pods: the RSS of the cluster's knet
    processes above idle, per pod, at the largest N (these pods have no
    process of their own; the sandbox adds none: the issue wants < 1 MB).

Run as root on a quiet machine:
    .venv/bin/python bench/pod_sandbox.py [--starts 20 --sizes 10,100]
    .venv/bin/python bench/pod_sandbox.py --quick      # a smoke run
The last line is one JSON object with every figure.

(bench/sandbox.py is another thing: the box the Mininet reference runs in.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, median, require_root, rss_mb  # noqa: E402
from bench.scale import PODS, apply_and_wait, component_pids, wait_until  # noqa: E402
from knet.harness.cluster import Cluster, unique_name  # noqa: E402

POD = """apiVersion: v1
kind: Pod
metadata: {name: NAME, labels: {bench: start}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""


def deployment(name: str, replicas: int, command: bool) -> str:
    cmd = ', command: [sleep, "3600"]' if command else ""
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{terminationGracePeriodSeconds: 0, containers: [{{name: c, image: busybox{cmd}}}]}}\n")


def start_once(c: Cluster, name: str, timeout: float) -> float:
    """apply -> the pod Running, polled from the API every 5 ms; the pod then deleted."""
    t0 = time.perf_counter()
    c.knet("apply", "-f", "-", input=POD.replace("NAME", name), timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        pod = c.client.get(PODS, "default", name)
        if pod.get("status", {}).get("phase") == "Running":
            took = time.perf_counter() - t0
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for pod {name}")
        time.sleep(0.005)
    c.knet("delete", "pod", name, timeout=timeout)
    return took


def drain(c: Cluster, timeout: float) -> None:
    wait_until("pods gone", lambda: not c.client.list(PODS, "default")["items"], timeout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--starts", type=int, default=20)
    p.add_argument("--sizes", default="10,100")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--quick", action="store_true", help="smoke sizes: 4 starts, 10 pods")
    args = p.parse_args()
    require_root()
    starts = 4 if args.quick else args.starts
    sizes = [10] if args.quick else [int(x) for x in args.sizes.split(",")]
    nodes = {"networking": {"nodeCIDRMaskSize": 23},
             "nodes": [{"role": "control-plane"}, {"role": "worker", "maxPods": max(sizes) + 60}]}
    clusters: dict[str, Cluster] = {}
    figures: dict = {"starts": starts, "sizes": sizes}
    try:
        clusters["sandbox"] = Cluster.up(doc=dict(nodes), name=unique_name("kbs"))
        clusters["plain"] = Cluster.up(doc={**nodes, "knet": {"podSandbox": False}}, name=unique_name("kbp"))
        times: dict[str, list[float]] = {"sandbox": [], "plain": []}
        for i in range(starts):
            for kind in (("sandbox", "plain") if i % 2 == 0 else ("plain", "sandbox")):
                times[kind].append(start_once(clusters[kind], f"s{i}", args.timeout))
        for kind, c in clusters.items():
            drain(c, args.timeout)
            figures[f"start_p50_s_{kind}"] = round(median(times[kind]), 4)
        figures["start_p50_ratio"] = round(figures["start_p50_s_sandbox"] / figures["start_p50_s_plain"], 3)
        print(f"pod start p50: sandbox {figures['start_p50_s_sandbox']:.3f} s, plain "
              f"{figures['start_p50_s_plain']:.3f} s: {figures['start_p50_ratio']}x", flush=True)
        for n in sizes:
            for kind in ("sandbox", "plain"):
                c = clusters[kind]
                secs = apply_and_wait(c, deployment(f"d{n}", n, True), f"app=d{n}", n, args.timeout)
                figures[f"pods{n}_running_s_{kind}"] = round(secs, 3)
                c.knet("delete", "deployment", f"d{n}", timeout=args.timeout)
                drain(c, args.timeout)
            figures[f"pods{n}_ratio"] = round(figures[f"pods{n}_running_s_sandbox"]
                                              / figures[f"pods{n}_running_s_plain"], 3)
            print(f"{n} command pods apply -> Running: sandbox {figures[f'pods{n}_running_s_sandbox']:.2f} s, "
                  f"plain {figures[f'pods{n}_running_s_plain']:.2f} s: {figures[f'pods{n}_ratio']}x", flush=True)
        c, n = clusters["sandbox"], max(sizes)
        time.sleep(2)
        idle = rss_mb(component_pids(c))
        apply_and_wait(c, deployment("builtin", n, False), "app=builtin", n, args.timeout)
        time.sleep(2)
        figures["builtin_rss_mb_per_pod"] = round((rss_mb(component_pids(c)) - idle) / n, 3)
        print(f"built-in-server pods with the sandbox: {figures['builtin_rss_mb_per_pod']} MB each "
              f"above idle ({n} pods)", flush=True)
    finally:
        for c in clusters.values():
            c.down()
    emit(figures)


if __name__ == "__main__":
    main()
