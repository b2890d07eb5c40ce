"""The checks' seam through the API alone: a lab checked against a cluster named by a
kubeconfig context (`knet lab check LAB --context CTX`), from any machine that has it.

Without --context a check enters the cluster's namespaces on this machine (knet.lab.live).
Through a context nothing of the cluster is local, so everything goes the way kubectl goes:
objects, fields and waits by GET; a command, a probe and a DNS question by pods/exec in the
pod (the probe and the resolver are knet.lab.viaexec's programs, run by the node's python3);
a container's log by pods/log. A probe or command from node/NAME runs in a short-lived
hostNetwork pod pinned to that node, as `kubectl debug node/NAME` reaches a node: the pod
is in the node's network namespace, so the probe leaves from the node's own address. The
ext host is a namespace `knet up` makes on its machine, with no API object: a check from or
to it fails, saying so.
"""

from __future__ import annotations

import io
import os
import time

from knet.lab.checks import CheckFailed, DnsAnswer
from knet.lab.model import PodRef

EXEC_PREFIX = "exec:"  # pod_netns of a pod reached through exec: "exec:NAMESPACE/NAME"
NODE_POD_NAMESPACE = "default"
NODE_POD_PREFIX = "knet-lab-node-"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client


def reverse_name(name: str, qtype: str) -> str:
    """A PTR question for an address is asked for its in-addr.arpa name, as `dig -x`."""
    if qtype != "PTR":
        return name
    import ipaddress

    try:
        return ipaddress.ip_address(name).reverse_pointer + "."
    except ValueError:
        return name


def cluster_of(context: str) -> str:
    """The knet cluster a context names (`knet-<cluster>`, as knet up and knet init name it)."""
    return context[len("knet-"):] if context.startswith("knet-") and len(context) > 5 else context


