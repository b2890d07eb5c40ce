"""Scale benchmark (issue 14: the control plane's cost follows the change,
not the cluster). Side by side in one run, on a three+one cluster whose
workers take --max-pods pods each (nodes[].maxPods):

- steps of +STEP pods (a Deployment and its Service each) up to MAX pods:
  seconds from apply to all Running, and the control plane's CPU seconds
  (utime+stime of knet.cluster.component_pid(name, "control-plane")) per
  step; the last step over the first (target <= 1.3 for both); of that CPU,
  the controllers' and the request handlers' (thread CPU, from
  /knet/v1/progress; the rest is HTTP, TLS and watches) and the step's writes,
  and the watch streams' writes (each a TLS record) and how many were BOOKMARKs;
- resident memory of all knet processes at MAX pods, and per component
  (control plane, each agent, runtime, dns, supervisor) against idle (every
  DNS replica Ready): taken after the Services burst below came and went, so
  a high-water mark; and the issue's figure, with the BIG-replica Deployment
  Running before that burst (rss_mb_per_pod_at_big);
- one BIG-replica Deployment from apply to all Running, pods/s beside a
  STEP-replica one's; `knet get pod NAME` latency p50/p99 while it rolls out,
  and how late the control plane's event loop turned meanwhile (its lag probe)
  and its garbage collector's longest full collection (knet/api/gcfreeze.py);
- one pod's readiness change with SERVICES Services x 10 endpoints: the
  EndpointSlice writes it causes (watched from the API; one Service selects
  that pod, so 1 is right);
- `knet down` of the cluster holding MAX pods; `knet up` (seconds to every
  node Ready) and `knet down` of three+one and of --up-workers workers
  (--with-50 adds 50, which is slow), with the 1-minute load average each
  ran under (a shared machine's load moves these most). --up-only measures
  just these bring-ups.

Run as root on a quiet machine (`uptime`):
    .venv/bin/python bench/scale.py [--step 100 --max 1000 --big 1000 --services 1000]
    .venv/bin/python bench/scale.py --quick      # the smoke test's sizes
    .venv/bin/python bench/scale.py --up-only --with-50   # knet up/down of 10 and 50 workers
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, per_kind, require_root, rss_by_component, rss_mb  # noqa: E402
from knet.api.resources import by_kind  # noqa: E402
from knet.cluster import component_pid, connect, knet_pids, owned_netns  # noqa: E402
from knet.harness.cluster import Cluster, unique_name  # noqa: E402

PODS, SLICES = by_kind("Pod"), by_kind("EndpointSlice")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of one process (fields 14 and 15 of /proc/<pid>/stat)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None, probe: str = "") -> str:
    labels = labels or {"app": name}
    sel = ", ".join(f"{k}: {v}" for k, v in labels.items())
    return (f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{{sel}}}}}\n"
            f"  template:\n    metadata: {{labels: {{{sel}}}}}\n"
            f"    spec: {{containers: [{{name: web, image: agnhost, ports: [{{containerPort: 8080}}]{probe}}}]}}\n")


# Group 0's readiness: an exec probe on a flag file in the pod's /tmp (set with knet exec).
NOT_READY_FLAG = "/tmp/knet-scale-notready-"
FLAG_PROBE = (', readinessProbe: {exec: {command: [sh, -c, "test ! -f ' + NOT_READY_FLAG
              + '`hostname`"]}, periodSeconds: 1}')


def service(name: str, app: str) -> str:
    return (f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{selector: {{app: {app}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n")


def running(c: Cluster, selector: str | None = None) -> int:
    pods = c.client.list(PODS, "default", label_selector=selector)["items"]
    return sum(p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
               for p in pods)


def node_cidr_mask(max_pods: int) -> int:
    """The networking.nodeCIDRMaskSize whose podCIDR holds max_pods addresses besides the
    network, gateway and broadcast ones: /24 (253 pods) unless more are asked."""
    return min(24, 32 - (max_pods + 2).bit_length())


class RunningPods:
    """Which pods of the default namespace are Running, kept from one watch.

    Polling a list of 1,000 pods every 50 ms would make the benchmark itself the
    control plane's biggest client (each list decodes and encodes every pod); a
    watch costs the server one event line per change, as `kubectl rollout status`
    costs it."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.pods: dict[str, tuple[dict, bool]] = {}
        self.changed = threading.Condition()
        self.stop = False
        self.rv = self._relist()
        threading.Thread(target=self._watch, daemon=True).start()

    def _relist(self) -> str:
        items = self.c.client.list(PODS, "default")
        with self.changed:
            self.pods = {p["metadata"]["name"]: self._state(p) for p in items["items"]}
            self.changed.notify_all()
        return items["metadata"]["resourceVersion"]

    @staticmethod
    def _state(p: dict) -> tuple[dict, bool]:
        return (p["metadata"].get("labels") or {},
                p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))

    def _watch(self) -> None:
        failures = 0
        while not self.stop and failures < 20:  # the cluster went down: stop quietly
            try:
                for ev in self.c.client.watch(PODS, "default", resource_version=self.rv):
                    obj = ev.get("object") or {}
                    self.rv = obj.get("metadata", {}).get("resourceVersion", self.rv)
                    if ev.get("type") == "ERROR":
                        self.rv = self._relist()
                        break
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        with self.changed:
                            if ev["type"] == "DELETED":
                                self.pods.pop(obj["metadata"]["name"], None)
                            else:
                                self.pods[obj["metadata"]["name"]] = self._state(obj)
                            self.changed.notify_all()
                    if self.stop:
                        return
            except Exception:
                failures += 1
                time.sleep(0.1)
                try:
                    self.rv = self._relist()
                    failures = 0
                except Exception:
                    pass

    def count(self, selector: str | None) -> int:
        want = dict(kv.split("=", 1) for kv in selector.split(",")) if selector else {}
        return sum(up and all(labels.get(k) == v for k, v in want.items()) for labels, up in self.pods.values())

    def wait(self, what: str, n: int, selector: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.count(selector) < n:
                if not self.changed.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() > deadline:
                    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")


_counters: dict[str, RunningPods] = {}


def wait_until(what: str, fn, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")


def component_pids(c: Cluster) -> list[int]:
    out = []
    for pid in knet_pids(c.name, owned_netns(c.name)):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"knet." in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def apply_and_wait(c: Cluster, manifest: str, selector: str, n: int, timeout: float) -> float:
    counter = _counters.get(c.name)
    if counter is None:
        counter = _counters[c.name] = RunningPods(c)
    t0 = time.perf_counter()
    c.knet("apply", "-f", "-", input=manifest, timeout=timeout)
    counter.wait(f"{n} pods Running ({selector})", n, selector, timeout)
    return time.perf_counter() - t0


def delete_and_wait(c: Cluster, kind: str, names: list[str], selector: str | None, timeout: float) -> None:
    c.knet("delete", kind, *names, timeout=timeout)
    wait_until(f"pods gone ({selector})",
               lambda: not c.client.list(PODS, "default", label_selector=selector)["items"], timeout)


def single_rollouts(c: Cluster, step: int, big: int, timeout: float) -> dict:
    """A STEP-replica Deployment, then a BIG-replica one, each apply -> all
    Running; `knet get pod probe` timed in a loop while the big one rolls out."""
    c.knet("apply", "-f", "-", input="apiVersion: v1\nkind: Pod\nmetadata: {name: probe, labels: {run: probe}}\n"
           "spec: {containers: [{name: web, image: agnhost}]}\n", timeout=timeout)
    wait_until("the probe pod Running", lambda: running(c, "run=probe") >= 1, timeout)
    small = apply_and_wait(c, deployment("small", step), "app=small", step, timeout)
    print(f"{step}-replica Deployment: {small:.2f} s ({step / small:.1f} pods/s)", flush=True)
    delete_and_wait(c, "deployment", ["small"], "app=small", timeout)
    wait_until("the probe pod Running", lambda: running(c, "run=probe") >= 1, timeout)
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "knet.cli", "--cluster", c.name, "get", "pod", "probe"],
                           capture_output=True)
            latencies.append(time.perf_counter() - t0)
            stop.wait(0.1)  # paced, so the probe's own CPU does not slow the rollout it measures

    api_latencies: list[float] = []

    def api_probe() -> None:
        """The API server's own answer time: one kept-alive client, no process start (on a saturated
        2-core machine a new `knet get` process waits for a CPU far longer than the server does)."""
        client = connect(c.name)  # its own connection: knet's Client is not shared between threads
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get(PODS, "default", "probe")
            api_latencies.append(time.perf_counter() - t0)
            stop.wait(0.05)

    threads = [threading.Thread(target=probe, daemon=True), threading.Thread(target=api_probe, daemon=True)]
    for t in threads:
        t.start()
    try:
        large = apply_and_wait(c, deployment("large", big), "app=large", big, timeout)
    finally:
        stop.set()
        for t in threads:
            t.join()
    # How late the control plane's event loop turned (its probe keeps the last 40 s: the rollout's end).
    cp_stats = c.client.request("GET", "/knet/v1/progress?urge=false").get("stats") or {}
    lag = cp_stats.get("loopLag") or {}
    gc_pauses = cp_stats.get("gc") or {}  # the control plane's garbage collector (knet/api/gcfreeze.py)
    time.sleep(1)  # the probes' and status writes' tail, as after a step
    pids = component_pids(c)  # the figure: BIG pods Running, no Services burst before them
    big_rss, big_rss_by = rss_mb(pids), rss_by_component(pids)
    delete_and_wait(c, "deployment", ["large"], "app=large", timeout)
    delete_and_wait(c, "pod", ["probe"], "run=probe", timeout)
    return {"big_rss_mb": big_rss, "big_rss_by": big_rss_by,
            "loop_lag_p50_ms": lag.get("p50_ms"), "loop_lag_p99_ms": lag.get("p99_ms"),
            "gc_full_longest_ms": (gc_pauses.get("longest_ms") or [None] * 3)[2],
            "gc_paced_longest_ms": gc_pauses.get("paced_longest_ms"), "small_s": small, "small_pods_per_s": step / small, "big_s": large, "big_pods_per_s": big / large,
            "get_p50_ms": 1000 * statistics.median(latencies), "get_p99_ms": 1000 * pct(latencies, 0.99),
            "get_samples": len(latencies), "api_get_p50_ms": 1000 * statistics.median(api_latencies),
            "api_get_p99_ms": 1000 * pct(api_latencies, 0.99), "api_get_samples": len(api_latencies)}


