"""The store's log is compacted to a window, as etcd's is: the file stays
bounded under endless writes, a watch from before the window is Compacted
(the API's 410), a watch that follows writes across compactions misses
nothing, an old bloated store shrinks when opened, and an object over etcd's
1.5 MiB limit is refused with nothing written."""

from __future__ import annotations

import os
import sqlite3

import pytest

from knet.store import Compacted, TooLarge
from knet.store.sqlite import MAX_VALUE_BYTES, WAL_LIMIT_BYTES, SqliteStore


def on_disk(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def value(i: int, size: int) -> str:
    return f'{{"n":{i},"pad":"' + "x" * size + '"}'


def test_20000_writes_to_100_objects_keep_the_file_bounded(tmp_path):
    path = str(tmp_path / "s.db")
    s = SqliteStore(path, history=1000)
    size = 1000
    revs = {}
    for k in range(100):
        revs[k] = s.create(f"/registry/things/{k}", value(0, size))
    for i in range(1, 20000 - 100 + 1):
        k = i % 100
        revs[k] = s.update(f"/registry/things/{k}", value(i, size), expected=revs[k])
    stats = s.stats()
    live = stats["liveBytes"]
    uncompacted = 20000 * 2 * (size + 20)  # every value and its previous value, kept
    total = on_disk(path)
    print(f"store {total} bytes for {live} bytes live; uncompacted ~{uncompacted}")
    assert stats["revision"] == 20000
    assert 1000 <= stats["logEntries"] <= 1000 + 1000 // 16
    assert stats["compacted"] == 20000 - stats["logEntries"]
    assert stats["sizeBytes"] == total
    # The window (1000 revisions of a value and its previous value) plus the live
    # objects, twice over for SQLite's pages, and the WAL: not the whole history.
    window = stats["logBytes"]
    assert total < 2 * (live + window) + 2 * WAL_LIMIT_BYTES
    assert total < uncompacted / 5
    s.close()


def test_the_byte_window_bounds_large_values(tmp_path):
    path = str(tmp_path / "b.db")
    s = SqliteStore(path, history=100000, history_bytes=2 * 1024 * 1024)
    rev = s.create("/k/big", value(0, 100_000))
    for i in range(1, 300):
        rev = s.update("/k/big", value(i, 100_000), expected=rev)
    stats = s.stats()
    assert stats["logBytes"] <= 2 * 1024 * 1024 + 2 * 1024 * 1024 // 16
    assert stats["compacted"] > 250  # 300 values of 100 KB cannot all be kept in 2 MiB
    assert on_disk(path) < 12 * 1024 * 1024  # 60 MB were written
    s.close()


def test_a_watch_from_before_the_window_is_compacted_and_one_inside_it_is_whole(tmp_path):
    s = SqliteStore(str(tmp_path / "w.db"), history=100)
    for i in range(500):
        s.create(f"/k/{i}", "v")
    oldest = s.oldest()
    assert 0 < oldest < 500 - 99
    with pytest.raises(Compacted) as e:
        s.history("/k/", oldest - 1)
    assert e.value.oldest == oldest
    events = s.history("/k/", oldest)
    assert [ev.revision for ev in events] == list(range(oldest + 1, 501))


def test_a_follower_across_compactions_misses_nothing(tmp_path):
    """What a watch sees live (subscribe) and what it resumes from (history at its
    last revision) together form every revision, however often the log compacts."""
    s = SqliteStore(str(tmp_path / "f.db"), history=50)
    seen: list[int] = []
    unsubscribe = s.subscribe(lambda ev: seen.append(ev.revision))
    rev = s.create("/k/a", "0")
    for i in range(1, 300):
        rev = s.update("/k/a", str(i), expected=rev)
        if i == 150:
            unsubscribe()
            resume_from = seen[-1]
    for i in range(300, 320):
        rev = s.update("/k/a", str(i), expected=rev)
    assert seen == list(range(1, 152))
    resumed = [ev.revision for ev in s.history("/k/", s.revision() - 40)]
    assert resumed == list(range(s.revision() - 39, s.revision() + 1))
    with pytest.raises(Compacted):
        s.history("/k/", resume_from)  # fell out of the window while away: list again


def test_an_old_bloated_store_shrinks_when_opened(tmp_path):
    """A store written with no compaction (as knet before this kept every old
    value) is compacted and vacuumed at start-up, before anything is served."""
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("PRAGMA journal_mode=WAL;"
                     "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL);"
                     "CREATE TABLE log (rev INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL,"
                     " value TEXT, prev TEXT);"
                     "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);")
    prev = None
    db.execute("BEGIN")
    for rev in range(1, 2001):
        v = value(rev, 10_000)
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", ("/k/a", v, rev))
        db.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?)", (rev, "MODIFIED" if prev else "ADDED", "/k/a", v, prev))
        prev = v
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = on_disk(path)
    assert before > 30 * 1024 * 1024
    s = SqliteStore(path, history=100)
    assert s.revision() == 2000 and s.oldest() == 1900
    assert s.get("/k/a") == (value(2000, 10_000), 2000)
    assert on_disk(path) < before / 8
    s.close()


def test_an_object_over_the_limit_is_refused_and_nothing_is_written(tmp_path):
    s = SqliteStore(str(tmp_path / "l.db"))
    rev = s.create("/k/a", "small")
    seen = []
    s.subscribe(seen.append)
    with pytest.raises(TooLarge) as e:
        s.update("/k/a", "x" * (MAX_VALUE_BYTES + 1), expected=rev)
    assert "request is too large" in str(e.value)
    with pytest.raises(TooLarge):
        s.create("/k/b", "x" * (MAX_VALUE_BYTES + 1))
    assert s.revision() == rev and s.get("/k/a") == ("small", rev) and s.get("/k/b") is None and not seen
    assert s.create("/k/c", "x" * MAX_VALUE_BYTES) == rev + 1  # the limit itself is allowed
