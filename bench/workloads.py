"""Workloads benchmark (issue: Deployments, scheduling, drain).

Side by side in one run on this machine:
  - `knet apply` of a 100-replica Deployment to all 100 pods Running: seconds
    and pods/s; its deletion; and Mininet building and tearing down the same 100 hosts (`mn --switch lxbr
    --controller none --topo single,100 --test none`, in its box: bench/sandbox.py) as a ratio
    to knet's create+delete;
  - a rolling update of that Deployment (template change) until every pod is
    new and Ready;
  - `knet drain` of a worker holding a third of the pods, until they run elsewhere.

Run as root: .venv/bin/python bench/workloads.py [--replicas 100]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bringup import run_mininet  # noqa: E402
from common import emit, knet, require_root, timed  # noqa: E402

from knet.api.resources import by_kind  # noqa: E402
from knet.cluster import connect  # noqa: E402
from knet.harness.cluster import unique_name  # noqa: E402


def manifest(replicas: int, version: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{{containerPort: 8080}}]
        env: [{{name: VERSION, value: "{version}"}}]
"""


def wait(cluster: str, done, timeout: float = 120, terminating: bool = False) -> None:
    client = connect(cluster)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = [p for p in client.list(by_kind("Pod"), "default", label_selector="app=bench")["items"]
                if terminating or not p["metadata"].get("deletionTimestamp")]
        if done(pods):
            return
        time.sleep(0.01)
    raise SystemExit("timed out")


def running(p: dict) -> bool:
    return p.get("status", {}).get("phase") == "Running"


def ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=100)
    p.add_argument("--mininet-runs", type=int, default=1)
    args = p.parse_args()
    require_root()
    n = args.replicas
    name = unique_name("kw")
    knet("up", "--cluster", name)
    try:
        t_create, _ = timed(lambda: (knet("apply", "--cluster", name, "-f", "-", input=manifest(n, "1")),
                                     wait(name, lambda ps: len(ps) == n and all(map(running, ps)))))
        wait(name, lambda ps: all(map(ready, ps)))

        def rolled(ps: list[dict]) -> bool:
            return len(ps) == n and all(ready(x) and x["spec"]["containers"][0]["env"][0]["value"] == "2"
                                        for x in ps)
        t_roll, _ = timed(lambda: (knet("apply", "--cluster", name, "-f", "-", input=manifest(n, "2")),
                                   wait(name, rolled)))
        client = connect(name)
        pods = client.list(by_kind("Pod"), "default", label_selector="app=bench")["items"]
        on_w1 = sum(x["spec"].get("nodeName") == "worker-1" for x in pods)

        def moved(ps: list[dict]) -> bool:
            return len(ps) == n and all(ready(x) and x["spec"].get("nodeName") != "worker-1" for x in ps)
        t_drain, _ = timed(lambda: (knet("drain", "--cluster", name, "worker-1"), wait(name, moved)))
        t_delete, _ = timed(lambda: (knet("delete", "--cluster", name, "deploy", "bench"),
                                     wait(name, lambda ps: not ps, terminating=True)))
    finally:
        knet("down", "--cluster", name)
    mn = run_mininet(n, args.mininet_runs)
    figures = {
        "replicas": n, "deploy_running_s": round(t_create, 3), "deploy_pods_per_s": round(n / t_create, 1),
        "rolling_update_s": round(t_roll, 3), "drain_s": round(t_drain, 3), "drained_pods": on_w1,
        "mininet_build_teardown_s": round(mn, 3) if mn else None,
        "deploy_deleted_s": round(t_delete, 3),
        # Mininet's figure includes its teardown, so knet's side is create + delete of the pods.
        "knet_vs_mininet_speedup": round(mn / (t_create + t_delete), 2) if mn else None,
    }
    print(f"Deployment of {n} -> all Running:  {t_create:.3f} s  ({figures['deploy_pods_per_s']} pods/s, target < 5 s)")
    print(f"Deployment deleted -> pods gone:    {t_delete:.3f} s")
    if mn:
        print(f"mininet single,{n} build+teardown: {mn:.3f} s  -> knet (create+delete) "
              f"{figures['knet_vs_mininet_speedup']}x faster")
    print(f"rolling update of {n} pods:        {t_roll:.3f} s")
    print(f"drain worker-1 ({on_w1} pods moved): {t_drain:.3f} s")
    emit(figures)


if __name__ == "__main__":
    main()
