"""knet cordon, uncordon, taint and drain: kubectl's node maintenance verbs."""

from __future__ import annotations

import argparse
import time

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect


def cmd_cordon(args: argparse.Namespace, connect: Connect, unschedulable: bool = True) -> int:
    from knet.api.resources import by_kind

    client = connect()
    for name in args.nodes:
        node = client.get(by_kind("Node"), None, name)
        if bool(node.get("spec", {}).get("unschedulable")) == unschedulable:
            print(f"node/{name} already {'cordoned' if unschedulable else 'uncordoned'}")
            continue
        client.patch(by_kind("Node"), None, name, {"spec": {"unschedulable": True if unschedulable else None}})
        print(f"node/{name} {'cordoned' if unschedulable else 'uncordoned'}")
    return 0


def parse_taint(text: str) -> tuple[dict, bool]:
    """kubectl's taint syntax: key[=value]:Effect to add, key[:Effect]- to remove."""
    remove = text.endswith("-")
    body = text[:-1] if remove else text
    key_value, _, effect = body.partition(":")
    key, _, value = key_value.partition("=")
    if not key or (not remove and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute")):
        raise CliError(f"invalid taint spec: {text!r} (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute, "
                       "or key[:Effect]- to remove)")
    taint = {"key": key, "effect": effect} if effect else {"key": key}
    if value:
        taint["value"] = value
    return taint, remove


def cmd_taint(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.objects import now_rfc3339
    from knet.api.resources import by_kind

    client = connect()
    node = client.get(by_kind("Node"), None, args.node)
    taints = list(node.get("spec", {}).get("taints") or [])
    for text in args.taints:
        taint, remove = parse_taint(text)
        if remove:
            kept = [t for t in taints if not (t["key"] == taint["key"] and
                                              ("effect" not in taint or t.get("effect") == taint["effect"]))]
            if len(kept) == len(taints):
                raise CliError(f"taint {text[:-1]!r} not found")
            taints = kept
        else:
            taints = [t for t in taints if not (t["key"] == taint["key"] and t.get("effect") == taint["effect"])]
            if taint["effect"] == "NoExecute":
                taint["timeAdded"] = now_rfc3339()
            taints.append(taint)
    client.patch(by_kind("Node"), None, args.node, {"spec": {"taints": taints or None}})
    print(f"node/{args.node} {'untainted' if all(t.endswith('-') for t in args.taints) else 'tainted'}")
    return 0


def cmd_uncordon(args: argparse.Namespace, connect: Connect) -> int:
    return cmd_cordon(args, connect, unschedulable=False)


def cmd_drain(args: argparse.Namespace, connect: Connect) -> int:
    """kubectl drain: cordon, then evict every pod but DaemonSet pods, and wait
    for them to be gone so their controllers have placed them elsewhere."""
    from knet.api.resources import by_kind

    client = connect()
    pods_res = by_kind("Pod")
    cmd_cordon(argparse.Namespace(**{**vars(args), "nodes": [args.node]}), connect)
    pods = client.list(pods_res, None, field_selector=f"spec.nodeName={args.node}")["items"]
    owner = lambda p: next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)  # noqa: E731
    evict, unmanaged = [], []
    for p in pods:
        ref = owner(p)
        if ref and ref.get("kind") == "DaemonSet":
            continue
        (evict if ref or args.force else unmanaged).append(p)
    if unmanaged:
        names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in unmanaged)
        raise CliError(f"unable to drain node {args.node!r}: cannot delete Pods that declare no controller "
                       f"(use --force to override): {names}")
    daemon = [p for p in pods if (owner(p) or {}).get("kind") == "DaemonSet"]
    if daemon:
        print("Warning: ignoring DaemonSet-managed Pods: " +
              ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemon))
    for p in evict:
        m = p["metadata"]
        print(f"evicting pod {m['namespace']}/{m['name']}")
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": m["name"],
                                                                           "namespace": m["namespace"]}}
        if args.grace_period is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": args.grace_period}
        try:
            client.request("POST", pods_res.path(m["namespace"], m["name"]) + "/eviction", body)
        except ApiError as e:
            if e.code != 404:
                raise
    deadline = time.monotonic() + args.timeout
    waiting = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in evict}
    while waiting:
        for key in sorted(waiting):
            try:
                cur = client.get(pods_res, key[0], key[1])
                gone = cur["metadata"]["uid"] != key[2]
            except ApiError as e:
                if e.code != 404:
                    raise
                gone = True
            if gone:
                print(f"pod/{key[1]} evicted")
                waiting.discard(key)
        if waiting and time.monotonic() > deadline:
            raise CliError(f"timed out waiting for {len(waiting)} pods to leave {args.node}")
        time.sleep(0.05)
    print(f"node/{args.node} drained")
    return 0
