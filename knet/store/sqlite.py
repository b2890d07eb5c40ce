"""The embedded store: one SQLite file in WAL mode.

Every write is one SQLite transaction that bumps a global revision (as etcd
does), updates the key and appends to an event log, so a watch can resume from
any revision the log still holds, also after the API server was killed. WAL
with synchronous=NORMAL survives a kill -9 of the process with every committed
write intact (it gives up durability only on power loss, which an emulator on
tmpfs would lose anyway).

The log is compacted as etcd's is: it keeps a window of the latest revisions
(at most `history` of them and at most `history_bytes` of values), and a watch
from before the window gets `Compacted` (the API's 410 Gone), after which a
client lists again. Without it the log kept every old value (554 MB of log for
1.7 MB of live objects). Compaction rides in the write's own transaction, a
batch of the oldest rows at a time, so it costs a write a few deletes on
average and a kill -9 never leaves half of it done. The freed pages are reused
by the next writes; when many are free at once (a burst of large values that
fell out of the window), an incremental vacuum gives them back to the file
system, and `journal_size_limit` truncates the WAL after each checkpoint.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
from collections.abc import Callable

from . import Compacted, Event, KeyExists, KeyNotFound, RevisionMismatch, TooLarge

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL,
                                value TEXT, prev TEXT);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# etcd's default --max-request-bytes: the largest value it stores.
MAX_VALUE_BYTES = 1536 * 1024
# The window of history a watch can resume from. A reconnecting watch (an agent
# restarted, a lagging watch the server closed) needs seconds of history, not
# hours; one that asks for more lists again, as after etcd's compaction.
HISTORY = 2000
HISTORY_BYTES = 8 * 1024 * 1024
# The WAL is checkpointed every 1 MiB (not SQLite's 4 MiB) and truncated back
# to it: the state lives on tmpfs, where a checkpoint's fsync costs nothing.
WAL_LIMIT_BYTES = 1024 * 1024


class SqliteStore:
    """A `knet.store.Store` in one file. Not thread-safe: the API server owns it
    from one trio thread, which also makes every write strictly ordered."""

    def __init__(self, path: str, history: int = HISTORY, history_bytes: int = HISTORY_BYTES,
                 max_value_bytes: int = MAX_VALUE_BYTES):
        self.path = path
        self._history = max(1, history)
        self._history_bytes = max(1, history_bytes)
        self.max_value_bytes = max_value_bytes
        # Compact once the window is over its bound by this much, so that each
        # compaction deletes a batch rather than one row per write.
        self._slack = max(1, self._history // 16)
        self._slack_bytes = max(1, self._history_bytes // 16)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        fresh = self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        if fresh:  # auto_vacuum must be chosen before the first table exists
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_BYTES // 4096}")
        self._db.executescript(SCHEMA)
        self._subscribers: list[Callable[[Event], None]] = []
        self._compacted = self._meta("compacted")
        row = self._db.execute("SELECT MAX(rev) FROM log").fetchone()
        self._rev = max(row[0] or 0, self._compacted)
        # (revision, size) of every row in the window, oldest first: what the
        # next compaction may drop, without asking SQLite for sizes per write.
        self._window: collections.deque[tuple[int, int]] = collections.deque(
            self._db.execute("SELECT rev, IFNULL(length(value), 0) + IFNULL(length(prev), 0) FROM log ORDER BY rev"))
        self._window_bytes = sum(n for _, n in self._window)
        self._open_compaction()

    def _open_compaction(self) -> None:
        """Bring a store written by an older knet (every old value kept, no
        auto_vacuum) inside the window at start-up, before anything is served,
        and rewrite the file once so it shrinks to what is left."""
        cutoff = self._cutoff(0, 0)
        if cutoff:
            self._db.execute("BEGIN IMMEDIATE")
            self._delete_through(cutoff)
            self._db.execute("COMMIT")
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2 or self._free_share() > 0.25:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    def revision(self) -> int:
        return self._rev

    def oldest(self) -> int:
        """The oldest revision a watch can still start after (the compacted revision)."""
        return self._compacted

    def get(self, key: str) -> tuple[str, int] | None:
        row = self._db.execute("SELECT value, mod_rev FROM kv WHERE key=?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def list(self, prefix: str) -> tuple[list[tuple[str, str, int]], int]:
        rows = self._db.execute(
            "SELECT key, value, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\uffff"),
        ).fetchall()
        return [(k, v, r) for k, v, r in rows], self._rev

    # -- writes ------------------------------------------------------------------

    def _write(self, kind: str, key: str, value: str | None, prev: str | None) -> int:
        if value is not None and len(value) > self.max_value_bytes:
            raise TooLarge(len(value), self.max_value_bytes)
        rev = self._rev + 1
        size = len(value or "") + len(prev or "")
        self._window.append((rev, size))
        self._window_bytes += size
        cutoff = self._cutoff(self._slack, self._slack_bytes)
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if value is None:
                cur.execute("DELETE FROM kv WHERE key=?", (key,))
            else:
                cur.execute("INSERT OR REPLACE INTO kv (key, value, mod_rev) VALUES (?, ?, ?)", (key, value, rev))
            cur.execute("INSERT INTO log (rev, type, key, value, prev) VALUES (?, ?, ?, ?, ?)",
                        (rev, kind, key, value, prev))
            if cutoff:
                self._delete_through(cutoff)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            self._reload_window()
            raise
        self._rev = rev
        if cutoff:
            self._compacted = cutoff
            self._release_free_pages()
        event = Event(rev, kind, key, value, prev)
        for callback in list(self._subscribers):
            # The write is committed: a subscriber that fails must not cost the ones after it the
            # event (watches and caches would then differ from the store) nor turn the write into
            # an error for a client whose object is stored.
            try:
                callback(event)
            except Exception:
                log.exception("store subscriber %r failed on revision %d", callback, rev)
        return rev

    def _cutoff(self, slack: int, slack_bytes: int) -> int:
        """The revision to compact through, popping it from the window; 0 while
        the window is within its bounds (plus the slack that batches compaction).
        The newest revision always stays, so a watch can start from it."""
        over_count = len(self._window) > self._history + slack
        over_bytes = self._window_bytes > self._history_bytes + slack_bytes
        if not (over_count or over_bytes):
            return 0
        cutoff = 0
        while len(self._window) > 1 and (len(self._window) > self._history
                                         or self._window_bytes > self._history_bytes):
            cutoff, size = self._window.popleft()
            self._window_bytes -= size
        return cutoff

    def _delete_through(self, cutoff: int) -> None:
        self._db.execute("DELETE FROM log WHERE rev <= ?", (cutoff,))
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?)", (cutoff,))
        self._compacted = cutoff

    def _reload_window(self) -> None:
        self._window = collections.deque(self._db.execute(
            "SELECT rev, IFNULL(length(value), 0) + IFNULL(length(prev), 0) FROM log ORDER BY rev"))
        self._window_bytes = sum(n for _, n in self._window)
        self._compacted = self._meta("compacted")

    def _free_share(self) -> float:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0] or 1
        return self._db.execute("PRAGMA freelist_count").fetchone()[0] / pages

    def _release_free_pages(self) -> None:
        """Give free pages back to the file system when a quarter of the file is
        free: in the steady state the next writes reuse them, so this runs only
        after the window shrank (large values fell out of it)."""
        if self._free_share() > 0.25:
            self._db.execute("PRAGMA incremental_vacuum")

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
        if after < self._compacted:
            raise Compacted(self._compacted)
        rows = self._db.execute(
            "SELECT rev, type, key, value, prev FROM log WHERE rev > ? AND key >= ? AND key < ? ORDER BY rev",
            (after, prefix, prefix + "\uffff"),
        ).fetchall()
        return [Event(*row) for row in rows]

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def stats(self) -> dict:
        """What `knet status` shows of the store: its size on disk (the file and
        its WAL) and the window of history it keeps."""
        def size(p: str) -> int:
            try:
                return os.stat(p).st_size
            except OSError:
                return 0

        keys, live = self._db.execute("SELECT COUNT(*), IFNULL(SUM(length(value)), 0) FROM kv").fetchone()
        file_bytes, wal_bytes = size(self.path), size(self.path + "-wal")
        return {"revision": self._rev, "compacted": self._compacted, "fileBytes": file_bytes,
                "walBytes": wal_bytes, "sizeBytes": file_bytes + wal_bytes, "keys": keys, "liveBytes": live,
                "logEntries": len(self._window), "logBytes": self._window_bytes,
                "history": self._history, "historyBytes": self._history_bytes}

    def close(self) -> None:
        self._db.close()
