"""The checks' seam on a running cluster: the API, and the kernel reached from inside pods.

A connection attempt is `knet probe`'s engine (one socket made in the client's network
namespace, driven from here); a DNS question is the test harness's (knet.harness.net.dns,
asked as the pod's own resolver asks, from inside its network namespace); a command runs
through `knet exec` (the pod's namespaces, its container's user), as the learner types it; a
log is the container's log file.
"""

from __future__ import annotations

import os
import subprocess
import time

from knet.lab.checks import DnsAnswer
from knet.lab.model import PodRef

EXEC_PREFIX = "exec:"  # pod_netns of a pod on another machine: "exec:NAMESPACE/NAME"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.config import ClusterConfig


class LiveSeam:
    def __init__(self, cluster: str, cfg: ClusterConfig, client: Client) -> None:
        self.cluster = cluster
        self.cfg = cfg
        self.client = client

    # -- the API --------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        from knet.api.errors import ApiError
        from knet.api.resources import by_kind

        res = by_kind(kind)
        try:
            return self.client.get(res, namespace if res.namespaced else None, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict]:
        from knet.api.resources import by_kind

        res = by_kind(kind)
        return self.client.list(res, namespace if res.namespaced else None, selector or None)["items"]

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
            from knet.lab import viaexec

            namespace, name = netns[len(EXEC_PREFIX):].split("/", 1)
            code, out = self.exec(PodRef(namespace, name), None,
                                  viaexec.connect_argv(address, port, protocol, identity, timeout), timeout + 15)
            return viaexec.read_connect(code, out)
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
        import ipaddress

        from knet.harness.handles import Pod
        from knet.harness.net import dns

        if qtype == "PTR":
            try:
                name = ipaddress.ip_address(name).reverse_pointer + "."
            except ValueError:
                pass
        if self._remote(pod):
            from knet.lab import viaexec

            code, out = self.exec(PodRef(pod["metadata"]["namespace"], pod["metadata"]["name"]), None,
                                  viaexec.dns_argv(name, qtype, 3.0), 20.0)
            return viaexec.read_dns(code, out, name)
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
        obj = self.get("Pod", pod.namespace, pod.name)
        if obj is None or not obj["spec"].get("nodeName"):
            return ""
        name = container or obj["spec"]["containers"][0]["name"]
        try:
            with open(self._sandbox(obj).log_path(name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
