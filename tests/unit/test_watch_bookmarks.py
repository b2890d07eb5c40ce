"""A watcher hears only of events under its prefix; writes of other kinds
advance the revision it owes a BOOKMARK for, told at once after a quiet spell,
then at most every quiet_gap seconds, or every bookmark_gap while a client waits
for them (urge), and never ahead of an event still queued (knet.api.watchbuffer)."""

from __future__ import annotations

from collections.abc import Callable

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
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=0.0, quiet_gap=0.0)
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


async def _watch_bookmarks(buf: WatchBuffer, sent: list[tuple[float, int]], until: Callable[[], bool]) -> None:
    while not until():
        await buf.take(1000)
        if buf.bookmark_due():
            sent.append((trio.current_time(), buf.skipped))
            buf.sent(buf.skipped, bookmark=True)


def test_lease_renewals_are_told_once_per_quiet_gap_not_once_per_renewal():
    """Four nodes renewing every second each: 40 renewals in 10 s. Each used to cost every
    watcher a BOOKMARK (a TLS write): 150 a second in an idle cluster. Now one per quiet_gap,
    still ending at the newest."""
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=0.1, quiet_gap=1.0)
        sent: list[tuple[float, int]] = []
        done = False
        async with trio.open_nursery() as n:
            n.start_soon(_watch_bookmarks, buf, sent, lambda: done)
            for rev in range(1, 41):
                buf.push(ev(rev, f"/registry/leases/kube-node-lease/n{rev % 4}"))
                await trio.sleep(0.25)
            await trio.sleep(2)
            done = True
            buf.push(ev(41, "/registry/pods/default/p"))  # ends the watcher's take
        assert 5 <= len(sent) <= 12, sent
        assert sent[-1][1] == 40  # the newest renewal was told

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_writes_of_other_kinds_are_told_once_per_quiet_gap_unless_a_client_waits():
    """A rollout's writes (100 a second) cost each of 40-odd watchers a BOOKMARK every
    bookmark_gap: more TLS writes than the events themselves. Unless urged, one per quiet_gap."""
    async def main():
        buf = WatchBuffer(prefix="/registry/services/", bookmarks=True, bookmark_gap=0.1, quiet_gap=1.0)
        sent: list[tuple[float, int]] = []
        done = False
        async with trio.open_nursery() as n:
            n.start_soon(_watch_bookmarks, buf, sent, lambda: done)
            for rev in range(1, 501):  # 5 s of pod writes
                buf.push(ev(rev, f"/registry/pods/default/p{rev}"))
                await trio.sleep(0.01)
            assert 4 <= len(sent) <= 7, sent
            buf.urge(trio.current_time() + 1.0)  # an informer's wait_revision, or apply --wait
            for rev in range(501, 601):  # 1 s more, urged
                buf.push(ev(rev, f"/registry/pods/default/p{rev}"))
                await trio.sleep(0.01)
            assert 12 <= len(sent) <= 18, sent
            done = True
            buf.push(ev(601, "/registry/services/default/s"))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_urge_sends_the_bookmark_a_waiter_needs_within_the_gap():
    """wait_revision(pod's revision) POSTs /knet/v1/bookmarks: the Service watch tells that
    revision within bookmark_gap, not quiet_gap."""
    async def main():
        buf = WatchBuffer(prefix="/registry/services/", bookmarks=True, bookmark_gap=0.1, quiet_gap=5.0)
        sent: list[tuple[float, int]] = []
        done = False
        async with trio.open_nursery() as n:
            n.start_soon(_watch_bookmarks, buf, sent, lambda: done)
            await trio.sleep(1)
            buf.sent(0, bookmark=False)  # told something just now
            buf.push(ev(2, "/registry/pods/default/p"))
            await trio.sleep(0.5)
            assert sent == []  # nobody waits: quiet_gap
            asked = trio.current_time()
            buf.urge(asked + 1.0)
            await trio.sleep(0.05)
            assert [rev for _, rev in sent] == [2] and sent[0][0] - asked <= 0.1
            done = True
            buf.push(ev(3, "/registry/services/default/s"))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_event_the_selector_filtered_out_is_owed_as_a_bookmark():
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=0.1, quiet_gap=5.0)
        await trio.sleep(1)
        buf.sent(0, bookmark=False)
        buf.skip(7)  # another node's pod, for an agent's pods watch
        assert not buf.bookmark_due()
        buf.urge(trio.current_time() + 1.0)
        assert buf.bookmark_due() and buf.skipped == 7

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_while_someone_reads_progress_renewals_are_told_within_the_gap():
    """GET /knet/v1/progress urges every watcher: a test or `apply --wait` comparing an
    agent's revision with the newest one sees renewals told as promptly as other writes."""
    async def main():
        buf = WatchBuffer(prefix="/registry/pods/", bookmarks=True, bookmark_gap=0.1, quiet_gap=5.0)
        sent: list[tuple[float, int]] = []
        done = False
        async with trio.open_nursery() as n:
            n.start_soon(_watch_bookmarks, buf, sent, lambda: done)
            await trio.sleep(1)
            buf.push(ev(1, "/registry/leases/kube-node-lease/n1"))
            await trio.sleep(0.5)
            assert sent == []
            buf.urge(trio.current_time() + 1.0)
            await trio.sleep(0.01)
            assert [rev for _, rev in sent] == [1]
            buf.push(ev(2, "/registry/leases/kube-node-lease/n2"))
            await trio.sleep(0.2)
            assert [rev for _, rev in sent] == [1, 2]  # still urged
            await trio.sleep(1)
            buf.push(ev(3, "/registry/leases/kube-node-lease/n3"))
            await trio.sleep(0.2)
            assert [rev for _, rev in sent] == [1, 2]  # the urge is over: quiet again
            done = True
            buf.push(ev(4, "/registry/pods/default/p"))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
