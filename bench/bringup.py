"""Bring-up benchmark (issue: the cluster spine).

Measures, side by side in one run on this machine:
  - wall time of `knet up` (three+one, until every node is Ready) and `knet down`;
  - 100 Pods applied in one file: seconds from `knet apply` to all Running, pods/s;
  - Mininet building the same 100 hosts (`mn --switch lxbr --controller none
    --topo single,100 --test none`, build + teardown), and knet's ratio to it;
    Mininet runs in a box of its own (bench/sandbox.py), as its clean-up would
    otherwise delete the host's /tmp/*.log and kill processes by name;
  - resident memory of all knet processes, idle and with 100 built-in-server pods.

Run as root: .venv/bin/python bench/bringup.py [--runs 3]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, knet, median, require_root, rss_mb, timed  # noqa: E402
from sandbox import mininet_argv, run_boxed  # noqa: E402

from knet.cluster import connect, knet_pids, owned_netns  # noqa: E402
from knet.harness.cluster import unique_name  # noqa: E402


def pods_manifest(n: int) -> str:
    return "".join(
        f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: bench-{i}}}\n"
        f"spec: {{containers: [{{name: web, image: agnhost, ports: [{{containerPort: 8080}}]}}]}}\n" for i in range(n))


def wait_running(cluster: str, n: int, timeout: float = 120, gone: bool = False) -> None:
    """Until n pods are Running (or, with gone, until no pod is left)."""
    from knet.api.resources import by_kind

    client = connect(cluster)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = client.list(by_kind("Pod"), "default")["items"]
        if gone and not pods:
            return
        if not gone and sum(p.get("status", {}).get("phase") == "Running" for p in pods) >= n:
            return
        time.sleep(0.01)
    raise SystemExit(f"pods not Running within {timeout}s")


def apply_and_wait(cluster: str, pods: int) -> None:
    knet("apply", "--cluster", cluster, "-f", "-", input=pods_manifest(pods))
    wait_running(cluster, pods)


def delete_and_wait(cluster: str) -> None:
    knet("delete", "--cluster", cluster, "pod", "--all")
    wait_running(cluster, 0, gone=True)


def component_pids(cluster: str) -> list[int]:
    """The knet processes themselves (control plane, agents), not pod commands."""
    out = []
    for pid in knet_pids(cluster, owned_netns(cluster)):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"knet." in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def run_knet(runs: int, pods: int) -> dict:
    ups, downs, applies, deletes = [], [], [], []
    idle_mb, loaded_mb = [], []
    for _ in range(runs):
        name = unique_name("kb")
        t_up, _ = timed(knet, "up", "--cluster", name)
        ups.append(t_up)
        time.sleep(0.5)  # let start-up garbage settle before reading memory
        idle_mb.append(rss_mb(component_pids(name)))
        t_apply, _ = timed(apply_and_wait, name, pods)
        applies.append(t_apply)
        time.sleep(0.5)
        loaded_mb.append(rss_mb(component_pids(name)))
        t_delete, _ = timed(delete_and_wait, name)
        deletes.append(t_delete)
        t_down, _ = timed(knet, "down", "--cluster", name)
        downs.append(t_down)
    return {"up_s": median(ups), "down_s": median(downs), "pods_running_s": median(applies),
            "pods_deleted_s": median(deletes),
            "idle_rss_mb": median(idle_mb), "loaded_rss_mb": median(loaded_mb)}


def run_mininet(hosts: int, runs: int) -> float | None:
    """Seconds for Mininet to build and tear down `hosts` hosts, median of runs.

    Always in the box (bench/sandbox.py): bare, Mininet's clean-up deletes the
    host's /tmp/*.log and kills processes by name. Never run it any other way.
    """
    if not shutil.which("mn"):
        print("mininet (mn) not installed: skipping the reference", file=sys.stderr)
        return None
    times = []
    for _ in range(runs):
        out = run_boxed(mininet_argv(hosts))
        if out.code != 0 or out.seconds is None:
            print(f"mininet in its box failed (exit {out.code}):\n{out.stderr[-2000:]}", file=sys.stderr)
            return None
        times.append(out.seconds)
    return median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pods", type=int, default=100)
    args = p.parse_args()
    require_root()
    k = run_knet(args.runs, args.pods)
    mn = run_mininet(args.pods, args.runs)
    per_pod_mb = (k["loaded_rss_mb"] - k["idle_rss_mb"]) / args.pods
    figures = {
        "knet_up_s": round(k["up_s"], 3), "knet_down_s": round(k["down_s"], 3),
        "pods": args.pods, "pods_running_s": round(k["pods_running_s"], 3),
        "pods_per_s": round(args.pods / k["pods_running_s"], 1),
        "idle_rss_mb": round(k["idle_rss_mb"], 1), "rss_per_pod_mb": round(per_pod_mb, 3),
        "mininet_build_teardown_s": round(mn, 3) if mn else None,
        "pods_deleted_s": round(k["pods_deleted_s"], 3),
        "knet_vs_mininet_speedup": round(mn / (k["pods_running_s"] + k["pods_deleted_s"]), 2) if mn else None,
        "runs": args.runs,
    }
    print(f"knet up (three+one, all Ready):      {figures['knet_up_s']:.3f} s   (target < 3 s)")
    print(f"knet down:                           {figures['knet_down_s']:.3f} s")
    print(f"{args.pods} pods apply -> all Running:      {figures['pods_running_s']:.3f} s   "
          f"({figures['pods_per_s']} pods/s, target < 5 s)")
    print(f"{args.pods} pods delete -> all gone:         {figures['pods_deleted_s']:.3f} s")
    if mn:
        print(f"mininet single,{args.pods} build+teardown:  {mn:.3f} s   -> knet (up+down of the same "
              f"{args.pods} hosts) is {figures['knet_vs_mininet_speedup']}x faster")
    print(f"memory: idle {figures['idle_rss_mb']} MB (target < 300), "
          f"{figures['rss_per_pod_mb']} MB per pod (target < 3)")
    emit(figures)


if __name__ == "__main__":
    main()
