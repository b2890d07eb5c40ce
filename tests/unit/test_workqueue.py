"""The controllers' work queue keeps client-go's rules: dedup, one key in hand
at a time with re-queue once after, per-item exponential backoff, forget."""

from __future__ import annotations

import trio
import trio.testing

from knet.controllers.workqueue import WorkQueue


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_key_added_twice_is_queued_once_in_order():
    q = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3 and q.adds == 3
    assert [q.get_nowait() for _ in range(4)] == ["a", "b", "c", None]


def test_a_key_added_while_processing_comes_back_once_after_done():
    q = WorkQueue()
    q.add("a")
    assert q.get_nowait() == "a"
    q.add("a")
    q.add("a")
    assert q.get_nowait() is None  # never handed out twice at once
    q.done("a")
    assert q.get_nowait() == "a"
    q.done("a")
    assert q.get_nowait() is None  # once, not twice


def test_done_without_a_new_add_does_not_requeue():
    q = WorkQueue()
    q.add("a")
    q.done(q.get_nowait())
    assert q.get_nowait() is None and not q.busy()


def test_rate_limited_retries_back_off_exponentially_per_item_and_forget_resets():
    clock = Clock()
    q = WorkQueue(base_delay=0.01, max_delay=0.05, clock=clock)
    delays = [q.add_rate_limited("a") for _ in range(5)]
    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    assert q.num_requeues("a") == 5
    assert q.add_rate_limited("b") == 0.01  # per item
    assert q.get_nowait() is None
    clock.t += 0.01
    assert q.get_nowait() == "a"  # the earliest due time of a key wins
    assert q.get_nowait() == "b"
    q.forget("a")
    assert q.num_requeues("a") == 0 and q.add_rate_limited("a") == 0.01


def test_add_after_waits_for_its_time_and_an_add_is_not_delayed_by_it():
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("later", 5)
    q.add_after("now", 0)
    assert q.get_nowait() == "now"
    assert q.get_nowait() is None and q.next_due() == 5
    clock.t += 5
    assert q.get_nowait() == "later"


def test_get_waits_for_an_add_and_for_a_due_key():
    async def main():
        q = WorkQueue(clock=trio.current_time)
        got = []

        async def worker():
            for _ in range(2):
                key = await q.get()
                got.append((key, trio.current_time()))
                q.done(key)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            await trio.sleep(1)
            q.add("x")
            q.add_after("y", 3)
        return got

    clock = trio.testing.MockClock(autojump_threshold=0)
    got = trio.run(main, clock=clock)
    assert [k for k, _ in got] == ["x", "y"]
    assert got[1][1] - got[0][1] >= 3
