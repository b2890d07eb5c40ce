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
import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

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

# libc is already in the process: no ctypes.util.find_library (it imports tempfile, shutil and
# subprocess and runs ldconfig: ~6 ms and 0.6 MB in the supervisor, which needs none of them).
_libc = ctypes.CDLL(None, use_errno=True)
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


_netns_dir_shared: str | None = None  # the directory this process made a shared mount (once)


def _ensure_netns_dir() -> None:
    """Make /run/netns a shared mount, as iproute2 does, so netns files created
    later show up in every mount namespace (including `ip netns exec` ones).
    Once per process: MS_SHARED|MS_REC walks every mount below it (each
    namespace's, of every cluster on the machine), so doing it per namespace
    cost a node agent more with each pod already there (invent_group_ids and
    change_mnt_propagation in perf, ~1.4% of its CPU at 200 pods and growing)."""
    global _netns_dir_shared
    if _netns_dir_shared == NETNS_RUN_DIR and os.path.isdir(NETNS_RUN_DIR):
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC)
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)
    _netns_dir_shared = NETNS_RUN_DIR


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
    _persist_all([(flag, kind, path)], setup)


def _persist_all(items: list[tuple[int, str, str]], setup=None) -> None:
    """Each (flag, kind, path): made by one unshare in one fresh thread and
    bind-mounted at its path. A pod's network and UTS namespaces come from
    one thread this way, not a thread each (one thread start fewer per pod)."""
    made: list[str] = []
    try:
        for _flag, _kind, path in items:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
            made.append(path)

        def make() -> None:
            flags = 0
            for flag, _kind, _path in items:
                flags |= flag
            unshare(flags)
            if setup:
                setup()
            for _flag, kind, path in items:
                mount(f"/proc/thread-self/ns/{kind}", path, None, MS_BIND)

        _in_thread(make)
    except BaseException:
        for path in made:  # one mounted before another failed is unmounted too
            try:
                remove_ns_file(path)
            except OSError:
                pass
        raise


class NetnsOwner(NamedTuple):
    """Who creates a namespace, so that cleanup can attribute it exactly.

    marker is written as the loopback's interface alias inside the namespace
    (`ip link show lo` shows it), before the namespace gets its name, so no
    named namespace of knet's is ever unmarked; record_dir, when set, gets a
    file named after the namespace BEFORE it is created, so a crash cannot
    leave one that its owner does not know of."""

    marker: str
    record_dir: str | None = None


# A pod's eth0 with IPv6 sends link-local chatter as it comes up (DAD, MLD reports, router
# solicitations), which the node's bridge floods to every pod, and each pod's namespace processes
# it: O(pods on the node) of kernel work per new pod, a rollout quadratic in kworker and ksoftirqd
# time (perf, at 900 pods: 15% of both CPUs in veth_xmit, br_flood, ip6_rcv). knet's pod network
# is IPv4: a pod's namespace gives the links it receives no IPv6.
IPV6_DEFAULT = "/proc/sys/net/ipv6/conf/default/disable_ipv6"


def create_netns(name: str, owner: NetnsOwner | None = None, uts: tuple[str, str] | None = None,
                 ipv6_links: bool = True) -> str:
    """Create a named network namespace (visible to `ip netns`) with lo up;
    with `uts` (path, hostname), a UTS namespace with that hostname kept at
    path too, from the same thread (see create_uts). ipv6_links=False: links
    that arrive later get no IPv6 (lo keeps ::1), see IPV6_DEFAULT."""
    _ensure_netns_dir()
    path = netns_path(name)
    record = None
    if owner is not None and owner.record_dir:
        os.makedirs(owner.record_dir, mode=0o700, exist_ok=True)
        record = os.path.join(owner.record_dir, name)
        if os.path.exists(record):
            record = None  # an earlier attempt's: not ours to take back on failure
        else:
            os.close(os.open(record, os.O_WRONLY | os.O_CREAT, 0o600))

    def setup() -> None:
        _set_lo(owner.marker if owner is not None else None)
        if uts is not None:
            sethostname(uts[1])
        if not ipv6_links:
            try:
                with open(IPV6_DEFAULT, "w") as f:  # this thread's namespace's (net sysctls are per namespace)
                    f.write("1")
            except FileNotFoundError:  # a kernel without IPv6
                pass

    items = [(CLONE_NEWNET, "net", path)]
    if uts is not None:
        items.append((CLONE_NEWUTS, "uts", uts[0]))
    try:
        _persist_all(items, setup)
    except BaseException:
        if record:
            os.unlink(record)
        raise
    return path


