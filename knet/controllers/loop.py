"""In-process controller plumbing: a level-triggered "something changed" signal
over the store's event stream, coalescing bursts into one pass."""

from __future__ import annotations

import trio

from knet.store import Event, Store


class Kick:
    """Set by store events whose key starts with one of `prefixes`; a controller
    waits on it, then reconciles everything once, however many events came."""

    def __init__(self, store: Store, prefixes: tuple[str, ...]):
        self._event = trio.Event()
        self.prefixes = prefixes
        self.relevant = True
        store.subscribe(self._on_event)
        self._event.set()

    def _on_event(self, ev: Event) -> None:
        if ev.key.startswith(self.prefixes):
            self.relevant = True
        self._event.set()

    async def wait(self) -> bool:
        """Wait for any change; returns whether a relevant one came since the last wait."""
        await self._event.wait()
        self._event = trio.Event()
        await trio.sleep(0)  # let a burst of writes land before reconciling
        relevant, self.relevant = self.relevant, False
        return relevant
