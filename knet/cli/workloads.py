"""knet scale and rollout status: a workload's replicas, and kubectl's
progress lines while a Deployment, DaemonSet or StatefulSet rolls out."""

from __future__ import annotations

import argparse
import time

from knet.cli.common import CliError, Connect, kind_name, label


def cmd_scale(args: argparse.Namespace, connect: Connect) -> int:
    client = connect()
    res, name = kind_name(args.target)
    if res.kind not in ("Deployment", "ReplicaSet", "StatefulSet"):
        raise CliError(f"cannot scale a {res.kind}")
    if args.replicas < 0:
        raise CliError("--replicas: Invalid value: must be greater than or equal to 0")
    ns = args.namespace or "default"
    out = client.patch(res, ns, name, {"spec": {"replicas": args.replicas}})
    print(f"{label(res, name)} scaled")
    if args.wait:
        from knet.cli.apply import wait_synced

        wait_synced(client, int(out["metadata"]["resourceVersion"]), args.timeout)
    return 0


def rollout_state(obj: dict) -> tuple[bool, str]:
    """Whether a rollout is done, and kubectl's progress line for it."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec, st = obj.get("spec", {}), obj.get("status", {})
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False, f"Waiting for {kind.lower()} spec update to be observed..."
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        updated, total, avail = st.get("updatedReplicas", 0), st.get("replicas", 0), st.get("availableReplicas", 0)
        if updated < want:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new '
                           "replicas have been updated...")
        if total > updated:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas '
                           "are pending termination...")
        if avail < updated:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {avail} of {updated} updated '
                           "replicas are available...")
        return True, f'deployment "{name}" successfully rolled out'
    if kind == "DaemonSet":
        want, updated, avail = (st.get("desiredNumberScheduled", 0), st.get("updatedNumberScheduled", 0),
                                st.get("numberAvailable", 0))
        if updated < want:
            return False, (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {want} new pods '
                           "have been updated...")
        if avail < want:
            return False, (f'Waiting for daemon set "{name}" rollout to finish: {avail} of {want} updated pods '
                           "are available...")
        return True, f'daemon set "{name}" successfully rolled out'
    if kind == "StatefulSet":
        want, ready, updated = spec.get("replicas", 1), st.get("readyReplicas", 0), st.get("updatedReplicas", 0)
        if ready < want:
            return False, f"Waiting for {want - ready} pods to be ready..."
        if updated < want:
            return False, (f"waiting for statefulset rolling update to complete {updated} pods at revision "
                           f"{st.get('updateRevision')}...")
        return True, f"statefulset rolling update complete {want} pods at revision {st.get('updateRevision')}..."
    raise CliError(f"no rollout status for {kind}")


def cmd_rollout(args: argparse.Namespace, connect: Connect) -> int:
    client = connect()
    res, name = kind_name(args.target)
    ns = args.namespace or "default"
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        done, line = rollout_state(client.get(res, ns, name))
        if line != last:
            print(line, flush=True)
            last = line
        if done:
            return 0
        if not args.watch:
            return 1
        if time.monotonic() > deadline:
            raise CliError(f"timed out waiting for the rollout of {res.singular}/{name}")
        time.sleep(0.05)
