"""The file system a pod's process sees: a container runtime's rootfs, without images.

A container sees its image read-write and the host not at all. knet has no
images, so a pod's processes see the host's files, but as a runtime would
mount them: everything read-only, a private /tmp, /run and /dev/shm (tmpfs),
a /dev with only the harmless devices, a /proc of the pod's own PID
namespace with runc's masked and read-only paths, a read-only /sys of the
pod's network namespace, and the volumes where volumeMounts say. knet's own
state (the store, tokens, sockets: /run/knet), /run/netns and the cluster's
state directory are detached from the view, not merely covered, so a pod's
mount namespace holds no reference to another pod's network namespace.

The plan (`MountPlan`) is worked out by the agent before any fork; `apply`
runs in the child between fork and exec, so it only makes system calls and
small Python, no imports, no allocations worth speaking of.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 1
SYS_MOUNT_SETATTR = 442  # the same numbers on every architecture (the new mount API, 5.2 and 5.12)
SYS_OPEN_TREE = 428
SYS_PIVOT_ROOT = 155 if os.uname().machine == "x86_64" else 41
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 4

# containerd's defaults for a non-privileged container (oci.populateDefaultUnixSpec), as runc applies them:
# a masked file is /dev/null bound over it, a masked directory an empty read-only tmpfs.
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# What a runtime's /dev holds (runc's default devices): (name, major, minor).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))

# Paths that are fresh tmpfs in every pod: a mount point under them never needs the host's help.
PRIVATE_DIRS = ("/run", "/tmp", "/dev", "/proc", "/sys")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.chroot.argtypes = [ctypes.c_char_p]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                   flags, data.encode() if data else None) != 0:
        raise _err(f"mount {target}")


def detach(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        raise _err(f"umount {target}")


def set_readonly(path: str, readonly: bool = True, recursive: bool = True) -> None:
    """mount_setattr(2): one call for a whole tree (MS_REMOUNT would take one per mount)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY if readonly else 0, 0 if readonly else MOUNT_ATTR_RDONLY, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, -100, path.encode(), AT_RECURSIVE if recursive else 0,
                     ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        raise _err(f"mount_setattr {path}")


def clone_tree(path: str) -> int:
    """A detached copy of the mounts at path (open_tree(2)): it can be attached
    later, after the view has detached the original (a plain bind from a
    detached mount is refused)."""
    fd = _libc.syscall(SYS_OPEN_TREE, -100, path.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    if fd < 0:
        raise _err(f"open_tree {path}")
    return fd


def attach_tree(fd: int, target: str) -> None:
    if _libc.syscall(SYS_MOVE_MOUNT, fd, b"", -100, target.encode(), MOVE_MOUNT_F_EMPTY_PATH) != 0:
        raise _err(f"move_mount {target}")
    os.close(fd)


@dataclass
class Bind:
    """A host path shown at `target` (the pod's files, its volumes)."""

    source: str
    target: str
    readonly: bool = True
    is_dir: bool = False


@dataclass
class MountPlan:
    binds: list[Bind] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # knet's state: detached, then an empty read-only tmpfs
    privileged: bool = False
    read_only_root: bool = False
    scaffold: str = ""  # an empty directory of the pod's, for a new "/" when a mount point is missing there
    root_dirs: list[str] = field(default_factory=list)  # top-level directories the new "/" must add
    shadowed: list[str] = field(default_factory=list)  # read-only directories that need a mount point made
    tmp_dir: str = ""  # a directory of the pod's as /tmp (a built-in server's container: its execs share it)


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def plan_mountpoints(targets: list[str], exists=os.path.exists) -> tuple[list[str], list[str]]:
    """Where a missing mount point must be made in a read-only view: its deepest
    existing ancestor. Pure (exists is the host's view), so it is tested alone.

    Returns (top-level names the new "/" must add, directories to shadow with a
    tmpfs that carries their entries over). Under a pod's private tmpfs dirs
    (/run, /tmp, /dev) a mount point is simply made."""
    root_dirs: list[str] = []
    shadowed: list[str] = []
    for target in targets:
        if exists(target) or any(under(target, p) for p in PRIVATE_DIRS):
            continue
        parent = os.path.dirname(target.rstrip("/")) or "/"
        child = target
        while not exists(parent):
            child, parent = parent, os.path.dirname(parent) or "/"
        if parent == "/":
            name = child.strip("/").split("/")[0]
            if name not in root_dirs:
                root_dirs.append(name)
        elif parent not in shadowed and not any(under(parent, s) for s in shadowed):
            shadowed.append(parent)
    return root_dirs, shadowed


# -- the child's side: between fork and exec ------------------------------------------


def _mountinfo_points() -> list[str]:
    with open("/proc/self/mountinfo", "rb") as f:
        data = f.read().decode(errors="surrogateescape")
    points = []
    for line in data.splitlines():
        point = line.split(" ", 5)[4]
        if "\\" in point:
            point = point.encode("latin-1", "surrogateescape").decode("unicode_escape")
        points.append(point)
    return points


def _detach_under(tops: list[str]) -> None:
    """Detach every mount at or below each of tops: the view then holds no
    reference to them (a pod netns file, another pod's uts file)."""
    points = sorted({p for p in _mountinfo_points() if any(under(p, t) for t in tops)}, key=len)
    done: list[str] = []
    for p in points:
        if any(under(p, d) for d in done):
            continue
        try:
            detach(p)
            done.append(p)
        except OSError:
            pass


def _carry_over(src_fd: int, src: str, dst: str, skip: frozenset[str] = frozenset()) -> None:
    """Make dst (a fresh tmpfs) show what src showed, entry by entry: directories
    and files bound from the original (with what is mounted below them),
    symlinks copied; a directory in skip is made empty."""
    base = f"/proc/self/fd/{src_fd}"
    for entry in os.scandir(src):
        path = os.path.join(dst, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), path)
            continue
        if entry.is_dir(follow_symlinks=False):
            os.mkdir(path, entry.stat(follow_symlinks=False).st_mode & 0o7777)
            if entry.name in skip:
                continue
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        mount(f"{base}/{entry.name}", path, None, MS_BIND | MS_REC)


