"""The checks' seam on a running cluster: the API, and the kernel reached from inside pods.

A connection attempt is `knet probe`'s engine (one socket made in the client's network
namespace, driven from here); a DNS question is the test harness's (knet.harness.net.dns,
asked as the pod's own resolver asks, from inside its network namespace); a command runs
through `knet exec` (the pod's namespaces, its container's user), as the learner types it; a
log is the container's log file. Objects are read through the API, and a pod on another
machine of a machine-mode cluster is reached as knet.lab.viaapi reaches every pod: by exec.
"""

from __future__ import annotations

import os
import subprocess

from knet.lab.checks import DnsAnswer
from knet.lab.model import PodRef
from knet.lab.viaapi import EXEC_PREFIX, ApiSeam, reverse_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.config import ClusterConfig


class LiveSeam(ApiSeam):
    """Objects through the API (ApiSeam's), the data plane through this machine's namespaces;
    a pod on another machine of a machine-mode cluster through exec, as ApiSeam reaches every pod."""

    def __init__(self, cluster: str, cfg: ClusterConfig, client: Client) -> None:
        super().__init__(client, cluster)
        self.cfg = cfg

    # -- namespaces -----------------------------------------------------------------------

    def _sandbox(self, pod: dict):
        from knet.node.sandbox import sandbox_for

        return sandbox_for(self.cfg, pod["spec"]["nodeName"], pod["metadata"]["uid"])

    def _remote(self, pod: dict) -> bool:
        """A pod on another machine of a machine-mode cluster: reached through exec (knet.lab.viaexec)."""
        return bool(self.cfg.machine) and pod["spec"].get("nodeName") != self.cfg.machine

    def pod_netns(self, pod: dict) -> str | None:
        if not (pod.get("spec") or {}).get("nodeName"):
            return None
        if self._remote(pod):  # no namespace here: connect() runs the probe inside the pod instead
            return f"{EXEC_PREFIX}{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        path = self._sandbox(pod).netns_path
        return path if os.path.exists(path) else None

    def node_netns(self, node: str) -> str:
        from knet.net import ns

        return ns.netns_path(self.cfg.node_netns(node))

    def ext(self) -> tuple[str, str]:
        from knet.net import ns

        return ns.netns_path(self.cfg.ext_netns), self.cfg.ext_ip

    # -- the data plane -------------------------------------------------------------------

    def connect(self, netns: str, address: str, port: int, protocol: str, identity: str | None,
                timeout: float) -> tuple[bool, str]:
        if netns.startswith(EXEC_PREFIX):
            return super().connect(netns, address, port, protocol, identity, timeout)
        from knet.policy import prober

        probe = prober.Probe("lab", identity or "", netns, address, port, protocol)
        first = prober.cluster_ports(self.cluster, prober.ports_needed([probe]))  # a UDP flow conntrack forgot
        outcome = prober.run(prober.source_ports([probe], first) if first is not None else [probe], timeout)[0]
        if not outcome.connected and identity is None and outcome.detail.startswith("answered by "):
            return True, outcome.detail  # a Service or node port: any pod's answer is the connection
        return outcome.connected, outcome.detail

    def dns(self, pod: dict, name: str, qtype: str) -> DnsAnswer:
        """The harness's question, as the pod's resolver asks it (its resolv.conf's server, search
        list and ndots, from inside the pod's network namespace); a PTR for an address is asked
        for its in-addr.arpa name, as `dig -x`."""
        from knet.harness.handles import Pod
        from knet.harness.net import dns

        if self._remote(pod):
            return super().dns(pod, name, qtype)
        name = reverse_name(name, qtype)
        handle = Pod(self, pod["metadata"]["namespace"], pod["metadata"]["name"], pod)  # type: ignore[arg-type]
        try:
            answer = dns(name, qtype, handle, timeout=3.0)
        except TimeoutError:
            return DnsAnswer("TIMEOUT", (), name)
        except ConnectionError as e:
            return DnsAnswer(f"NO ANSWER ({str(e).rsplit(': ', 1)[-1]})", (), name)
        return DnsAnswer(answer.rcode, answer.records, answer.qname)

    def exec(self, pod: PodRef, container: str | None, argv: tuple[str, ...], timeout: float) -> tuple[int, str]:
        from knet.lab.session import knet_argv

        cmd = [*knet_argv(), "--cluster", self.cluster, "exec"]
        cmd += ["-n", pod.namespace, pod.name] if pod.namespace else [pod.name]  # node/NAME, ext
        cmd += ["-c", container] if container else []
        try:
            out = subprocess.run(cmd + ["--", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=timeout, text=True, errors="replace")
        except subprocess.TimeoutExpired as e:
            text = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
            return 124, text + f"\n(timed out after {timeout:g}s)"
        return out.returncode, out.stdout

    def logs(self, pod: PodRef, container: str | None) -> str:
        found = self.logged(pod, container)
        if found is None:
            return ""
        obj, name = found
        try:
            with open(self._sandbox(obj).log_path(name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
