"""Pods are sandboxes (issue 15): the attacks of the issue, each made from
inside a pod, each failing; the capabilities, user and no_new_privs a
container runtime gives; volumes where volumeMounts say; the pod's cgroup,
which `knet down` removes. One cluster for the module."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid

import pytest

from knet.harness.cluster import Cluster
from knet.node import cgroups

pytestmark = [pytest.mark.root, pytest.mark.cluster]

PIDS_LIMIT = 64  # knet.podPidsLimit, as kubelet's podPidsLimit
HOST_TMP_SECRET = f"/tmp/knet-sandbox-test-{uuid.uuid4().hex[:8]}"

PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: attacker}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo mine > /tmp/written-by-pod; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  securityContext: {runAsUser: 1000}
  containers:
  - name: c
    image: busybox
    env: [{name: VICTIM_SECRET, value: hunter2-s3cr3t}]
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: user1000}
spec:
  securityContext: {runAsUser: 1000}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: security-context-demo}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  volumes:
  - name: sec-ctx-vol
    emptyDir: {}
  containers:
  - name: sec-ctx-demo
    image: busybox
    command: [sh, -c, "sleep 1h"]
    volumeMounts:
    - name: sec-ctx-vol
      mountPath: /data/demo
    securityContext:
      allowPrivilegeEscalation: false
---
apiVersion: v1
kind: Pod
metadata: {name: caps}
spec:
  containers:
  - name: dropped
    image: busybox
    command: [sleep, "3600"]
    securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}, readOnlyRootFilesystem: true}
  - name: privileged
    image: busybox
    command: [sleep, "3600"]
    securityContext: {privileged: true}
---
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  containers:
  - name: a
    image: busybox
    command: [sleep, "3601"]
  - name: b
    image: busybox
    command: [sleep, "3602"]
---
apiVersion: v1
kind: Pod
metadata: {name: builtin}
spec:
  containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: weighted}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    resources: {requests: {cpu: 250m}, limits: {cpu: 500m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
"""

VOLUMES = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue, size: large}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: aHVudGVyMg==}
---
apiVersion: v1
kind: Pod
metadata: {name: volumes}
spec:
  volumes:
  - {name: cfg, configMap: {name: settings, items: [{key: color, path: dir/colour}]}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  - {name: mem, emptyDir: {medium: Memory}}
  - {name: info, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
  - {name: host, hostPath: {path: HOSTDIR, type: DirectoryOrCreate}}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/config}
    - {name: sec, mountPath: /var/run/creds, readOnly: true}
    - {name: mem, mountPath: /cache}
    - {name: mem, mountPath: /cache-sub, subPath: part}
    - {name: info, mountPath: /info}
    - {name: host, mountPath: /hostdir}
---
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  volumes:
  - {name: cfg, configMap: {name: no-such-map}}
  - {name: sock, hostPath: {path: /no/such/socket, type: Socket}}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: cfg, mountPath: /etc/config}]
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with open(HOST_TMP_SECRET, "w") as f:
        f.write("the host's\n")
    hostdir = str(tmp_path_factory.mktemp("hostpath") / "made")
    try:
        with Cluster.up(workers=2, podPidsLimit=PIDS_LIMIT) as cluster:
            cluster.hostdir = hostdir
            cluster.apply(PODS)
            cluster.apply(VOLUMES.replace("HOSTDIR", hostdir))
            for name in ("attacker", "victim", "user1000", "security-context-demo", "caps", "shared", "volumes",
                         "builtin", "weighted"):
                cluster.wait_pod("default", name, lambda p: p["status"].get("phase") == "Running", timeout=60)
            yield cluster
    finally:
        os.unlink(HOST_TMP_SECRET)


def sh(c, pod: str, script: str, container: str | None = None):
    return c.exec_pod("default", pod, ["sh", "-c", script], container=container)


def status_field(c, pod: str, key: str, container: str | None = None) -> str:
    out = sh(c, pod, "cat /proc/self/status", container).stdout
    return re.search(rf"^{key}:\s*(\S+)", out, re.M)[1]


def test_knet_state_is_not_in_a_pod(c):
    token = os.path.join(c.cfg.state_dir, "token")
    store = os.path.join(c.cfg.state_dir, "store.db")
    assert os.path.exists(token) and os.path.exists(store)
    for path in (token, store, c.cfg.state_dir, "/run/knet", "/run/netns", "/var/run/netns"):
        out = sh(c, "attacker", f"ls {path}")
        assert out.returncode != 0 and "No such file" in out.stderr, (path, out)
    out = sh(c, "attacker", f"cat {token}")
    assert out.returncode != 0 and out.stdout == ""


