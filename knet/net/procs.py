"""Finding and stopping processes by the namespaces they live in.

A process started inside a pod or node namespace can fork, daemonize or
outlive its parent; the namespace it lives in is what surely names it. So
cleanup walks /proc and matches each process's net namespace inode against
the namespaces knet made.
"""

from __future__ import annotations

import json
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


# -- pid files that name one process for good ------------------------------------------
#
# A pid alone is a guess: once its process exits the kernel hands the number to
# the next one, and a stale pid file then names an unrelated program. So a pid
# file records the process's start time (/proc/PID/stat field 22) and its
# argv beside the pid, and nothing is signalled unless both still match.


def cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] if raw else []


def _settled_cmdline(pid: int, tries: int = 50) -> list[str] | None:
    """The argv once exec has set it up. Popen returns when exec has replaced
    the child's memory but before the kernel has written the new argv there
    (exec_mmap wakes the parent before create_elf_tables), so a read in that
    window is empty, and a record of [] would never match again: `knet down`
    would then leave the process running. A live user process always has an
    argv, so an empty one is worth a short wait."""
    argv = cmdline(pid)
    while argv == [] and tries > 0:
        time.sleep(0.001)
        tries -= 1
        argv = cmdline(pid)
    return argv


def record(pid: int, argv: list[str] | None = None) -> dict | None:
    """What names this process for good: pid, start time, argv (read now if not given)."""
    start = start_time(pid)
    argv = list(argv) if argv is not None else _settled_cmdline(pid)
    if start is None or argv is None:
        return None
    return {"pid": pid, "start": start, "argv": argv}


def write_pidfile(path: str, pid: int, argv: list[str] | None = None) -> dict | None:
    """Write the record atomically (a reader never sees half a file)."""
    rec = record(pid, argv)
    if rec is None:
        return None
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, path)
    return rec


def read_pidfile(path: str) -> dict | None:
    """The record, or None for a missing, unreadable or old-style (bare pid) file:
    a bare pid cannot be verified, so it names nothing."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    if not (isinstance(rec, dict) and isinstance(rec.get("pid"), int) and isinstance(rec.get("start"), int)
            and isinstance(rec.get("argv"), list)):
        return None
    return rec


def matches(rec: dict | None) -> bool:
    """The recorded process is the one running under that pid now."""
    if not rec:
        return False
    pid = rec["pid"]
    return (pid > 0 and alive(pid) and start_time(pid) == rec["start"] and cmdline(pid) == rec["argv"])


def verified_pid(path: str) -> int | None:
    rec = read_pidfile(path)
    return rec["pid"] if matches(rec) else None


def terminate(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM, then SIGKILL what is left after grace seconds; returns the pids
    that needed the SIGKILL."""
    pids = [p for p in pids if p != os.getpid()]
    kill_all(pids, signal.SIGTERM, wait=grace)
    left = [p for p in pids if alive(p)]
    if left:
        kill_all(left, signal.SIGKILL)
    return left