def cp_split(c: Cluster) -> tuple[int, float, float, int, int]:
    """(store revision, controllers' CPU seconds, request handlers' CPU seconds, watch writes,
    BOOKMARKs among them) so far, from /knet/v1/progress: a step's control-plane CPU minus the
    controllers' and handlers' is HTTP, TLS and the watches (each watch write a TLS record)."""
    p = c.client.request("GET", "/knet/v1/progress?urge=false")
    stats = p.get("stats") or {}
    watches = p.get("watches") or {}
    return (int(p["revision"]), sum(v["seconds"] for v in (stats.get("controllers") or {}).values()),
            sum((p.get("requestCPU") or {}).values()), watches.get("sent", 0), watches.get("bookmarks", 0))


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (/proc/stat's first line less idle and iowait): with
    the control plane's and the agents', it tells how much of a step went to everything else
    (runtimes, DNS, the kernel's threads) and how much of its wall time no CPU was busy."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(v) - v[3] - v[4]) / CLK_TCK


def agent_pids(c: Cluster) -> list[int | None]:
    """Every node agent's process (the per-pod work on the nodes, beside the control plane's)."""
    return [component_pid(c.name, f"node-{n['metadata']['name']}") for n in c.list("Node")]


def steps(c: Cluster, step: int, total: int, timeout: float) -> dict:
    cp = component_pid(c.name, "control-plane")
    agents = agent_pids(c)
    secs, cpus, ctl, handlers, writes, agent_cpus, sends, bookmarks = [], [], [], [], [], [], [], []
    busy = []
    for i in range(total // step):
        before, split = cpu_seconds(cp), cp_split(c)
        agents_before = sum(cpu_seconds(a) for a in agents)
        busy_before = machine_busy_seconds()
        n = (i + 1) * step
        secs.append(apply_and_wait(c, deployment(f"step{i}", step, {"tier": "step", "app": f"step{i}"})
                                   + service(f"step{i}", f"step{i}"), "tier=step", n, timeout))
        cpus.append(cpu_seconds(cp) - before)
        agent_cpus.append(sum(cpu_seconds(a) for a in agents) - agents_before)
        busy.append(machine_busy_seconds() - busy_before)
        after = cp_split(c)
        writes.append(after[0] - split[0])
        ctl.append(after[1] - split[1])
        handlers.append(after[2] - split[2])
        sends.append(after[3] - split[3])
        bookmarks.append(after[4] - split[4])
        print(f"  +{step} pods ({n} Running): {secs[-1]:6.2f} s, control plane {cpus[-1]:5.2f} CPU s "
              f"(controllers {ctl[-1]:.2f}, handlers {handlers[-1]:.2f}; {writes[-1]} writes), "
              f"node agents {agent_cpus[-1]:5.2f} CPU s, the machine {busy[-1]:5.2f} busy CPU s; "
              f"{sends[-1]} watch writes, {bookmarks[-1]} of them BOOKMARKs",
              flush=True)
    time.sleep(1)
    pids = component_pids(c)
    return {"step_s": secs, "step_cpu_s": cpus, "step_controllers_cpu_s": ctl, "step_handlers_cpu_s": handlers,
            "step_writes": writes, "step_agents_cpu_s": agent_cpus, "rss_mb": rss_mb(pids),
            "step_watch_writes": sends, "step_watch_bookmarks": bookmarks, "step_machine_busy_cpu_s": busy,
            "rss_by": rss_by_component(pids)}


def readiness_writes(c: Cluster, groups: int, services: int, timeout: float) -> dict:
    """`groups` Deployments of 10 pods; `services` Services of 10 endpoints,
    group 0 selected by exactly one of them; then the Ready condition of one
    group-0 pod goes False (its readiness probe starts failing) and the
    EndpointSlice events that follow are counted for 4 s from the first."""
    names = [f"ep{g}" for g in range(groups)]
    c.knet("apply", "-f", "-", input="".join(deployment(n, 10, probe=FLAG_PROBE if n == "ep0" else "")
                                             for n in names), timeout=timeout)
    svcs = [("ep0-0", "ep0")] + [(f"ep{1 + j % (groups - 1)}-{j}", f"ep{1 + j % (groups - 1)}")
                                 for j in range(services - 1)]
    c.knet("apply", "-f", "-", input="".join(service(n, app) for n, app in svcs), timeout=timeout)

    def settled() -> bool:
        if running(c, None) < 10 * groups:
            return False
        slices = c.client.list(SLICES, "default")["items"]
        ready = sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))
        return ready >= 10 * services

    wait_until(f"{services} Services x 10 ready endpoints", settled, timeout)
    time.sleep(1)
    pod = c.client.list(PODS, "default", label_selector="app=ep0")["items"][0]
    rev = c.client.list(SLICES, "default")["metadata"]["resourceVersion"]
    seen: list[dict] = []

    def watch() -> None:
        # The window is 4 s from the first write, so a slow machine (the exec, the probe's period, the
        # kubelet's status write) does not end it before the change has arrived; 60 s if none comes.
        deadline = time.monotonic() + 60
        try:  # bookmarks keep the stream busy: the window ends at the deadline or a read timeout
            for ev in c.client.watch(SLICES, "default", resource_version=rev, timeout=60):
                if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    if not seen:
                        deadline = time.monotonic() + 4
                    seen.append(ev)
                if time.monotonic() > deadline:
                    break
        except Exception:
            pass

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.2)
    # The flag in the pod's own /tmp (pods are sandboxes, issue 15: the host's /tmp is not theirs): its probe
    # fails within a second; its kubelet writes Ready=False.
    c.knet("exec", pod["metadata"]["name"], "--", "touch", NOT_READY_FLAG + pod["metadata"]["name"], timeout=timeout)
    t.join()
    names_written = sorted({e["object"]["metadata"]["name"] for e in seen})
    c.knet("delete", "deployment", *names, timeout=timeout)
    c.knet("delete", "service", *[n for n, _ in svcs], timeout=timeout)
    wait_until("pods gone", lambda: not c.client.list(PODS, "default")["items"], timeout)
    return {"slice_writes": len(seen), "slices_written": names_written}


