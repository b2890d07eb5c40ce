"""A watcher hears only of events under its prefix; writes of other kinds
advance the revision it owes a BOOKMARK for, told at once after a quiet spell
and then at most every bookmark_gap seconds, and never ahead of an event still
queued (knet.api.watchbuffer)."""

from __future__ import annotations

import trio
import trio.testing

from knet.api.watchbuffer import WatchBuffer
from knet.store import Event


def ev(rev: int, key: str) -> Event:
    return Event(rev, "MODIFIED", key, "{}", "{}")


def test_events_outside_the_prefix_are_not_queued_only_owed_as_a_bookmark():
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=1.0)
        buf.push(ev(1, "/registry/events/default/e1"))
        buf.push(ev(2, "/registry/events/default/e2"))
        assert len(buf) == 0 and buf.skipped == 2
        assert await buf.take(1000) == []  # quiet until now: the BOOKMARK is due at once
        assert buf.bookmark_due()
        buf.sent(buf.skipped, bookmark=True)
        assert not buf.bookmark_due()
        buf.push(ev(3, "/registry/pods/default/p"))
        assert [e.revision for e in await buf.take(1000)] == [3]

    trio.run(main)


def test_bookmarks_are_spaced_by_the_gap_while_other_kinds_keep_writing():
    async def main():
        clock = trio.current_time
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=1.0)
        sent: list[tuple[float, int]] = []

        async def watcher():
            while len(sent) < 3:
                await buf.take(1000)
                if buf.bookmark_due():
                    sent.append((clock(), buf.skipped))
                    buf.sent(buf.skipped, bookmark=True)

        async with trio.open_nursery() as n:
            n.start_soon(watcher)
            for rev in range(1, 60):  # a write of another kind every 50 ms for ~3 s
                buf.push(ev(rev, f"/registry/leases/kube-node-lease/n{rev}"))
                await trio.sleep(0.05)
        gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:], strict=False)]
        assert all(g >= 1.0 for g in gaps), gaps
        assert [rev for _, rev in sent] == sorted(rev for _, rev in sent)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_no_bookmark_goes_ahead_of_an_event_still_queued():
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=0.0)
        buf.push(ev(1, "/registry/pods/default/a"))
        buf.push(ev(2, "/registry/pods/default/b"))
        buf.push(ev(3, "/registry/events/default/e"))
        first = await buf.take(1)  # a small slice: event 2 stays queued
        assert [e.revision for e in first] == [1]
        buf.sent(1, bookmark=False)
        assert not buf.bookmark_due()  # revision 3 would overtake event 2
        assert [e.revision for e in await buf.take(1000)] == [2]
        buf.sent(2, bookmark=False)
        assert buf.bookmark_due()

    trio.run(main)


def test_without_bookmarks_other_kinds_never_wake_the_watcher():
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=False)
        got: list[int] = []

        async def watcher():
            got.extend(e.revision for e in await buf.take(1000))

        async with trio.open_nursery() as n:
            n.start_soon(watcher)
            await trio.sleep(0.01)
            for rev in range(1, 50):
                buf.push(ev(rev, "/registry/events/default/e"))
            await trio.sleep(0.01)
            assert got == [] and len(buf) == 0
            buf.push(ev(50, "/registry/pods/default/p"))
        assert got == [50]

    trio.run(main)
