"""cgroups for pods: where a pod's processes are, what they may use, how they all end.

A pod's processes can fork, daemonize and leave their session; the cgroup
they were started in is what surely names them (as it is for kubelet), so:
  <hierarchy>/knet-<cluster>/pod-<uid>/<container>   (and .../pause for a shared PID namespace)
A path is named in the primary hierarchy (cgroup2 where it is mounted), and
the same relative path is made in each cgroup v1 hierarchy that holds one of
the controllers knet limits with, as kubelet's cgroupfs driver does on a v1
or hybrid host (a controller lives on exactly one hierarchy: the kernel binds
it to a v1 one, or it is available to cgroup2). A process joins all of them
that were made (v1 cpu's only for a container with cpu resources: _ON_DEMAND).

resources.limits.memory is memory.max on v2, memory.limit_in_bytes (and
memsw, kubelet's no-swap) on v1: the kernel's OOM killer then kills inside
the container only, and memory.events' oom_kill (v2) or memory.oom_control's
(v1) tells kubelet's OOMKilled. The pod's pids.max is kubelet's podPidsLimit;
cpu requests are cpu.weight (v2) or cpu.shares (v1), cpu limits cpu.max or
cfs_quota_us/period_us, with kubelet's conversions. `cgroup.kill` (v2) ends a
tree in one write; where there is none (v1) its processes are SIGKILLed until
none is left, and an empty tree is removed bottom-up in every hierarchy.
Nothing outside a `knet-*` cgroup is ever killed or removed.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from fractions import Fraction

CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD = 100_000  # kubelet's default cpuCFSQuotaPeriod (100 ms), in µs
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": Fraction(1, 1000)}
# Swap limits kubelet writes only where swap is accounted: their absence is no missing enforcement.
_OPTIONAL = frozenset({"memory.swap.max", "memory.memsw.limit_in_bytes"})
# A v1 cpu cgroup weighs as one task against each process left in its hierarchy's root (a hybrid
# host's usual state, where nothing sorts processes into slices): a pod moved there without a cpu
# request or limit would get far less CPU than it had. So its twin is made only when set_limits
# writes a cpu file there; a container without one stays where it was for cpu, as before.
_ON_DEMAND = frozenset({"cpu"})


def quantity(text: object) -> Fraction:
    """A Kubernetes quantity ("128Mi", "0.5", "100m", "1e3") as a number."""
    s = str(text).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "m"):
        if s.endswith(suffix):
            return Fraction(s[: -len(suffix)]) * _SUFFIX[suffix]
    try:
        return Fraction(s)
    except ValueError:
        return Fraction(float(s))


# -- which controller lives where (pure: parsed from /proc/self/mountinfo and /proc/self/cgroup) --

@dataclass(frozen=True)
class Layout:
    """unified: cgroup2's mount point; v1: controller -> the (writable) mount of
    the v1 hierarchy the kernel bound it to; bound_v1: every controller on a v1
    hierarchy, mounted here or not (one unmounted is on neither: not enforceable)."""

    unified: str | None = None
    v1: dict[str, str] = field(default_factory=dict)
    bound_v1: frozenset[str] = frozenset()

    @property
    def hierarchies(self) -> list[str]:
        """The primary hierarchy first, then each v1 one knet uses, once."""
        out = [self.unified] if self.unified else []
        for c in CONTROLLERS:
            if c in self.v1 and self.v1[c] not in out:
                out.append(self.v1[c])
        return out

    @property
    def root(self) -> str | None:
        h = self.hierarchies
        return h[0] if h else None

    def hierarchy_of(self, controller: str) -> str | None:
        if controller in self.v1:
            return self.v1[controller]
        if controller in self.bound_v1:
            return None
        return self.unified


def _unescape(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field_)


def parse_layout(mountinfo: str, proc_cgroup: str = "") -> Layout:
    """/proc/self/cgroup says which controllers the kernel bound to v1
    hierarchies ("4:memory:/x"; "0::/x" is cgroup2), mountinfo where each is
    mounted. A read-only mount (a container's /sys/fs/cgroup) is no place to
    make cgroups, and a mount of the hierarchy's root is preferred to a bind of
    a subtree."""
    bound: set[str] = set()
    listed = False
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] != "0":
            listed = True
            bound.update(c for c in parts[1].split(",") if c and not c.startswith("name="))
    unified: tuple[bool, str] | None = None
    v1: dict[str, tuple[bool, str]] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        if "rw" not in fields[5].split(",") or "ro" in tail[2].split(","):
            continue
        whole, point = fields[3] == "/", _unescape(fields[4])
        if tail[0] == "cgroup2":
            if unified is None or (whole and not unified[0]):
                unified = (whole, point)
            continue
        for c in tail[2].split(","):
            if c in CONTROLLERS and (listed is False or c in bound):
                if not listed:
                    bound.add(c)
                if c not in v1 or (whole and not v1[c][0]):
                    v1[c] = (whole, point)
    return Layout(unified=unified[1] if unified else None, v1={c: p for c, (_w, p) in v1.items()},
                  bound_v1=frozenset(bound & set(CONTROLLERS)))


_layout: Layout | None = None


def layout() -> Layout:
    """This host's layout, read once (a container's child joins its cgroups
    between fork and exec, with what its parent read)."""
    global _layout
    if _layout is None:
        _layout = parse_layout(_read("/proc/self/mountinfo"), _read("/proc/self/cgroup"))
    return _layout


def mount_point() -> str | None:
    """The primary hierarchy: cgroup2's mount (/sys/fs/cgroup on a pure v2 host,
    /sys/fs/cgroup/unified on a hybrid one), else a v1 one; None without cgroups."""
    return layout().root


def cluster_path(cluster: str, root: str | None = None) -> str | None:
    root = root or mount_point()
    return os.path.join(root, f"knet-{cluster}") if root else None


def pod_path(cluster: str, uid: str, root: str | None = None) -> str | None:
    base = cluster_path(cluster, root)
    return os.path.join(base, f"pod-{uid}") if base else None


def _relative(path: str, lay: Layout) -> str | None:
    root = lay.root
    if not root or not path:
        return None
    rel = os.path.relpath(path, root)
    return None if rel == "." or rel.startswith("..") else rel


def controller_path(path: str, controller: str, lay: Layout | None = None) -> str | None:
    """The directory whose files limit `controller` for the cgroup `path` names
    (path itself on cgroup2, its twin in the controller's v1 hierarchy)."""
    lay = lay or layout()
    rel = _relative(path, lay)
    if rel is None:
        return path  # not under this host's hierarchies (a test's directory): as it is
    where = lay.hierarchy_of(controller)
    return os.path.join(where, rel) if where else None


def paths(path: str, lay: Layout | None = None) -> list[str]:
    """The cgroup `path` names, in every hierarchy knet uses (path first)."""
    lay = lay or layout()
    rel = _relative(path, lay)
    if rel is None:
        return [path] if path else []
    return [os.path.join(h, rel) for h in lay.hierarchies]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def enforced(path: str, lay: Layout | None = None) -> set[str]:
    """The controllers that limit what runs in path: enabled from its parent on
    cgroup2, or its twin made in the controller's v1 hierarchy."""
    lay = lay or layout()
    out = set()
    for c in CONTROLLERS:
        where = controller_path(path, c, lay)
        if where is None or not os.path.isdir(where):
            continue
        if c in lay.v1 or c in _read(os.path.join(where, "cgroup.controllers")).split():
            out.add(c)
    return out


def ensure(path: str, lay: Layout | None = None) -> str:
    """Make path and its parents below the primary root, each delegating what
    its parent has on cgroup2 (never the root's own subtree_control: the
    host's); then its twins in the v1 hierarchies (cpu's only on demand), as
    far as they can be made (one that cannot leaves its controller
    unenforced, reported by set_limits)."""
    lay = lay or layout()
    root = lay.root or ""
    cur = root
    for part in os.path.relpath(path, root).split("/"):
        parent, cur = cur, os.path.join(cur, part)
        if parent != root:
            have = set(_read(os.path.join(parent, "cgroup.controllers")).split()) & set(CONTROLLERS)
            enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
            for c in sorted(have - enabled):
                _write(os.path.join(parent, "cgroup.subtree_control"), f"+{c}")
        try:
            os.mkdir(cur)
        except FileExistsError:
            pass
    rel = _relative(path, lay)
    for c, hierarchy in lay.v1.items():
        if rel is not None and c not in _ON_DEMAND and hierarchy != lay.root:
            _make(os.path.join(hierarchy, rel))
    return path


def _make(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass


def cpu_shares(milli: int) -> int:
    """kubelet's MilliCPUToShares: 1024 per CPU, at least 2."""
    return max(2, milli * 1024 // 1000)


def cpu_weight(milli: int) -> int:
    """kubelet's MilliCPUToShares then CpuSharesToCpuWeight (runc's conversion)."""
    return 1 + ((cpu_shares(milli) - 2) * 9999) // 262142


def cpu_quota(milli: int, period: int = CFS_PERIOD) -> int:
    """kubelet's milliCPUToQuota: the limit's share of a period, at least 1 ms."""
    return max(1000, milli * period // 1000)


def container_limits(container: dict, lay: Layout | None = None) -> dict[str, str]:
    """The files to write for a container's resources (only those it sets), in
    the names of the hierarchy each controller is on (v2's without a layout).
    Order matters on v1: memsw may not be below limit_in_bytes."""
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    v1 = lay.v1 if lay else {}
    out: dict[str, str] = {}
    if "memory" in limits:
        memory = str(int(quantity(limits["memory"])))
        if "memory" in v1:
            out["memory.limit_in_bytes"] = memory
            out["memory.memsw.limit_in_bytes"] = memory  # kubelet's ConfigureNoSwap on v1
        else:
            out["memory.max"] = memory
            out["memory.swap.max"] = "0"
    cpu = requests.get("cpu", limits.get("cpu"))
    if cpu is not None:
        milli = int(quantity(cpu) * 1000)
        if "cpu" in v1:
            out["cpu.shares"] = str(cpu_shares(milli))
        else:
            out["cpu.weight"] = str(cpu_weight(milli))
    if "cpu" in limits and (milli := int(quantity(limits["cpu"]) * 1000)) > 0:
        if "cpu" in v1:
            out["cpu.cfs_period_us"] = str(CFS_PERIOD)
            out["cpu.cfs_quota_us"] = str(cpu_quota(milli))
        else:
            out["cpu.max"] = f"{cpu_quota(milli)} {CFS_PERIOD}"
    return out


def set_limits(path: str, values: dict[str, str], lay: Layout | None = None) -> list[str]:
    """Write each file in its controller's hierarchy; return what could not be
    enforced (an absent swap file is swap not accounted, not a missing limit)."""
    lay = lay or layout()
    missing = []
    for name, value in values.items():
        controller = name.split(".")[0]
        where = controller_path(path, controller, lay)
        if where and controller in _ON_DEMAND and controller in lay.v1 and _relative(path, lay) is not None:
            _make(where)
        f = os.path.join(where, name) if where else ""
        if f and not os.path.exists(f) and name in _OPTIONAL:
            continue
        if not f or not os.path.exists(f) or not _write(f, value):
            missing.append(name)
    return missing


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        k, _, value = line.partition(" ")
        if k == key:
            return int(value)
    return 0


def oom_kills(path: str, lay: Layout | None = None) -> int:
    """How many processes the OOM killer ended in path: memory.events on v2,
    memory.oom_control on v1 (whose oom_kill line Linux 4.13 added)."""
    lay = lay or layout()
    where = controller_path(path, "memory", lay)
    if not where:
        return 0
    if "memory" in lay.v1 and _relative(path, lay) is not None:
        return _counter(_read(os.path.join(where, "memory.oom_control")), "oom_kill")
    return _counter(_read(os.path.join(where, "memory.events")), "oom_kill")


def join(path: str) -> None:
    """Move the calling process in, in every hierarchy (the child, before it
    execs; a twin that could not be made is left out)."""
    first, *twins = paths(path)
    with open(os.path.join(first, "cgroup.procs"), "w") as f:
        f.write("0")
    for twin in twins:
        if os.path.isdir(twin):
            with open(os.path.join(twin, "cgroup.procs"), "w") as f:
                f.write("0")


def pids(path: str) -> list[int]:
    """Every process in the tree, in any of its hierarchies."""
    out: set[int] = set()
    for top in paths(path):
        for d, _subdirs, _files in os.walk(top):
            out.update(int(p) for p in _read(os.path.join(d, "cgroup.procs")).split())
    return sorted(out)


def _knets(path: str, lay: Layout) -> bool:
    """Only knet's own cgroups are ever killed or removed."""
    rel = _relative(path, lay)
    return rel is not None and rel.split("/")[0].startswith("knet-")


def kill(path: str, lay: Layout | None = None) -> None:
    """SIGKILL everything in the tree: cgroup.kill (Linux 5.14) where there is
    one, else each process listed (v1; called again until none is left, for
    what forked meanwhile)."""
    lay = lay or layout()
    if not _knets(path, lay):
        return
    for top in paths(path, lay):
        if not os.path.isdir(top):
            continue
        knob = os.path.join(top, "cgroup.kill")
        if os.path.exists(knob) and _write(knob, "1"):
            continue
        for d, _subdirs, _files in os.walk(top):
            for p in _read(os.path.join(d, "cgroup.procs")).split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass


def remove(path: str, wait: float = 2.0, lay: Layout | None = None) -> bool:
    """Kill the tree and remove it bottom-up in every hierarchy; False if something stayed."""
    import time

    lay = lay or layout()
    if not path:
        return True
    if not _knets(path, lay):
        return False
    deadline = time.monotonic() + wait
    while True:
        tops = [t for t in paths(path, lay) if os.path.isdir(t)]
        if not tops:
            return True
        kill(path, lay)
        for top in tops:
            for d, _subdirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        left = any(os.path.isdir(t) for t in tops)
        if not left or time.monotonic() > deadline:
            return not left
        time.sleep(0.01)
