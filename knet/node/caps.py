"""Capabilities a pod's process keeps: containerd's default set, as the
securityContext changes it.

A process knet starts is root with every capability; a container runtime
gives root in a container only 14 of them (no CAP_SYS_ADMIN: no mount, no
setns into another namespace; no CAP_NET_ADMIN, no CAP_SYS_PTRACE...). The
set is worked out here, purely (`capability_set`), and applied in the child
between fork and exec (`drop_to`): the bounding set first (it needs
CAP_SETPCAP), then, once the user is set, effective/permitted/inheritable.
Ambient capabilities stay empty, as Kubernetes leaves them: a non-root
container's effective set is empty after exec, whatever `add` says.
"""

from __future__ import annotations

import ctypes
import os

NAMES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
         "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
         "CHECKPOINT_RESTORE")
NUMBER = {name: i for i, name in enumerate(NAMES)}

# containerd's oci.DefaultCapabilities (the CRI default for every container): CapBnd 00000000a80425fb.
DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
           "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522


class CapabilityError(ValueError):
    """A capability name that does not exist (the runtime refuses to start the container)."""


def _number(name: str) -> int:
    n = name.upper()
    n = n[4:] if n.startswith("CAP_") else n
    if n not in NUMBER:
        raise CapabilityError(f'unknown capability "CAP_{n}"')
    return NUMBER[n]


def mask(names) -> int:
    out = 0
    for name in names:
        out |= 1 << _number(name)
    return out


ALL = (1 << len(NAMES)) - 1


def capability_set(container: dict) -> int:
    """The container's capability mask, as containerd's CRI WithCapabilities
    builds it: privileged is everything; else the defaults, `add: [ALL]` gives
    everything and `drop: [ALL]` nothing, then each named add, then each named drop."""
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return ALL
    caps = sc.get("capabilities") or {}
    add = [str(c) for c in caps.get("add") or []]
    drop = [str(c) for c in caps.get("drop") or []]
    out = mask(DEFAULT)
    if any(c.upper() == "ALL" for c in add):
        out = ALL
    if any(c.upper() == "ALL" for c in drop):
        out = 0
    out |= mask(c for c in add if c.upper() != "ALL")
    out &= ~mask(c for c in drop if c.upper() != "ALL")
    return out


def names(bits: int) -> list[str]:
    return [n for i, n in enumerate(NAMES) if bits >> i & 1]


# -- the child's side -----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _fail(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def limit_bounding(bits: int) -> None:
    """Drop from the bounding set every capability not in bits (before setuid:
    it needs CAP_SETPCAP). The kernel may know fewer than NAMES."""
    for i in range(len(NAMES)):
        if bits >> i & 1:
            continue
        if _libc.prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1 and _libc.prctl(PR_CAPBSET_DROP, i, 0, 0, 0) != 0:
            raise _fail(f"dropping CAP_{NAMES[i]}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def limit_process(bits: int) -> None:
    """Effective and permitted to bits (within what the process still has),
    inheritable empty (containerd's since CVE-2022-24769)."""
    header = _Header(_CAP_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise _fail("capget")
    for i in range(2):
        keep = (bits >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted &= keep
        data[i].effective &= keep
        data[i].inheritable = 0
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")
