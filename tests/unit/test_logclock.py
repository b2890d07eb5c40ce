"""The log clock's look for new pods' log directories follows what changed
(issue 14): directories handed in with add() are watched at the next look,
and every pod's directory (log_dirs()) is walked only at the start and every
RESCAN seconds, not at each look: it walked every pod on the node five
times a second. Real inotify on the test's own directories."""

from __future__ import annotations

import ctypes
import os

import trio
import trio.testing

from knet.node.logclock import LogClock


def test_new_directories_are_watched_without_walking_every_pod(tmp_path):
    dirs = []
    for i in range(50):
        d = tmp_path / f"pod{i}" / "logs"
        d.mkdir(parents=True)
        (d / "c.log").write_bytes(b"x" * (i + 1))
        dirs.append(str(d))
    walks = []

    def log_dirs() -> list[str]:
        walks.append(trio.current_time())
        return dirs[:40]  # the pods there at the start

    clock = LogClock(log_dirs)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(clock._watch_new, libc, fd)
            await trio.sleep(clock.POLL * 3)
            assert set(clock.watched) == set(dirs[:40]) and clock.looked_at == 40
            for d in dirs[40:]:  # ten new pods
                clock.add(d)
            await trio.sleep(clock.POLL * 3)
            assert set(clock.watched) == set(dirs)
            assert clock.looked_at == 50  # each new one once; none of the forty again
            await trio.sleep(clock.RESCAN)  # the rescan: the safety net for a directory no add() named
            n.cancel_scope.cancel()

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        os.close(fd)
    assert len(walks) == 2 and walks[1] - walks[0] >= clock.RESCAN
    assert clock.marks.time_of(os.path.join(dirs[45], "c.log"), 46, -1.0) != -1.0  # its size before the watch
