"""The benchmarks' pure helpers: the Mininet box's command line and report, and the
per-round ratio summaries. (bench/ is scripts, not a package: imported by path.)"""

import os
import sys

import pytest

# Appended, not put first: bench/dns.py must not shadow dnspython's package for the tests after these.
sys.path.append(os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import sandbox  # noqa: E402


def test_box_runs_as_an_unprivileged_user_in_fresh_namespaces():
    argv = sandbox.box_argv(["mn", "-c"])
    assert argv[:2] == ["setpriv", "--reuid=65534"]
    assert "--no-new-privs" in argv and "--clear-groups" in argv
    unshare = argv[argv.index("unshare"):argv.index("--")]
    for flag in ("--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount"):
        assert flag in unshare
    assert unshare[unshare.index("--propagation") + 1] == "private"
    # The environment is replaced, HOME inside the box's own /tmp (Mininet rm's ~/.ssh/mn/*).
    assert "-i" in argv and "HOME=/tmp" in argv
    assert argv[-2:] == ["mn", "-c"]


def test_box_mounts_its_own_tmp_before_running_anything():
    init = sandbox.box_argv(["true"])[-3]
    first = init.splitlines()[0]
    assert first.startswith("mount -t tmpfs") and first.endswith("|| exit 97")


def test_box_refuses_root_and_an_empty_command():
    with pytest.raises(ValueError, match="uid"):
        sandbox.box_argv(["mn"], uid=0)
    with pytest.raises(ValueError, match="argv"):
        sandbox.box_argv([])


def test_report_is_the_last_marked_line():
    err = "noise\nknet-sandbox: rc=3 ns=1500000000\nmore\nknet-sandbox: rc=0 ns=2250000000\ntrailer\n"
    assert sandbox.parse_report(err) == (0, 2.25)


def test_no_report_when_the_box_never_ran_the_command():
    assert sandbox.parse_report("unshare: unshare failed: Operation not permitted\n") is None


import common  # noqa: E402


def test_per_round_ratios_pair_rounds_and_refuse_mismatched_lists():
    assert common.per_round_ratios([9.0, 4.0, 8.0], [10.0, 5.0, 8.0]) == [0.9, 0.8, 1.0]
    assert common.median(common.per_round_ratios([9.0, 4.0, 8.0], [10.0, 5.0, 8.0])) == 0.9
    with pytest.raises(ValueError, match="rounds"):
        common.per_round_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="rounds"):
        common.per_round_ratios([], [])


def test_round_order_alternates_direction():
    paths = ["a", "b", "c"]
    assert common.round_order(paths, 0) == ["a", "b", "c"]
    assert common.round_order(paths, 1) == ["c", "b", "a"]
    assert common.round_order(paths, 2) == ["a", "b", "c"]
    assert paths == ["a", "b", "c"]
