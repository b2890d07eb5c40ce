"""Machines for testing `knet init`/`join`/`reset` on this one machine.

knet's machine mode configures the machine's own network namespace, which on
this host must never happen (DESIGN.md's safety rules). So each "machine" is
made of namespaces the test creates: a network namespace with eth0 on a
bridge in a LAN namespace (also the test's), and a mount namespace of its own
in which /run/netns and /run/knet are fresh tmpfs (its pods' namespace names
and its state are its own, as on a separate machine). Each machine runs knet
under its own cluster name, so its pods' cgroups (knet-<cluster>) are its own. A holder process (`sleep`)
keeps the mount namespace; commands run in the machine with nsenter into the
holder's mount and network namespaces, so inside, knet's "root namespace"
is the machine's.

Everything is removed by Lab.close, also after a failure: the holders (and,
before them, any knet process still in a machine, which `knet reset` should
already have ended), the LAN and machine namespaces.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from knet.node import cgroups

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KNET = [sys.executable, "-m", "knet.cli"]

HOLDER_SETUP = ("mkdir -p /run/netns /run/knet && mount -t tmpfs -o mode=755 knet-machine /run/netns "
                "&& mount -t tmpfs -o mode=755 knet-machine /run/knet && echo ready && exec sleep infinity")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _ns_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


@dataclass
class Machine:
    name: str  # its network namespace (the test's)
    ip: str
    holder: subprocess.Popen
    cluster: str  # the local cluster name knet uses on it (its state directory, its cgroup)

    def run(self, *argv: str, timeout: float = 120, check: bool = True, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """A command inside the machine: its mount and network namespaces."""
        cmd = ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, cwd=REPO,
                             env={**os.environ, **(env or {})})
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} on {self.name} exited {out.returncode}:\n"
                                 f"{out.stdout}\n{out.stderr}")
        return out

    def knet(self, *args: str, timeout: float = 180, check: bool = True, input: str | None = None):
        return self.run(*KNET, "--cluster", self.cluster, *args, timeout=timeout, check=check, input=input)

    def pids(self) -> list[int]:
        """Processes in this machine's network namespace (nothing of the host's is ever there)."""
        net = _ns_inode(self.holder.pid, "net")
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.holder.pid and _ns_inode(int(entry), "net") == net:
                out.append(int(entry))
        return out


@dataclass
class Lab:
    """A LAN of emulated machines, 192.168.77.0/24."""
    prefix: str = field(default_factory=lambda: "ktm" + secrets.token_hex(3))
    machines: list[Machine] = field(default_factory=list)

    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    def start(self, count: int) -> list[Machine]:
        _ip("netns", "add", self.lan)
        _ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.lan, "link", "set", "br0", "up")
        for i in range(1, count + 1):
            name, ip = f"{self.prefix}-m{i}", f"192.168.77.{10 + i}"
            _ip("netns", "add", name)
            _ip("-n", self.lan, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", self.lan, "link", "set", f"p{i}", "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            # nsenter, not `ip netns exec`: /sys stays the host's, with its cgroup mounts (v2 or hybrid)
            holder = subprocess.Popen(["nsenter", f"--net=/run/netns/{name}", "unshare", "--mount", "--propagation",
                                       "private", "sh", "-c", HOLDER_SETUP], stdout=subprocess.PIPE, text=True,
                                      start_new_session=True)
            machine = Machine(name, ip, holder, f"{self.prefix}m{i}")
            self.machines.append(machine)
            line = holder.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"machine {name} did not come up: {line!r}")
            self._settle(holder)
        return self.machines

    @staticmethod
    def _settle(holder: subprocess.Popen) -> None:
        """Until the holder is `sleep` (exec'd), so its namespaces are the machine's for good."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{holder.pid}/comm") as f:
                    if f.read().strip() == "sleep":
                        return
            except OSError:
                return
            time.sleep(0.01)

    def close(self) -> None:
        for m in self.machines:
            for pid in m.pids():  # knet reset should have ended them all; a failed test may not have run it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cgroups.remove(cgroups.cluster_path(m.cluster) or "")  # its pods' processes and cgroups, v1 ones too
            try:
                os.killpg(m.holder.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            m.holder.wait()
            subprocess.run(["ip", "netns", "del", m.name], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.lan], capture_output=True)