# -- the loopback's alias through rtnetlink ----------------------------------------------
#
# A few hand-made messages instead of pyroute2: this runs in every `knet down`
# and `status`, which must stay quick to start.

_NLMSG_ERROR = 2
_RTM_NEWLINK = 16
_RTM_GETLINK = 18
_NLM_F_REQUEST = 1
_NLM_F_ACK = 4
_IFLA_IFALIAS = 20
_IFF_UP = 1
_LO_INDEX = 1  # the loopback is the first interface of every network namespace


def _nl_lo(sock, msg_type: int, flags: int, ifi_flags: int = 0, change: int = 0,
           attrs: bytes = b"") -> bytes:
    """Send one request about lo and return the answer's payload (after nlmsghdr)."""
    import struct

    body = struct.pack("BxHiII", 0, 0, _LO_INDEX, ifi_flags, change) + attrs
    sock.send(struct.pack("IHHII", 16 + len(body), msg_type, _NLM_F_REQUEST | flags, 1, 0) + body)
    data = sock.recv(65536)
    _length, rtype = struct.unpack_from("IH", data)
    if rtype == _NLMSG_ERROR:
        code = struct.unpack_from("i", data, 16)[0]
        if code:
            raise OSError(-code, f"rtnetlink on lo: {os.strerror(-code)}")
    return data[16:]


def _netlink():
    import socket

    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE


def _set_lo(alias: str | None) -> None:
    """In the calling thread's network namespace: lo up, and its alias if given."""
    import struct

    attrs = b""
    if alias:
        data = alias.encode() + b"\0"
        attrs = struct.pack("HH", 4 + len(data), _IFLA_IFALIAS) + data
        attrs += b"\0" * (-len(attrs) % 4)
    with _netlink() as s:
        _nl_lo(s, _RTM_NEWLINK, _NLM_F_ACK, _IFF_UP, _IFF_UP, attrs)


def _lo_alias(sock) -> str | None:
    import struct

    payload = _nl_lo(sock, _RTM_GETLINK, 0)
    off = 16  # after ifinfomsg
    while off + 4 <= len(payload):
        length, kind = struct.unpack_from("HH", payload, off)
        if length < 4:
            break
        if kind == _IFLA_IFALIAS:
            return payload[off + 4:off + length].rstrip(b"\0").decode(errors="replace")
        off += (length + 3) & ~3
    return None


def netns_markers(names: list[str]) -> dict[str, str | None]:
    """The owner marker (lo's alias) of each named namespace; None where there
    is none, or the name is not a namespace (a file left by a crash)."""
    out: dict[str, str | None] = dict.fromkeys(names)

    def read() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for name in names:
                try:
                    fd = os.open(netns_path(name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    setns(fd, CLONE_NEWNET)
                except OSError:
                    continue  # not a namespace
                finally:
                    os.close(fd)
                try:
                    sock = _netlink()  # bound to the namespace it was made in
                finally:
                    setns(home, CLONE_NEWNET)
                with sock:
                    try:
                        out[name] = _lo_alias(sock)
                    except OSError:
                        pass
        finally:
            os.close(home)

    _in_thread(read)
    return out


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


def name_netns(name: str, source: str = "/proc/self/ns/net") -> str:
    """Give an existing network namespace (by default the caller's) a name
    under /run/netns, as `ip netns attach` does: machine mode (knet.machine)
    names the machine's own namespace as its node's, so everything that
    enters a node by name finds the machine. delete_netns only unnames it."""
    _ensure_netns_dir()
    path = netns_path(name)
    if os.path.lexists(path):
        if inode(path) == inode(source):
            return path
        raise FileExistsError(errno.EEXIST, f"network namespace {name!r} already exists", path)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    try:
        mount(source, path, None, MS_BIND)
    except BaseException:
        os.unlink(path)
        raise
    return path


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
