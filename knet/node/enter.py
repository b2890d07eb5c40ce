"""Entering a pod: the one way a process joins a pod's namespaces.

A container's command (started by the pod worker), an exec probe and `knet
exec` all enter the pod here, so they cannot drift apart: the same network
and UTS namespaces, a mount namespace of their own in which the pod's
resolv.conf, hosts, hostname and nsswitch.conf lie over /etc's (as `ip netns
exec` does for resolv.conf; the nsswitch.conf so glibc asks files, then the
pod's nameservers, whatever the host's says) and /sys shows the pod's interfaces, and the user, groups,
no-new-privileges and working directory the container's securityContext and
spec ask for. Light (no trio, no netlink): `knet exec` imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from knet.net import ns
from knet.node.podspec import security
from knet.node.sandbox import Sandbox


@contextmanager
def entering(sb: Sandbox, pod: dict, container: dict) -> Iterator[Callable[[], None]]:
    """Open the pod's namespaces and yield `enter`, to be called in the process
    that is to run in the pod just before it execs: a child between fork and
    exec (a preexec_fn), or `knet exec` itself. Everything it needs is worked
    out here, before any fork. The namespace files stay open (close-on-exec, so
    the command never inherits them) until the block ends.

    The pod's files are bound over /etc's where /etc has them, and must be in
    the sandbox: a missing one is an error, not a silently different view."""
    uid, gid, groups, no_new_privs = security(pod, container)
    workdir = container.get("workingDir") or "/"
    binds = sb.files()
    net_fd = os.open(sb.netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        uts_fd = os.open(sb.uts_path, os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(net_fd)
        raise

    def enter() -> None:
        ns.setns(net_fd, ns.CLONE_NEWNET)
        ns.setns(uts_fd, ns.CLONE_NEWUTS)
        ns.unshare(ns.CLONE_NEWNS)
        ns.private_mounts_for_netns()
        for src, dst in binds:
            if os.path.exists(dst):
                ns.mount(src, dst, None, ns.MS_BIND)
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
        os.chdir(workdir)

    try:
        yield enter
    finally:
        os.close(net_fd)
        os.close(uts_fd)
