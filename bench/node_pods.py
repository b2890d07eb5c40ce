"""The node agent's work per pod as one node fills up (issue 14): a
control-plane + one-worker cluster whose worker takes --max-pods (nodes[].
maxPods), filled in steps of --step pods (a Deployment each) to --pods; per
step, the worker agent's CPU seconds (utime+stime of its component process,
knet.cluster.component_pid(name, "node-worker-1")) per pod started (and the
runtime's and the control plane's), its
idle CPU per pod over --idle seconds at the first and last size, and the
resident memory of each knet process (control plane, each agent and
runtime, dns, supervisor) idle and after each step. Flat means
the last step's figure is near the first's. The agent's figure is also
given net of its idle CPU over the step's seconds (idle rate measured before
the first step and after the first and last), as a slow step on a loaded
machine otherwise looks dearer per pod.

Run as root on a quiet machine:
    .venv/bin/python bench/node_pods.py [--step 100 --pods 300 --idle 10]
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, require_root, rss_by_component  # noqa: E402
from bench.scale import (  # noqa: E402
    apply_and_wait,
    cpu_seconds,
    deployment,
    dns_ready,
    node_cidr_mask,
    service,
    wait_until,
)
from knet.cluster import component_pid, knet_pids, owned_netns  # noqa: E402
from knet.harness.cluster import Cluster, unique_name  # noqa: E402


def _sys_seconds(pid: int | None) -> float:
    """stime alone (field 15 of /proc/<pid>/stat): the kernel's share of a process's CPU."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[12]) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError):
        return 0.0


