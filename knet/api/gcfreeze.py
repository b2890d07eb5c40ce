"""Python's full garbage collections, paced to quiet moments (issue 14).

A full (generation 2) collection walks every container object the process
tracks: in the control plane, the informer cache's decoded objects, the
watch caches, every module's functions and classes. Its pause therefore grows
with the cluster: 214-259 ms at 1,000 pods, the longest single hold of the
control plane's event loop measured in a rollout (GcTimer in looplag.py),
while a young collection's stays a few ms.

So once start-up is done, and again after each burst of writes (the store's
revision has stood still for QUIET seconds after moving at least
MIN_WRITES), everything is collected once and the survivors are frozen
(gc.freeze: moved to a permanent generation the automatic collections never
walk). The full collections during the next burst then walk only what was
allocated since the last freeze: their cost follows the change, not the
cluster. The whole heap is walked only at the quiet moment, where no
rollout waits for it.

Frozen objects are still freed by reference counting when the cache drops
them (decoded JSON holds no cycles); a cycle among them that became garbage
is found at the next quiet moment, which unfreezes, collects and freezes
again, so nothing stays uncollected past one burst.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import trio

QUIET = 1.0  # seconds the revision must stand still
MIN_WRITES = 200  # writes since the last full collection that make one worth a whole-heap walk
_pacing = False  # a paced collection is running (GcTimer counts it apart)


def collect_and_freeze() -> None:
    """One full collection of everything (frozen objects included), then
    freeze what survived, so automatic collections skip it from now on."""
    global _pacing
    _pacing = True
    try:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    finally:
        _pacing = False


async def collect_when_quiet(activity: Callable[[], int], quiet: float = QUIET, min_writes: int = MIN_WRITES,
                             collect: Callable[[], None] = collect_and_freeze) -> None:
    """Run `collect` when `activity()` (the store's revision) has stood still
    for `quiet` seconds and moved at least `min_writes` since the last one."""
    done = activity()
    last = done
    while True:
        await trio.sleep(quiet)
        now = activity()
        if now == last and now - done >= min_writes:
            collect()
            done = now
        last = now


class GcTimer:
    """The collector's pauses per generation, automatic ones apart from the
    quiet moments' (`paced`): what /knet/v1/progress shows as stats.gc."""

    def __init__(self) -> None:
        self._start = 0.0
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self.paced = 0
        self.paced_seconds = 0.0
        self.paced_longest = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        took = time.perf_counter() - self._start
        if _pacing:
            self.paced += 1
            self.paced_seconds += took
            self.paced_longest = max(self.paced_longest, took)
            return
        gen = info.get("generation", 0)
        self.collections[gen] += 1
        self.seconds[gen] += took
        self.longest[gen] = max(self.longest[gen], took)

    def stats(self) -> dict:
        return {"collections": list(self.collections), "seconds": [round(s, 4) for s in self.seconds],
                "longest_ms": [round(1000 * s, 2) for s in self.longest],
                "paced": self.paced, "paced_seconds": round(self.paced_seconds, 4),
                "paced_longest_ms": round(1000 * self.paced_longest, 2), "frozen": gc.get_freeze_count()}
