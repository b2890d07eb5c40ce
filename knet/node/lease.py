"""The node's Lease, as kubelet's node lease controller keeps it: one Lease
named after the node in kube-node-lease, held by the node, owned by its Node
(so it goes with it), renewed every 10 s for 40 s.

Upstream's node lifecycle controller reads the Lease as the cheap heartbeat
(a Lease write is small; the Node status is large); knet's keeps reading the
Node's Ready heartbeat, and the Lease is there for what clients read:
`kubectl describe node` shows its holder and renew time, `kubectl get leases
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
RENEW_FRACTION = 0.25  # kubelet renews at a quarter of the duration: every 10 s
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

    def __init__(self, api: object, node: str, duration: int = DURATION_SECONDS):
        self.api = api
        self.node = node
        self.duration = duration
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
                retry = min(retry * 2, RETRY_MAX)
                continue
            retry = RETRY_FIRST
            await trio.sleep(self.duration * RENEW_FRACTION)
