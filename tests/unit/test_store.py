"""The SQLite store: revisions, compare-and-swap, history, compaction, and
durability across a kill -9 of the process that wrote."""

import os
import signal
import subprocess
import sys

import pytest

from knet.store import Compacted, KeyExists, KeyNotFound, RevisionMismatch
from knet.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_revisions_increase_and_cas(store):
    r1 = store.create("/a/x", "1")
    r2 = store.create("/a/y", "2")
    assert r2 == r1 + 1 == store.revision()
    with pytest.raises(KeyExists):
        store.create("/a/x", "again")
    with pytest.raises(RevisionMismatch):
        store.update("/a/x", "3", expected=r2)
    r3 = store.update("/a/x", "3", expected=r1)
    assert store.get("/a/x") == ("3", r3)
    with pytest.raises(KeyNotFound):
        store.update("/nope", "1", expected=None)


def test_list_by_prefix_does_not_leak_siblings(store):
    store.create("/registry/pods/a/p1", "1")
    store.create("/registry/pods/ab/p2", "2")
    store.create("/registry/podsx/a/p3", "3")
    keys = [k for k, _, _ in store.list("/registry/pods/a/")[0]]
    assert keys == ["/registry/pods/a/p1"]


def test_history_and_subscribe(store):
    seen = []
    store.subscribe(seen.append)
    r1 = store.create("/k/a", "1")
    store.update("/k/a", "2", expected=r1)
    store.delete("/k/a")
    assert [e.type for e in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[2].prev == "2" and seen[2].value is None
    hist = store.history("/k/", r1)
    assert [e.type for e in hist] == ["MODIFIED", "DELETED"]


def test_a_failing_subscriber_costs_the_others_nothing(store):
    """A committed write reaches every subscriber, and its caller gets its revision, whatever one of
    them raises (watches and caches would otherwise miss the event for good)."""
    seen = []

    def broken(_event):
        raise RuntimeError("a bug in one cache")

    store.subscribe(broken)
    store.subscribe(seen.append)
    rev = store.create("/k/a", "1")
    assert [(e.type, e.revision) for e in seen] == [("ADDED", rev)] and store.get("/k/a") == ("1", rev)


def test_compaction_makes_old_revisions_gone(tmp_path):
    s = SqliteStore(str(tmp_path / "c.db"), history=10)
    for i in range(1000):
        s.create(f"/k/{i}", "v")
    with pytest.raises(Compacted):
        s.history("/k/", 5)
    assert len(s.history("/k/", s.revision() - 5)) == 5


def test_acknowledged_writes_survive_kill_9(tmp_path):
    path = str(tmp_path / "d.db")
    code = (
        "import sys, os\n"
        "from knet.store.sqlite import SqliteStore\n"
        f"s = SqliteStore({path!r})\n"
        "for i in range(200):\n"
        "    s.create(f'/k/{i}', 'v')\n"
        "print(s.revision(), flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    acked = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    s = SqliteStore(path)
    assert s.revision() == acked == 200
    assert len(s.list("/k/")[0]) == 200
    assert s.create("/k/new", "v") == 201
