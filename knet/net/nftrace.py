"""The kernel edge of `knet trace`: arm nftables tracing for one flow in the
namespaces it may cross, read the kernel's trace events, and take every trace
rule away again.

Per namespace a table of its own, `ip knet-trace-<run>`, holds two base
chains (prerouting and output, priority -350: before conntrack, the proxy's
DNAT and every other knet chain) whose rules set `meta nftrace` only for the
flow's own packets; forward, input and postrouting keep the bit within the
namespace (it is cleared when a packet changes namespace, hence a table in
each). Trace events come from the netlink group NFNLGRP_NFTRACE, joined in
each namespace before the first packet is sent.

Nothing may stay behind: `Tracer` is a context manager whose exit deletes
every table it made, with SIGINT and SIGTERM held off meanwhile; before
making any, it writes a record (`<state>/trace/<pid>-<n>.json`: the process,
the table, the namespaces) so that a tracer killed outright is cleaned up by
the next run (`sweep`) — and `knet down` removes the namespaces themselves.
The table's name (`knet-trace-<pid>-<n>`) and its comment mark it as a trace's.

Sockets and libnftables contexts are opened inside each namespace by a
helper thread (a netlink socket stays in the namespace it was made in), so
the calling thread never changes namespace.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import socket
import struct
import threading
from collections.abc import Iterator

from knet.net import ns, procs

TABLE_PREFIX = "knet-trace-"
PRIORITY = -350
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTRACE = 9
RTM_GETROUTE = 26
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC = 1, 4, 5, 7

_counter = itertools.count(1)


class ArmError(RuntimeError):
    """nft refused a trace table."""


def table_script(table: str, rules: list[str]) -> str:
    """The trace table: `rules` are nft matches, each followed by `meta nftrace set 1`
    in both base chains."""
    body = "".join(f"\t\t{r} meta nftrace set 1\n" for r in rules)
    chains = "".join(
        f"\tchain {name} {{\n\t\ttype filter hook {name} priority {PRIORITY}; policy accept;\n{body}\t}}\n"
        for name in ("prerouting", "output"))
    return f"table ip {table} {{\n\tcomment \"knet trace {os.getpid()}\"\n{chains}}}\n"


def _trace_socket() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((0, 0))
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)
    s.setblocking(False)
    return s


class _Arm:
    """One namespace's handles: the trace socket, an nftables context, rtnetlink."""

    def __init__(self, label: str, path: str):
        import nftables

        from knet.net.rtnl import Rtnl

        self.label, self.path = label, path
        self.sock = _trace_socket()
        self.nft = nftables.Nftables()
        self.nft.set_handle_output(True)
        self.rtnl = Rtnl()
        self.armed = False

    def close(self) -> None:
        self.sock.close()
        self.rtnl.close()


def _in_namespaces(paths: dict[str, str], make) -> dict[str, object]:
    """make(label, path) inside each namespace, from one helper thread."""
    out: dict[str, object] = {}
    box: list[BaseException] = []

    def work() -> None:
        try:
            for label, path in paths.items():
                with ns.entered(net=path):
                    out[label] = make(label, path)
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=work)
    t.start()
    try:
        _join([t])
    except BaseException:
        for v in out.values():
            getattr(v, "close", lambda: None)()
        raise
    if box:
        for v in out.values():
            getattr(v, "close", lambda: None)()
        raise box[0]
    return out


def each(arms, fn) -> list[tuple[_Arm, object]]:
    """fn(arm) for every arm at once, one thread each: an nftables transaction that adds or removes
    a base chain waits for the kernel's RCU grace period (tens of ms on a busy machine), and
    libnftables releases the GIL meanwhile, so the namespaces wait together, not in turn."""
    arms = list(arms)
    results: list[object] = [None] * len(arms)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = fn(arms[i])
        except BaseException as e:  # handed to the caller
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(arms))]
    for t in threads:
        t.start()
    _join(threads)
    if errors:
        raise errors[0]
    return list(zip(arms, results, strict=True))


