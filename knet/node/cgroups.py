"""cgroup v2 for pods: where a pod's processes are, what they may use, how they all end.

A pod's processes can fork, daemonize and leave their session; the cgroup
they were started in is what surely names them (as it is for kubelet), so:
  <cgroup2>/knet-<cluster>/pod-<uid>/<container>   (and .../pause for a shared PID namespace)
`cgroup.kill` ends a whole pod, or a whole cluster at `knet down`, in one
write, and an empty tree is removed bottom-up. resources.limits.memory is
memory.max (the kernel's OOM killer then kills inside the container only,
and memory.events' oom_kill tells kubelet's OOMKilled), the pod's pids.max is
kubelet's podPidsLimit, cpu requests are cpu.weight (kubelet's shares
conversion). A controller the machine does not delegate to cgroup v2 (on a
host that keeps it on a v1 hierarchy) is left out, and `enforced()` says which.
"""

from __future__ import annotations

import os
from fractions import Fraction

CONTROLLERS = ("memory", "pids", "cpu")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": Fraction(1, 1000)}


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


def mount_point() -> str | None:
    """Where cgroup2 is mounted here (/sys/fs/cgroup on a pure v2 host,
    /sys/fs/cgroup/unified on a hybrid one), or None."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    return None


def cluster_path(cluster: str, root: str | None = None) -> str | None:
    root = root or mount_point()
    return os.path.join(root, f"knet-{cluster}") if root else None


def pod_path(cluster: str, uid: str, root: str | None = None) -> str | None:
    base = cluster_path(cluster, root)
    return os.path.join(base, f"pod-{uid}") if base else None


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


def enforced(path: str) -> set[str]:
    """The controllers that limit what runs in path (enabled from its parent)."""
    return set(_read(os.path.join(path, "cgroup.controllers")).split()) & set(CONTROLLERS)


def ensure(path: str) -> str:
    """Make path and its parents below the cgroup2 root, each delegating what
    its parent has (never the root's own subtree_control: the host's)."""
    root = mount_point() or ""
    parts = os.path.relpath(path, root).split("/")
    cur = root
    for part in parts:
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
    return path


def cpu_weight(milli: int) -> int:
    """kubelet's MilliCPUToShares then CpuSharesToCpuWeight (runc's conversion)."""
    shares = max(2, milli * 1024 // 1000)
    return 1 + ((shares - 2) * 9999) // 262142


def container_limits(container: dict) -> dict[str, str]:
    """The files to write for a container's resources (only those it sets)."""
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    out: dict[str, str] = {}
    if "memory" in limits:
        out["memory.max"] = str(int(quantity(limits["memory"])))
        out["memory.swap.max"] = "0"
    cpu = requests.get("cpu", limits.get("cpu"))
    if cpu is not None:
        out["cpu.weight"] = str(cpu_weight(int(quantity(cpu) * 1000)))
    return out


def set_limits(path: str, values: dict[str, str]) -> list[str]:
    """Write what the cgroup has files for; return what could not be enforced."""
    missing = []
    for name, value in values.items():
        f = os.path.join(path, name)
        if not os.path.exists(f) or not _write(f, value):
            missing.append(name)
    return missing


def oom_kills(path: str) -> int:
    for line in _read(os.path.join(path, "memory.events")).splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def join(path: str) -> None:
    """Move the calling process in (the child, before it execs)."""
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("0")


def pids(path: str) -> list[int]:
    out: list[int] = []
    for d, _subdirs, _files in os.walk(path):
        out += [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split()]
    return out


def kill(path: str) -> None:
    """SIGKILL everything in the tree at once (cgroup.kill, Linux 5.14)."""
    if os.path.isdir(path):
        _write(os.path.join(path, "cgroup.kill"), "1")


def remove(path: str, wait: float = 2.0) -> bool:
    """Kill the tree and remove it bottom-up; False if something stayed."""
    import time

    if not path or not os.path.isdir(path):
        return True
    kill(path)
    deadline = time.monotonic() + wait
    while True:
        for d, _subdirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if not os.path.exists(path) or time.monotonic() > deadline:
            return not os.path.exists(path)
        time.sleep(0.01)