def test_the_host_tmp_is_not_the_pods(c):
    out = sh(c, "attacker", f"cat {HOST_TMP_SECRET}; ls /tmp")
    assert "the host's" not in out.stdout and os.path.basename(HOST_TMP_SECRET) not in out.stdout
    assert "written-by-pod" in out.stdout  # its own /tmp, which its container wrote to
    assert not os.path.exists("/tmp/written-by-pod")
    for pod in ("user1000", "attacker"):
        out = sh(c, pod, "touch /etc/knet-was-here /usr/knet-was-here")
        assert out.returncode != 0 and "Read-only file system" in out.stderr, out
    assert not os.path.exists("/etc/knet-was-here")


def test_a_pod_sees_only_its_own_processes(c):
    out = sh(c, "user1000", "ps -e -o pid=,args=").stdout
    rows = [line.split(None, 1) for line in out.strip().splitlines()]
    assert rows[0] == ["1", "sleep 3600"], out  # its command is PID 1
    assert len(rows) <= 3, out  # sleep, sh, ps: no host process, no other pod's
    # Another uid-1000 pod's environment (its secrets) is nowhere in this pod's /proc.
    out = sh(c, "user1000", "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert "hunter2-s3cr3t" not in out.stdout
    assert "hunter2-s3cr3t" in sh(c, "victim", "tr '\\0' '\\n' < /proc/1/environ").stdout


def test_kubectl_exec_enters_the_containers_pid_namespace(c):
    out = c.kubectl("exec", "user1000", "--", "ps", "-e", "-o", "pid=,args=").stdout
    assert out.split("\n")[0].split(None, 1) == ["1", "sleep 3600"], out


def test_an_exec_into_a_built_in_servers_pod_is_sandboxed_too(c):
    # No process runs there: the exec gets a context of its own, with a /tmp its execs share.
    out = sh(c, "builtin", "hostname; ps -e -o pid= | wc -l; echo kept > /tmp/f; ls /run/knet")
    assert out.stdout.split()[:2] == ["builtin", "2"] or out.stdout.split()[:2] == ["builtin", "3"], out
    assert "No such file" in out.stderr
    assert sh(c, "builtin", "cat /tmp/f").stdout == "kept\n"
    assert status_field(c, "builtin", "CapEff") == "00000000a80425fb"


def test_no_setns_into_another_namespace(c):
    out = sh(c, "attacker", "nsenter --net=/proc/1/ns/net true")
    assert out.returncode != 0 and "Operation not permitted" in out.stderr, out
    out = sh(c, "attacker", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    assert out.returncode != 0 and "Read-only file system" in out.stderr, out


def test_default_capabilities_are_containerds(c):
    assert status_field(c, "attacker", "CapEff") == "00000000a80425fb"
    assert status_field(c, "attacker", "CapBnd") == "00000000a80425fb"
    assert status_field(c, "attacker", "NoNewPrivs") == "0"  # allowPrivilegeEscalation defaults to true
    # A non-root container keeps the bounding set but no effective capability (no ambient ones).
    assert status_field(c, "user1000", "CapEff") == "0000000000000000"
    assert status_field(c, "user1000", "CapBnd") == "00000000a80425fb"


def test_capabilities_add_drop_privileged_and_read_only_root(c):
    assert status_field(c, "caps", "CapBnd", "dropped") == "0000000000000400"
    assert status_field(c, "caps", "CapEff", "dropped") == "0000000000000400"
    out = sh(c, "caps", "touch /tmp/x", "dropped")
    assert out.returncode != 0 and "Read-only file system" in out.stderr
    with open("/proc/self/status") as f:
        host_bnd = re.search(r"^CapBnd:\s*(\S+)", f.read(), re.M)[1]
    assert status_field(c, "caps", "CapBnd", "privileged") == host_bnd


def test_seed_000_security_context(c):
    out = sh(c, "security-context-demo", "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; "
                                          "echo hello > /data/demo/f && stat -c '%g %a' /data/demo /data/demo/f")
    assert out.returncode == 0, out
    uid, gid, groups = out.stdout.splitlines()[:3]
    assert (uid, gid) == ("1000", "3000") and "2000" in groups.split(), out.stdout
    assert "NoNewPrivs:\t1" in out.stdout
    assert "2000 2777" in out.stdout  # the emptyDir is the fsGroup's, setgid, as kubelet leaves it
    assert not os.path.exists("/data")  # its mount point exists in the pod's view only


def test_shared_process_namespace(c):
    out = sh(c, "shared", "ps -e -o pid=,args=", "a").stdout
    assert "sleep 3601" in out and "sleep 3602" in out, out
    assert "sleep 3601" not in out.splitlines()[0], out  # PID 1 is the pod's pause, not a container


def test_run_as_non_root_is_refused_at_start(c):
    def waiting(p):
        st = (p["status"].get("containerStatuses") or [{}])[0].get("state", {})
        return st.get("waiting", {}).get("reason") == "CreateContainerConfigError" and st
    state = c.wait_pod("default", "nonroot", waiting)["status"]["containerStatuses"][0]["state"]
    assert "container has runAsNonRoot and image will run as root" in state["waiting"]["message"]


def test_volumes_where_volume_mounts_say(c):
    out = sh(c, "volumes", "cat /etc/config/dir/colour; echo; cat /var/run/creds/password; echo; "
                           "stat -L -c %a /var/run/creds/password; cat /info/name; echo; "
                           "echo x > /cache/a && ls /cache-sub && ls /cache; touch /hostdir/f && echo host-ok; "
                           "touch /var/run/creds/x")
    lines = out.stdout.splitlines()
    assert lines[:4] == ["blue", "hunter2", "400", "volumes"], out
    assert "a" in lines and "part" in lines and "host-ok" in lines, out
    assert "Read-only file system" in out.stderr  # readOnly: true
    assert os.path.exists(os.path.join(c.hostdir, "f"))  # DirectoryOrCreate made it; the pod wrote to it
    assert sh(c, "volumes", "ls /etc/hostname /etc/passwd").returncode == 0  # /etc's files still there


def test_a_volume_that_cannot_be_mounted_is_failedmount(c):
    def events():
        out = c.kubectl("get", "events", "--field-selector", "involvedObject.name=missing", "-o", "json").stdout
        msgs = [e["message"] for e in json.loads(out)["items"] if e["reason"] == "FailedMount"]
        return msgs if msgs else None
    msgs = c.wait_for("FailedMount", events, timeout=30)
    assert any('configmap "no-such-map" not found' in m and 'volume "cfg"' in m for m in msgs), msgs
    pod = c.get("Pod", "default", "missing")
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def cgroup_file(path: str, controller: str, name: str) -> str:
    """A file of the cgroup `path` names, in its controller's hierarchy (cgroup2's, or v1's on a hybrid host)."""
    where = cgroups.controller_path(path, controller)
    assert where, f"no hierarchy holds the {controller} controller here"
    with open(os.path.join(where, name)) as f:
        return f.read().strip()


def container_cgroup(c, pod: str, container: str = "c") -> str:
    return os.path.join(cgroups.pod_path(c.cfg.name, c.get("Pod", "default", pod)["metadata"]["uid"]), container)


HOG = """\
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  restartPolicy: POLICY
  containers:
  - name: c
    image: busybox
    command: [/usr/bin/python3, -c, "b = []\\nfor _ in range(256): b.append(b'x' * (1 << 20))"]
    resources: {limits: {memory: 32Mi}}
"""  # 256 MiB at most: were the limit not enforced, the container would end, not the host's memory


def test_oom_kill_past_the_memory_limit(c):
    """Past its memory limit the container is OOM-killed: kubelet's OOMKilled, exit code 137,
    then restarted (Always) or left terminated with the pod Failed (Never)."""
    c.apply(HOG.replace("NAME", "hog").replace("POLICY", "Always") + "---\n" +
            HOG.replace("NAME", "hog-once").replace("POLICY", "Never"))

    def terminated(st: dict) -> dict:
        return st.get("lastState", {}).get("terminated") or st.get("state", {}).get("terminated") or {}

    def restarted(p):
        st = (p["status"].get("containerStatuses") or [{}])[0]
        return terminated(st).get("reason") == "OOMKilled" and st.get("restartCount", 0) >= 1 and st
    try:
        st = c.wait_pod("default", "hog", restarted, timeout=90)["status"]["containerStatuses"][0]
        assert terminated(st)["exitCode"] == 137, st
        limit = "memory.limit_in_bytes" if "memory" in cgroups.layout().v1 else "memory.max"
        assert cgroup_file(container_cgroup(c, "hog"), "memory", limit) == str(32 * 2**20)
        assert cgroups.oom_kills(container_cgroup(c, "hog")) >= 1
        once = c.wait_pod("default", "hog-once", lambda p: p["status"].get("phase") == "Failed", timeout=60)
        st = once["status"]["containerStatuses"][0]
        assert st["state"]["terminated"]["reason"] == "OOMKilled" and st["state"]["terminated"]["exitCode"] == 137
        assert st["restartCount"] == 0, st
    finally:
        c.kubectl("delete", "pod", "hog", "hog-once", "--wait=false")


def test_pids_limit_stops_a_fork_loop(c):
    """podPidsLimit is the pod cgroup's pids.max: a loop forking 30 more than it
    allows gets exactly the limit and "Cannot fork"; deleting the pod with the
    processes still there kills them and removes its cgroups everywhere."""
    c.apply("""\
apiVersion: v1
kind: Pod
metadata: {name: forker}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
""")
    c.wait_pod("default", "forker", lambda p: p["status"].get("phase") == "Running", timeout=60)
    pod_cg = os.path.dirname(container_cgroup(c, "forker"))
    try:
        assert cgroup_file(pod_cg, "pids", "pids.max") == str(PIDS_LIMIT)
        loop = f"i=0; while [ $i -lt {PIDS_LIMIT + 30} ]; do sleep 600 >/dev/null 2>&1 & i=$((i+1)); done; wait"
        out = sh(c, "forker", loop)
        assert "fork" in out.stderr.lower(), out  # dash's "Cannot fork", busybox's "can't fork"
        assert out.returncode != 0, out  # the shell gave up on the refused fork
        # The pod reached the limit, then the loop's shell left: the limit less one stays.
        assert cgroup_file(pod_cg, "pids", "pids.current") == str(PIDS_LIMIT - 1)
        # "max N": forks refused, counted where the fork was (v1) or where the limit is (v2).
        refused = [int(cgroup_file(p, "pids", "pids.events").split()[1]) for p in (pod_cg, pod_cg + "/c")]
        assert max(refused) > 0, refused
        left = cgroups.pids(pod_cg)
        assert len(left) >= PIDS_LIMIT - 1, left  # the sleeps are still there (the loop's shell has gone)
    finally:
        c.kubectl("delete", "pod", "forker", "--wait=true", timeout=60)
    c.wait_for("the pod's cgroups gone", lambda: not any(os.path.exists(p) for p in cgroups.paths(pod_cg)),
               timeout=30)
    assert not [p for p in left if os.path.exists(f"/proc/{p}")]


def test_cpu_request_and_limit_are_shares_and_quota(c):
    cg = container_cgroup(c, "weighted")
    if "cpu" in cgroups.layout().v1:
        assert cgroup_file(cg, "cpu", "cpu.shares") == "256"  # kubelet's 250m * 1024 / 1000
        assert cgroup_file(cg, "cpu", "cpu.cfs_period_us") == "100000"
        assert cgroup_file(cg, "cpu", "cpu.cfs_quota_us") == "50000"  # 500m of each 100 ms
    else:
        assert cgroup_file(cg, "cpu", "cpu.weight") == str(cgroups.cpu_weight(250))
        assert cgroup_file(cg, "cpu", "cpu.max") == "50000 100000"
    # The container's process is in its cgroup in every hierarchy: cpu, memory and pids alike.
    lines = sh(c, "weighted", "cat /proc/1/cgroup").stdout.splitlines()
    uid = c.get("Pod", "default", "weighted")["metadata"]["uid"]
    for controller in cgroups.CONTROLLERS:
        hierarchy = [ln for ln in lines if controller in ln.split(":")[1].split(",")] or \
                    [ln for ln in lines if ln.startswith("0::")]
        assert hierarchy and hierarchy[0].endswith(f"/knet-{c.cfg.name}/pod-{uid}/c"), (controller, lines)


def test_pods_live_in_cgroups_that_knet_down_removes(c):
    uid = c.get("Pod", "default", "attacker")["metadata"]["uid"]
    path = os.path.join(cgroups.pod_path(c.cfg.name, uid), "c")
    assert cgroups.pids(path), path
    out = sh(c, "attacker", "cat /proc/self/cgroup")
    assert f"/knet-{c.cfg.name}/pod-{uid}/c" in out.stdout
    sleeper = cgroups.pids(path)[0]
    # A process in the host's namespaces left in one hierarchy's cgroup only (the last: a v1 one on a
    # hybrid host, without cgroup.kill) is found by no walk of the cluster's namespaces: the sweep of
    # the cgroups kills it, as it would what an agent that crashed left behind.
    straggler = subprocess.Popen(["sleep", "300"])
    try:
        with open(os.path.join([p for p in cgroups.paths(path) if os.path.isdir(p)][-1], "cgroup.procs"), "w") as f:
            f.write(str(straggler.pid))
        c.down()
        assert straggler.wait(timeout=10) == -signal.SIGKILL
    finally:
        if straggler.poll() is None:
            straggler.kill()
            straggler.wait()
    assert not [p for p in cgroups.paths(cgroups.cluster_path(c.cfg.name)) if os.path.exists(p)]  # v1 ones too
    assert not os.path.exists(f"/proc/{sleeper}")
