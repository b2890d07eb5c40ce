"""A container's cgroup files from its resources (kubelet's conversions), and reading an OOM kill back."""

from __future__ import annotations

from knet.node import cgroups


def test_quantities():
    assert cgroups.quantity("128Mi") == 128 * 2**20 and cgroups.quantity("1G") == 10**9
    assert cgroups.quantity("250m") * 1000 == 250 and cgroups.quantity("1e3") == 1000


def test_container_limits():
    spec = {"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    assert cgroups.container_limits(spec) == {"memory.max": str(64 * 2**20), "memory.swap.max": "0",
                                              "cpu.weight": str(cgroups.cpu_weight(500))}
    assert cgroups.container_limits({"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}) == {
        "cpu.weight": "39"}  # requests win; 1 CPU = 1024 shares = weight 39, as kubelet and runc convert
    assert cgroups.container_limits({}) == {}
    assert cgroups.cpu_weight(2) == 1  # the minimum two shares


def test_limits_written_where_the_files_exist_and_the_rest_reported(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    missing = cgroups.set_limits(str(tmp_path), {"memory.max": "1024", "pids.max": "10"})
    assert (tmp_path / "memory.max").read_text() == "1024" and missing == ["pids.max"]


def test_oom_kills_read_from_memory_events(tmp_path):
    assert cgroups.oom_kills(str(tmp_path)) == 0
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert cgroups.oom_kills(str(tmp_path)) == 1


def test_paths_under_the_cluster():
    assert cgroups.pod_path("lab", "u-1", root="/sys/fs/cgroup") == "/sys/fs/cgroup/knet-lab/pod-u-1"