def _profile(directory: str, pid: int | None, n: int) -> subprocess.Popen | None:
    """py-spy recording the agent through one step (a flame graph per step, to
    see which per-pod work grows with the pods already on the node)."""
    if not directory or pid is None:
        return None
    os.makedirs(directory, exist_ok=True)
    spy = os.environ.get("PYSPY") or shutil.which("py-spy") or "py-spy"
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100", "--gil", "--format", "raw",
                             "--output", os.path.join(directory, f"agent-{n}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--step", type=int, default=100)
    p.add_argument("--pods", type=int, default=300)
    p.add_argument("--idle", type=float, default=10)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--services", action="store_true", help="a Service per step's Deployment, as bench/scale.py's steps")
    p.add_argument("--profile", default="", help="a directory: py-spy records the worker agent during each step "
                   "(PYSPY names the py-spy binary; default py-spy on PATH)")
    args = p.parse_args()
    require_root()
    doc = {"networking": {"nodeCIDRMaskSize": node_cidr_mask(args.pods + 50)},
           "nodes": [{"role": "control-plane"}, {"role": "worker", "maxPods": args.pods + 50}]}
    c = Cluster.up(doc=doc, name=unique_name("knp"))
    figures: dict = {"step": args.step, "pods": args.pods, "services": args.services}
    try:
        agent = component_pid(c.name, "node-worker-1")
        runtime = component_pid(c.name, "runtime-worker-1")
        plane = component_pid(c.name, "control-plane")
        steps, idles = [], {}
        runtime_steps, plane_steps, seconds, sys_steps = [], [], [], []
        wait_until("the DNS pods Ready", lambda: dns_ready(c), args.timeout)  # they start on this worker
        time.sleep(1)
        mem = {0: rss_by_component(knet_pids(c.name, owned_netns(c.name)))}  # MB per component, by pods running
        # The agent's idle CPU (seconds per second: heartbeats, watches' bookmarks, resyncs) accrues over a
        # step's wall time too, so a slow step on a loaded machine looked dearer per pod: the net figure
        # takes the last idle rate times the step's seconds away.
        before = cpu_seconds(agent)
        time.sleep(args.idle)
        idle_rate = (cpu_seconds(agent) - before) / args.idle
        net_steps = []
        for i in range(args.pods // args.step):
            before, before_rt, before_cp = cpu_seconds(agent), cpu_seconds(runtime), cpu_seconds(plane)
            before_sys = _sys_seconds(agent)
            n = (i + 1) * args.step
            spy = _profile(args.profile, agent, n)
            manifest = deployment(f"fill{i}", args.step, {"tier": "fill", "app": f"fill{i}"})
            if args.services:
                manifest += service(f"fill{i}", f"fill{i}")
            secs = apply_and_wait(c, manifest, "tier=fill", n, args.timeout)
            time.sleep(1)  # the probes' and status writes' tail
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            steps.append((cpu_seconds(agent) - before) / args.step)
            net_steps.append(steps[-1] - idle_rate * (secs + 1) / args.step)
            sys_steps.append((_sys_seconds(agent) - before_sys) / args.step)
            runtime_steps.append((cpu_seconds(runtime) - before_rt) / args.step)
            plane_steps.append((cpu_seconds(plane) - before_cp) / args.step)
            seconds.append(round(secs, 2))
            mem[n] = rss_by_component(knet_pids(c.name, owned_netns(c.name)))
            print(f"  {n} pods: step {secs:.2f} s, agent {1000 * steps[-1]:.1f} (kernel {1000 * sys_steps[-1]:.1f},"
                  f" net of idle {1000 * net_steps[-1]:.1f}), runtime {1000 * runtime_steps[-1]:.1f},"
                  f" control plane {1000 * plane_steps[-1]:.1f} CPU ms per pod started", flush=True)
            if i == 0 or n + args.step > args.pods:
                before = cpu_seconds(agent)
                time.sleep(args.idle)
                idle_rate = (cpu_seconds(agent) - before) / args.idle
                idles[n] = idle_rate / n
                print(f"  idle at {n} pods: {1e6 * idles[n]:.1f} CPU µs per pod per second", flush=True)
    finally:
        c.down()
    first, last = min(idles), max(idles)
    last_n = max(mem)
    figures["rss_mb_by_component"] = {str(n): {k: round(v, 1) for k, v in m.items()} for n, m in mem.items()}
    for name, mb in mem[last_n].items():
        print(f"  RSS {name:24s} idle {mem[0].get(name, 0.0):6.1f} MB, at {last_n} pods {mb:6.1f} MB "
              f"({1024 * (mb - mem[0].get(name, 0.0)) / last_n:5.1f} KB per pod)")
    figures.update({
        "pods_on_node": [(i + 1) * args.step for i in range(len(steps))],
        "step_seconds": seconds,
        "agent_cpu_ms_per_pod_started": [round(1000 * x, 2) for x in steps],
        "agent_sys_cpu_ms_per_pod_started": [round(1000 * x, 2) for x in sys_steps],
        "agent_cpu_ms_per_pod_started_net_of_idle": [round(1000 * x, 2) for x in net_steps],
        "runtime_cpu_ms_per_pod_started": [round(1000 * x, 2) for x in runtime_steps],
        "control_plane_cpu_ms_per_pod_started": [round(1000 * x, 2) for x in plane_steps],
        "start_ratio_last_first": round(steps[-1] / steps[0], 2) if steps[0] else None,
        f"idle_cpu_us_per_pod_s_at_{first}": round(1e6 * idles[first], 1),
        f"idle_cpu_us_per_pod_s_at_{last}": round(1e6 * idles[last], 1),
        "idle_ratio_last_first": round(idles[last] / idles[first], 2) if idles[first] else None,
    })
    print(f"agent CPU per pod started, first vs last step: {1000 * steps[0]:.1f} vs {1000 * steps[-1]:.1f} ms "
          f"(ratio {figures['start_ratio_last_first']})")
    print(f"agent idle CPU per pod, {first} vs {last} pods: {1e6 * idles[first]:.1f} vs {1e6 * idles[last]:.1f} µs/s "
          f"(ratio {figures['idle_ratio_last_first']})")
    emit(figures)


if __name__ == "__main__":
    main()
