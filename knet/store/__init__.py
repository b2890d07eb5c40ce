"""Storage behind the API server.

The API server needs only what etcd offers: get, list by prefix, create,
compare-and-swap update, delete, and a watch from a revision. Keeping the
interface that small is what lets an etcd-backed store sit beside the
embedded SQLite one (`knet.store.sqlite`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    pass


class KeyExists(StoreError):
    pass


class KeyNotFound(StoreError):
    pass


class RevisionMismatch(StoreError):
    """The compare in compare-and-swap failed: somebody wrote the key first."""


class Compacted(StoreError):
    """The revision asked for is older than the history the store keeps."""

    def __init__(self, oldest: int):
        super().__init__(f"revision is older than the oldest kept revision {oldest}")
        self.oldest = oldest


class TooLarge(StoreError):
    """A value over the store's size limit (etcd's --max-request-bytes, 1.5 MiB
    by default): refused before anything is written, as etcd refuses it."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"etcdserver: request is too large ({size} bytes; the limit is {limit})")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Event:
    """One change: `type` is ADDED, MODIFIED or DELETED; `prev` is the value
    before the change (None for ADDED), so a filtered watch can tell an object
    that stopped matching from one that never did.

    Frozen, but its instance dict carries what the API layer derives from it
    once for all readers (knet.api.registry.event_new/event_prev, the watch
    lines of ApiServer._shared_line), so one event delivered to many watches
    is decoded and encoded once."""

    revision: int
    type: str
    key: str
    value: str | None
    prev: str | None


class Store(Protocol):
    def revision(self) -> int: ...
    def get(self, key: str) -> tuple[str, int] | None: ...
    def list(self, prefix: str) -> tuple[list[tuple[str, str, int]], int]: ...
    def create(self, key: str, value: str) -> int: ...
    def update(self, key: str, value: str, expected: int | None) -> int: ...
    def delete(self, key: str, expected: int | None = None) -> tuple[str, int]: ...
    def history(self, prefix: str, after: int) -> list[Event]: ...
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...
    def oldest(self) -> int: ...
    def stats(self) -> dict: ...
    def close(self) -> None: ...
