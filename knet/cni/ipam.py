"""host-local style address management for one node's podCIDR.

As the reference host-local plugin keeps it: one file per allocated address
(named by the address, holding `<containerID>\\n<ifname>`) created with
O_EXCL, so two allocations can never get the same address even from separate
processes; a lock around each allocation; round-robin from the last
reserved address, so a freed address is not reused at once. Unlike
host-local it has GC: every allocation not in the valid attachments goes.

Unlike host-local, finding an attachment's address does not read every
allocation: `owners/<containerID>.<ifname>` names it. host-local's scan made
each ADD on a node cost one file read per pod already there (a node filling
to 300 pods read 45,000 files); the address files stay the truth, the index
is checked against them, and attachments made before it existed are still
found by the scan.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from contextlib import contextmanager

from knet.cni.spec import INVALID_CONFIG, NOT_AVAILABLE, CniError


class Ipam:
    def __init__(self, data_dir: str, subnet: str, gateway: str | None = None):
        try:
            self.net = ipaddress.ip_network(subnet, strict=True)
        except ValueError as e:
            raise CniError(INVALID_CONFIG, "invalid network configuration", f"ipam.subnet: {subnet!r}: {e}") from None
        if self.net.num_addresses < 4:
            raise CniError(INVALID_CONFIG, "invalid network configuration",
                           f"ipam.subnet: Network {subnet} too small to allocate from")
        self.gateway = ipaddress.ip_address(gateway) if gateway else self.net.network_address + 1
        if self.gateway not in self.net:
            raise CniError(INVALID_CONFIG, "invalid network configuration",
                           f"ipam.gateway: {gateway} is not in {subnet}")
        self.dir = data_dir
        self.owners = os.path.join(data_dir, "owners")
        os.makedirs(self.owners, exist_ok=True)

    @contextmanager
    def _locked(self):
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _pool(self, start_after: ipaddress.IPv4Address | None):
        """Usable addresses in round-robin order from just after start_after,
        generated lazily (a /16 has 65k of them)."""
        first, last = int(self.net.network_address) + 1, int(self.net.broadcast_address) - 1
        size = last - first + 1
        begin = int(start_after) + 1 if start_after is not None and first <= int(start_after) <= last else first
        for i in range(size):
            ip = ipaddress.ip_address(first + (begin - first + i) % size)
            if ip != self.gateway:
                yield ip

    def _owner(self, ip: str) -> tuple[str, str] | None:
        try:
            with open(os.path.join(self.dir, ip)) as f:
                parts = f.read().split()
        except OSError:
            return None
        return (parts[0], parts[1] if len(parts) > 1 else "")

    def _index_path(self, container: str, ifname: str) -> str | None:
        name = f"{container}.{ifname}"
        if not container or "/" in name or name.startswith(".") or "\0" in name:
            return None
        return os.path.join(self.owners, name)

    def _indexed(self, container: str, ifname: str) -> str | None:
        """The address the index names for (container, ifname), if its file agrees."""
        path = self._index_path(container, ifname)
        if path is None:
            return None
        try:
            with open(path) as f:
                ip = f.read().strip()
        except OSError:
            return None
        return ip if self._owner(ip) == (container, ifname) else None

    def _index(self, container: str, ifname: str, ip: str) -> None:
        path = self._index_path(container, ifname)
        if path is not None:
            with open(path + ".tmp", "w") as f:
                f.write(ip)
            os.replace(path + ".tmp", path)

    def _unindex(self, container: str, ifname: str) -> None:
        path = self._index_path(container, ifname)
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def allocations(self) -> dict[str, tuple[str, str]]:
        out = {}
        for name in os.listdir(self.dir):
            try:
                ipaddress.ip_address(name)
            except ValueError:
                continue
            owner = self._owner(name)
            if owner:
                out[name] = owner
        return out

    def allocate(self, container: str, ifname: str, requested: str | None = None) -> ipaddress.IPv4Address:
        with self._locked():
            ip = self._indexed(container, ifname) or (None if self._index_path(container, ifname)
                                                      else self._scan(container, ifname))
            if ip:
                raise CniError(INVALID_CONFIG, "invalid network configuration",
                               f"duplicate allocation is not allowed: {container}/{ifname} already has {ip}")
            if requested:
                candidates = [ipaddress.ip_address(requested)]
                if candidates[0] not in self.net or candidates[0] == self.gateway:
                    raise CniError(INVALID_CONFIG, "invalid network configuration",
                                   f"requested IP {requested} is not available in {self.net}")
            else:
                candidates = self._pool(self._last())
            for ip in candidates:
                try:
                    fd = os.open(os.path.join(self.dir, str(ip)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(f"{container}\n{ifname}")
                self._index(container, ifname, str(ip))
                with open(os.path.join(self.dir, "last_reserved_ip.0"), "w") as f:
                    f.write(str(ip))
                return ip
        raise CniError(NOT_AVAILABLE if not requested else INVALID_CONFIG,
                       "no IP addresses available" if not requested else "requested IP is taken",
                       f"range {self.net} is exhausted" if not requested else f"{requested} is already allocated")

    def _last(self) -> ipaddress.IPv4Address | None:
        try:
            with open(os.path.join(self.dir, "last_reserved_ip.0")) as f:
                return ipaddress.ip_address(f.read().strip())
        except (OSError, ValueError):
            return None

    def release(self, container: str, ifname: str) -> list[str]:
        """Free what (container, ifname) holds; nothing held is fine (DEL is idempotent)."""
        freed = []
        with self._locked():
            ip = self._indexed(container, ifname)
            if ip:
                os.unlink(os.path.join(self.dir, ip))
                freed.append(ip)
            else:  # made before the index, or by a host-local-style writer: look at every file
                for ip, owner in self.allocations().items():
                    if owner == (container, ifname) or owner == (container, ""):
                        os.unlink(os.path.join(self.dir, ip))
                        freed.append(ip)
            self._unindex(container, ifname)
        return freed

    def find(self, container: str, ifname: str) -> str | None:
        return self._indexed(container, ifname) or self._scan(container, ifname)

    def _scan(self, container: str, ifname: str) -> str | None:
        for ip, owner in self.allocations().items():
            if owner == (container, ifname):
                return ip
        return None

    def gc(self, valid: set[tuple[str, str]]) -> list[str]:
        freed = []
        with self._locked():
            for ip, owner in self.allocations().items():
                if owner not in valid:
                    os.unlink(os.path.join(self.dir, ip))
                    freed.append(ip)
            for name in os.listdir(self.owners):  # index entries whose address went
                container, _, ifname = name.rpartition(".")
                if not self._indexed(container, ifname):
                    self._unindex(container, ifname)
        return freed

    def free_count(self) -> int:
        usable = self.net.num_addresses - 2 - 1  # network, broadcast, gateway
        return usable - len(self.allocations())