# The top-level directories a pod's "/" gets empty (each is a fresh mount in the pod), so the
# host's mounts below them (/run/netns's, every pod's namespace files) are never in its view.
FRESH_TOP = frozenset({"run", "tmp", "proc", "sys", "dev"})


def _new_root(scaffold: str, root_dirs: list[str], binds: list[Bind], privileged: bool) -> None:
    """A "/" of the host's top-level entries (a tmpfs: a pod's mount points can
    be made in it without a directory made on the host, /data/demo), then
    pivot_root into it and one lazy unmount of the whole old tree: the view
    keeps no reference to the host's other mounts (runc's way; unmounting each
    of /run's hundreds of mounts cost a synchronize_rcu apiece)."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    mount("tmpfs", scaffold, "tmpfs", MS_NOSUID, "mode=755")
    _carry_over(fd, "/", scaffold, FRESH_TOP - {"dev"} if privileged else FRESH_TOP)
    os.close(fd)
    for name in root_dirs:
        os.mkdir(os.path.join(scaffold, name), 0o755)
    for b in binds:
        if b.target.strip("/").split("/")[0] in root_dirs:
            _mountpoint(scaffold + b.target, b.is_dir)
    old = os.path.join(scaffold, ".oldroot")
    os.mkdir(old)
    if _libc.syscall(SYS_PIVOT_ROOT, scaffold.encode(), old.encode()) != 0:
        raise _err("pivot_root")
    os.chdir("/")
    detach("/.oldroot")
    os.rmdir("/.oldroot")


def _shadow(path: str) -> None:
    """A read-only directory in which a mount point must be made: a tmpfs over it
    that carries its entries over (made read-only again at the end)."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY)
    st = os.stat(path)
    mount("tmpfs", path, "tmpfs", MS_NOSUID, f"mode={st.st_mode & 0o7777:o}")
    _carry_over(fd, f"/proc/self/fd/{fd}", path)
    os.close(fd)


def _dev(privileged: bool, pts_tree: int) -> None:
    """A runtime's /dev: a tmpfs with the harmless devices (no disks, no /dev/mem)."""
    if privileged:
        return  # privileged: the host's devices, as a privileged container gets them
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        path = "/dev/" + name
        os.mknod(path, 0o20666, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for name, target in DEV_LINKS:
        os.symlink(target, "/dev/" + name)
    os.mkdir("/dev/pts")
    # The host's terminals instance: a terminal kubectl exec -t or attach opened must still be
    # the pod's /dev/pts/N for tty(1). (A devpts instance of the pod's own is the next step.)
    attach_tree(pts_tree, "/dev/pts")
    os.mkdir("/dev/shm")
    os.mkdir("/dev/mqueue")


def _mask(privileged: bool) -> None:
    if privileged:
        return
    for path in MASKED_PATHS:
        try:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
            elif os.path.exists(path):
                mount("/dev/null", path, None, MS_BIND)
        except OSError:
            pass
    for path in READONLY_PATHS:
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            set_readonly(path)


def _mountpoint(target: str, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if is_dir:
        os.mkdir(target, 0o755)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


def apply(plan: MountPlan) -> None:
    """Build the pod's view in the calling process's new mount namespace (it
    must be in the pod's PID namespace already, for /proc). The binds' sources
    are cloned first, while the view still shows them."""
    mount(None, "/", None, MS_REC | MS_SLAVE)
    trees = [clone_tree(b.source) for b in plan.binds]
    tmp_tree = clone_tree(plan.tmp_dir) if plan.tmp_dir else -1
    pts_tree = -1 if plan.privileged else clone_tree("/dev/pts")
    _new_root(plan.scaffold, plan.root_dirs, plan.binds, plan.privileged)
    elsewhere = [p for p in plan.hidden if not any(under(p, "/" + top) for top in FRESH_TOP)]
    if elsewhere:  # knet's state outside /run (KNET_STATE_ROOT): its mounts go from the view too
        _detach_under(elsewhere)
    set_readonly("/")
    flags = MS_NOSUID | MS_NODEV
    mount("tmpfs", "/run", "tmpfs", flags | MS_NOEXEC, "mode=755,size=65536k")
    if tmp_tree >= 0:
        attach_tree(tmp_tree, "/tmp")
        set_readonly("/tmp", False)
    else:
        mount("tmpfs", "/tmp", "tmpfs", flags, "mode=1777")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if plan.privileged else MS_RDONLY))
    _dev(plan.privileged, pts_tree)
    mount("shm", "/dev/shm", "tmpfs", flags | MS_NOEXEC, "mode=1777,size=65536k")
    _mask(plan.privileged)
    for path in elsewhere:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
    for path in plan.shadowed:
        _shadow(path)
    for b, fd in zip(plan.binds, trees, strict=True):
        _mountpoint(b.target, b.is_dir)
        attach_tree(fd, b.target)
        set_readonly(b.target, b.readonly)
    for path in plan.shadowed:
        set_readonly(path, recursive=False)
    if plan.read_only_root:
        for path in ("/tmp", "/run"):
            set_readonly(path, recursive=False)
