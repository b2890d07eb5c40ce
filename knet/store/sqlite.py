"""The embedded store: one SQLite file in WAL mode.

Every write is one SQLite transaction that bumps a global revision (as etcd
does), updates the key and appends to an event log, so a watch can resume from
any revision the log still holds, also after the API server was killed. WAL
with synchronous=NORMAL survives a kill -9 of the process with every committed
write intact (it gives up durability only on power loss, which an emulator on
tmpfs would lose anyway).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from . import Compacted, Event, KeyExists, KeyNotFound, RevisionMismatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL,
                                value TEXT, prev TEXT);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SqliteStore:
    """A `knet.store.Store` in one file. Not thread-safe: the API server owns it
    from one trio thread, which also makes every write strictly ordered."""

    def __init__(self, path: str, history: int = 20000):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._history = history
        self._subscribers: list[Callable[[Event], None]] = []
        row = self._db.execute("SELECT MAX(rev) FROM log").fetchone()
        compacted = self._meta("compacted")
        self._rev = max(row[0] or 0, compacted)
        self._writes = 0

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    def revision(self) -> int:
        return self._rev

    def oldest(self) -> int:
        """The oldest revision a watch can still start after."""
        return self._meta("compacted")

    def get(self, key: str) -> tuple[str, int] | None:
        row = self._db.execute("SELECT value, mod_rev FROM kv WHERE key=?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def list(self, prefix: str) -> tuple[list[tuple[str, str, int]], int]:
        rows = self._db.execute(
            "SELECT key, value, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\uffff"),
        ).fetchall()
        return [(k, v, r) for k, v, r in rows], self._rev

    def _write(self, kind: str, key: str, value: str | None, prev: str | None) -> int:
        rev = self._rev + 1
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if value is None:
                cur.execute("DELETE FROM kv WHERE key=?", (key,))
            else:
                cur.execute("INSERT OR REPLACE INTO kv (key, value, mod_rev) VALUES (?, ?, ?)", (key, value, rev))
            cur.execute("INSERT INTO log (rev, type, key, value, prev) VALUES (?, ?, ?, ?, ?)",
                        (rev, kind, key, value, prev))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._rev = rev
        self._writes += 1
        if self._writes % 1000 == 0:
            self._compact()
        event = Event(rev, kind, key, value, prev)
        for callback in list(self._subscribers):
            callback(event)
        return rev

    def _compact(self) -> None:
        cutoff = self._rev - self._history
        if cutoff <= self.oldest():
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM log WHERE rev <= ?", (cutoff,))
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?)", (cutoff,))
        self._db.execute("COMMIT")

    def create(self, key: str, value: str) -> int:
        if self.get(key) is not None:
            raise KeyExists(key)
        return self._write("ADDED", key, value, None)

    def update(self, key: str, value: str, expected: int | None) -> int:
        current = self.get(key)
        if current is None:
            raise KeyNotFound(key)
        if expected is not None and current[1] != expected:
            raise RevisionMismatch(key)
        return self._write("MODIFIED", key, value, current[0])

    def delete(self, key: str, expected: int | None = None) -> tuple[str, int]:
        current = self.get(key)
        if current is None:
            raise KeyNotFound(key)
        if expected is not None and current[1] != expected:
            raise RevisionMismatch(key)
        return current[0], self._write("DELETED", key, None, current[0])

    def history(self, prefix: str, after: int) -> list[Event]:
        if after < self.oldest():
            raise Compacted(self.oldest())
        rows = self._db.execute(
            "SELECT rev, type, key, value, prev FROM log WHERE rev > ? AND key >= ? AND key < ? ORDER BY rev",
            (after, prefix, prefix + "\uffff"),
        ).fetchall()
        return [Event(*row) for row in rows]

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def close(self) -> None:
        self._db.close()
