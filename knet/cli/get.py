"""knet get and describe: objects as kubectl shows them (tables, -o
json/yaml/name, one object in detail with its events). The most frequent
command: this module and what it imports are the start-up cost of `knet get`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, label

if TYPE_CHECKING:
    from knet.api.client import Client


def _dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    import yaml
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


_POLICY_KINDS = ("NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")


def _policy_objects(client: Client) -> tuple[list[dict], dict[str, dict], list[dict], dict | None]:
    """Every NetworkPolicy, Namespace (by name) and ANP, and the BANP `default`:
    what deciding a pod's isolation reads. Fetched only for the outputs that
    show it (`get pods -o wide`, `describe pod`), never on the plain paths."""
    from knet.api.resources import by_kind

    netpols = client.list(by_kind("NetworkPolicy"), None)["items"]
    namespaces = {n["metadata"]["name"]: n for n in client.list(by_kind("Namespace"), None)["items"]}
    anps = client.list(by_kind("AdminNetworkPolicy"), None)["items"]
    banp = next((b for b in client.list(by_kind("BaselineAdminNetworkPolicy"), None)["items"]
                 if b["metadata"]["name"] == "default"), None)
    return netpols, namespaces, anps, banp


def _isolation_by_pod(client: Client, pods: list[dict]) -> dict[tuple[str, str], dict]:
    """knet.policy.isolation's answer for each pod, keyed by (namespace, name)."""
    from knet.policy.isolation import isolation

    netpols, namespaces, anps, banp = _policy_objects(client)
    out = {}
    for pod in pods:
        meta = pod["metadata"]
        ns = meta.get("namespace") or "default"
        out[(ns, meta["name"])] = isolation(pod, namespaces.get(ns), netpols, anps, banp)
    return out


def _pod_policy_columns(client: Client, pods: list[dict]) -> list[tuple[str, object]]:
    """`get pods -o wide`'s knet columns, after kubectl's: ISOLATED and POLICIES."""
    from knet import printers

    by_pod = _isolation_by_pod(client, pods)

    def key(pod: dict) -> tuple[str, str]:
        return (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
    return [("ISOLATED", lambda p: printers.isolated_cell(by_pod.get(key(p)))),
            ("POLICIES", lambda p: printers.policies_cell(by_pod.get(key(p))))]


def _selected_pods(client: Client, obj: dict) -> list[dict]:
    """The pods a NetworkPolicy / ANP / BANP selects (describe's Selected Pods)."""
    from knet.api.resources import by_kind
    from knet.policy.isolation import selected_pods, subject_pods

    if obj.get("kind") == "NetworkPolicy":
        ns = obj["metadata"].get("namespace") or "default"
        return selected_pods(obj, client.list(by_kind("Pod"), ns)["items"])
    namespaces = {n["metadata"]["name"]: n for n in client.list(by_kind("Namespace"), None)["items"]}
    return subject_pods(obj, client.list(by_kind("Pod"), None)["items"], namespaces)


def cmd_get(args: argparse.Namespace, connect: Connect) -> int:
    from knet import printers
    from knet.api.resources import lookup

    client = connect()
    kinds = args.kind.split(",")
    resources = []
    for k in kinds:
        res = lookup(k)
        if res is None:
            raise CliError(f'the server doesn\'t have a resource type "{k}"')
        resources.append(res)
    ns = None if args.all_namespaces else (args.namespace or "default")
    objects_by_res = []
    for res in resources:
        rns = ns if res.namespaced else None
        if args.name:
            try:
                items = [client.get(res, rns, n) for n in args.name]
            except ApiError as e:
                print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
                return 1
        else:
            items = client.list(res, rns, args.selector, args.field_selector)["items"]
        objects_by_res.append((res, items))
    fmt = args.output or ""
    if fmt in ("json", "yaml"):
        if args.name and len(resources) == 1 and len(args.name) == 1:
            print(_dump(objects_by_res[0][1][0], fmt), end="" if fmt == "yaml" else "\n")
        else:
            items = [o for _, objs in objects_by_res for o in objs]
            print(_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
                        if len(resources) > 1 else
                        {"apiVersion": resources[0].api_version, "kind": resources[0].list_kind,
                         "metadata": {"resourceVersion": ""}, "items": items}, fmt),
                  end="" if fmt == "yaml" else "\n")
        return 0
    if fmt == "name":
        for res, items in objects_by_res:
            for o in items:
                print(label(res, o["metadata"]["name"]))
        return 0
    if fmt not in ("", "wide"):
        raise CliError(f"unable to match a printer suitable for the output format {fmt!r}, "
                       "allowed formats are: json,name,wide,yaml")
    printed = False
    for res, items in objects_by_res:
        if not items:
            continue
        if printed:
            print()
        extra = _pod_policy_columns(client, items) if fmt == "wide" and res.kind == "Pod" else []
        text = printers.table(res.kind, items, wide=fmt == "wide", all_namespaces=args.all_namespaces,
                              show_kind=len(resources) > 1, extra=extra)
        if args.no_headers:
            text = text.split("\n", 1)[1]
        print(text, end="")
        printed = True
    if not printed:
        where = "" if args.all_namespaces or not any(r.namespaced for r in resources) else f" in {ns} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
    return 0


def cmd_describe(args: argparse.Namespace, connect: Connect) -> int:
    from knet import printers
    from knet.api.resources import by_kind, lookup

    client = connect()
    res = lookup(args.kind)
    if res is None:
        raise CliError(f'the server doesn\'t have a resource type "{args.kind}"')
    ns = (args.namespace or "default") if res.namespaced else None
    objs = [client.get(res, ns, n) for n in args.name] if args.name else client.list(res, ns, args.selector)["items"]
    events = client.list(by_kind("Event"), None)["items"]
    isolation_by_pod = _isolation_by_pod(client, objs) if res.kind == "Pod" and objs else {}
    for i, obj in enumerate(objs):
        uid = obj["metadata"].get("uid")
        mine = [e for e in events if e.get("involvedObject", {}).get("uid") == uid]
        mine.sort(key=lambda e: (e.get("lastTimestamp") or "", int(e["metadata"].get("resourceVersion") or 0)))
        extra: dict = {}
        if res.kind == "Pod":
            extra["isolation"] = isolation_by_pod.get((obj["metadata"].get("namespace") or "default",
                                                       obj["metadata"]["name"]))
        elif res.kind in _POLICY_KINDS:
            extra["pods"] = _selected_pods(client, obj)
        if i:
            print("\n")
        print(printers.describe(obj, mine, **extra), end="")
    return 0
