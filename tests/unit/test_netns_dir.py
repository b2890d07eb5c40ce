"""/run/netns is made a shared mount once per process (issue 14): the
MS_SHARED|MS_REC remount walks every mount below it, one per namespace on the
machine, so doing it for each pod made a pod's sandbox dearer with every pod
already there. The mount(2) calls are counted at the kernel seam."""

from __future__ import annotations

import errno

import pytest

from knet.net import ns


@pytest.fixture
def mounts(tmp_path, monkeypatch):
    calls: list[tuple] = []
    bound: set[str] = set()

    def fake_mount(source, target, fstype, flags):
        calls.append((source, target, fstype, flags))
        if flags & ns.MS_BIND:
            bound.add(target)
        elif target not in bound:
            raise OSError(errno.EINVAL, "not a mount point")  # as the kernel says before the self-bind

    monkeypatch.setattr(ns, "NETNS_RUN_DIR", str(tmp_path / "netns"))
    monkeypatch.setattr(ns, "mount", fake_mount)
    monkeypatch.setattr(ns, "_netns_dir_shared", None)
    return calls


def test_the_netns_directory_is_made_shared_once_however_many_namespaces(mounts, tmp_path):
    for _ in range(300):
        ns._ensure_netns_dir()
    assert (tmp_path / "netns").is_dir()
    assert [(c[1], c[3]) for c in mounts] == [
        (str(tmp_path / "netns"), ns.MS_SHARED | ns.MS_REC),  # EINVAL: not a mount point yet
        (str(tmp_path / "netns"), ns.MS_BIND | ns.MS_REC),
        (str(tmp_path / "netns"), ns.MS_SHARED | ns.MS_REC)]


def test_a_directory_removed_behind_its_back_is_made_again(mounts, tmp_path):
    ns._ensure_netns_dir()
    (tmp_path / "netns").rmdir()
    ns._ensure_netns_dir()
    assert (tmp_path / "netns").is_dir() and len(mounts) == 4  # once more, shared at once (bound before)
