"""Finding and stopping processes by the namespaces they live in.

A process started inside a pod or node namespace can fork, daemonize or
outlive its parent; the namespace it lives in is what surely names it. So
cleanup walks /proc and matches each process's net namespace inode against
the namespaces knet made.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable


def netns_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pids_in_netns(inodes: Iterable[int]) -> list[int]:
    wanted = set(inodes)
    if not wanted:
        return []
    me = os.getpid()
    return [pid for pid in all_pids() if pid != me and netns_of(pid) in wanted]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def start_time(pid: int) -> int | None:
    """Kernel start time in clock ticks: with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_all(pids: Iterable[int], sig: int = signal.SIGKILL, wait: float = 2.0) -> None:
    pids = [p for p in pids if p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.01)
