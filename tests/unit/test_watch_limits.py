"""A watcher's queue is bounded (knet.api.watchbuffer): a watcher that keeps
up gets every event in order, one that stops taking is closed once it is too
many events or too many bytes behind, and a sender takes events in slices, so
it never holds much more than one slice encoded."""

from __future__ import annotations

import pytest
import trio

from knet.api.watchbuffer import Overflowed, WatchBuffer
from knet.store import Event


def ev(rev: int, size: int = 10) -> Event:
    return Event(rev, "MODIFIED", "/k/a", "v" * size, "p" * size)


def test_a_watcher_that_keeps_up_gets_every_event_in_order():
    async def main():
        buf = WatchBuffer(max_events=10, max_bytes=10_000)
        got: list[int] = []

        async def consume():
            while len(got) < 1000:
                got.extend(e.revision for e in await buf.take(1000))

        async with trio.open_nursery() as n:
            n.start_soon(consume)
            for rev in range(1, 1001):
                buf.push(ev(rev))
                if rev % 5 == 0:
                    await trio.sleep(0)  # a writer yields between requests, as the server's does
        assert got == list(range(1, 1001))
        assert not buf.overflowed and buf.peak_bytes <= 10_000

    trio.run(main)


@pytest.mark.parametrize("limit", ["events", "bytes"])
def test_a_watcher_too_far_behind_is_closed_and_its_queue_dropped(limit):
    closed = []
    buf = WatchBuffer(lambda: closed.append(True), max_events=50 if limit == "events" else 10_000,
                      max_bytes=10**9 if limit == "events" else 1000)
    for rev in range(1, 200):
        buf.push(ev(rev, 100))
    assert buf.overflowed and closed == [True]  # once, however many more events come
    assert len(buf) == 0 and buf.bytes == 0
    assert buf.peak_bytes <= (50 * 200 if limit == "events" else 1000)

    async def take():
        await buf.take(1000)

    with pytest.raises(Overflowed):
        trio.run(take)


def test_take_returns_slices_of_about_the_size_asked():
    async def main():
        buf = WatchBuffer(max_events=100, max_bytes=10**9)
        for rev in range(1, 21):
            buf.push(ev(rev, 500))  # 1,000 bytes each
        first = await buf.take(3000)
        assert [e.revision for e in first] == [1, 2, 3]
        assert buf.bytes == 17 * 1000 and len(buf) == 17
        big = WatchBuffer(max_events=100, max_bytes=10**9)
        big.push(ev(1, 5000))
        assert [e.revision for e in await big.take(10)] == [1]  # one event, however large

    trio.run(main)
