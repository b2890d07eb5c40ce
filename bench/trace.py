"""`knet trace` benchmark (issue 16: "answers in under 1 s for a cross-node
ClusterIP path"), side by side with the reference in one run.

A cluster (control plane + 2 workers): a client pod on worker-1, a server pod
on worker-2 behind the ClusterIP Service `web`, and 10, 100 then 1,000
Services in the cluster (each selecting the server, so every one is in every
node's proxy table with its endpoint). At each size, in alternating order per
round: the wall time of `knet trace client --to web` (the command on PATH, its
process start included: what a user waits for) against `knet exec client --
nc -z -w 1 <ClusterIP> 80` (one plain connect through the same Service, the
same command start-up), and knet.trace.run in-process (no process start).
Every trace is checked to name the Service, the endpoint and the VXLAN hop.

Run as root: .venv/bin/python bench/trace.py [--sizes 10,100,1000] [--rounds 7] [--quick]
The last line printed is one JSON object holding every figure.
"""

from __future__ import annotations

import os
import sys

# This file's name is the standard library's `trace`, which other modules import (multiprocessing's
# children, via pyroute2): take this folder off the import path and load common.py by its file.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_common", os.path.join(HERE, "common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)
emit, median, require_root, round_order = common.emit, common.median, common.require_root, common.round_order

from knet.harness.cluster import Cluster, running  # noqa: E402
from knet.trace import run  # noqa: E402

APP = """
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: worker-1
  containers: [{name: c, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: web}}
spec:
  nodeName: worker-2
  containers: [{name: s, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def services(first: int, last: int) -> str:
    return "".join(f"""---
apiVersion: v1
kind: Service
metadata: {{name: bench-{i}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""" for i in range(first, last))


def command() -> list[str]:
    """The `knet` a user runs (scripts/setup's launcher on PATH), else this Python's module."""
    found = shutil.which("knet")
    return [found] if found else [sys.executable, "-m", "knet.cli"]


def wall(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return (time.perf_counter() - t0) * 1000, out


def reference(c: Cluster, cluster_ip: str) -> tuple[str, list[str]]:
    """`knet exec client -- nc -z` (the issue's reference); should `knet exec` itself fail here, the
    same nc through `ip netns exec` into the pod's namespace, and the figures say which it was."""
    argv = command() + ["--cluster", c.name, "exec", "client", "--", "nc", "-z", "-w", "1", cluster_ip, "80"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        return "knet exec", argv
    print(f"knet exec failed ({out.returncode}: {out.stderr.strip()[:200]}): the reference is ip netns exec",
          flush=True)
    netns = c.cfg.pod_netns(c.get("Pod", "default", "client")["metadata"]["uid"])
    return "ip netns exec", ["ip", "netns", "exec", netns, "nc", "-z", "-w", "1", cluster_ip, "80"]


def measure(c: Cluster, cluster_ip: str, rounds: int, nc: list[str]) -> dict:
    knet = command() + ["--cluster", c.name]
    paths = {"trace": knet + ["trace", "client", "--to", "web"], "nc": nc}
    times: dict[str, list[float]] = {"trace": [], "nc": [], "api": []}
    for r in range(rounds):
        for name in round_order(["trace", "nc", "api"], r):
            if name == "api":
                t0 = time.perf_counter()
                t = run(c, "client", "web")
                times["api"].append((time.perf_counter() - t0) * 1000)
                check(t.render())
                continue
            ms, out = wall(paths[name])
            if out.returncode != 0:
                raise SystemExit(f"{name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
            if name == "trace":
                check(out.stdout)
            times[name].append(ms)
    return {k: median(v) for k, v in times.items()}


def check(text: str) -> None:
    for want in ("Service default/web:80 -> endpoint", "VXLAN to worker-2", "result: delivered"):
        if want not in text:
            raise SystemExit(f"trace does not say {want!r}:\n{text}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000", help="Services in the cluster at each step")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 10,20, 2 rounds")
    args = p.parse_args()
    require_root()
    import signal

    me = os.getpid()

    def stop(sig, _frame):
        if os.getpid() != me:  # a child pyroute2 forked (IPRoute(netns=...)) and ends with SIGTERM: die as it expects,
            signal.signal(sig, signal.SIG_DFL)  # never run this process's clean-up (Cluster.down) in it
            os.kill(os.getpid(), sig)
        sys.exit(1)  # so the cluster comes down
    signal.signal(signal.SIGTERM, stop)
    sizes = [10, 20] if args.quick else [int(x) for x in args.sizes.split(",")]
    rounds = 2 if args.quick else args.rounds
    figures: dict = {"rounds": rounds, "sizes": sizes}
    with Cluster.up(workers=2) as c:
        c.apply(APP)
        for name in ("client", "server"):
            c.wait_pod("default", name, running)
        cluster_ip = c.get("Service", "default", "web")["spec"]["clusterIP"]
        figures["reference"], nc = reference(c, cluster_ip)
        have = len(c.list("Service"))  # kubernetes, kube-dns, web
        made = 0
        for n in sizes:
            while have < n:  # in steps of 100: one apply of 900 Services outlasts the harness's 60 s on a busy machine
                step = min(100, n - have)
                c.knet("apply", "-f", "-", "--wait", "--timeout", "600", input=services(made, made + step),
                       timeout=900)
                made += step
                have += step
            m = measure(c, cluster_ip, rounds, nc)
            figures[f"trace_ms_{n}"] = round(m["trace"], 1)
            figures[f"nc_ms_{n}"] = round(m["nc"], 1)
            figures[f"trace_api_ms_{n}"] = round(m["api"], 1)
            figures[f"trace_vs_nc_{n}"] = round(m["trace"] / m["nc"], 2)
            print(f"{have} Services: knet trace {m['trace']:.0f} ms (target < 1000), {figures['reference']} nc -z "
                  f"{m['nc']:.0f} ms ({figures[f'trace_vs_nc_{n}']}x), knet.trace.run in-process "
                  f"{m['api']:.0f} ms", flush=True)
    big, small = sizes[-1], sizes[0]
    figures["trace_big_vs_small"] = round(figures[f"trace_ms_{big}"] / figures[f"trace_ms_{small}"], 2)
    emit(figures)


if __name__ == "__main__":
    main()
