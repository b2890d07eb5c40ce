"""knet/api/gcfreeze.py: what an automatic full collection walks stays flat
with the cluster's cached objects, and the whole-heap walk runs only once a
burst of writes has ended (issue 14: the control plane's cost follows the
change, not the cluster)."""

from __future__ import annotations

import gc
import json
import weakref

import trio
import trio.testing

from knet.api import gcfreeze


def pods(n: int) -> list[dict]:
    """Decoded pods, as the informer cache holds them (dicts and lists: tracked containers)."""
    return [json.loads(json.dumps({
        "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "u"}]},
        "spec": {"containers": [{"name": "web", "image": "agnhost", "ports": [{"containerPort": 80}]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})) for i in range(n)]


def walked_after_freeze(cache: list[dict]) -> int:
    """The objects an automatic collection would walk right after a quiet moment's collect_and_freeze."""
    gcfreeze.collect_and_freeze()
    return len(gc.get_objects())  # generations 0-2 only: the permanent (frozen) one is not walked


def test_a_full_collection_walks_the_same_after_freezing_10_or_1000_pods():
    try:
        small = pods(10)
        walked_small = walked_after_freeze(small)
        large = pods(1000)
        walked_large = walked_after_freeze(large)
        gc.unfreeze()
        # Without the freeze the large cache alone is thousands of tracked containers more.
        assert len(gc.get_objects()) - walked_large > 5 * 990
        assert abs(walked_large - walked_small) < 200
        assert small and large
    finally:
        gc.unfreeze()


def test_a_frozen_object_is_still_freed_and_a_frozen_cycle_collected_at_the_next_quiet_moment():
    class Node:
        pass

    try:
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        gcfreeze.collect_and_freeze()
        gone = []
        ref = weakref.ref(a, lambda _: gone.append(1))
        del a, b
        gc.collect()  # an ordinary full collection does not walk frozen objects
        assert ref() is not None
        gcfreeze.collect_and_freeze()  # the next quiet moment does
        assert ref() is None and gone
    finally:
        gc.unfreeze()


def test_the_whole_heap_is_walked_once_per_burst_and_only_when_it_ended():
    revision = [0]
    collected: list[int] = []

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gcfreeze.collect_when_quiet, lambda: revision[0], 1.0, 50,
                               lambda: collected.append(revision[0]))
            for _ in range(100):  # a burst: 10 writes every 0.5 s for 50 s
                revision[0] += 10
                await trio.sleep(0.5)
            assert collected == []  # never mid-burst
            await trio.sleep(5)  # quiet
            assert collected == [1000]
            revision[0] += 10  # a few writes (a lease): not worth a whole-heap walk
            await trio.sleep(5)
            assert collected == [1000]
            revision[0] += 100
            await trio.sleep(5)
            assert collected == [1000, 1110]
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_gc_timer_counts_automatic_and_paced_collections_apart():
    timer = gcfreeze.GcTimer()
    timer.install()
    try:
        gc.collect(0)
        gcfreeze.collect_and_freeze()
        stats = timer.stats()
        assert stats["collections"][0] >= 1 and stats["paced"] == 1
        assert stats["frozen"] == gc.get_freeze_count() > 0
    finally:
        gc.callbacks.remove(timer._callback)
        gc.unfreeze()