def dns_ready(c: Cluster) -> bool:
    pods = c.client.list(PODS, "kube-system", label_selector="k8s-app=kube-dns")["items"]
    return bool(pods) and all(any(cond.get("type") == "Ready" and cond.get("status") == "True"
                                  for cond in (p.get("status") or {}).get("conditions") or []) for p in pods)


def up_down(workers: int) -> dict:
    """`knet up` of `workers` workers (until every node is Ready, `knet up`'s own
    wait) and `knet down`, with the load average before each: the figures' keys."""
    load_up = os.getloadavg()[0]
    c = Cluster.up(name=unique_name("ks"), workers=workers)
    load_down = os.getloadavg()[0]
    t0 = time.perf_counter()
    c.down()
    down_s = time.perf_counter() - t0
    print(f"  knet up of {workers} workers: {c.up_seconds:.2f} s (load {load_up:.1f}); "
          f"knet down: {down_s:.2f} s (load {load_down:.1f})", flush=True)
    return {f"up_{workers}_workers_s": round(c.up_seconds, 3), f"down_{workers}_workers_s": round(down_s, 3),
            f"up_{workers}_workers_load": round(load_up, 1), f"down_{workers}_workers_load": round(load_down, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--step", type=int, default=100)
    p.add_argument("--max", type=int, default=1000)
    p.add_argument("--big", type=int, default=1000)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--groups", type=int, default=100, help="Deployments of 10 pods behind the Services")
    p.add_argument("--up-workers", type=int, default=10)
    p.add_argument("--with-50", action="store_true", help="also `knet up` with 50 workers (slow)")
    p.add_argument("--quick", action="store_true", help="smoke-test sizes")
    p.add_argument("--up-only", action="store_true", help="only knet up/down of --up-workers (and 50) workers")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    if args.quick:
        args.step, args.max, args.big, args.services, args.groups, args.up_workers = 4, 8, 8, 6, 3, 4
        args.timeout = min(args.timeout, 120)
    require_root()
    if args.up_only:
        ups = up_down(args.up_workers)
        if args.with_50:
            ups.update(up_down(50))
        emit(ups)
        return
    per_worker = max(args.max, args.big, 10 * args.groups) // 3 + 60
    doc = {"networking": {"nodeCIDRMaskSize": node_cidr_mask(per_worker)},
           "nodes": [{"role": "control-plane"}] + [{"role": "worker", "maxPods": per_worker}] * 3}
    figures: dict = {"step": args.step, "max": args.max, "big": args.big, "services": args.services}
    c = Cluster.up(doc=doc, name=unique_name("ksc"))
    figures["up_three_plus_one_s"] = round(c.up_seconds, 3)
    # Idle means every component there and settled: the DNS replicas start after `knet up` returns, and a
    # replica still importing would count its start-up as memory per pod.
    wait_until("the DNS replicas Ready", lambda: dns_ready(c), args.timeout)
    time.sleep(1)
    idle_pids = component_pids(c)
    idle_mb, idle_by = rss_mb(idle_pids), rss_by_component(idle_pids)
    try:
        print(f"knet up (three+one): {c.up_seconds:.2f} s", flush=True)
        r = single_rollouts(c, args.step, args.big, args.timeout)
        print(f"{args.big}-replica Deployment: {r['big_s']:.2f} s ({r['big_pods_per_s']:.1f} pods/s); "
              f"knet get pod during it: p50 {r['get_p50_ms']:.1f} ms, p99 {r['get_p99_ms']:.1f} ms; the API's GET "
              f"(kept-alive client): p50 {r['api_get_p50_ms']:.1f} ms, p99 {r['api_get_p99_ms']:.1f} ms", flush=True)
        rw = readiness_writes(c, args.groups, args.services, args.timeout)
        print(f"one pod's readiness change, {args.services} Services x 10 endpoints: "
              f"{rw['slice_writes']} EndpointSlice writes {rw['slices_written']}", flush=True)
        s = steps(c, args.step, args.max, args.timeout)
    finally:
        t0 = time.perf_counter()
        c.down()
        figures["down_with_max_pods_s"] = round(time.perf_counter() - t0, 3)
    ups = up_down(args.up_workers)
    if args.with_50:
        ups.update(up_down(50))
    first, last = s["step_s"][0], s["step_s"][-1]
    cfirst, clast = s["step_cpu_s"][0], s["step_cpu_s"][-1]
    figures.update({
        "step_s": [round(x, 3) for x in s["step_s"]], "step_cp_cpu_s": [round(x, 3) for x in s["step_cpu_s"]],
        "step_cp_controllers_cpu_s": [round(x, 3) for x in s["step_controllers_cpu_s"]],
        "step_cp_handlers_cpu_s": [round(x, 3) for x in s["step_handlers_cpu_s"]], "step_writes": s["step_writes"],
        "step_ratio_last_first": round(last / first, 2),
        "cp_cpu_ratio_last_first": round(clast / cfirst, 2) if cfirst else None,
        "step_agents_cpu_s": [round(x, 3) for x in s["step_agents_cpu_s"]],
        "step_machine_busy_cpu_s": [round(x, 3) for x in s["step_machine_busy_cpu_s"]],
        "agents_cpu_ratio_last_first": (round(s["step_agents_cpu_s"][-1] / s["step_agents_cpu_s"][0], 2)
                                        if s["step_agents_cpu_s"][0] else None),
        "rss_mb_idle": round(idle_mb, 1), "rss_mb_at_max": round(s["rss_mb"], 1),
        "rss_mb_per_pod": round((s["rss_mb"] - idle_mb) / args.max, 3),
        "rss_mb_by_kind_idle": {k: round(v, 1) for k, v in per_kind(idle_by).items()},
        "rss_mb_by_kind_at_max": {k: round(v, 1) for k, v in per_kind(s["rss_by"]).items()},
        "rss_kb_per_pod_by_kind": {k: round(1024 * (v - per_kind(idle_by).get(k, 0.0)) / args.max, 1)
                                   for k, v in per_kind(s["rss_by"]).items()},
        # The way (bench/bringup.py's): BIG pods Running, above idle, before the Services burst; the
        # figures above are taken after it (a high-water mark: freed memory stays resident in Python).
        "rss_mb_at_big": round(r["big_rss_mb"], 1),
        "rss_mb_per_pod_at_big": round((r["big_rss_mb"] - idle_mb) / args.big, 3),
        "rss_kb_per_pod_by_kind_at_big": {k: round(1024 * (v - per_kind(idle_by).get(k, 0.0)) / args.big, 1)
                                          for k, v in per_kind(r["big_rss_by"]).items()},
        "small_deploy_s": round(r["small_s"], 3), "small_pods_per_s": round(r["small_pods_per_s"], 1),
        "big_deploy_s": round(r["big_s"], 3), "big_pods_per_s": round(r["big_pods_per_s"], 1),
        "pods_per_s_ratio_small_big": round(r["small_pods_per_s"] / r["big_pods_per_s"], 2),
        "get_pod_p50_ms": round(r["get_p50_ms"], 1), "get_pod_p99_ms": round(r["get_p99_ms"], 1),
        "get_pod_samples": r["get_samples"], "readiness_slice_writes": rw["slice_writes"],
        "api_get_pod_p50_ms": round(r["api_get_p50_ms"], 1), "api_get_pod_p99_ms": round(r["api_get_p99_ms"], 1),
        "cp_loop_lag_p50_ms": r["loop_lag_p50_ms"], "cp_loop_lag_p99_ms": r["loop_lag_p99_ms"],
        "cp_gc_full_longest_ms": r["gc_full_longest_ms"], "cp_gc_paced_longest_ms": r["gc_paced_longest_ms"],
        "step_watch_writes": s["step_watch_writes"], "step_watch_bookmarks": s["step_watch_bookmarks"],
        **ups,
    })
    print(f"step seconds, first vs last:        {first:7.2f} vs {last:7.2f}   ratio {last / first:.2f} "
          "(target <= 1.3)")
    print(f"control-plane CPU s, first vs last: {cfirst:7.2f} vs {clast:7.2f}   ratio "
          f"{figures['cp_cpu_ratio_last_first']} (target <= 1.3)")
    print(f"pods/s, {args.step} vs {args.big} replicas:     {r['small_pods_per_s']:7.1f} vs {r['big_pods_per_s']:7.1f}"
          f"   ratio {figures['pods_per_s_ratio_small_big']} (target <= 1.3)")
    print(f"RSS of knet at {args.max} pods: {s['rss_mb']:.1f} MB, idle {idle_mb:.1f} MB "
          f"({figures['rss_mb_per_pod']} MB per pod above idle); "
          f"knet down with them: {figures['down_with_max_pods_s']:.2f} s")
    for name, mb in s["rss_by"].items():
        print(f"  {name:28s} {idle_by.get(name, 0.0):7.1f} -> {mb:7.1f} MB "
              f"({1024 * (mb - idle_by.get(name, 0.0)) / args.max:6.1f} KB per pod)")
    print(f"RSS of knet with the {args.big}-replica Deployment Running (the issue's figure: before the Services "
          f"burst): {r['big_rss_mb']:.1f} MB ({figures['rss_mb_per_pod_at_big']} MB per pod above idle)")
    for name, mb in r["big_rss_by"].items():
        print(f"  {name:28s} {idle_by.get(name, 0.0):7.1f} -> {mb:7.1f} MB "
              f"({1024 * (mb - idle_by.get(name, 0.0)) / args.big:6.1f} KB per pod)")
    emit(figures)


if __name__ == "__main__":
    main()
