"""Packet capture inside a pod, a node or the ext host: tcpdump run in that network namespace.

Why tcpdump and not a raw socket of knet's own: its decoder knows every protocol a learner meets
(ARP, ICMP, TCP flags, DNS, VXLAN's inner frame with `-T vxlan`) and its pcap is what Wireshark
expects; knet only has to put it in the right namespace and stop it cleanly. It runs as
`setpriv --pdeathsig TERM nsenter --net=<netns> tcpdump ...`: nsenter execs tcpdump in the
namespace (only the network namespace: the capture needs nothing else of the pod), and the parent
death signal ends it if whoever started it dies without stopping it, so no capture outlives its
caller. tcpdump keeps root (`-Z root`) so it can write the pcap where the caller asked, never
resolves names (`-n`: a capture must not send DNS queries of its own from inside the pod), and
hands each packet over at once (`--immediate-mode`, `-U` for a pcap), so a test that stops it
right after its traffic finds every packet in the file.

The harness and `knet capture` share `start()`: it returns once tcpdump says it is listening
(its filter compiled and attached), so packets sent after it returns are seen.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.config import ClusterConfig

# The overlay as knet.node.network sets it up (Flannel's vxlan defaults); a unit test keeps
# these equal to that module's, which this one does not import (it would bring trio into a CLI call).
VXLAN_PORT = 8472
VXLAN_DEV = "knet.1"
DEFAULT_IFACE = "eth0"  # a pod's interface; a node's or the ext host's link to the LAN

_SUMMARY = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)")


class CaptureError(Exception):
    """A capture that cannot run; the message is one line, worded for the user."""


@dataclass(frozen=True)
class Target:
    label: str  # "pod default/web", "node/worker-1", "ext"
    netns: str  # the network namespace's name (under /run/netns)

    @property
    def netns_path(self) -> str:
        from knet.net.ns import netns_path

        return netns_path(self.netns)


def resolve(cfg: ClusterConfig, target: str, namespace: str | None = None,
            client: Client | None = None) -> Target:
    """POD, pod/NAME, node/NAME or ext -> its network namespace. A pod is looked up through
    the API (its uid names its sandbox); it must be on a node and have its sandbox."""
    if target == "ext":
        t = Target("ext", cfg.ext_netns)
    elif target.startswith("node/"):
        name = target[5:]
        if name not in (n.name for n in cfg.nodes):
            raise CaptureError(f'nodes "{name}" not found')
        t = Target(target, cfg.node_netns(name))
    else:
        name = target.split("/", 1)[1] if target.startswith(("pod/", "po/", "pods/")) else target
        ns_name = namespace or "default"
        if client is None:
            raise CaptureError("a pod target needs an API client")
        from knet.api.errors import ApiError
        from knet.api.resources import by_kind

        try:
            pod = client.get(by_kind("Pod"), ns_name, name)
        except ApiError as e:
            raise CaptureError(e.message) from None
        if not pod["spec"].get("nodeName"):
            raise CaptureError(f"pod {name} is not scheduled to a node yet")
        if pod["spec"].get("hostNetwork"):
            t = Target(f"pod {ns_name}/{name} (hostNetwork: node/{pod['spec']['nodeName']})",
                       cfg.node_netns(pod["spec"]["nodeName"]))
        else:
            t = Target(f"pod {ns_name}/{name}", cfg.pod_netns(pod["metadata"]["uid"]))
    if not os.path.exists(t.netns_path):
        raise CaptureError(f"{t.label} has no network namespace (is the cluster up, the pod running?)")
    return t


def overlay_filter(bpf: str = "") -> str:
    """The VXLAN packets, narrowed by the caller's filter (which sees the outer headers)."""
    base = f"udp port {VXLAN_PORT}"
    return f"{base} and ({bpf})" if bpf.strip() else base


def tcpdump_argv(netns_path: str, iface: str, bpf: str = "", count: int | None = None,
                 pcap_path: str | None = None, overlay: bool = False, check_only: bool = False) -> list[str]:
    """The command line; check_only compiles the filter against the interface and exits (-d)."""
    argv = ["setpriv", "--pdeathsig", "TERM", "nsenter", f"--net={netns_path}",
            "tcpdump", "-i", iface, "-n", "-Z", "root", "--immediate-mode"]
    if check_only:
        argv.append("-d")
    elif pcap_path:
        argv += ["-U", "-w", pcap_path]
    else:
        argv.append("-l")
    if count is not None and not check_only:
        argv += ["-c", str(count)]
    if overlay:
        argv += ["-T", "vxlan"]
    expr = overlay_filter(bpf) if overlay else bpf.strip()
    if expr:
        argv += ["--", expr]
    return argv


def _tcpdump_error(stderr: str) -> str:
    """tcpdump's own error line, without its program-name prefix and usage text."""
    lines = [x.strip() for x in stderr.splitlines() if x.strip()]
    errs = [x for x in lines if x.startswith("tcpdump: ")] or lines
    return errs[-1].removeprefix("tcpdump: ") if errs else "tcpdump failed"


