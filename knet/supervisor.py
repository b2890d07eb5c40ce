"""The per-cluster supervisor: systemd's part on a real node.

A real cluster's kubelet and API server are restarted by systemd (or the
kubelet, for static pods) when they exit. Here one small process per cluster
does that: `knet up`/`knet start` start it in the cluster's fabric namespace
(so `knet down` finds it with everything else), and it starts the control
plane and each node's components, restarts any that exits with exponential
backoff (0.1 s doubling to 10 s, back to 0.1 s once a run lasted 10 s), logs
each restart to the state directory's logs, and keeps restart counts in
<state>/supervisor.json for `knet status`.

Components live in their own sessions, so killing the supervisor leaves them
running; a new supervisor adopts them by their pid files (verified: pid,
start time and argv, see knet.net.procs) instead of starting second copies.
Exits are seen through pidfds, which work for adopted processes too.

`hold` files (<state>/supervisor/held/<component>) keep one component down on
purpose (knet.cluster.stop_component), as `systemctl stop` does.

The API server's listener in the host's loopback (for kubectl) is bound by
`knet up`/`knet start` in the host's namespace, the only place it can be
made without touching the host's network configuration; the supervisor
inherits it and hands it to each control plane it starts (HOST_LISTENER_ENV
names the fd), keeping its own copy so a restarted control plane serves the
same port. A supervisor that adopts a running control plane without having
been given the socket takes a copy from it (pidfd_getfd).

Every node of a cluster in namespaces shares this machine's CPUs with the one
control plane, so a node's components run at a lower priority (NODE_NICE):
while a rollout keeps four agents busy, the API server and a user's `knet get`
are served first instead of waiting behind them. Linux shares CPU between
sessions (autogroups) before it looks at a process's nice, and each component
is a session of its own, so the priority is set on its autogroup (where the
kernel has none, on the process itself, which its children inherit).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import NamedTuple

from knet.config import ClusterConfig, load_saved
from knet.net import ns, procs
from knet.paths import HOST_LISTENER_ENV, state_dir

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
RESET_AFTER = 10.0  # a run at least this long counts as healthy: the next restart is quick again
RECORD_PRUNE_EVERY = 60.0
MODULE = "knet.supervisor"
# A node's components against the control plane: CFS weight 335 to 1024 per session (nice 5), so
# the API server holds a core when it needs one however many agents are busy, and the agents still
# take whatever it leaves (bench/scale.py: `knet get pod` p99 during a 1,000-pod rollout).
NODE_NICE = 5


class Component(NamedTuple):
    netns: str
    module: str
    args: tuple[str, ...] = ()
    nice: int = 0  # the priority of its session (see the module's docstring)


def components(cfg: ClusterConfig) -> dict[str, Component]:
    """Every long-running process of a cluster, by name, in start order.

    The one list: the supervisor starts these, `knet status` reports them,
    `knet stop` and `knet down` look for them. A new per-node process is one
    more line here."""
    out = {}
    if cfg.machine in ("", cfg.control_plane.name):  # a joined machine runs its own node's processes only
        out["control-plane"] = Component(cfg.node_netns(cfg.control_plane.name), "knet.controlplane")
    # On a machine of its own a node is the machine (kubelet's priority); in namespaces it shares the CPUs.
    nice = NODE_NICE if not cfg.machine else 0
    for node in (n for n in cfg.nodes if cfg.machine in ("", n.name)):  # runtime (containerd's place), then agent
        out[f"runtime-{node.name}"] = Component(cfg.node_netns(node.name), "knet.node.runtime",
                                                ("--node", node.name), nice)
        out[f"node-{node.name}"] = Component(cfg.node_netns(node.name), "knet.node.agent", ("--node", node.name), nice)
    return out


def component_modules() -> frozenset[str]:
    """Modules whose processes carry `--cluster NAME` (components and the supervisor)."""
    from knet.config import default_config

    return frozenset({MODULE, *(c.module for c in components(default_config()).values())})


def argv_for(cfg: ClusterConfig, comp: Component) -> list[str]:
    return [sys.executable, "-m", comp.module, "--cluster", cfg.name, *comp.args]


def supervisor_argv(cluster: str) -> list[str]:
    """-S: no site processing (.pth files: 30 ms and more before the first
    component can start). The supervisor needs only the standard library and
    knet, which it finds in its start directory (see PACKAGE_ROOT)."""
    return [sys.executable, "-S", "-m", MODULE, "--cluster", cluster]


PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- where things are ------------------------------------------------------------------


def pid_path(cluster: str, name: str) -> str:
    return os.path.join(state_dir(cluster), "pids", f"{name}.pid")


def held_path(cluster: str, name: str) -> str:
    return os.path.join(state_dir(cluster), "supervisor", "held", name)


def status_path(cluster: str) -> str:
    return os.path.join(state_dir(cluster), "supervisor.json")


def read_status(cluster: str) -> dict:
    try:
        with open(status_path(cluster)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_status(cluster: str, data: dict) -> None:
    path = status_path(cluster)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def lower_priority(nice: int) -> None:
    """In a child that has just called setsid: give its new session (autogroup)
    the nice value, or the process itself where the kernel has no autogroups."""
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def spawn(cfg: ClusterConfig, name: str, argv: list[str], netns: str, record: bool = True,
          cwd: str = "/", listener: int | None = None, nice: int = 0) -> subprocess.Popen:
    """Start a process inside a namespace, in its own session (so it outlives
    whoever started it) at `nice` (lower_priority), logging to the state
    directory, and record its pid file.
    `listener`: the host listener's fd, inherited under the same number and
    named in HOST_LISTENER_ENV; no other process gets either."""
    logdir = os.path.join(cfg.state_dir, "logs")
    os.makedirs(logdir, exist_ok=True)
    os.makedirs(os.path.join(cfg.state_dir, "pids"), exist_ok=True)
    fd = os.open(ns.netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    logf = open(os.path.join(logdir, f"{name}.log"), "ab")
    env = {k: v for k, v in os.environ.items() if k != HOST_LISTENER_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if listener is not None:
        env[HOST_LISTENER_ENV] = str(listener)

    def in_child() -> None:  # after setsid: the session's autogroup is the child's own
        ns.setns(fd, ns.CLONE_NEWNET)
        if nice:
            lower_priority(nice)

    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, cwd=cwd,
            preexec_fn=in_child, close_fds=True,
            pass_fds=(listener,) if listener is not None else (), env=env)
    finally:
        os.close(fd)
        logf.close()
    if record:
        procs.write_pidfile(pid_path(cfg.name, name), proc.pid, argv)
    return proc


def find_running(cfg: ClusterConfig, name: str, comp: Component, scan: bool = True) -> int | None:
    """The live process of this component: by its verified pid file, or else
    (with scan) by its exact argv in its namespace (a supervisor killed between
    starting it and writing the pid file)."""
    want = argv_for(cfg, comp)
    rec = procs.read_pidfile(pid_path(cfg.name, name))
    if procs.matches(rec) and rec["argv"][1:] == want[1:]:
        return rec["pid"]
    if not scan:
        return None
    inode = ns.inode(ns.netns_path(comp.netns))
    if inode is None:
        return None
    for pid in procs.pids_in_netns([inode]):
        argv = procs.cmdline(pid)
        if argv and argv[1:] == want[1:] and procs.alive(pid):
            procs.write_pidfile(pid_path(cfg.name, name), pid)
            return pid
    return None


def next_backoff(prev: float, ran: float) -> float:
    """Seconds to wait before the next start, as systemd's RestartSec with
    kubelet's CrashLoopBackOff growth: the first restart is quick, each quick
    failure doubles the wait up to a cap, and a run that lasted a while starts
    the count again."""
    if prev <= 0 or ran >= RESET_AFTER:
        return BACKOFF_FIRST
    return min(prev * 2, BACKOFF_MAX)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


# -- the supervisor process ------------------------------------------------------------


def _log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {msg}\n")
    sys.stderr.flush()


def take_listener(pid: int, pidfd: int) -> int | None:
    """A copy of the host listener a running control plane holds (its fd
    number from its environment), through pidfd_getfd(2); None when it has
    none or the kernel refuses."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.partition(b"=")[::2] for kv in f.read().split(b"\0") if kv)
        target = int(env[HOST_LISTENER_ENV.encode()])
    except (OSError, KeyError, ValueError):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(438, pidfd, target, 0)  # SYS_pidfd_getfd (the same number on every architecture)
    if fd < 0:
        _log(f"could not take the host listener from the control plane: {os.strerror(ctypes.get_errno())}")
        return None
    return fd


