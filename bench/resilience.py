"""What a dead node agent costs, on a live cluster, at 10, 50 and 100 pods on
the node (so the cost's growth with the node's pods shows):

- supervised kill -9: the time until the supervisor has a new agent process,
  and until that agent has adopted every pod and acted on every revision
  (its proxy's sync count starts again and its progress reaches the store's
  revision); meanwhile a client pod on another node connects through the
  Service's ClusterIP in a loop, and every failed connection is counted
  (built-in servers live in the node's runtime, not in the agent, so the
  target is 0);
- agent held down (`systemctl stop`): the time from kill -9 to the node's
  pods out of the Service's ready endpoints, printed beside the grace period
  it is bound by (the node lifecycle controller's nodeGracePeriodSeconds);
  then, after the agent is started again, the time until they are back.

Usage: sudo .venv/bin/python bench/resilience.py [--sizes 10,50,100] [--grace 2]
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, require_root  # noqa: E402
from knet.cluster import component_pid, start_component, stop_component  # noqa: E402
from knet.harness.cluster import Cluster, ready  # noqa: E402

NODE = "worker-1"

PROBE = """
import socket, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
ok = bad = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        s = socket.create_connection((ip, 80), timeout=1)
        s.sendall(b"hostname\\n")
        if s.recv(100):
            ok += 1
        else:
            bad += 1
        s.close()
    except OSError:
        bad += 1
    time.sleep(0.01)
print(ok, bad)
"""


def manifest(pods: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {pods}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeName: {NODE}
      containers: [{{name: web, image: knet/builtin, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec: {{nodeName: worker-2, containers: [{{name: c, image: busybox, command: [sleep, '3600']}}]}}
"""


def ready_endpoints(c: Cluster) -> int:
    n = 0
    for s in c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=web"):
        n += sum(1 for ep in s.get("endpoints") or [] if ep["conditions"].get("ready"))
    return n


def progress(c: Cluster) -> tuple[int, dict]:
    p = c.client.request("GET", "/knet/v1/progress")
    return p["revision"], p["components"].get(f"node/{NODE}", {})


def wait(what: str, fn, timeout: float = 120.0, interval: float = 0.01) -> float:
    t0 = time.monotonic()
    while not fn():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.monotonic()


def one_size(pods: int, grace: float) -> dict:
    c = Cluster.up(workers=2, heartbeatSeconds=0.5, nodeGracePeriodSeconds=grace)
    try:
        c.apply(manifest(pods))
        wait(f"{pods} ready endpoints", lambda: ready_endpoints(c) == pods)
        c.wait_pod("default", "client", ready, timeout=60)
        ip = c.get("Service", "default", "web")["spec"]["clusterIP"]

        # 1. kill -9 under the supervisor, with traffic flowing
        window = 6.0
        probe = subprocess.Popen(
            [sys.executable, "-m", "knet.cli", "--cluster", c.name, "exec", "client", "--",
             "python3", "-c", PROBE, ip, str(window)], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        revision, before = progress(c)
        old = component_pid(c.name, f"node-{NODE}")
        t_kill = time.monotonic()
        os.kill(old, 9)
        t_new = wait("a new agent process", lambda: component_pid(c.name, f"node-{NODE}") not in (None, old))

        def caught_up() -> bool:
            _rev, mine = progress(c)
            return (mine.get("proxy") or {}).get("syncs", 1 << 30) < (before.get("proxy") or {}).get("syncs", 0) \
                and mine.get("observed", 0) >= revision
        t_caught = wait("the new agent caught up", caught_up)
        ok, bad = (int(x) for x in probe.communicate(timeout=window + 30)[0].split())
        restarts = sum(1 for p in c.list("Pod", "default", label_selector="app=web")
                       for s in p["status"].get("containerStatuses") or [] if s.get("restartCount"))

        # 2. held down: the node's pods leave the ready endpoints after the grace period
        stop_component(c.cfg, f"node-{NODE}")
        t_stop = time.monotonic()
        t_out = wait("the pods out of the ready endpoints", lambda: ready_endpoints(c) == 0, interval=0.05)
        start_component(c.cfg, f"node-{NODE}")
        t_start = time.monotonic()
        t_back = wait("the pods back in the ready endpoints", lambda: ready_endpoints(c) == pods, interval=0.05)
        return {
            "agent_back_s": t_new - t_kill, "agent_caught_up_s": t_caught - t_kill,
            "probe_ok": ok, "probe_failed": bad, "pods_restarted": restarts,
            "out_of_endpoints_s": t_out - t_stop, "out_of_endpoints_per_grace": (t_out - t_stop) / grace,
            "back_in_endpoints_s": t_back - t_start,
        }
    finally:
        c.down()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,50,100", help="pods on the agent's node, comma-separated")
    ap.add_argument("--grace", type=float, default=2.0, help="nodeGracePeriodSeconds of the clusters")
    args = ap.parse_args()
    require_root()
    figures: dict = {"grace_s": args.grace}
    for pods in (int(x) for x in args.sizes.split(",")):
        f = one_size(pods, args.grace)
        print(f"{pods:4d} pods on {NODE}: kill -9 -> new agent {f['agent_back_s']:.2f}s, "
              f"caught up {f['agent_caught_up_s']:.2f}s; ClusterIP probes {f['probe_ok']} ok, "
              f"{f['probe_failed']} failed; containers restarted {f['pods_restarted']}")
        print(f"     held down: out of the ready endpoints in {f['out_of_endpoints_s']:.2f}s "
              f"({f['out_of_endpoints_per_grace']:.2f}x the {args.grace:g}s grace), "
              f"back {f['back_in_endpoints_s']:.2f}s after the agent started")
        figures.update({f"{k}_{pods}": v for k, v in f.items()})
    emit(figures)


if __name__ == "__main__":
    main()
