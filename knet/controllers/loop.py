"""Controllers driven by keys, beside the API server: client-go's informer +
workqueue + worker, in-process.

Each controller is a `Controller`: the kinds it watches, `keys_for(kind, old,
new, cache)` mapping one store event to the keys it affects (a pod event to
its owner ReplicaSet, the Services selecting it, its node...), `sync(view,
key)` reconciling one key from the cache, and its own `WorkQueue`. The cache's
handler (called inside each store write) only enqueues keys, so a write costs
the API server a few dictionary look-ups, never a reconcile; the workers run
as their own trio tasks and yield after every key, so a `get` waits at most
one key's sync.

Events caused by a controller's own sync (a ReplicaSet's pods it just
created, its status it just wrote) are not queued again for the key being
synced: the sync already acted on them (everything here runs on one thread,
so nothing else can write during a sync). A sync that has more to do returns
a delay (0: go round the queue again) and one whose write was refused or
conflicted (`View.retry`) is re-queued with its backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

import trio

from knet.api.registry import Registry
from knet.controllers.base import View, cache_for
from knet.controllers.workqueue import WorkQueue

log = logging.getLogger("knet.controllers")

RESYNC_SECONDS = 30.0
SLOW_SYNC_SECONDS = 0.05
# A controller keeps the loop for up to SLICE_SECONDS of keys at a time. Handing back after
# every key let a busy API server (hundreds of connection tasks runnable at each turn) hold
# the scheduler to ~27 bindings a second while a 1,000-replica Deployment's pods were all
# created in 4 s; a slice this short keeps a request's wait for the loop as small.
SLICE_SECONDS = 0.005
MAX_BATCH_SECONDS = 0.5  # a periodic resync: every key once more (a missed event is corrected by it)


@dataclass
class Controller:
    name: str
    watches: tuple[str, ...]
    keys_for: Callable[..., Iterable[Hashable]]
    sync: Callable[[View, Hashable], float | None]
    all_keys: Callable[..., Iterable[Hashable]]
    queue: WorkQueue = field(default_factory=WorkQueue)
    # Per watched kind, how long its events' keys wait, so a burst (a rollout's
    # pods turning Ready one after another) makes one sync of the big object that
    # owns them, not one per pod (upstream's endpointUpdatesBatchPeriod).
    # A callable batch is given the key and the cache: a big owner's burst waits
    # longer (its sync costs more), so its syncs stay a few per second.
    batch: dict[str, float | Callable[[Hashable, object], float]] = field(default_factory=dict)
    current: Hashable | None = None
    syncs: int = 0
    writes: int = 0  # the API writes its syncs made (creates, updates, deletes, Events)
    seconds: float = 0.0  # CPU seconds in syncs (thread time: a sync preempted on a busy machine counts its work only)
    slowest: float = 0.0  # the longest one sync held the loop (a request waited at most this)


class Manager:
    """The controllers of one registry, sharing its informer cache."""

    def __init__(self, reg: Registry, controllers: list[Controller]):
        self.reg = reg
        self.cache = cache_for(reg)
        self.controllers = controllers
        self.written = 0  # the last revision a controller wrote
        self.observed = 0  # the last revision at which every queue was idle
        self.idle = trio.Event()
        self.on_idle: Callable[[int, int], None] | None = None  # (observed, written), e.g. the progress report
        self._turn = trio.Lock()  # held for a slice of keys (see _worker)
        self._by_kind: dict[str, list[Controller]] = {}
        for c in controllers:
            c.queue.name = c.name
            for kind in c.watches:
                self._by_kind.setdefault(kind, []).append(c)
        self.cache.handlers.append(self._on_change)
        self.resync()

    def close(self) -> None:
        if self._on_change in self.cache.handlers:
            self.cache.handlers.remove(self._on_change)

    def _on_change(self, kind: str, old: dict | None, new: dict | None) -> None:
        for c in self._by_kind.get(kind, ()):
            try:
                keys = c.keys_for(kind, old, new, self.cache)
            except Exception:
                log.exception("%s: mapping a %s event to keys", c.name, kind)
                continue
            delay = c.batch.get(kind, 0.0)
            for key in keys:
                if key != c.current:
                    c.queue.add_after(key, delay(key, self.cache) if callable(delay) else delay)

    def resync(self) -> None:
        for c in self.controllers:
            for key in c.all_keys(self.cache):
                c.queue.add(key)

    def process(self, c: Controller, key: Hashable) -> None:
        """One key through one controller, with client-go's outcome rules."""
        view = View(self.reg, self.cache)
        before = self.reg.store.revision()
        c.current = key
        c.syncs += 1
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            again = c.sync(view, key)
        except Exception:
            log.exception("%s: syncing %s", c.name, key)
            again, view.retry = None, True
        finally:
            c.current = None
            took = time.perf_counter() - start
            c.seconds += time.thread_time() - cpu
            if took > c.slowest:
                c.slowest = took
                if took > SLOW_SYNC_SECONDS:
                    log.info("%s: syncing %s took %.0f ms", c.name, key, took * 1000)
        if view.retry:
            c.queue.add_rate_limited(key)
        else:
            c.queue.forget(key)
            if again is not None and not isinstance(again, bool):
                c.queue.add_after(key, again)
        c.writes += view.writes
        c.queue.done(key)
        if self.reg.store.revision() != before:
            self.written = self.reg.store.revision()
        self.check_idle()

    def busy(self) -> bool:
        return any(c.queue.busy() for c in self.controllers)

    def check_idle(self) -> None:
        if not self.busy():
            self.observed = self.reg.store.revision()
            if self.on_idle is not None:
                self.on_idle(self.observed, self.written)
            self.idle.set()
            self.idle = trio.Event()

    def drain(self, max_keys: int = 100_000) -> int:
        """Process every ready key until all queues are empty, batched keys
        included (synchronously: the tests' and `reconcile`'s way); returns how
        many keys were processed."""
        n = 0
        while n < max_keys:
            progressed = False
            for c in self.controllers:
                key = c.queue.get_nowait()
                if key is None:
                    continue
                self.process(c, key)
                progressed = True
                n += 1
            if not progressed and not any(c.queue.promote_within(MAX_BATCH_SECONDS)
                                          for c in self.controllers if c.batch):
                return n
        return n

    async def run(self, resync_seconds: float = RESYNC_SECONDS) -> None:
        async with trio.open_nursery() as nursery:
            for c in self.controllers:
                nursery.start_soon(self._worker, c, name=f"controller {c.name}")
            nursery.start_soon(self._resync_every, resync_seconds)
            nursery.start_soon(self._watch_idle)

    async def _worker(self, c: Controller) -> None:
        while True:
            await c.queue.ready()
            # One controller's slice per turn of the loop, not one per controller: eleven
            # workers each taking 5 ms made a turn 55 ms long during a rollout, and a `get`
            # waits a turn or two. trio's Lock hands over in FIFO order, so the controllers
            # take turns and the requests run between every two slices. Keys are taken only
            # once the turn is ours: a key held while waiting came back at once after its
            # sync for every event in between (twice the Deployment and ReplicaSet syncs).
            async with self._turn:
                end = time.perf_counter() + SLICE_SECONDS
                while (key := c.queue.get_nowait()) is not None:
                    self.process(c, key)
                    if time.perf_counter() >= end:
                        break
            await trio.sleep(0)  # the API server's requests go between slices

    async def _resync_every(self, seconds: float) -> None:
        while True:
            await trio.sleep(seconds)
            self.resync()

    async def _watch_idle(self) -> None:
        """Events that map to no key leave every queue idle: the controllers
        have still observed them (what `knet apply --wait` waits for)."""
        busy_since = None
        while True:
            await trio.sleep(0.02)
            self.check_idle()
            if not self.busy():
                busy_since = None
            elif busy_since is None:
                busy_since = trio.current_time()
            elif trio.current_time() - busy_since > 5:
                busy_since = trio.current_time()
                log.info("controllers busy: %s", ", ".join(
                    f"{c.name}: {len(c.queue)} queued, {sorted(map(str, c.queue._processing))} in hand"
                    for c in self.controllers if c.queue.busy()))
