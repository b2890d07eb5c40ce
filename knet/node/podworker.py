"""One pod's life on a node, as kubelet's pod worker lives it.

sandbox -> containers (started together, restarted per restartPolicy with
CrashLoopBackOff) -> probes -> status; on deletion SIGTERM, the grace period,
SIGKILL, sandbox removal, and the final delete that lets the API forget the
pod. Each pod is one trio task; its containers and probes are tasks below it,
so cancelling the pod cancels all of it and nothing is left running loose.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field

import trio

from knet.api.errors import ApiError
from knet.api.objects import condition, now_rfc3339, parse_rfc3339
from knet.net import procs
from knet.node import cgroups, volumes
from knet.node import sandbox as sandboxes
from knet.node.console import Console
from knet.node.containers import spawn
from knet.node.cri import RuntimeRefused, RuntimeUnavailable
from knet.node.enter import non_root_error
from knet.node.podspec import container_env
from knet.node.probes import probe_once

log = logging.getLogger("knet.node")
MAX_BACKOFF = 300.0
# The shared PID namespace's init (upstream's pause): it reaps what is re-parented to it, ends on TERM.
PAUSE = 'trap "exit 0" TERM INT; while :; do sleep 2147483647 & wait $!; done'


@dataclass
class Container:
    spec: dict
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    process: trio.Process | None = None
    pid: int | None = None
    builtin: bool = False
    stop_builtin: trio.CancelScope | None = None
    killed_for: str = ""
    console: Console | None = None  # its stdin and terminal, when its spec asks for them (kubectl attach -i)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return "running" in self.state

    def status(self) -> dict:
        out = {"name": self.name, "ready": self.ready, "started": self.started,
               "restartCount": self.restart_count, "state": self.state, "lastState": self.last_state,
               "image": self.spec.get("image") or "knet/builtin", "imageID": "",
               "containerID": f"knet://{self.pid}" if self.pid else ""}
        if not out["containerID"]:
            del out["containerID"]
        return out


def pod_phase(containers: list[Container], restart_policy: str) -> str:
    """kubelet's getPhase, for pods without init containers."""
    waiting = running = stopped = succeeded = 0
    for c in containers:
        if "running" in c.state:
            running += 1
        elif "terminated" in c.state:
            stopped += 1
            succeeded += c.state["terminated"].get("exitCode") == 0
        elif c.last_state.get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class PodWorker:
    def __init__(self, agent, pod: dict):
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.sb: sandboxes.Sandbox | None = None
        previous = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
        self.previous = previous  # what an earlier agent reported: read back when adopting its sandbox
        self.reused = False  # the sandbox was an earlier agent's
        self.containers = [Container(c, restart_count=previous.get(c["name"], {}).get("restartCount", 0))
                           for c in pod["spec"]["containers"]]
        self.terminating = trio.Event()
        self.status_dirty = trio.Event()
        self._moved = trio.Event()  # set with status_dirty: a container's state moved
        self.sent_status: dict | None = None
        self.sent_revision = 0  # the resourceVersion our last status write produced
        self.reconcile = False  # the API's status differs from what we sent: post it again
        self._reconciled_at = -1.0
        self.start_time = pod.get("status", {}).get("startTime") or now_rfc3339()
        self.sandbox_error = ""
        self.synced = trio.Event()  # the first pass over this pod is done (for --wait)
        self.handled_revision = 0
        self.handling_revision = int(pod["metadata"]["resourceVersion"])
        self.env_extra: dict[str, str] = {}
        self.ip: str | None = None
        self.cgroup: str | None = None  # the pod's cgroup (knet.node.cgroups), with the sandbox on
        self.pause: dict | None = None  # the shared PID namespace's init: {"pid", "start"} (shareProcessNamespace)
        self.pause_process: trio.Process | None = None

    # -- inputs ------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.pod["metadata"]["namespace"]

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]

    def update(self, pod: dict) -> None:
        self.pod = pod
        self.handling_revision = int(pod["metadata"]["resourceVersion"])
        self.agent.worker_moved(self)
        if pod["metadata"].get("deletionTimestamp"):
            self.terminating.set()
        # Only a write after ours can be someone else's: an older event is the watch catching up
        # with a status we have since replaced, and answering it would double our writes.
        if (self.sent_status is not None and self.handling_revision > self.sent_revision
                and _disagrees(pod.get("status") or {}, self.sent_status)):
            # Someone else wrote the status (the node lifecycle controller marks the pods of a NotReady
            # node Ready=False): post ours again, as kubelet's status manager reconciles.
            self.reconcile = True
            self.mark_dirty()
        if self.synced.is_set():
            # A deletion is acted on once termination has begun: a pod ignoring SIGTERM for its grace
            # period must not hold back every `apply --wait` on this node (`delete --wait` waits for gone).
            self.handled_revision = self.handling_revision
            self.agent.worker_moved(self)
            self.agent.progress_changed()

    def mark_dirty(self) -> None:
        self.status_dirty.set()
        self._moved.set()

    def _containers_settled(self) -> bool:
        """Every container started, finished or stuck in a waiting reason of its own
        (the first pass is then done). Every change of a container's state marks
        the status dirty, which wakes the waiter: it used to poll every 5 ms, a
        wakeup per pod per 5 ms while a hundred pods started on a busy node."""
        return all(c.running or "terminated" in c.state or c.state.get("waiting", {}).get(
            "reason") not in (None, "ContainerCreating") for c in self.containers)

    # -- the pod's life ------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as outer:
            self._nursery = outer
            self.reused = sandboxes.sandbox_for(self.agent.cfg, self.agent.node, self.uid).exists()
            outer.start_soon(self.status_loop)  # after `reused` is known: an adopted pod's first post waits
            try:
                # In a thread: its namespaces (a thread each, joined), directories and files kept the
                # agent's loop, and so every other pod's status and the watches, waiting ~6 ms a pod.
                self.sb = await trio.to_thread.run_sync(sandboxes.create, self.agent.cfg, self.agent.node, self.pod,
                                                        limiter=self.agent.sandbox_limiter)
            except OSError as e:
                self.sandbox_error = f"failed to create pod sandbox: {e}"
                log.error("%s/%s: %s", self.namespace, self.name, self.sandbox_error)
                for c in self.containers:
                    c.state = {"waiting": {"reason": "CreateContainerError", "message": self.sandbox_error}}
                self.mark_dirty()
                self._first_pass_done()
                await self.terminating.wait()
            else:
                self.agent.sandbox_made(self)
                self.env_extra = await self.agent.service_env(self.pod)
                async with trio.open_nursery() as prep:  # the volumes' API round trips beside CNI ADD
                    prep.start_soon(self.attach_network)
                    prep.start_soon(self.prepare_volumes)
                    prep.start_soon(self.sandbox_processes)
                async with trio.open_nursery() as cn:
                    for c in self.containers:
                        cn.start_soon(self.run_container, c)
                    with trio.move_on_after(2):
                        while not self._containers_settled():
                            self._moved = trio.Event()
                            await self._moved.wait()
                    self._first_pass_done()
                    await self.terminating.wait()
                    await self.stop_all(cn)
            await self.finish()
            outer.cancel_scope.cancel()

    def _first_pass_done(self) -> None:
        self.handled_revision = self.handling_revision
        self.agent.worker_moved(self)
        self.synced.set()
        self.agent.progress_changed()

    def grace_period(self) -> float:
        m = self.pod["metadata"]
        if m.get("deletionGracePeriodSeconds") is not None:
            return float(m["deletionGracePeriodSeconds"])
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    async def stop_all(self, cn: trio.Nursery) -> None:
        """SIGTERM every container, wait out the grace period, then SIGKILL."""
        grace = self.grace_period()
        deadline = self.pod["metadata"].get("deletionTimestamp")
        if deadline:
            grace = max(0.0, min(grace, parse_rfc3339(deadline) - time.time() + 1))
        running = [c for c in self.containers if c.running]
        for c in running:
            self.agent.event(self.pod, "Normal", "Killing", f"Stopping container {c.name}")
            self._signal(c, signal.SIGTERM)
        with trio.move_on_after(grace):
            while any(self._process_alive(c) for c in self.containers):
                await trio.sleep(0.02)
        for c in self.containers:
            self._signal(c, signal.SIGKILL)
        cn.cancel_scope.cancel()

    @staticmethod
    def _process_alive(c: Container) -> bool:
        if c.process:
            return c.process.returncode is None
        return bool(c.pid) and procs.alive(c.pid)  # adopted from an earlier agent

    def _signal(self, c: Container, sig: int) -> None:
        if c.builtin and c.stop_builtin:
            c.stop_builtin.cancel()
        if c.process and c.process.returncode is None:
            try:
                os.killpg(c.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        elif c.pid and not c.process and procs.alive(c.pid):
            # An adopted container: it leads its own process group (spawn starts a session), as ours do.
            try:
                if os.getpgid(c.pid) == c.pid:
                    os.killpg(c.pid, sig)
                else:
                    os.kill(c.pid, sig)
            except ProcessLookupError:
                pass

    @property
    def container_id(self) -> str:
        return self.uid.replace("-", "")

    async def attach_network(self) -> None:
        """CNI ADD, as a runtime does it, until it works or the pod goes away; an
        earlier agent's attachment (cached result) is reused."""
        net = self.agent.network
        with trio.move_on_after(30):
            await net.ready.wait()
        result = net.runtime.cached(self.container_id)
        while result is None and not self.terminating.is_set():
            try:
                m = self.pod["metadata"]
                result = await net.runtime.add(self.container_id, self.sb.netns_path, "eth0", {
                    "K8S_POD_NAMESPACE": m["namespace"], "K8S_POD_NAME": m["name"], "K8S_POD_UID": self.uid})
            except Exception as e:
                log.warning("%s/%s: network setup failed: %s", self.namespace, self.name, e)
                self.agent.event(self.pod, "Warning", "FailedCreatePodSandBox",
                                 f"Failed to create pod sandbox: network: {e}")
                if not self.synced.is_set():
                    self._first_pass_done()  # acted on, if not successfully: `apply --wait` returns
                with trio.move_on_after(1):
                    await self.terminating.wait()
        if result:
            ips = [i["address"].split("/")[0] for i in result.get("ips", [])]
            if ips:
                self.ip = ips[0]
                # In place when this agent made the sandbox: no container has started yet.
                sandboxes.write_hosts(self.agent.cfg, self.sb, self.pod, self.ip, in_place=not self.reused)
                self.mark_dirty()

    async def sandbox_processes(self) -> None:
        """The pod's cgroup (its pids.max: kubelet's podPidsLimit), and for
        shareProcessNamespace the pause process whose PID namespace all its
        containers share (as upstream's pause container: PID 1 there, reaping)."""
        if not self.sb.sandboxed or not any(c.get("command") or c.get("args") for c in self.pod["spec"]["containers"]):
            return
        path = cgroups.pod_path(self.agent.cfg.name, self.uid)
        if path:
            try:
                self.cgroup = await trio.to_thread.run_sync(cgroups.ensure, path)
                limit = self.agent.cfg.pod_pids_limit
                cgroups.set_limits(path, {"pids.max": str(limit) if limit > 0 else "max"})
            except OSError as e:
                log.warning("%s/%s: no cgroup: %s", self.namespace, self.name, e)
                self.cgroup = None
        if not self.pod["spec"].get("shareProcessNamespace"):
            return
        recorded = self._recorded().get("")
        if recorded and procs.alive(recorded["pid"]) and procs.start_time(recorded["pid"]) == recorded["start"]:
            self.pause = recorded
            return
        spec = {"name": "pause", "command": ["/bin/sh", "-c", PAUSE]}
        self.pause_process = await spawn(self.sb, self.pod, spec, {"PATH": "/usr/bin:/bin"}, capture=False,
                                         cgroup=self._container_cgroup("pause"))
        self.pause = {"pid": self.pause_process.pid, "start": procs.start_time(self.pause_process.pid)}
        self._record()

    async def prepare_volumes(self) -> None:
        """The pod's volumes (knet.node.volumes), retried every 2 s while one fails,
        with kubelet's FailedMount event; the containers wait ContainerCreating.
        A pod with no process (built-in servers only) mounts nothing: skipped."""
        if not self.sb.sandboxed or not any(c.get("command") or c.get("args") for c in self.pod["spec"]["containers"]):
            return
        said: set[str] = set()
        while not self.terminating.is_set():
            try:
                await volumes.prepare(self.pod, self.sb.dir, self._fetch, self._token_request, self.agent.node_ip)
                period = volumes.refresh_period(self.pod)
                if period:
                    self._nursery.start_soon(self.refresh_volumes, period)
                return
            except (volumes.VolumeError, OSError) as e:
                message = str(e) if isinstance(e, volumes.VolumeError) else f"MountVolume.SetUp failed: {e}"
                if message not in said:
                    said.add(message)
                    log.warning("%s/%s: %s", self.namespace, self.name, message)
                    self.agent.event(self.pod, "Warning", "FailedMount", message)
                if not self.synced.is_set():
                    self._first_pass_done()
                with trio.move_on_after(2):
                    await self.terminating.wait()

    async def refresh_volumes(self, period: float) -> None:
        """Rewrite the API-backed volumes now and then, as kubelet does: a new
        ServiceAccount token before 80% of the last one's life, the configMaps'
        and secrets' changes (each written atomically: a reader sees old or new)."""
        while True:
            with trio.move_on_after(period):
                await self.terminating.wait()
            if self.terminating.is_set():
                return
            try:
                await volumes.prepare(self.pod, self.sb.dir, self._fetch, self._token_request, self.agent.node_ip)
            except (volumes.VolumeError, OSError) as e:
                log.warning("%s/%s: refreshing volumes: %s", self.namespace, self.name, e)

    async def _fetch(self, kind: str, namespace: str, name: str) -> dict | None:
        from knet.api.resources import by_kind

        try:
            return await self.agent.api.get(by_kind(kind), namespace, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise volumes.VolumeError(name, e.message) from None

    async def _token_request(self, namespace: str, sa: str, body: dict) -> dict:
        out = await self.agent.api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", body)
        return out.get("status") or {}

    def _container_cgroup(self, name: str) -> str | None:
        if not self.cgroup:
            return None
        try:
            return cgroups.ensure(os.path.join(self.cgroup, name))
        except OSError:
            return None

    async def finish(self) -> None:
        """Tear the sandbox down and let the API forget the pod."""
        if self.cgroup:
            await trio.to_thread.run_sync(cgroups.remove, self.cgroup)
        if self.pause_process is not None:
            with trio.CancelScope(shield=True):
                await self.pause_process.wait()
        if self.sb is not None:
            await self.stop_builtins()
            try:
                await self.agent.network.runtime.delete(self.container_id, self.sb.netns_path)
            except Exception as e:
                log.warning("%s/%s: network teardown failed: %s", self.namespace, self.name, e)
            await trio.to_thread.run_sync(sandboxes.remove, self.sb)
        while True:  # until the API has forgotten the pod: nothing else will retry it
            try:
                await self.agent.api.delete(self.agent.PODS, self.namespace, self.name, grace=0)
                break
            except ApiError as e:
                if e.code == 404:
                    break
                log.warning("%s/%s: final delete failed: %s", self.namespace, self.name, e.message)
            except OSError as e:
                log.warning("%s/%s: final delete failed: %s", self.namespace, self.name, e)
            await trio.sleep(0.5)
        self.agent.forget(self.uid)

    async def stop_builtins(self) -> None:
        """Make sure the runtime serves nothing of this pod any more: a socket it kept
        open would keep the pod's network namespace alive after its removal."""
        with trio.CancelScope(shield=True), trio.move_on_after(10) as waited:
            for c in self.containers:
                if not (c.spec.get("command") or c.spec.get("args")):
                    cid = f"{self.uid}/{c.name}"
                    self.agent.cri.handles.pop(cid, None)
                    try:
                        await self.agent.cri.call_until({"op": "stop", "id": cid})
                    except RuntimeRefused as e:
                        log.warning("%s/%s: stopping container %s: %s", self.namespace, self.name, c.name, e)
        if waited.cancelled_caught:
            log.warning("%s/%s: the node runtime did not answer; removing the sandbox anyway",
                        self.namespace, self.name)

    # -- containers ---------------------------------------------------------------

    async def run_container(self, c: Container) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        backoff = self.agent.cfg.restart_backoff_seconds
        adopted = self._adopt(c)
        if self.reused and not await self._resume(c, adopted is not None):
            return
        while not self.terminating.is_set():
            exit_code, reason = await self.run_once(c, adopted)
            adopted = None
            finished = now_rfc3339()
            started = c.state.get("running", {}).get("startedAt", finished)
            c.state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                                      "finishedAt": finished}}
            c.ready = False
            c.started = False
            self.mark_dirty()
            if self.terminating.is_set() or not should_restart(policy, exit_code):
                return
            delay = 0.0 if c.restart_count == 0 else min(MAX_BACKOFF, backoff * 2 ** (c.restart_count - 1))
            c.last_state = c.state
            if delay:
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                       f"back-off {delay:g}s restarting failed container={c.name} pod={self.name}"}}
                self.agent.event(self.pod, "Warning", "BackOff", "Back-off restarting failed container")
                self.mark_dirty()
                with trio.move_on_after(delay):
                    await self.terminating.wait()
            if self.terminating.is_set():
                return
            c.restart_count += 1

    async def _resume(self, c: Container, adopted: bool) -> bool:
        """After an agent restart, what became of the container while no agent watched
        (kubelet reads it back from the runtime). False: it is done and must not run again."""
        previous = self.previous.get(c.name) or {}
        prev = previous.get("state") or {}
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if "terminated" in prev:  # it had finished: a completed container is not run a second time
            if should_restart(policy, prev["terminated"].get("exitCode", 0)):
                return True
            c.state, c.last_state = prev, previous.get("lastState") or {}
            self.mark_dirty()
            return False
        if "running" not in prev:
            return True
        if c.spec.get("command") or c.spec.get("args"):
            gone = not adopted
        else:
            try:
                running = await self.agent.cri.list()
                gone = not any(r["id"] == f"{self.uid}/{c.name}" for r in running)
            except (RuntimeUnavailable, RuntimeRefused):
                gone = False  # unknown: starting it will tell
        if not gone:
            return True
        lost = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                               "message": "The container could not be located when the agent restarted",
                               "startedAt": prev["running"].get("startedAt"), "finishedAt": now_rfc3339()}}
        if not should_restart(policy, 137):
            c.state = lost
            self.mark_dirty()
            return False
        c.last_state = lost
        c.restart_count += 1
        return True

    def _recorded(self) -> dict:
        try:
            with open(os.path.join(self.sb.dir, "containers.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _adopt(self, c: Container) -> dict | None:
        """The process an earlier agent started for this container, if it still runs:
        {"pid", "start" (kernel start ticks: with the pid, it names the process for good), "startedAt"}."""
        if self.sb is None or not (c.spec.get("command") or c.spec.get("args")):
            return None
        recorded = self._recorded().get(c.name)
        if recorded and procs.alive(recorded["pid"]) and procs.start_time(recorded["pid"]) == recorded["start"]:
            return recorded
        return None

    def _record(self) -> None:
        """Write down each running process, so that a restarted agent adopts it
        (adopted ones included, or a second restart would lose them)."""
        data = {c.name: {"pid": c.pid, "start": procs.start_time(c.pid),
                         "startedAt": c.state.get("running", {}).get("startedAt")}
                for c in self.containers if c.pid and not c.builtin and self._process_alive(c)}
        if self.pause:
            data[""] = self.pause
        tmp = os.path.join(self.sb.dir, "containers.json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(data))  # dumps: the C encoder (dump streams through the Python one)
        os.replace(tmp, os.path.join(self.sb.dir, "containers.json"))

    async def run_once(self, c: Container, adopted: dict | None) -> tuple[int, str]:
        """Start the container (or adopt its process), probe it until it exits."""
        env = container_env(self.pod, c.spec, self.agent.node_ip, self.env_extra)
        if not c.spec.get("command") and not c.spec.get("args"):
            return await self.run_builtin(c, env)
        cgroup = self._container_cgroup(c.name) if self.cgroup else None
        ooms = 0
        if adopted:
            c.pid, c.process = adopted["pid"], None
            self._mark_running(c, adopted.get("startedAt"), adopted=True)
        else:
            if self.sb.sandboxed and (problem := non_root_error(self.pod, c.spec)):
                await self.config_error(c, problem)
            if cgroup:
                missing = cgroups.set_limits(cgroup, cgroups.container_limits(c.spec, cgroups.layout()))
                if missing:
                    log.info("%s/%s: %s not enforced (no cgroup controller for it here)",
                             self.namespace, self.name, ", ".join(missing))
                ooms = cgroups.oom_kills(cgroup)
            try:
                c.console = Console(c.spec) if Console.wanted(c.spec) else None
                c.process = await spawn(self.sb, self.pod, c.spec, env, console=c.console, cgroup=cgroup,
                                        share_pid=self.pause["pid"] if self.pause else None)
            except OSError as e:
                c.process = None
                return 128, f"StartError: {e}"
            c.pid = c.process.pid
            self._mark_running(c)
        self._record()
        try:
            async with trio.open_nursery() as n:
                n.start_soon(self.probe_loops, c, env)
                if c.process and c.console:
                    n.start_soon(c.console.pump, self.sb.log_path(c.name))
                if c.process:
                    code = await c.process.wait()
                    if c.console:
                        await c.console.finish()
                else:
                    await wait_pid(c.pid)
                    code = 137
                n.cancel_scope.cancel()
        finally:
            if c.console:
                c.console.close()
        if code < 0:
            code = 128 - code
        if cgroup and code == 137 and cgroups.oom_kills(cgroup) > ooms:
            c.killed_for = ""
            return 137, "OOMKilled"  # the kernel's OOM killer, inside the container's memory limit (v2 or v1)
        if c.killed_for:
            reason, c.killed_for = "Error", ""
        else:
            reason = "Completed" if code == 0 else "Error"
        return code, reason

    async def config_error(self, c: Container, message: str) -> None:
        """A container kubelet will not create (runAsNonRoot and root): it waits with
        CreateContainerConfigError until the pod goes, as kubelet's retries would."""
        c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
        self.agent.event(self.pod, "Warning", "Failed", f"Error: {message}")
        self.mark_dirty()
        await self.terminating.wait()
        await trio.sleep_forever()  # cancelled with the pod's containers

    async def run_builtin(self, c: Container, env: dict[str, str]) -> tuple[int, str]:
        """The built-in server runs in the node runtime, so it outlives this agent; one
        already running there (started by an earlier agent) is adopted as it is."""
        cri = self.agent.cri
        c.builtin, c.pid = True, None
        cid = f"{self.uid}/{c.name}"
        spec = {"id": cid, "netns": self.sb.netns_path, "identity": f"{self.namespace}/{self.name}",
                "hostname": self.name, "labels": {"restartCount": c.restart_count},
                "ports": [{"containerPort": p.get("containerPort"), "protocol": p.get("protocol", "TCP")}
                          for p in c.spec.get("ports") or []]}
        try:
            started = await cri.start(spec, give_up=self.terminating)
        except RuntimeRefused as e:
            return 1, f"Error: {e}" if e.reason == "PortInUse" else f"StartError: {e}"
        if started is None:  # the pod went away while the runtime was
            return 137, "Error"
        handle, existing = started
        if existing:
            c.restart_count = max(c.restart_count, int(handle.record["labels"].get("restartCount", 0)))
        self._mark_running(c, handle.record["startedAt"], adopted=existing)
        with trio.CancelScope() as scope:  # cancelled to stop it: liveness failure or pod termination
            c.stop_builtin = scope
            async with trio.open_nursery() as n:
                n.start_soon(self.probe_loops, c, env)
                await handle.gone.wait()
                n.cancel_scope.cancel()
        c.stop_builtin = None
        if handle.gone.is_set():
            c.killed_for = ""
            return 137, "ContainerStatusUnknown"  # the runtime lost it (it died): restarted per policy
        # Reached only when asked to stop: an agent shutting down is cancelled past here and leaves it running.
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await cri.stop(cid)
            except (RuntimeUnavailable, RuntimeRefused) as e:
                log.warning("%s/%s: stopping container %s: %s", self.namespace, self.name, c.name, e)
        if c.killed_for:
            c.killed_for = ""
            return 137, "Error"
        return 0, "Completed"

    def _mark_running(self, c: Container, started_at: str | None = None, adopted: bool = False) -> None:
        c.state = {"running": {"startedAt": started_at or now_rfc3339()}}
        c.started = True
        c.ready = not c.spec.get("readinessProbe")
        if not adopted and (c.restart_count == 0 or c.process):
            self.agent.event(self.pod, "Normal", "Started", f"Started container {c.name}")
        self.mark_dirty()

    async def probe_loops(self, c: Container, env: dict[str, str]) -> None:
        async with trio.open_nursery() as n:
            if c.spec.get("readinessProbe"):
                n.start_soon(self.probe_loop, c, env, "readinessProbe")
            if c.spec.get("livenessProbe"):
                n.start_soon(self.probe_loop, c, env, "livenessProbe")

    async def probe_loop(self, c: Container, env: dict[str, str], kind: str) -> None:
        probe = c.spec[kind]
        period = float(probe.get("periodSeconds", 10))
        need_ok = int(probe.get("successThreshold", 1))
        need_fail = int(probe.get("failureThreshold", 3))
        await trio.sleep(float(probe.get("initialDelaySeconds", 0)))
        oks = fails = 0
        while True:
            ok, message = await probe_once(probe, self.sb, self.pod, c.spec, env, self.pod_ip)
            if ok:
                oks, fails = oks + 1, 0
            else:
                oks, fails = 0, fails + 1
                self.agent.event(self.pod, "Warning", "Unhealthy",
                                 f"{'Readiness' if kind == 'readinessProbe' else 'Liveness'} probe failed: {message}")
            if kind == "readinessProbe":
                ready = c.ready
                if oks >= need_ok:
                    ready = True
                elif fails >= need_fail:
                    ready = False
                if ready != c.ready:
                    c.ready = ready
                    self.mark_dirty()
            elif fails >= need_fail:
                self.agent.event(self.pod, "Normal", "Killing",
                                 f"Container {c.name} failed liveness probe, will be restarted")
                c.killed_for = "liveness"
                self._signal(c, signal.SIGKILL)
                return
            await trio.sleep(period)

    @property
    def pod_ip(self) -> str | None:
        return self.ip

    # -- status --------------------------------------------------------------------

    def build_status(self) -> dict:
        spec = self.pod["spec"]
        phase = pod_phase(self.containers, spec.get("restartPolicy", "Always"))
        all_ready = all(c.ready for c in self.containers) and phase == "Running"
        conds = []
        sched = condition(self.pod, "PodScheduled")
        conds.append(sched or {"type": "PodScheduled", "status": "True"})
        conds.append({"type": "Initialized", "status": "True"})
        for ctype in ("ContainersReady", "Ready"):
            c = {"type": ctype, "status": "True" if all_ready else "False"}
            if not all_ready:
                c["reason"] = "ContainersNotReady" if phase != "Succeeded" else "PodCompleted"
                not_ready = [x.name for x in self.containers if not x.ready]
                c["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
            conds.append(c)
        status = {"phase": phase, "conditions": conds, "hostIP": self.agent.node_ip,
                  "hostIPs": [{"ip": self.agent.node_ip}], "startTime": self.start_time,
                  "containerStatuses": [c.status() for c in self.containers], "qosClass": "BestEffort"}
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.sandbox_error:
            status["message"] = self.sandbox_error
        return status

    async def status_loop(self) -> None:
        """Push the status whenever it changes (coalesced; transition times kept).

        A pod adopted from an earlier agent posts nothing until its first pass is
        done: until its containers are adopted they look not ready, and posting
        that would take a serving pod out of its Services for a moment."""
        previous_ready: dict[str, str] = {}
        if self.reused:
            await self.synced.wait()
        while True:
            await self.status_dirty.wait()
            self.status_dirty = trio.Event()
            await trio.sleep(0.002)
            if not self.synced.is_set():
                # A starting pod gets its address, then its containers start, usually milliseconds
                # apart: one write for both, instead of a Pending-with-IP write the Running one
                # replaces at once, takes a quarter of the API's writes per pod start away.
                with trio.move_on_after(STARTING_COALESCE_SECONDS):
                    await self.synced.wait()
            if self.reconcile:  # at most once a second: never a write-for-write race with a controller
                await trio.sleep(max(0.0, self._reconciled_at + 1.0 - trio.current_time()))
                self.reconcile, self.sent_status = False, None
                self._reconciled_at = trio.current_time()
            status = self.build_status()
            for c in status["conditions"]:
                old = condition(self.pod, c["type"])
                keep = old and old.get("status") == c["status"] and old.get("lastTransitionTime")
                c["lastTransitionTime"] = keep or now_rfc3339()
                previous_ready[c["type"]] = c["status"]
            if status == self.sent_status:
                continue
            try:
                pod = await self.agent.api.patch(self.agent.PODS, self.namespace, self.name, {"status": status},
                                                 "status")
                self.sent_status = status
                self.sent_revision = int(pod["metadata"]["resourceVersion"])
                # The reply stands in for the pod only until the watch brings this revision: the
                # informer's copy, when already here, is kept (a second decoded Pod per pod otherwise),
                # and this frame, which waits for the next change, lets go of the reply.
                if not self.terminating.is_set() and self.handling_revision < self.sent_revision:
                    self.pod = pod
                del pod
            except ApiError as e:
                if e.code == 404:
                    return
                log.warning("%s/%s: status update failed: %s", self.namespace, self.name, e.message)
                await trio.sleep(0.5)
                self.mark_dirty()
            except OSError as e:
                log.warning("%s/%s: status update failed: %s", self.namespace, self.name, e)
                await trio.sleep(0.5)
                self.mark_dirty()


STARTING_COALESCE_SECONDS = 0.5  # a start slower than this shows its ContainerCreating status


def _disagrees(seen: dict, sent: dict) -> bool:
    """Whether the API's pod status differs from what this agent last posted, in what it owns."""
    def ready(status: dict) -> str | None:
        return next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return (seen.get("phase") != sent.get("phase") or ready(seen) != ready(sent)
            or seen.get("podIP") != sent.get("podIP"))


async def wait_pid(pid: int) -> None:
    """Wait for a process that is not our child (adopted after an agent restart)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