class ApiSeam:
    """The cluster as the checks see it, through one API client (a context's, or the local
    cluster's for the pods of other machines: knet.lab.live builds on this)."""

    def __init__(self, client: Client, cluster: str, context: str | None = None) -> None:
        self.client = client
        self.cluster = cluster
        self.context = context      # named in the hints: `knet describe --context CTX ...`
        self._node_pods: dict[str, str] = {}

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

    # -- where a check starts -------------------------------------------------------------

    def pod_netns(self, pod: dict) -> str | None:
        if not (pod.get("spec") or {}).get("nodeName"):
            return None
        return f"{EXEC_PREFIX}{pod['metadata']['namespace']}/{pod['metadata']['name']}"

    def node_netns(self, node: str) -> str:
        return f"{EXEC_PREFIX}{NODE_POD_NAMESPACE}/{self._node_pod(node)}"

    def ext(self) -> tuple[str, str]:
        raise CheckFailed("the ext host is a namespace that knet up makes on its own machine, with no API object: "
                          "not reachable through a kubeconfig context (run the check there without --context)")

    # -- the data plane, through exec ------------------------------------------------------

    def connect(self, netns: str, address: str, port: int, protocol: str, identity: str | None,
                timeout: float) -> tuple[bool, str]:
        from knet.lab import viaexec

        namespace, name = _split(netns)
        code, out = self.exec(PodRef(namespace, name), None,
                              viaexec.connect_argv(address, port, protocol, identity, timeout), timeout + 15)
        return viaexec.read_connect(code, out)

    def dns(self, pod: dict, name: str, qtype: str) -> DnsAnswer:
        from knet.lab import viaexec

        name = reverse_name(name, qtype)
        code, out = self.exec(PodRef(pod["metadata"]["namespace"], pod["metadata"]["name"]), None,
                              viaexec.dns_argv(name, qtype, 3.0), 20.0)
        return viaexec.read_dns(code, out, name)

    def exec(self, pod: PodRef, container: str | None, argv: tuple[str, ...], timeout: float) -> tuple[int, str]:
        """(exit code, stdout and stderr) of argv in the pod's container, as `kubectl exec` runs
        it: 124 when it outlasts timeout, 126 when it could not start (the reason as output)."""
        from knet.api.errors import ApiError
        from knet.api.resources import by_kind
        from knet.cli.execremote import RemoteExecError, run

        if not pod.namespace:  # node/NAME or ext, as an exec check names them
            if not pod.name.startswith("node/"):
                self.ext()  # raises: the ext host has no pod to exec in
            pod = PodRef(NODE_POD_NAMESPACE, self._node_pod(pod.name[5:]))
        try:
            obj = self.client.get(by_kind("Pod"), pod.namespace, pod.name)
        except ApiError as e:
            return 126, f"pods/exec: {e.message}"
        name = container or _running_container(obj)
        out = io.BytesIO()
        with open(os.devnull, "rb") as nothing:
            try:
                code = run(self.client, pod.namespace, pod.name, name, list(argv), stdin=nothing, stdout=out,
                           stderr=out, timeout=timeout)
            except TimeoutError:
                return 124, out.getvalue().decode(errors="replace") + f"\n(timed out after {timeout:g}s)"
            except RemoteExecError as e:
                return 126, f"pods/exec: {e}"
            except OSError as e:
                return 126, f"pods/exec: {(e.strerror or str(e)).lower()}"
        return code, out.getvalue().decode(errors="replace")

    def logs(self, pod: PodRef, container: str | None) -> str:
        from knet.api.client import quote
        from knet.api.errors import ApiError

        found = self.logged(pod, container)
        if found is None:
            return ""
        name = found[1]
        try:
            return self.client.text(f"/api/v1/namespaces/{quote(pod.namespace)}/pods/{quote(pod.name)}/log",
                                    {"container": name})
        except ApiError as e:
            if e.code in (400, 404):  # not started yet, or gone: no log, as the local seam reads none
                return ""
            raise CheckFailed(f"pods/log of {pod}: {e.message}") from None

    def logged(self, pod: PodRef, container: str | None) -> tuple[dict, str] | None:
        """The pod and the container whose log a check reads (the first by default); None: no
        such pod, or not on a node yet (no log at all)."""
        obj = self.get("Pod", pod.namespace, pod.name)
        if obj is None or not obj["spec"].get("nodeName"):
            return None
        return obj, container or obj["spec"]["containers"][0]["name"]

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # -- a node's network namespace, through a hostNetwork pod -------------------------------

    def _node_pod(self, node: str) -> str:
        """The name of a running hostNetwork pod on node (made on first use, deleted by close())."""
        if node in self._node_pods:
            return self._node_pods[node]
        from knet.api.errors import ApiError
        from knet.api.resources import by_kind

        if self.get("Node", None, node) is None:
            raise CheckFailed(f"node {node} not found")
        import secrets

        res = by_kind("Pod")
        # A name of its own: the pod of an earlier check may still be terminating.
        name = f"{NODE_POD_PREFIX}{node}"[:56].rstrip("-.") + f"-{secrets.token_hex(3)}"
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "knet-lab"}},
                "spec": {"nodeName": node, "hostNetwork": True, "restartPolicy": "Never",
                         "terminationGracePeriodSeconds": 0,
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "shell", "image": "busybox", "command": ["sleep", "3600"]}]}}
        try:
            self.client.create(res, NODE_POD_NAMESPACE, body)
        except ApiError as e:
            raise CheckFailed(f"a hostNetwork pod on node {node} (to reach its network namespace): "
                              f"{e.message}") from None
        self._node_pods[node] = name
        deadline = time.monotonic() + 60
        phase = "Pending"
        while time.monotonic() < deadline:
            obj = self.get("Pod", NODE_POD_NAMESPACE, name)
            phase = ((obj or {}).get("status") or {}).get("phase") or "Pending"
            if phase == "Running":
                return name
            if phase in ("Failed", "Succeeded"):
                break
            time.sleep(0.1)
        raise CheckFailed(f"the hostNetwork pod {NODE_POD_NAMESPACE}/{name} on node {node} is {phase}, not Running")

    def close(self) -> None:
        """Delete the node pods this seam made."""
        from knet.api.errors import ApiError
        from knet.api.resources import by_kind

        for name in self._node_pods.values():
            try:
                self.client.delete(by_kind("Pod"), NODE_POD_NAMESPACE, name, grace=0)
            except (ApiError, OSError):
                pass
        self._node_pods.clear()


def _running_container(pod: dict) -> str:
    """The container a probe or a lookup runs in when the check names none: any shares the pod's
    network namespace, so the first that is running (a crashed first container is no reason to
    fail), else the first."""
    running = {s.get("name") for s in (pod.get("status") or {}).get("containerStatuses") or []
               if "running" in (s.get("state") or {})}
    names = [c["name"] for c in pod["spec"]["containers"]]
    return next((n for n in names if n in running), names[0])


def _split(netns: str) -> tuple[str, str]:
    if not netns.startswith(EXEC_PREFIX):
        raise CheckFailed(f"{netns}: not a pod reached through exec")
    namespace, _, name = netns[len(EXEC_PREFIX):].partition("/")
    return namespace, name
