"""Linux namespaces through libc: create, enter, and remove them.

Python 3.11 has no os.setns/os.unshare, so these are thin ctypes calls. A
namespace is kept alive by bind-mounting its /proc file somewhere, exactly as
`ip netns add` does, so it outlives every process and `ip netns exec` and
`nsenter` can enter it. Creation happens in a short-lived thread: unshare()
and setns() act on the calling thread only, so the rest of the process never
changes namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1

NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, flags, None), f"mount {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def no_new_privs() -> None:
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def die_with_parent(sig: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PDEATHSIG)")


def private_mounts_for_netns() -> None:
    """After unshare(CLONE_NEWNS), as `ip netns exec` does: stop mount events
    flowing back to the host and mount a sysfs that shows this network
    namespace's interfaces (/sys/class/net would otherwise be the host's)."""
    mount(None, "/", None, MS_REC | MS_SLAVE)
    try:
        umount("/sys")
    except OSError:
        pass
    mount("sysfs", "/sys", "sysfs", 0)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def _ensure_netns_dir() -> None:
    """Make /run/netns a shared mount, as iproute2 does, so netns files created
    later show up in every mount namespace (including `ip netns exec` ones)."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC)
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)


def _in_thread(fn) -> None:
    """Run fn in a fresh thread and re-raise what it raised: namespace changes
    stay in that thread, which then exits."""
    box: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # handed to the caller
            box.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if box:
        raise box[0]


def _persist(flag: int, kind: str, path: str, setup=None) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)

    def make() -> None:
        if flag == CLONE_NEWUTS:
            # The thread must have its own fs context to stay independent; UTS needs nothing more.
            pass
        unshare(flag)
        if setup:
            setup()
        mount(f"/proc/thread-self/ns/{kind}", path, None, MS_BIND)

    try:
        _in_thread(make)
    except BaseException:
        os.unlink(path)
        raise


def create_netns(name: str) -> str:
    """Create a named network namespace (visible to `ip netns`) with lo up."""
    _ensure_netns_dir()
    path = netns_path(name)

    def lo_up() -> None:
        import fcntl
        import socket
        import struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            ifr = struct.pack("16sH", b"lo", 0)
            flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS IFF_UP
        finally:
            s.close()

    _persist(CLONE_NEWNET, "net", path, lo_up)
    return path


def create_uts(path: str, hostname: str) -> str:
    """Create a UTS namespace with its own hostname, kept alive at path."""
    _persist(CLONE_NEWUTS, "uts", path, lambda: sethostname(hostname))
    return path


def remove_ns_file(path: str) -> None:
    """Unmount and remove a namespace file; quiet when it is already gone."""
    try:
        umount(path)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def delete_netns(name: str) -> None:
    remove_ns_file(netns_path(name))


def list_netns(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


@contextmanager
def entered(net: str | None = None, uts: str | None = None) -> Iterator[None]:
    """Enter namespaces in the current thread for the block, then go back."""
    saved = []
    try:
        for path, kind, flag in ((net, "net", CLONE_NEWNET), (uts, "uts", CLONE_NEWUTS)):
            if path:
                back = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY)
                saved.append((back, flag))
                target = os.open(path, os.O_RDONLY)
                try:
                    setns(target, flag)
                finally:
                    os.close(target)
        yield
    finally:
        for back, flag in reversed(saved):
            setns(back, flag)
            os.close(back)


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below prefix, deepest first (the order to unmount)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
