"""One watcher's queue of store events, bounded as the API server's watch
cache bounds each watcher's channel.

The store calls `push` synchronously for every write; the watch coroutine
takes events out and sends them. A watcher whose client stops reading stops
taking, and an unbounded queue then keeps every event it has not sent alive
(285 MB after 1,200 100 KB patches). So the queue holds at most `max_events`
events and `max_bytes` of their values; past that the watcher has fallen too
far behind: the queue is dropped and `on_overflow` runs, and the server closes
the watch. Its client watches again from its last resourceVersion (or lists
again after 410 Gone), exactly as after Kubernetes' "Forcing watcher close due
to unresponsiveness".
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import trio

from knet.store import Event

MAX_EVENTS = 10000
MAX_BYTES = 16 * 1024 * 1024


class Overflowed(Exception):
    """The watcher fell too far behind and was closed."""


def event_size(event: Event) -> int:
    return len(event.value or "") + len(event.prev or "")


class WatchBuffer:
    def __init__(self, on_overflow: Callable[[], None] = lambda: None,
                 max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow
        self.overflowed = False
        self.bytes = 0
        self.peak_bytes = 0
        self._events: collections.deque[Event] = collections.deque()
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def push(self, event: Event) -> None:
        """Called by the store, in the server's trio thread, for every write."""
        if self.overflowed:
            return
        size = event_size(event)
        if len(self._events) >= self.max_events or self.bytes + size > self.max_bytes:
            self.overflowed = True
            self._events.clear()
            self.bytes = 0
            self._wake.set()
            self.on_overflow()
            return
        self._events.append(event)
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._wake.set()

    async def take(self, max_bytes: int) -> list[Event]:
        """The oldest waiting events, at least one and about `max_bytes` of them
        (so a sender holds little beyond what the queue bounds). Raises
        Overflowed once the watcher is closed."""
        while not self._events and not self.overflowed:
            await self._wake.wait()
            self._wake = trio.Event()
        if self.overflowed:
            raise Overflowed()
        out: list[Event] = []
        taken = 0
        while self._events and (not out or taken < max_bytes):
            event = self._events.popleft()
            size = event_size(event)
            self.bytes -= size
            taken += size
            out.append(event)
        return out