def _join(threads: list[threading.Thread]) -> None:
    """Wait for every thread even when a signal's exception (Ctrl-C) interrupts the wait, then
    raise it: a thread still adding a trace table must be done before clean-up looks for it."""
    interrupted: BaseException | None = None
    for t in threads:
        while t.is_alive():
            try:
                t.join()
            except BaseException as e:  # KeyboardInterrupt from SIGINT or the CLI's SIGTERM handler
                interrupted = interrupted or e
    if interrupted is not None:
        raise interrupted


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block is done (clean-up must finish)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    except (ValueError, OSError):
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Tracer:
    """Trace tables in `namespaces` ({label: netns path}) for the life of the block.

        with Tracer(record_dir, namespaces, rules) as t:
            ...send the packet...
            events = t.read(done=lambda: ..., timeout=1.0)
    """

    def __init__(self, record_dir: str, namespaces: dict[str, str], rules: list[str]):
        self.record_dir = record_dir
        self.namespaces = dict(namespaces)
        self.rules = list(rules)
        self.table = f"{TABLE_PREFIX}{os.getpid()}-{next(_counter)}"
        self.arms: dict[str, _Arm] = {}
        self.record_path = os.path.join(record_dir, f"{self.table[len(TABLE_PREFIX):]}.json")
        self.raw: dict[str, list[bytes]] = {label: [] for label in self.namespaces}

    # -- arming and disarming ------------------------------------------------------------

    def __enter__(self) -> Tracer:
        try:
            self._write_record()
            self.arms = _in_namespaces(self.namespaces, _Arm)  # type: ignore[assignment]
            script = table_script(self.table, self.rules)
            for arm in self.arms.values():
                arm.armed = True  # before the transaction: a half-known state is cleaned up too
            for arm, (rc, _out, err) in each(self.arms.values(), lambda a: a.nft.cmd(script)):
                if rc != 0:
                    raise ArmError(f"cannot arm tracing in {arm.label}: {err.strip().splitlines()[0] if err else rc}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete every trace table this tracer made, then its record."""
        with _signals_held():
            failed = []
            armed = [a for a in self.arms.values() if a.armed]
            for arm, (rc, _out, err) in each(armed, lambda a: a.nft.cmd(f"delete table ip {self.table}")):
                if rc != 0 and "No such file" not in err:
                    failed.append(arm.label)
            for arm in self.arms.values():
                arm.close()
            self.arms = {}
            if not failed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.record_path)

    def _write_record(self) -> None:
        os.makedirs(self.record_dir, mode=0o700, exist_ok=True)
        rec = {"pid": os.getpid(), "start": procs.start_time(os.getpid()), "table": self.table,
               "netns": sorted(self.namespaces.values())}
        tmp = self.record_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.replace(tmp, self.record_path)

    # -- reading --------------------------------------------------------------------------

    def drain(self) -> int:
        """Read what has arrived on every socket; how many reads had data."""
        n = 0
        for label, arm in self.arms.items():
            while True:
                try:
                    data = arm.sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as e:  # ENOBUFS: events were lost; say so rather than explain half a path
                    raise RuntimeError(f"trace events lost in {label}: {e.strerror}") from None
                if not data:
                    break
                self.raw[label].append(data)
                n += 1
        return n

    def wait(self, seconds: float) -> None:
        """Read until `seconds` pass with nothing new."""
        socks = [a.sock for a in self.arms.values()]
        while socks:
            ready, _, _ = select.select(socks, [], [], seconds)
            if not ready or not self.drain():
                return

    # -- what the explanation needs from each namespace -----------------------------------

    def listings(self, chains: dict[str, list[tuple[str, str, str]]]) -> dict[str, str]:
        """`nft -a list chain` of each (family, table, chain) wanted per namespace, the namespaces
        at once (nft 1.0.6 lists only the last of several chains asked in one call)."""
        def one(arm: _Arm) -> str:
            parts = [arm.nft.cmd(f"list chain {f} {t} {c}") for f, t, c in chains[arm.label]]
            return "".join(o for rc, o, _e in parts if rc == 0)

        return {arm.label: text for arm, text in each([self.arms[lb] for lb in chains], one)}

    def element(self, label: str, family: str, table: str, set_name: str, key: str) -> str:
        rc, out, _err = self.arms[label].nft.cmd(f"get element {family} {table} {set_name} {{ {key} }}")
        return out if rc == 0 else ""

    def links(self, label: str) -> dict[int, tuple[str, str]]:
        return {link.index: (link.name, link.kind or "") for link in self.arms[label].rtnl.links()}

    def route(self, label: str, dst: str) -> dict:
        """The kernel's route to `dst` in that namespace (`ip route get`): {oif, gateway, src}, or {} if none."""
        import ipaddress

        from knet.net.rtnl import RtnlError, _attr

        body = struct.pack("BBBBBBBBI", socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0)
        body += _attr(RTA_DST, ipaddress.IPv4Address(dst).packed)
        try:
            reply = self.arms[label].rtnl.request(RTM_GETROUTE, 0, body)
        except RtnlError:
            return {}
        from knet.net.rtnl import _parse_attrs

        a = _parse_attrs(reply, 12)
        out: dict = {}
        if RTA_OIF in a:
            out["oif"] = struct.unpack("I", a[RTA_OIF][:4])[0]
        if RTA_GATEWAY in a:
            out["gateway"] = str(ipaddress.IPv4Address(a[RTA_GATEWAY][:4]))
        if RTA_PREFSRC in a:
            out["src"] = str(ipaddress.IPv4Address(a[RTA_PREFSRC][:4]))
        return out


# -- leftovers ---------------------------------------------------------------------------------


def sweep(record_dir: str) -> list[str]:
    """Remove the trace tables of runs whose process is gone (killed before it
    could clean up); the namespaces it cleaned, for the caller to report."""
    import nftables

    cleaned: list[str] = []
    try:
        names = os.listdir(record_dir)
    except FileNotFoundError:
        return cleaned
    for name in names:
        path = os.path.join(record_dir, name)
        if not name.endswith(".json"):
            continue
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        pid = rec.get("pid")
        if isinstance(pid, int) and procs.alive(pid) and procs.start_time(pid) == rec.get("start"):
            continue  # a trace still running
        table = str(rec.get("table", ""))
        if not table.startswith(TABLE_PREFIX):
            continue
        paths = {p: p for p in rec.get("netns", []) if os.path.exists(p)}

        def remove(_label, _path, table=table) -> bool:
            rc, _out, _err = nftables.Nftables().cmd(f"delete table ip {table}")
            return rc == 0

        done = _in_namespaces(paths, remove)
        cleaned += [p for p, ok in done.items() if ok]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return cleaned