def check(target: Target, iface: str, bpf: str = "", overlay: bool = False) -> None:
    """Compile the filter against the interface before capturing, so a filter tcpdump refuses
    (or an interface the namespace lacks) is one clear line, not a capture that never starts."""
    try:
        out = subprocess.run(tcpdump_argv(target.netns_path, iface, bpf, overlay=overlay, check_only=True),
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise CaptureError("tcpdump is not installed (apt-get install tcpdump; scripts/setup installs it)") from None
    if out.returncode != 0:
        why = _tcpdump_error(out.stderr)
        if "parse filter" in why or "syntax error" in why or "expression" in why:
            raise CaptureError(f"capture filter {bpf!r} refused by tcpdump: {why}")
        if "No such device" in why or "doesn't exist" in why:
            raise CaptureError(f"{target.label} has no interface {iface!r} ({why})")
        raise CaptureError(f"tcpdump in {target.label}: {why}")


class Capture:
    """A running tcpdump. stop() ends it as Ctrl-C does (SIGINT: tcpdump flushes the pcap and
    prints its summary), then SIGKILL if it has not gone after `timeout`; it is idempotent and
    is also what leaving a `with` block does."""

    def __init__(self, proc: subprocess.Popen, target: Target, iface: str, pcap_path: str | None,
                 on_stderr: Callable[[str], None] | None = None):
        self.proc = proc
        self.target = target
        self.iface = iface
        self.pcap_path = pcap_path
        self.stderr_lines: list[str] = []
        self._on_stderr = on_stderr
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.stderr_lines.append(line)
            if "listening on" in line:
                self._listening.set()
            if self._on_stderr is not None:
                self._on_stderr(line)
        self._listening.set()  # gone: nobody should wait any longer

    def wait_listening(self, timeout: float) -> None:
        self._listening.wait(timeout)
        if self.proc.poll() is not None and not any("listening on" in x for x in self.stderr_lines):
            self._reader.join(1)
            raise CaptureError(f"tcpdump in {self.target.label}: {_tcpdump_error(chr(10).join(self.stderr_lines))}")
        if not self._listening.is_set():
            self.stop()
            raise CaptureError(f"tcpdump in {self.target.label} did not start listening within {timeout:g}s")

    def lines(self) -> Iterator[str]:
        """Decoded lines as tcpdump prints them (when started with stdout=subprocess.PIPE)."""
        if self.proc.stdout is None:
            return
        for line in self.proc.stdout:
            yield line.rstrip("\n")

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.proc.returncode

    def summary(self) -> dict[str, int]:
        """tcpdump's closing counts: {"captured": N, "received by filter": N, "dropped by kernel": N}."""
        out = {}
        for line in self.stderr_lines:
            m = _SUMMARY.match(line)
            if m:
                out[m[2]] = int(m[1])
        return out

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(cluster: str | ClusterConfig, target: str, iface: str | None = None, bpf: str = "",
          count: int | None = None, pcap_path: str | None = None, *, namespace: str | None = None,
          overlay: bool = False, client: Client | None = None, stdout: int | None = subprocess.PIPE,
          on_stderr: Callable[[str], None] | None = None, ready_timeout: float = 10.0) -> Capture:
    """Start a capture and return once tcpdump is listening. `cluster` is a cluster's name or
    its config; `target` POD (in `namespace`), pod/NAME, node/NAME or ext; `client` is needed
    for a pod (made for the cluster when not given). `stdout`: where decoded lines go (a pipe
    read through Capture.lines() by default; None inherits the caller's). An overlay capture
    is on the node's LAN link (eth0), whatever `iface` says."""
    if isinstance(cluster, str):
        from knet.config import load_saved

        try:
            cfg = load_saved(cluster)
        except OSError:
            raise CaptureError(f'cluster "{cluster}" is not running') from None
    else:
        cfg = cluster
    if overlay and not target.startswith("node/"):
        raise CaptureError(f"--overlay captures a node's VXLAN traffic: give node/NAME, not {target!r}")
    if count is not None and count < 1:
        raise CaptureError(f"-c: Invalid value: {count}: must be a positive number of packets")
    if client is None and target != "ext" and not target.startswith("node/"):
        from knet.api.client import NotRunning, for_cluster

        try:
            client = for_cluster(cfg.name)
        except NotRunning as e:
            raise CaptureError(str(e)) from None
    t = resolve(cfg, target, namespace, client)
    iface = DEFAULT_IFACE if overlay else (iface or DEFAULT_IFACE)
    check(t, iface, bpf, overlay)
    if pcap_path:
        pcap_path = os.path.abspath(pcap_path)
        if not os.path.isdir(os.path.dirname(pcap_path)):
            raise CaptureError(f"-w: no such directory: {os.path.dirname(pcap_path)}")
    proc = subprocess.Popen(tcpdump_argv(t.netns_path, iface, bpf, count, pcap_path, overlay),
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, text=True,
                            bufsize=1, start_new_session=True)
    cap = Capture(proc, t, iface, pcap_path, on_stderr)
    try:
        cap.wait_listening(ready_timeout)
    except BaseException:
        cap.stop()
        raise
    return cap