class Supervisor:
    def __init__(self, cfg: ClusterConfig, listener: int | None = None):
        self.cfg = cfg
        self.listener = listener  # the host listener's fd, for the control plane (see the module's docstring)
        self.comps = components(cfg)
        # A cluster's first supervisor has nothing to adopt: it skips the /proc scans.
        self.fresh = not os.path.exists(status_path(cfg.name))
        old = read_status(cfg.name).get("components") or {}
        self.state: dict[str, dict] = {}
        for name in self.comps:
            prev = old.get(name) or {}
            self.state[name] = {"pid": None, "state": "starting", "restarts": int(prev.get("restarts", 0)),
                                "lastExit": prev.get("lastExit"), "lastExitTime": prev.get("lastExitTime"),
                                "nextStartTime": None, "prevState": prev.get("state")}
        self.children: dict[str, subprocess.Popen] = {}
        self.pidfds: dict[int, str] = {}
        self.started_at: dict[str, float] = {}
        self.backoff: dict[str, float] = dict.fromkeys(self.comps, 0.0)
        self.due: dict[str, float] = {}  # monotonic time of a scheduled (re)start
        self.poller = select.poll()
        self.saved: dict | None = None
        self.stopping = False
        self.kicked = False
        self.next_prune = time.monotonic() + RECORD_PRUNE_EVERY

    # -- bookkeeping --

    def save(self) -> None:
        """Write supervisor.json when something changed (the loop wakes every second)."""
        comps = {name: {k: v for k, v in st.items() if k != "prevState"} for name, st in self.state.items()}
        data = {"supervisor": {"pid": os.getpid()}, "components": comps}
        if data != self.saved:
            write_status(self.cfg.name, data)
            self.saved = json.loads(json.dumps(data))

    def held(self, name: str) -> bool:
        return os.path.exists(held_path(self.cfg.name, name))

    def watch(self, name: str, pid: int) -> bool:
        """Follow the process's exit through a pidfd; False when it is already gone."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        self.pidfds[fd] = name
        self.poller.register(fd, select.POLLIN)
        self.state[name].update(pid=pid, state="running", nextStartTime=None)
        self.started_at[name] = time.monotonic()
        return True

    # -- starting --

    def adopt_or_start(self, name: str) -> None:
        st = self.state[name]
        pid = find_running(self.cfg, name, self.comps[name], scan=not self.fresh)
        # The pidfd pins the process: checked again after opening, it cannot be another's.
        if pid is not None and self.watch(name, pid):
            if find_running(self.cfg, name, self.comps[name]) == pid:
                _log(f"adopted {name} (pid {pid})")
                if name == "control-plane" and self.listener is None:
                    pidfd = next(fd for fd, n in self.pidfds.items() if n == name)
                    self.listener = take_listener(pid, pidfd)
                return
            self.unwatch(name)
        if self.held(name):
            st.update(pid=None, state="held")
            return
        if st.get("prevState") in ("running", "backoff"):
            # It died while nobody supervised it: that is a restart too.
            if st.get("prevState") == "running":
                st["lastExit"] = "exited while no supervisor ran"
            self.start(name, restart=True)
        else:
            self.start(name)

    def start(self, name: str, restart: bool = False) -> None:
        comp = self.comps[name]
        st = self.state[name]
        if restart:
            st["restarts"] += 1
            line = f"restarting {name} (restart {st['restarts']}; last exit: {st.get('lastExit') or 'unknown'})"
            _log(line)
            self._component_log(name, f"--- knet supervisor: {line}")
        try:
            proc = spawn(self.cfg, name, argv_for(self.cfg, comp), comp.netns, nice=comp.nice,
                         listener=self.listener if comp.module == "knet.controlplane" else None)
        except OSError as e:
            _log(f"cannot start {name}: {e}")
            st.update(pid=None, state="backoff", lastExit=f"failed to start: {e}", lastExitTime=time.time())
            self.schedule(name, ran=0.0)
            return
        self.children[name] = proc
        if not restart:
            _log(f"started {name} (pid {proc.pid})")
        if not self.watch(name, proc.pid):
            self.exited(name)

    def _component_log(self, name: str, line: str) -> None:
        try:
            with open(os.path.join(self.cfg.state_dir, "logs", f"{name}.log"), "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError:
            pass

    # -- exits --

    def unwatch(self, name: str) -> None:
        for fd, n in list(self.pidfds.items()):
            if n == name:
                self.poller.unregister(fd)
                os.close(fd)
                del self.pidfds[fd]

    def exited(self, name: str) -> None:
        self.unwatch(name)
        proc = self.children.pop(name, None)
        code = proc.poll() if proc is not None else None
        if proc is not None and code is None:
            code = proc.wait()  # the pidfd said it exited: this reaps at once
        st = self.state[name]
        ran = time.monotonic() - self.started_at.pop(name, time.monotonic())
        st.update(pid=None, lastExit=describe_exit(code), lastExitTime=time.time())
        _log(f"{name} {st['lastExit']} after {ran:.1f}s")
        if self.held(name):
            st.update(state="held", nextStartTime=None)
            return
        self.schedule(name, ran)

    def schedule(self, name: str, ran: float) -> None:
        delay = self.backoff[name] = next_backoff(self.backoff[name], ran)
        self.due[name] = time.monotonic() + delay
        self.state[name].update(state="backoff", nextStartTime=time.time() + delay)

    # -- the loop --

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_kick)
        self.poller.register(wake_r, select.POLLIN)
        for name in self.comps:
            self.adopt_or_start(name)
        self.save()
        _log(f"supervising {', '.join(self.comps)} of cluster {self.cfg.name}")
        while not self.stopping:
            now = time.monotonic()
            timeout = min([1.0] + [max(0.0, t - now) for t in self.due.values()])
            for fd, _ev in self.poller.poll(timeout * 1000):
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                elif fd in self.pidfds:
                    self.exited(self.pidfds[fd])
            if self.stopping:
                break
            now = time.monotonic()
            if self.kicked:
                self.kicked = False
                for name in self.comps:
                    st = self.state[name]
                    if st["state"] == "held" and not self.held(name):
                        self.due[name] = now
                    elif name in self.due:
                        self.due[name] = now
            for name in list(self.comps):
                if name in self.due and self.due[name] <= now:
                    del self.due[name]
                    if self.held(name):
                        self.state[name].update(state="held", nextStartTime=None)
                    else:
                        self.start(name, restart=self.state[name]["state"] != "held")
            if now >= self.next_prune:
                self.next_prune = now + RECORD_PRUNE_EVERY
                prune_records(self.cfg)
            self.save()
        _log("stopping (components keep running)")

    def _on_stop(self, _sig, _frame) -> None:
        self.stopping = True

    def _on_kick(self, _sig, _frame) -> None:
        self.kicked = True


def prune_records(cfg: ClusterConfig, min_age: float = 60.0) -> None:
    """Forget namespace records whose namespace is long gone (a deleted pod's),
    so a long-lived cluster's record directory stays bounded. A fresh record
    may be one whose namespace is being created right now: those stay."""
    rdir = os.path.join(cfg.state_dir, "netns")
    now = time.time()
    try:
        names = os.listdir(rdir)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(rdir, name)
        try:
            if now - os.stat(path).st_mtime > min_age and not os.path.lexists(ns.netns_path(name)):
                os.unlink(path)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    import argparse
    import fcntl

    p = argparse.ArgumentParser(prog="knet-supervisor")
    p.add_argument("--cluster", required=True)
    args = p.parse_args(argv)
    os.chdir("/")  # started in PACKAGE_ROOT to find knet; hold no directory busy
    cfg = load_saved(args.cluster)
    # One supervisor per cluster: a second one (two `knet start` at once) leaves quietly.
    lock = open(os.path.join(cfg.state_dir, "supervisor.lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log("another supervisor is running for this cluster; leaving")
        return
    os.makedirs(os.path.dirname(pid_path(cfg.name, "supervisor")), exist_ok=True)
    procs.write_pidfile(pid_path(cfg.name, "supervisor"), os.getpid())
    listener = os.environ.pop(HOST_LISTENER_ENV, None)
    Supervisor(cfg, int(listener) if listener and listener.isdigit() else None).run()


if __name__ == "__main__":
    main()
