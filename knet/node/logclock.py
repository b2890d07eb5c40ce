"""When each part of a container's log was written, for logs --timestamps and --since.

A container writes its output straight into its log file (no process of
knet's sits in between, so containers outlive the agent), and the file has
no times in it, as kubelet's CRI log lines do. The kubelet server therefore
watches the pods' log directories with inotify and notes, at each write it
is told of, how long the file had grown: a line's time is the first note
that covers its end. Lines written while no agent watched get the time the
watching began. Marks is pure; LogClock adds the inotify loop.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import logging
import math
import os
import struct
import time
from collections.abc import Callable

import trio

log = logging.getLogger("knet.kubelet")

MAX_MARKS = 4096  # per file: older marks are thinned out, so a chatty container costs a bounded amount
RESOLUTION = 0.01  # marks closer in time than this are merged
PREVIOUS = ".previous.log"


class Marks:
    """(size, time) notes per log file, sizes and times ascending."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[list[int], list[float]]] = {}

    def note(self, path: str, size: int, at: float) -> None:
        sizes, times = self.files.setdefault(path, ([], []))
        if sizes and size < sizes[-1]:  # a new file under the same name
            sizes.clear()
            times.clear()
        if sizes and size == sizes[-1]:
            return
        if sizes and at - times[-1] < RESOLUTION:
            sizes[-1] = size  # same moment: the bytes up to here were written by then too
            return
        sizes.append(size)
        times.append(at)
        if len(sizes) > MAX_MARKS:  # keep every other of the older half
            half = MAX_MARKS // 2
            sizes[:half] = sizes[:half:2]
            times[:half] = times[:half:2]

    def time_of(self, path: str, end: int, default: float) -> float:
        """When the byte before offset `end` was there (the first note at or past it)."""
        sizes, times = self.files.get(path, ((), ()))
        i = bisect.bisect_left(sizes, end)
        return times[i] if i < len(times) else default

    def moved(self, old: str, new: str) -> None:
        self.files[new] = self.files.pop(old, ([], []))

    def forget(self, prefix: str) -> None:
        for path in [p for p in self.files if p.startswith(prefix)]:
            del self.files[path]


class LogClock:
    """Marks kept up to date by inotify over every pod's log directory.

    New pods' directories are handed in with add() as their sandboxes are
    made, so a look costs what changed: it used to walk every pod on the node
    five times a second (1,500 paths a second at 300 pods, idle or not).
    log_dirs() (every pod's) is walked once at the start and then only every
    RESCAN seconds, for a directory no add() named."""

    IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_IGNORED = 0x2, 0x80, 0x100, 0x8000
    POLL = 0.2  # how often directories handed in are taken up
    RESCAN = 30.0  # how often every pod's directory is looked at

    def __init__(self, log_dirs: Callable[[], list[str]]):
        self.log_dirs = log_dirs
        self.added: list[str] = []  # handed in since the last look
        self.looked_at = 0  # directories looked at (for the tests: it follows what changed)
        self.marks = Marks()
        self.watches: dict[int, str] = {}  # watch descriptor -> directory
        self.watched: dict[str, int] = {}
        self.waiters: dict[str, trio.Event] = {}  # a followed log's readers, woken when it grows

    def time_of(self, path: str, end: int, default: float) -> float:
        return self.marks.time_of(path, end, default)

    async def wait_for_write(self, path: str, timeout: float) -> None:
        """Until `path` is written to, or `timeout` (a log not watched yet, or
        a follower's other reasons to look: the container ending)."""
        event = self.waiters.setdefault(path, trio.Event())
        with trio.move_on_after(timeout):
            await event.wait()

    async def run(self) -> None:
        """Watch until cancelled; a failure here costs only the times' precision, never the agent."""
        try:
            await self._run()
        except Exception:
            log.exception("log clock failed; log timestamps are the times lines are read")

    async def _run(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.warning("inotify: %s; log timestamps are the times lines are read", os.strerror(ctypes.get_errno()))
            return
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_new, libc, fd)
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    self._events(data, time.time())
        finally:
            os.close(fd)

    def add(self, log_dir: str) -> None:
        """A new pod's log directory, watched from the next look on."""
        self.added.append(log_dir)

    def _to_look_at(self, now: float, rescan_at: float) -> tuple[list[str], float]:
        added, self.added = self.added, []
        if now < rescan_at:
            return added, rescan_at
        return added + self.log_dirs(), now + self.RESCAN

    async def _watch_new(self, libc, fd: int) -> None:
        mask = self.IN_MODIFY | self.IN_MOVED_TO | self.IN_CREATE
        rescan_at = -math.inf
        while True:
            dirs, rescan_at = self._to_look_at(trio.current_time(), rescan_at)
            for d in dirs:
                self.looked_at += 1
                if d in self.watched:
                    continue
                wd = libc.inotify_add_watch(fd, os.fsencode(d), mask)
                if wd < 0:
                    if ctypes.get_errno() not in (errno.ENOENT, errno.ENOTDIR):
                        log.warning("inotify on %s: %s", d, os.strerror(ctypes.get_errno()))
                    continue
                self.watches[wd], self.watched[d] = d, wd
                now = time.time()
                try:
                    names = os.listdir(d)
                except OSError:  # gone again with its pod
                    names = []
                for name in names:  # what was written before the watch began
                    self._stat(os.path.join(d, name), now)
            await trio.sleep(self.POLL)

    def _stat(self, path: str, at: float) -> None:
        try:
            self.marks.note(path, os.stat(path).st_size, at)
        except OSError:
            pass
        waiting = self.waiters.pop(path, None)
        if waiting is not None:
            waiting.set()

    def _events(self, data: bytes, at: float) -> None:
        pos = 0
        while pos + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, pos)
            name = data[pos + 16:pos + 16 + length].rstrip(b"\0").decode(errors="replace")
            pos += 16 + length
            d = self.watches.get(wd)
            if d is None:
                continue
            if mask & self.IN_IGNORED:  # the directory is gone (the pod was removed)
                del self.watches[wd]
                self.watched.pop(d, None)
                self.marks.forget(d + os.sep)
                continue
            path = os.path.join(d, name)
            if mask & self.IN_MOVED_TO and name.endswith(PREVIOUS):  # a restart: the last instance's log
                self.marks.moved(path[:-len(PREVIOUS)] + ".log", path)
            elif name.endswith(".log"):
                self._stat(path, at)
