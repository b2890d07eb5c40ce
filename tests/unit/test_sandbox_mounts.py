"""Where a pod's mount points are made in a read-only view of the host (knet.node.mounts.plan_mountpoints)."""

from __future__ import annotations

from knet.node import mounts

HOST = {"/", "/etc", "/usr", "/usr/share", "/var", "/var/lib"}


def plan(*targets: str):
    return mounts.plan_mountpoints(list(targets), exists=lambda p: p in HOST)


def test_an_existing_path_needs_nothing():
    assert plan("/etc", "/usr/share") == ([], [])


def test_a_missing_top_level_directory_gets_a_new_root():
    assert plan("/data/demo", "/data/other", "/cache") == (["data", "cache"], [])


def test_a_missing_directory_under_an_existing_one_shadows_the_deepest_existing():
    assert plan("/etc/config", "/var/lib/app/data") == ([], ["/etc", "/var/lib"])
    assert plan("/etc/a", "/etc/b/c") == ([], ["/etc"])


def test_the_pods_private_directories_need_no_help():
    assert plan("/var/run/secrets/x", "/run/secrets/kubernetes.io/serviceaccount", "/tmp/x/y", "/dev/x") == (
        [], ["/var"])  # /var/run is a real directory in this fake host; /run, /tmp, /dev are the pod's own


def test_runcs_masked_and_read_only_paths():
    assert "/proc/kcore" in mounts.MASKED_PATHS and "/sys/firmware" in mounts.MASKED_PATHS
    assert "/proc/sys" in mounts.READONLY_PATHS and "/proc/sysrq-trigger" in mounts.READONLY_PATHS


def test_the_sandbox_switch_and_pids_limit_in_the_cluster_file():
    import pytest

    from knet.config import ConfigError, parse_cluster

    assert parse_cluster({"kind": "Cluster"}).pod_sandbox is True
    cfg = parse_cluster({"kind": "Cluster", "knet": {"podSandbox": False, "podPidsLimit": 100}})
    assert cfg.pod_sandbox is False and cfg.pod_pids_limit == 100
    with pytest.raises(ConfigError, match="knet.podSandbox: Invalid value: 'no': must be true or false"):
        parse_cluster({"kind": "Cluster", "knet": {"podSandbox": "no"}})
    with pytest.raises(ConfigError, match="knet.podPidsLimit: Invalid value: 0"):
        parse_cluster({"kind": "Cluster", "knet": {"podPidsLimit": 0}})
