"""A work queue of keys with client-go's semantics (workqueue.RateLimitingInterface).

Why keys, not events: a controller that reconciles a key reads the current
state, so ten events on one object between two syncs cost one sync. The rules
that make that safe and cheap, as client-go's queue has them:

- a key is queued at most once (adding a queued key is a no-op);
- a key is never handed out twice at once: one added while it is being
  processed waits (dirty) and is queued once more when `done` is called, so
  the change that came during the sync is not lost;
- a failed key comes back after a per-item exponential backoff
  (`add_rate_limited`: base * 2**failures, capped), and `forget` resets it
  after a success;
- `add_after` delays a key (a deadline such as tolerationSeconds).

The bookkeeping is synchronous and clock-driven (`get_nowait`), so it is
tested without an event loop; `get` is the trio side that waits.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable

import trio

BASE_DELAY = 0.005  # client-go's ItemExponentialFailureRateLimiter default
MAX_DELAY = 60.0  # client-go caps at 1000 s; a minute is enough for an emulator


class WorkQueue:
    def __init__(self, name: str = "", base_delay: float = BASE_DELAY, max_delay: float = MAX_DELAY,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.base_delay, self.max_delay, self.clock = base_delay, max_delay, clock
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiting: list[tuple[float, int, Hashable]] = []  # (due, seq, key), a heap
        self._due: dict[Hashable, float] = {}  # the earliest due time per waiting key
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._wake = trio.Event()
        self.adds = 0  # keys actually queued (not deduplicated away): a figure for tests and benches

    def __len__(self) -> int:
        return len(self._queue)

    def busy(self) -> bool:
        """Keys ready or in hand (delayed ones do not count: nothing is owed until they are due)."""
        self._promote()
        return bool(self._queue or self._processing)

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self.adds += 1
        self._wake.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = self.clock() + delay
        if self._due.get(key, float("inf")) <= due:
            return  # already coming back sooner
        self._due[key] = due
        heapq.heappush(self._waiting, (due, next(self._seq), key))
        self._wake.set()

    def add_rate_limited(self, key: Hashable) -> float:
        """Requeue after this key's backoff; returns the delay chosen."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.max_delay, self.base_delay * (2 ** n))
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def _promote(self) -> None:
        now = self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) == due:
                del self._due[key]
                self.add(key)

    def promote_within(self, seconds: float) -> int:
        """Make ready now the delayed keys due within `seconds` that are not
        backing off from a failure (a synchronous drain's way past batching)."""
        now, n = self.clock(), 0
        for due, _, key in list(self._waiting):
            if due - now <= seconds and self._due.get(key) == due and not self._failures.get(key):
                del self._due[key]
                self.add(key)
                n += 1
        return n

    def next_due(self) -> float | None:
        """Seconds until the next delayed key is due, if any."""
        while self._waiting and self._due.get(self._waiting[0][2]) != self._waiting[0][0]:
            heapq.heappop(self._waiting)  # superseded by an earlier due time
        if not self._waiting:
            return None
        return max(0.0, self._waiting[0][0] - self.clock())

    def get_nowait(self) -> Hashable | None:
        """The next ready key, now in hand until `done`; None if there is none."""
        self._promote()
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self.adds += 1
            self._wake.set()

    async def ready(self) -> None:
        """Until a key is ready, without taking it (a worker that must wait for its turn
        does not hold a key meanwhile: one in hand is re-queued by `done` at once for every
        event in between, past the batching delay its events asked for)."""
        while True:
            self._promote()
            if self._queue:
                return
            self._wake = trio.Event()
            due = self.next_due()
            with trio.move_on_after(due if due is not None else float("inf")):
                await self._wake.wait()

    async def get(self) -> Hashable:
        """The next ready key, waiting for one (client-go's Get)."""
        while True:
            await self.ready()
            key = self.get_nowait()
            if key is not None:  # ready() and get_nowait() run in one step: always a key
                return key
