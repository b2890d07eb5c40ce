"""Pid files that name one process for good (issue 9, finding 7): a stale pid
file whose pid now belongs to an unrelated program must not get it killed.

Real processes (a `sleep` this test starts), no fakes: the check is the
kernel's own start time and command line. Run as root, like the rest of the
suite: down() works under /run/knet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from knet import cluster
from knet.config import state_dir
from knet.harness.cluster import unique_name
from knet.net import procs


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def pid_dir():
    name = unique_name("kp")
    d = os.path.join(state_dir(name), "pids")
    os.makedirs(d)
    yield name, d
    cluster.down(name, say=lambda _m: None)


def test_record_names_the_running_process(sleeper, tmp_path):
    path = str(tmp_path / "x.pid")
    rec = procs.write_pidfile(path, sleeper.pid)
    assert rec["argv"] == ["sleep", "300"] and rec["start"] == procs.start_time(sleeper.pid)
    assert procs.verified_pid(path) == sleeper.pid
    sleeper.kill()
    sleeper.wait()
    assert procs.verified_pid(path) is None


def test_a_record_taken_right_after_popen_has_the_new_argv():
    """Popen returns inside exec, before the kernel writes the new argv (raw
    reads here came back empty about 3 times in 4); a record of [] would never
    match again and `knet down` would leave the process running."""
    for _ in range(50):
        p = subprocess.Popen(["sleep", "300"])
        try:
            assert procs.record(p.pid)["argv"] == ["sleep", "300"]
        finally:
            p.kill()
            p.wait()


def test_a_pid_file_whose_start_time_or_argv_differ_names_nothing(sleeper, tmp_path):
    path = tmp_path / "x.pid"
    real = procs.record(sleeper.pid)
    for stale in ({**real, "start": real["start"] - 1},
                  {**real, "argv": ["/usr/bin/python3", "-m", "knet.controlplane", "--cluster", "lab"]}):
        path.write_text(json.dumps(stale))
        assert procs.read_pidfile(str(path)) == stale
        assert procs.verified_pid(str(path)) is None
    path.write_text(str(sleeper.pid))  # the old format: a bare pid cannot be verified
    assert procs.read_pidfile(str(path)) is None
    path.write_text("{not json")
    assert procs.read_pidfile(str(path)) is None


@pytest.mark.root
def test_down_leaves_alone_the_process_a_stale_pid_file_names(sleeper, pid_dir):
    name, d = pid_dir
    argv = ["/usr/bin/python3", "-m", "knet.controlplane", "--cluster", name]
    # What a control plane that died long ago left, its pid since reused by `sleep`.
    with open(os.path.join(d, "control-plane.pid"), "w") as f:
        json.dump({"pid": sleeper.pid, "start": procs.start_time(sleeper.pid) - 100, "argv": argv}, f)
    with open(os.path.join(d, "node-worker-1.pid"), "w") as f:
        f.write(str(sleeper.pid))  # an old-style bare pid
    assert sleeper.pid not in cluster.knet_pids(name, [])
    out = cluster.down(name, say=lambda _m: None)
    assert out["processes"] == 0
    assert sleeper.poll() is None and procs.alive(sleeper.pid)
    assert not os.path.exists(state_dir(name))


@pytest.mark.root
def test_down_kills_the_process_a_current_pid_file_names(sleeper, pid_dir):
    name, d = pid_dir
    procs.write_pidfile(os.path.join(d, "worker.pid"), sleeper.pid)
    out = cluster.down(name, say=lambda _m: None)
    assert out["processes"] == 1
    assert not procs.alive(sleeper.pid)  # killed (and reaped by down, its parent being this test)


def test_terminate_escalates_to_sigkill():
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"],
                                stdout=subprocess.PIPE, text=True)
    polite = subprocess.Popen(["sleep", "300"])
    try:
        assert stubborn.stdout.readline().strip() == "ready"
        killed = procs.terminate([stubborn.pid, polite.pid], grace=0.5)
        assert killed == [stubborn.pid]
        assert polite.wait(timeout=5) == -15 and stubborn.wait(timeout=5) == -9
    finally:
        for p in (stubborn, polite):
            p.kill()
            p.wait()
