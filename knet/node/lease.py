"""The node's Lease, as kubelet's node lease controller keeps it: one Lease
named after the node in kube-node-lease, held by the node, owned by its Node
(so it goes with it), for 40 s.

It is the node's liveness heartbeat (since Kubernetes 1.17): a Lease write is
small and only the control plane's cache follows Leases, while a Node status
write is large and every agent watches every Node (for routes and policy), so
status heartbeats cost O(nodes^2) a second. The agent writes its Node status
only when it changes (knet.node.nodestatus); the node lifecycle controller
(knet.controllers.nodelifecycle) takes a node's probe time from this Lease's
renewals as well.

How often: upstream renews at a quarter of the lease duration (10 s of 40 s)
against a 40 s node-monitor grace period. knet's grace defaults to 10 s (tests
use 2 s), so the renewal follows the cluster file's `knet.heartbeatSeconds`
(2 s by default, a fifth of the grace) rather than the duration; the duration
stays kubelet's 40 s, which is what clients show (the lifecycle controller,
as upstream's, judges by its own grace period, not by leaseDurationSeconds).
`kubectl describe node` shows the holder and renew time, `kubectl get leases
-n kube-node-lease` lists the nodes alive.
"""

from __future__ import annotations

import logging
import time

import trio

from knet.api.errors import ApiError
from knet.api.resources import by_kind

log = logging.getLogger("knet.node.lease")

NAMESPACE = "kube-node-lease"
DURATION_SECONDS = 40  # kubelet's --node-lease-duration-seconds
RENEW_FRACTION = 0.25  # kubelet renews at a quarter of the duration (10 s): used when no interval is given
RETRY_FIRST, RETRY_MAX = 0.2, 7.0  # kubelet's backoff while renewing fails


def micro_time(t: float | None = None) -> str:
    """metav1.MicroTime's JSON form: RFC 3339 with microseconds, UTC."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def lease_object(node: str, node_uid: str | None, now: float | None = None) -> dict:
    meta: dict = {"name": node, "namespace": NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": node, "leaseDurationSeconds": DURATION_SECONDS, "renewTime": micro_time(now)}}


class NodeLease:
    LEASES = by_kind("Lease")
    NODES = by_kind("Node")

    def __init__(self, api: object, node: str, duration: int = DURATION_SECONDS, renew_seconds: float | None = None):
        """renew_seconds: how often to renew (the agent passes knet.heartbeatSeconds);
        by default a quarter of the duration, as kubelet's renewInterval."""
        self.api = api
        self.node = node
        self.duration = duration
        self.renew_seconds = renew_seconds if renew_seconds is not None else duration * RENEW_FRACTION
        self.held: dict | None = None  # the Lease as last written
        self.renewals = 0

    async def _node_uid(self) -> str | None:
        try:
            return (await self.api.get(self.NODES, None, self.node))["metadata"]["uid"]
        except ApiError as e:
            if e.code != 404:
                raise
            return None

    async def renew_once(self) -> dict:
        """Write a fresh renewTime: onto the Lease held (its resourceVersion a
        precondition), or onto the stored one after a conflict, or a new Lease."""
        for _ in range(3):
            lease = self.held
            if lease is None:
                try:
                    lease = await self.api.get(self.LEASES, NAMESPACE, self.node)
                except ApiError as e:
                    if e.code != 404:
                        raise
                    obj = lease_object(self.node, await self._node_uid())
                    obj["spec"]["leaseDurationSeconds"] = self.duration
                    try:
                        self.held = await self.api.create(self.LEASES, NAMESPACE, obj)
                    except ApiError as e2:
                        if e2.code != 409:
                            raise
                        continue  # another writer made it: take it over
                    self.renewals += 1
                    return self.held
            new = dict(lease, spec=dict(lease.get("spec") or {}, holderIdentity=self.node,
                                        leaseDurationSeconds=self.duration, renewTime=micro_time()))
            if not (new["metadata"].get("ownerReferences")):
                uid = await self._node_uid()
                if uid:
                    new["metadata"] = dict(new["metadata"], ownerReferences=lease_object(self.node, uid)[
                        "metadata"]["ownerReferences"])
            try:
                self.held = await self.api.update(self.LEASES, NAMESPACE, self.node, new)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                self.held = None  # gone or changed under us: read it again
                continue
            self.renewals += 1
            return self.held
        raise ApiError(409, "Conflict", f"the Lease {NAMESPACE}/{self.node} kept changing while renewed")

    async def run(self) -> None:
        retry = RETRY_FIRST
        while True:
            try:
                await self.renew_once()
            except (OSError, ApiError) as e:
                log.warning("renewing the node lease failed: %s", e)
                await trio.sleep(retry)
                # Never slower than a renewal would come: the Lease is the node's liveness.
                retry = min(retry * 2, RETRY_MAX, max(self.renew_seconds, RETRY_FIRST))
                continue
            retry = RETRY_FIRST
            await trio.sleep(self.renew_seconds)
