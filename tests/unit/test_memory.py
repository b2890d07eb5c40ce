"""knet.net.memory: freed heap goes back once a process's activity stands still,
once per burst, never in the middle of one; and the trim itself runs here."""

from __future__ import annotations

import trio
import trio.testing

from knet.net import memory


def test_release_free_heap_runs_on_this_libc():
    assert memory.release_free_heap() is True  # glibc: malloc_trim is there and callable


def test_trims_once_after_each_burst_and_never_during_one(monkeypatch):
    trims: list[float] = []
    monkeypatch.setattr(memory, "release_free_heap", lambda: trims.append(trio.current_time()) or True)
    activity = [0]

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(memory.trim_when_quiet, lambda: activity[0], 0.25)
            # a burst: the counter moves every 0.1 s for 2 s; no trim while it moves
            for _ in range(20):
                activity[0] += 1
                await trio.sleep(0.1)
            assert trims == []
            await trio.sleep(1.0)  # quiet: one trim, not one per tick
            assert len(trims) == 1
            await trio.sleep(5.0)
            assert len(trims) == 1
            activity[0] += 1  # the next burst: one more trim after it
            await trio.sleep(1.0)
            assert len(trims) == 2
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
