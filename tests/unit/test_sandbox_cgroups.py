"""A container's cgroup files from its resources (kubelet's conversions), which
controller lives on which hierarchy (parsed from /proc/self/mountinfo and
/proc/self/cgroup as a v2, hybrid or v1 host writes them), each file written in
its controller's hierarchy, and reading an OOM kill back."""

from __future__ import annotations

import os

from knet.node import cgroups

# This CI image's: cgroup2 mounted, but memory, pids and cpu bound to v1 hierarchies.
HYBRID_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/dabb711ce87daf4f9314daa6ad340a1d
2:cpuacct:/
1:cpu:/
0::/
"""
# systemd's unified host.
V2_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V2_CGROUP = "0::/user.slice/user-1000.slice/session-2.scope\n"
# An older distribution: no cgroup2, cpu and cpuacct co-mounted, a space in one path (escaped by the kernel).
V1_MOUNTINFO = """\
25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:8 - cgroup cgroup rw,cpu,cpuacct
27 25 0:24 / /sys/fs/cgroup/my\\040memory rw,nosuid shared:9 - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/pids rw,nosuid shared:10 - cgroup cgroup rw,pids
"""
V1_CGROUP = "11:pids:/user.slice\n4:memory:/user.slice\n3:cpu,cpuacct:/user.slice\n1:name=systemd:/x\n"


def test_quantities():
    assert cgroups.quantity("128Mi") == 128 * 2**20 and cgroups.quantity("1G") == 10**9
    assert cgroups.quantity("250m") * 1000 == 250 and cgroups.quantity("1e3") == 1000


def test_a_hybrid_host_keeps_memory_pids_and_cpu_on_v1():
    lay = cgroups.parse_layout(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    assert lay.unified == "/sys/fs/cgroup/unified"
    assert lay.v1 == {"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "cpu": "/sys/fs/cgroup/cpu"}
    assert lay.hierarchies == ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                               "/sys/fs/cgroup/cpu"]
    pod = cgroups.pod_path("lab", "u-1", root=lay.root)
    assert cgroups.paths(pod + "/c", lay) == [h + "/knet-lab/pod-u-1/c" for h in lay.hierarchies]
    assert cgroups.controller_path(pod, "pids", lay) == "/sys/fs/cgroup/pids/knet-lab/pod-u-1"
    assert cgroups.controller_path(pod, "hugetlb", lay) == pod  # what the kernel left to cgroup2


def test_a_unified_host_has_everything_on_v2():
    lay = cgroups.parse_layout(V2_MOUNTINFO, V2_CGROUP)
    assert (lay.unified, lay.v1, lay.bound_v1) == ("/sys/fs/cgroup", {}, frozenset())
    assert cgroups.paths("/sys/fs/cgroup/knet-lab/pod-u", lay) == ["/sys/fs/cgroup/knet-lab/pod-u"]
    assert cgroups.controller_path("/sys/fs/cgroup/knet-lab/pod-u", "memory", lay) == "/sys/fs/cgroup/knet-lab/pod-u"


def test_a_v1_host_names_pods_in_its_first_hierarchy():
    lay = cgroups.parse_layout(V1_MOUNTINFO, V1_CGROUP)
    assert lay.unified is None and lay.root == "/sys/fs/cgroup/my memory"
    assert lay.v1 == {"memory": "/sys/fs/cgroup/my memory", "pids": "/sys/fs/cgroup/pids",
                      "cpu": "/sys/fs/cgroup/cpu,cpuacct"}
    assert cgroups.controller_path("/sys/fs/cgroup/my memory/knet-a/pod-u", "cpu", lay) == \
        "/sys/fs/cgroup/cpu,cpuacct/knet-a/pod-u"


def test_read_only_or_unmounted_v1_controllers_are_on_no_hierarchy():
    """A container's read-only /sys/fs/cgroup, and memory bound to a v1 hierarchy
    not mounted here: neither is cgroup2's to enforce, so nothing is written."""
    mountinfo = HYBRID_MOUNTINFO.replace("/sys/fs/cgroup/pids rw,relatime", "/sys/fs/cgroup/pids ro,relatime")
    mountinfo = "".join(line + "\n" for line in mountinfo.splitlines() if "rw,memory" not in line)
    lay = cgroups.parse_layout(mountinfo, HYBRID_CGROUP)
    assert set(lay.v1) == {"cpu"} and lay.bound_v1 == {"memory", "pids", "cpu"}
    assert lay.hierarchy_of("memory") is None and lay.hierarchy_of("pids") is None
    pod = "/sys/fs/cgroup/unified/knet-a/pod-u"
    assert cgroups.controller_path(pod, "memory", lay) is None


def test_the_whole_hierarchy_is_preferred_to_a_bind_of_a_subtree():
    mountinfo = ("50 31 0:32 /docker/abc /mnt/mem rw,relatime - cgroup cgroup rw,memory\n"
                 "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")
    assert cgroups.parse_layout(mountinfo, "4:memory:/\n").v1 == {"memory": "/sys/fs/cgroup/memory"}


