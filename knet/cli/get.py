"""knet get and describe: objects as kubectl shows them (tables, -o
json/yaml/name, one object in detail with its events). The most frequent
command: this module and what it imports are the start-up cost of `knet get`."""

from __future__ import annotations

import argparse
import json
import sys

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, label


def _dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    import yaml
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


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
        text = printers.table(res.kind, items, wide=fmt == "wide", all_namespaces=args.all_namespaces,
                              show_kind=len(resources) > 1)
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
    for i, obj in enumerate(objs):
        uid = obj["metadata"].get("uid")
        mine = [e for e in events if e.get("involvedObject", {}).get("uid") == uid]
        mine.sort(key=lambda e: (e.get("lastTimestamp") or "", int(e["metadata"].get("resourceVersion") or 0)))
        if i:
            print("\n")
        print(printers.describe(obj, mine), end="")
    return 0
