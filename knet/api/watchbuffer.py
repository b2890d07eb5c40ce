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

Events outside the watched prefix (every write of another kind: an Event, a
Lease, another kind's status) are never queued and do not wake the watcher:
they only advance `skipped`, the newest revision the client has not been told
of. The watcher tells it with a BOOKMARK when one is due (`bookmark_due`):
at once after a quiet spell, then at most every `bookmark_gap` seconds. With
forty-odd watches open (nine per node agent), waking each one to send a
BOOKMARK for every write was about two thirds of the API server's CPU per
write (4.4-4.7 ms, now 1.2-2.2 ms, with 40 watches open on a loaded machine). Upstream's watch cache sends one a minute; knet's
clients read freshness from them (an informer's `wait_revision`, `knet apply
--wait`, and a starting pod's wait for the Service cache to reach its own
revision), so the gap here is 0.1 s: a pod start waits at most that for it.

Unless a client waits for them, though, BOOKMARKs go out at most every
`quiet_gap` seconds (1 s). Each is a TLS write costing the control plane
~0.5 ms, and 40-odd watchers each sent ten a second while anything was
written: in a rollout's step of +100 pods more BOOKMARKs (2,000-10,000) than
event lines (~1,900), so the control plane's CPU per step followed the
step's wall time (+0.11 CPU s per second), and an idle cluster's Lease
renewals alone made 150 a second, half of its idle CPU. The two that wait
say so, and their watchers are `urge`d for a second (prompt_until): a GET
of /knet/v1/progress (`knet apply --wait` and anything comparing the agents'
revisions with the newest) urges every watcher; an informer's
`wait_revision` (a pod's Service variables) POSTs /knet/v1/bookmarks for
its own user's watches of its resource (knet/api/informer.py).
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import trio

from knet.store import Event

MAX_EVENTS = 10000
MAX_BYTES = 16 * 1024 * 1024
BOOKMARK_GAP = 0.1  # seconds between one watcher's BOOKMARKs while writes of other kinds go on
QUIET_GAP = 1.0  # seconds between one watcher's BOOKMARKs while nobody waits for them (urge)


class Overflowed(Exception):
    """The watcher fell too far behind and was closed."""


def event_size(event: Event) -> int:
    return len(event.value or "") + len(event.prev or "")


class WatchBuffer:
    def __init__(self, on_overflow: Callable[[], None] = lambda: None,
                 max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES, *, prefix: str = "",
                 bookmarks: bool = False, bookmark_gap: float = BOOKMARK_GAP, quiet_gap: float = QUIET_GAP,
                 user: str | None = None, resource: str = ""):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow
        self.overflowed = False
        self.bytes = 0
        self.peak_bytes = 0
        self.prefix = prefix
        self.bookmarks = bookmarks
        self.bookmark_gap = bookmark_gap
        self.quiet_gap = quiet_gap
        self.user, self.resource = user, resource  # whose watch of what: what /knet/v1/bookmarks urges
        self.skipped = 0  # the newest revision not sent (outside the prefix, or filtered out by the watcher)
        self.reported = 0  # the newest revision the client was told of (an event or a BOOKMARK)
        self.next_bookmark = 0.0  # trio time before which no BOOKMARK goes out
        self.told_at = 0.0  # trio time the client was last sent anything
        self.prompt_until = 0.0  # trio time until which a client waits: BOOKMARKs every bookmark_gap (urge)
        self._events: collections.deque[Event] = collections.deque()
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def push(self, event: Event) -> None:
        """Called by the store, in the server's trio thread, for every write."""
        if self.overflowed:
            return
        if not event.key.startswith(self.prefix):
            if self.bookmarks:
                if self.skipped <= self.reported:  # the first untold revision: the watcher may owe a BOOKMARK
                    self._wake.set()
                self.skipped = event.revision
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
            if self.bookmarks and self.skipped > self.reported:
                delay = self._bookmark_at() - trio.current_time()
                if delay <= 0:
                    return []  # a BOOKMARK is due: the caller sends one for `skipped`
                with trio.move_on_after(delay):
                    await self._wake.wait()
            else:
                await self._wake.wait()
            if self._wake.is_set():
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

    def bookmark_due(self) -> bool:
        """Whether the client should be sent a BOOKMARK for `skipped` now."""
        return (self.bookmarks and self.skipped > self.reported and not self._events  # never ahead of a queued event
                and trio.current_time() >= self._bookmark_at())

    def _bookmark_at(self) -> float:
        """When the BOOKMARK for `skipped` is due: after the gap while urged, else quiet_gap
        after the client was last told anything (at once after a longer quiet spell)."""
        if trio.current_time() < self.prompt_until:
            return self.next_bookmark
        return max(self.next_bookmark, self.told_at + self.quiet_gap)

    def urge(self, until: float) -> None:
        """A client waits for this watch to reach the newest revision: until trio time
        `until`, BOOKMARKs go out every bookmark_gap."""
        self.prompt_until = max(self.prompt_until, until)
        if self.skipped > self.reported:
            self._wake.set()  # its wait for the BOOKMARK is shorter now

    def skip(self, revision: int) -> None:
        """An event under the prefix the watcher's selector filtered out: owed as a BOOKMARK like any other write."""
        self.skipped = max(self.skipped, revision)

    def sent(self, revision: int, bookmark: bool) -> None:
        """The client was sent everything through `revision`; a BOOKMARK starts the gap to the next."""
        self.reported = max(self.reported, revision)
        self.told_at = trio.current_time()
        if bookmark:
            self.next_bookmark = self.told_at + self.bookmark_gap