def test_container_limits_on_v2():
    spec = {"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    assert cgroups.container_limits(spec) == {"memory.max": str(64 * 2**20), "memory.swap.max": "0",
                                              "cpu.weight": str(cgroups.cpu_weight(500)), "cpu.max": "50000 100000"}
    assert cgroups.container_limits({"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}) == {
        "cpu.weight": "39", "cpu.max": "200000 100000"}  # requests win; 1 CPU = 1024 shares = weight 39
    assert cgroups.container_limits({}) == {}
    assert cgroups.cpu_weight(2) == 1  # the minimum two shares


def test_container_limits_on_v1_are_kubelets_shares_quota_and_no_swap():
    lay = cgroups.parse_layout(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    spec = {"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "32Mi", "cpu": "1500m"}}}
    assert list(cgroups.container_limits(spec, lay).items()) == [
        ("memory.limit_in_bytes", str(32 * 2**20)), ("memory.memsw.limit_in_bytes", str(32 * 2**20)),
        ("cpu.shares", "256"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "150000")]
    tiny = {"resources": {"limits": {"cpu": "1m"}}}  # the request defaults to the limit
    assert cgroups.container_limits(tiny, lay) == {"cpu.shares": "2", "cpu.cfs_period_us": "100000",
                                                   "cpu.cfs_quota_us": "1000"}  # kubelet's minimums


def fake_host(tmp_path) -> cgroups.Layout:
    """Directories standing in for a hybrid host's hierarchies."""
    for h in ("unified", "memory", "pids", "cpu"):
        (tmp_path / h).mkdir()
    return cgroups.Layout(unified=str(tmp_path / "unified"), v1={h: str(tmp_path / h) for h in ("memory", "pids", "cpu")},
                          bound_v1=frozenset({"memory", "pids", "cpu"}))


def test_each_file_is_written_in_its_controllers_hierarchy(tmp_path):
    lay = fake_host(tmp_path)
    pod = os.path.join(lay.unified, "knet-a", "pod-u")
    cgroups.ensure(os.path.join(pod, "c"), lay)
    made = [h for h in lay.hierarchies if os.path.isdir(os.path.join(h, "knet-a/pod-u/c"))]
    assert made == [lay.unified, lay.v1["memory"], lay.v1["pids"]]  # cpu's twin only for a cpu file
    (tmp_path / "memory/knet-a/pod-u/c/memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "pids/knet-a/pod-u/pids.max").write_text("max\n")
    missing = cgroups.set_limits(os.path.join(pod, "c"), {"memory.limit_in_bytes": "1024",
                                                          "memory.memsw.limit_in_bytes": "1024",
                                                          "cpu.weight": "39"}, lay)
    assert (tmp_path / "memory/knet-a/pod-u/c/memory.limit_in_bytes").read_text() == "1024"
    assert missing == ["cpu.weight"]  # no memsw file is swap not accounted; cpu.weight's file is not there
    assert (tmp_path / "cpu/knet-a/pod-u/c").is_dir()  # made to write a cpu file in
    assert cgroups.set_limits(pod, {"pids.max": "64"}, lay) == []
    assert (tmp_path / "pids/knet-a/pod-u/pids.max").read_text() == "64"


def test_oom_kills_read_from_memory_events_or_oom_control(tmp_path):
    assert cgroups.oom_kills(str(tmp_path)) == 0
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert cgroups.oom_kills(str(tmp_path)) == 1
    lay = fake_host(tmp_path)
    c = os.path.join(lay.unified, "knet-a", "pod-u", "c")
    cgroups.ensure(c, lay)
    (tmp_path / "memory/knet-a/pod-u/c/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroups.oom_kills(c, lay) == 2


def test_remove_takes_every_hierarchys_twin_and_nothing_that_is_not_knets(tmp_path):
    lay = fake_host(tmp_path)
    cgroups.ensure(os.path.join(lay.unified, "knet-a", "pod-u", "c"), lay)
    cgroups.set_limits(os.path.join(lay.unified, "knet-a", "pod-u", "c"), {"cpu.shares": "256"}, lay)
    assert (tmp_path / "cpu/knet-a/pod-u/c").is_dir()
    (tmp_path / "memory/other/x").mkdir(parents=True)
    assert not cgroups.remove(os.path.join(lay.unified, "other"), lay=lay)  # not knet's: left alone
    assert (tmp_path / "memory/other/x").is_dir()
    assert cgroups.remove(os.path.join(lay.unified, "knet-a"), lay=lay)
    assert sorted(os.listdir(tmp_path / "memory")) == ["other"] and os.listdir(tmp_path / "pids") == []
    assert os.listdir(tmp_path / "cpu") == []
    assert os.listdir(tmp_path / "unified") == []


def test_paths_under_the_cluster():
    assert cgroups.pod_path("lab", "u-1", root="/sys/fs/cgroup") == "/sys/fs/cgroup/knet-lab/pod-u-1"
