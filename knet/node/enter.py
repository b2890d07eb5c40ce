"""Entering a pod: the one way a process joins a pod's namespaces.

A container's command (started by the pod worker), an exec probe, `kubectl
exec` (knet.node.kubeletserver) and `knet exec` all enter the pod here, so
they cannot drift apart. Two ways in:

- a container's first process starts a new sandboxed context: the pod's
  network and UTS namespaces, the container's cgroup, a PID namespace of its
  own (it is PID 1 there; or the pod's shared one, shareProcessNamespace), a
  new mount namespace built by knet.node.mounts (host read-only, private
  /tmp /run /dev/shm, masked /proc, knet's state detached, the volumes), the
  capabilities of knet.node.caps, then the user, groups and no_new_privs;
- anything run in a running container (exec, exec probes) joins that
  container's PID and mount namespaces and cgroup, so `ps` there shows the
  container's processes and the files are the container's, then drops to the
  same capabilities and user.

A PID namespace cannot be entered by the process itself (setns/unshare of a
PID namespace act on its children), so the namespace is set on the thread
that forks (`pid_namespace_for_children`), and restored right after.

With the sandbox off (the cluster file's knet.podSandbox: false, for
comparison figures) a process only gets the network and UTS namespaces and a
mount namespace with the pod's /etc files, as before issue 15.

Light (no trio, no netlink): `knet exec` imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from knet.net import ns
from knet.node import caps, cgroups, mounts
from knet.node.podspec import security
from knet.node.sandbox import Sandbox

CLONE_NEWPID = 0x20000000


@dataclass
class Entry:
    """What a fork needs to land in the pod: `enter` for the child (a
    preexec_fn), and the PID namespace to fork into (`pidns`: a descriptor to
    join, NEW for a new one, None for the forking process's own)."""

    enter: Callable[[], None]
    pidns: int | str | None


NEW = "new"


def _container_pid(sb: Sandbox, container: str) -> int | None:
    """The running process of the container (recorded by the pod worker)."""
    import json

    try:
        with open(os.path.join(sb.dir, "containers.json")) as f:
            rec = json.load(f).get(container)
    except (OSError, ValueError):
        return None
    if not rec:
        return None
    from knet.net import procs

    if procs.alive(rec["pid"]) and procs.start_time(rec["pid"]) == rec.get("start"):
        return rec["pid"]
    return None


def shared_pidns_pid(sb: Sandbox) -> int | None:
    """The pod's pause process (its shared PID namespace's init), if it runs."""
    return _container_pid(sb, "")


def mount_plan(sb: Sandbox, pod: dict, container: dict) -> mounts.MountPlan:
    """The container's view (knet.node.mounts), worked out before the fork."""
    sc = container.get("securityContext") or {}
    binds = [mounts.Bind(src, dst, readonly=False) for src, dst in sb.files() if os.path.exists(dst)]
    vols = sb.volume_sources(pod)
    for m in container.get("volumeMounts") or []:
        src = vols.get(m.get("name"))
        if src is None or not os.path.lexists(src):
            continue  # not prepared: a built-in server's pod mounts nothing (knet.node.podworker.prepare_volumes)
        if m.get("subPath"):
            base, src = src, os.path.join(src, m["subPath"])
            if not os.path.realpath(src).startswith(os.path.realpath(base) + "/"):
                raise OSError(f"subPath {m['subPath']!r} leaves volume {m.get('name')!r}")
            if not os.path.lexists(src) and os.path.isdir(base):
                os.makedirs(src, 0o777, exist_ok=True)  # kubelet makes a missing subPath a directory
        binds.append(mounts.Bind(src, m["mountPath"], readonly=bool(m.get("readOnly")), is_dir=os.path.isdir(src)))
    binds += [mounts.Bind(path, path) for path in sb.exposed_files(pod, container)]
    root_dirs, shadowed = mounts.plan_mountpoints([b.target for b in binds])
    tmp_dir = ""
    if not (container.get("command") or container.get("args")):
        # A built-in server's container has no process whose /tmp an exec could join: its execs
        # (and exec probes) share a directory of the pod's instead, as they would the container's.
        tmp_dir = os.path.join(sb.dir, "tmp", container["name"])
        if not os.path.isdir(tmp_dir):
            os.makedirs(tmp_dir)
            os.chmod(tmp_dir, 0o1777)
    return mounts.MountPlan(binds=binds, hidden=sb.hidden, privileged=bool(sc.get("privileged")),
                            read_only_root=bool(sc.get("readOnlyRootFilesystem")),
                            scaffold=os.path.join(sb.dir, "rootfs"), root_dirs=root_dirs, shadowed=shadowed,
                            tmp_dir=tmp_dir)


@contextmanager
def entering(sb: Sandbox, pod: dict, container: dict, join: int | None = None,
             cgroup: str | None = None, new_pidns: int | None = None) -> Iterator[Entry]:
    """Open what the pod's process needs and yield its Entry. `join`: the pid of
    a running process of the container to join (exec); else, with the sandbox
    on, a new context (a container's start): `new_pidns` the pid whose PID
    namespace to share (shareProcessNamespace), else a new one. Everything is
    worked out here, before any fork; the descriptors stay open
    (close-on-exec) until the block ends.

    The pod's files are bound over /etc's where /etc has them, and must be in
    the sandbox: a missing one is an error, not a silently different view."""
    uid, gid, groups, no_new_privs = security(pod, container)
    workdir = container.get("workingDir") or "/"
    fds: list[int] = []

    def opened(path: str) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        fds.append(fd)
        return fd

    try:
        net_fd = opened(sb.netns_path)
        uts_fd = opened(sb.uts_path)
        if not sb.sandboxed:
            binds = sb.files()

            def enter_plain() -> None:
                ns.setns(net_fd, ns.CLONE_NEWNET)
                ns.setns(uts_fd, ns.CLONE_NEWUTS)
                ns.unshare(ns.CLONE_NEWNS)
                ns.private_mounts_for_netns()
                for src, dst in binds:
                    if os.path.exists(dst):
                        ns.mount(src, dst, None, ns.MS_BIND)
                _drop_user(uid, gid, groups, no_new_privs)
                os.chdir(workdir)
            yield Entry(enter_plain, None)
            return
        bits = caps.capability_set(container)
        root = uid is None or uid == 0
        if join is not None:
            pid_fd = opened(f"/proc/{join}/ns/pid")
            mnt_fd = opened(f"/proc/{join}/ns/mnt")
            cg = cgroup

            def enter_running() -> None:
                if cg:
                    cgroups.join(cg)
                ns.setns(net_fd, ns.CLONE_NEWNET)
                ns.setns(uts_fd, ns.CLONE_NEWUTS)
                ns.setns(mnt_fd, ns.CLONE_NEWNS)
                _drop(bits, root, uid, gid, groups, no_new_privs)
                os.chdir(workdir)
            yield Entry(enter_running, pid_fd)
            return
        plan = mount_plan(sb, pod, container)
        os.makedirs(plan.scaffold, exist_ok=True)
        pidns: int | str = opened(f"/proc/{new_pidns}/ns/pid") if new_pidns else NEW

        def enter_new() -> None:
            if cgroup:
                cgroups.join(cgroup)
            ns.setns(net_fd, ns.CLONE_NEWNET)
            ns.setns(uts_fd, ns.CLONE_NEWUTS)
            ns.unshare(ns.CLONE_NEWNS)
            mounts.apply(plan)
            _drop(bits, root, uid, gid, groups, no_new_privs)
            os.chdir(workdir)
        yield Entry(enter_new, pidns)
    finally:
        for fd in fds:
            os.close(fd)


def _drop_user(uid: int | None, gid: int | None, groups: list[int], no_new_privs: bool) -> None:
    if no_new_privs:
        ns.no_new_privs()
    if gid is not None or uid is not None:
        os.setgroups(groups)
    if gid is not None:
        os.setgid(gid)
    elif uid is not None:
        os.setgid(0)
    if uid is not None:
        os.setuid(uid)


def _drop(bits: int, root: bool, uid: int | None, gid: int | None, groups: list[int], no_new_privs: bool) -> None:
    """Bounding set (needs CAP_SETPCAP, so first), user and groups (need
    CAP_SETUID/SETGID, whatever the container keeps), then what root keeps."""
    caps.limit_bounding(bits)
    _drop_user(uid, gid, groups, no_new_privs)
    if root:
        caps.limit_process(bits)


def fork_in(pidns: int | str | None, fork: Callable[[], object]) -> object:
    """Call fork() (which forks: Popen, os.fork) with the calling thread's
    children born in pidns: a new PID namespace (NEW), the one a descriptor
    names, or the thread's own (None). The thread is put back after."""
    if pidns is None:
        return fork()
    me = os.getpid()
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if pidns == NEW:
            ns.unshare(CLONE_NEWPID)
        else:
            ns.setns(pidns, CLONE_NEWPID)
        try:
            return fork()
        finally:
            if os.getpid() == me:  # not in an os.fork() child: it lives in the namespace
                ns.setns(own, CLONE_NEWPID)
    finally:
        os.close(own)


def non_root_error(pod: dict, container: dict) -> str | None:
    """kubelet's verifyRunAsNonRoot: with no image (so no image user) a
    container runs as root unless runAsUser says otherwise; the message is
    kubelet's, reported as CreateContainerConfigError."""
    psc = pod["spec"].get("securityContext") or {}
    csc = container.get("securityContext") or {}
    non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    if not non_root:
        return None
    m = pod["metadata"]
    who = f'(pod: "{m.get("name")}_{m.get("namespace")}({m.get("uid")})", container: {container["name"]})'
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if uid == 0:
        return f"container's runAsUser breaks non-root policy {who}"
    if uid is None:
        return f"container has runAsNonRoot and image will run as root {who}"
    return None


def exec_target(sb: Sandbox, container: str) -> tuple[int | None, str | None]:
    """(the container's running process to join, its cgroup) for an exec into
    it; (None, the cgroup) when nothing runs there (a built-in server's
    container): the command then gets a sandboxed context of its own."""
    if not sb.sandboxed:
        return None, None
    pod_cg = cgroups.pod_path(sb.cluster, sb.uid)
    cg = os.path.join(pod_cg, container) if pod_cg else None
    if cg and not os.path.isdir(cg):
        cg = None
    return _container_pid(sb, container), cg
