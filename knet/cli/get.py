"""knet get and describe: objects as kubectl shows them (tables, -o
json/yaml/name, one object in detail with its events). The most frequent
command: this module and what it imports are the start-up cost of `knet get`."""

from __future__ import annotations

import argparse
import sys

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, label

TYPE_CHECKING = False  # not typing's: importing typing is 4 ms of every `knet get`
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.api.resources import Resource
    from knet.cli.output import Output


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


def _typed(res: Resource, items: list[dict]) -> list[dict]:
    """List items carry their apiVersion and kind, as kubectl's unstructured items do."""
    for o in items:
        o.setdefault("apiVersion", res.api_version)
        o.setdefault("kind", res.kind)
    return items


def _category(name: str) -> list[Resource]:
    """The kinds a category names (`get all`), in discovery's order as kubectl
    expands it: groups by name, the core group first, kinds by plural."""
    from knet.api.resources import RESOURCES

    return sorted((r for r in RESOURCES if name.lower() in (r.categories or ())), key=lambda r: (r.group, r.plural))


def cmd_get(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.resources import lookup

    watching = args.watch or args.watch_only
    if args.output_watch_events and not watching:
        raise CliError("--output-watch-events option can only be used with --watch or --watch-only")
    from knet.cli.output import Output

    output = Output(args)
    if args.show_labels and output.kind != "table":
        raise CliError(f"--show-labels option cannot be used with {args.output} printer")
    if args.label_columns and output.kind == "columns":
        raise CliError(f"--label-columns option cannot be used with {args.output} printer")
    kinds = args.kind.split(",")
    resources = []
    for k in kinds:
        res = lookup(k)
        if res is not None:
            resources.append(res)
        elif _category(k):
            resources += [r for r in _category(k) if r not in resources]
        else:
            raise CliError(f'the server doesn\'t have a resource type "{k}"')
    if watching and len(resources) > 1:
        raise CliError("you may only specify a single resource type")
    if watching and len(args.name) > 1:
        raise CliError(f"watch is only supported on individual resources and resource collections, but "
                       f"{len(args.name)} resources were found")
    client = connect()
    ns = None if args.all_namespaces else (args.namespace or "default")
    if watching:
        from knet.cli.watch import watch

        return watch(args, client, resources[0], None if not resources[0].namespaced else ns, output)
    objects_by_res = []
    errors: list[ApiError] = []
    for res in resources:
        rns = ns if res.namespaced else None
        if args.name:  # each name found is printed; the others are errors after them (ContinueOnError)
            items = []
            for n in args.name:
                try:
                    items.append(client.get(res, rns, n))
                except ApiError as e:
                    if not (e.code == 404 and args.ignore_not_found):
                        errors.append(e)
        else:
            items = client.list(res, rns, args.selector, args.field_selector)["items"]
        objects_by_res.append((res, _typed(res, items)))
    code = _print_got(args, client, output, resources, objects_by_res, ns, quiet=bool(errors))
    for e in errors:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
    return 1 if errors else code


def _print_got(args: argparse.Namespace, client: Client, output: Output, resources: list[Resource],
               objects_by_res: list[tuple[Resource, list[dict]]], ns: str | None, quiet: bool) -> int:
    """What `get` prints of the objects it got; `quiet`: no "No resources found" (errors follow)."""
    if output.kind != "table":
        pairs = [(res, o) for res, objs in objects_by_res for o in objs]
        single = bool(args.name) and len(resources) == 1 and len(args.name) == 1
        if single and not pairs:
            return 0  # the one object asked for is not there: its error (or nothing, --ignore-not-found)
        if args.sort_by and not single:
            pairs = _sorted(pairs, args.sort_by, table=False)
        if output.kind == "name":
            print("".join(label(res, o["metadata"]["name"]) + "\n" for res, o in pairs), end="")
            return 0
        items = [o for _, o in pairs]
        data = items[0] if single else {"apiVersion": "v1", "items": items, "kind": "List",
                                        "metadata": {"resourceVersion": ""}}
        print(output.whole(data, items), end="")
        return 0
    printed = False
    for res, items in objects_by_res:
        if not items:
            continue
        if args.sort_by and len(items) > 1:
            try:
                items = [o for _, o in _sorted([(res, o) for o in items], args.sort_by, table=True)]
            except CliError:
                continue  # kubectl's get drops the table printer's error: the kind prints nothing
        if printed:
            print()
        text = printers_table(client, res, items, args, show_kind=len(resources) > 1)
        print(text, end="")
        printed = True
    if not printed and not quiet and not args.ignore_not_found:
        # kubectl's words: the namespace named only when every kind asked for is namespaced
        print("No resources found" if args.all_namespaces or not all(r.namespaced for r in resources)
              else f"No resources found in {ns} namespace.", file=sys.stderr)
    return 0


def _sorted(pairs: list[tuple[Resource, dict]], field: str, table: bool) -> list[tuple[Resource, dict]]:
    """--sort-by: kubectl's TableSorter for a table's rows (a path the relaxed
    form refuses is used as written), its SortObjects for the other formats."""
    from knet.cli.sorting import SortError, sort_objects

    by_id = {id(o): (res, o) for res, o in pairs}
    try:
        return [by_id[id(o)] for o in sort_objects([o for _, o in pairs], field, relaxed_or_raw=table)]
    except SortError as e:
        raise CliError(str(e)) from None


def _label_columns(args: argparse.Namespace) -> list[tuple[str, object]]:
    """-L KEY (a column per label key, headed by its last path segment in capitals)
    and --show-labels (LABELS), after kubectl's columns as kubectl's decorateTable adds them."""
    from knet.api.tables import format_labels

    out: list[tuple[str, object]] = []
    for key in [k for arg in args.label_columns or [] for k in arg.split(",") if k]:
        out.append((key.split("/")[-1].upper(),
                    lambda o, key=key: str(((o.get("metadata") or {}).get("labels") or {}).get(key, ""))))
    if args.show_labels:
        out.append(("LABELS", lambda o: format_labels((o.get("metadata") or {}).get("labels"))))
    return out


def printers_table(client: Client, res: Resource, items: list[dict], args: argparse.Namespace,
                   show_kind: bool) -> str:
    from knet import printers

    wide = args.output == "wide"
    extra = _label_columns(args) + (_pod_policy_columns(client, items) if wide and res.kind == "Pod" else [])
    text = printers.table(res.kind, items, wide=wide, all_namespaces=args.all_namespaces,
                          show_kind=show_kind or args.show_kind, extra=extra)
    if args.no_headers:
        text = text.split("\n", 1)[1]
    return text


def _related(client: Client, res: Resource, objs: list[dict]) -> list[dict]:
    """What kubectl's describer of each kind reads besides the object, as
    printers.describe() arguments: a Service's EndpointSlices (its Endpoints
    lines), a Deployment's ReplicaSets (Old/NewReplicaSet), the pods of a
    ReplicaSet, DaemonSet or StatefulSet (Pods Status), the pods a policy
    selects, a pod's isolation. One list per kind and namespace, not per object."""
    from knet.api.resources import by_kind

    cache: dict[tuple[str, str | None], list[dict]] = {}

    def listed(kind: str, ns: str | None) -> list[dict]:
        if (kind, ns) not in cache:
            cache[(kind, ns)] = client.list(by_kind(kind), ns)["items"]
        return cache[(kind, ns)]

    isolation_by_pod = _isolation_by_pod(client, objs) if res.kind == "Pod" and objs else {}
    out = []
    for obj in objs:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        extra: dict = {}
        if res.kind == "Pod":
            extra["isolation"] = isolation_by_pod.get((ns, meta["name"]))
        elif res.kind in _POLICY_KINDS:
            extra["pods"] = _selected_pods(client, obj)
        elif res.kind == "Service":
            extra["endpoint_slices"] = [
                s for s in listed("EndpointSlice", ns)
                if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == meta["name"]]
        elif res.kind == "Deployment":
            extra["replica_sets"] = listed("ReplicaSet", ns)
        elif res.kind in ("ReplicaSet", "DaemonSet", "StatefulSet"):
            extra["pods"] = listed("Pod", ns)
        elif res.kind == "Node":
            extra["pods"] = listed("Pod", None)
            try:
                extra["lease"] = client.get(by_kind("Lease"), "kube-node-lease", meta["name"])
            except ApiError as e:
                extra["lease"] = e.message
        out.append(extra)
    return out


def cmd_describe(args: argparse.Namespace, connect: Connect) -> int:
    """kubectl describe: events shown for one object (not for several, unless
    --show-events says so), objects separated by a blank line, a name not
    found tried as a prefix of names, the objects found described before the
    errors of those not found."""
    from knet import printers
    from knet.api.resources import by_kind, lookup

    client = connect()
    res = lookup(args.kind)
    if res is None:
        raise CliError(f'the server doesn\'t have a resource type "{args.kind}"')
    ns = None if not res.namespaced or (args.all_namespaces and not args.name) else (args.namespace or "default")
    errors: list[ApiError] = []
    objs = []
    prefix = False
    if args.name:
        for name in args.name:
            try:
                objs.append(client.get(res, ns, name))
            except ApiError as e:
                if e.code != 404:
                    raise
                errors.append(e)
        if len(args.name) == 1 and errors:  # DescribeMatchingResources: `describe pod web` finds web-*
            objs = [o for o in client.list(res, ns)["items"] if o["metadata"]["name"].startswith(args.name[0])]
            if not objs:
                raise errors[0]
            errors, prefix = [], True
    else:
        objs = client.list(res, ns, args.selector)["items"]
    show_events = args.show_events if args.show_events is not None else (len(objs) == 1 and not prefix)
    events = client.list(by_kind("Event"), None)["items"] if show_events and objs else []
    for i, (obj, extra) in enumerate(zip(objs, _related(client, res, objs), strict=True)):
        uid = obj["metadata"].get("uid")
        mine = [e for e in events if e.get("involvedObject", {}).get("uid") == uid]  # listed order kept
        if res.kind == "Node":  # kubelets name a node's events by the node's name as UID: kubectl asks for both
            mine += [e for e in events if e.get("involvedObject", {}).get("uid") == obj["metadata"]["name"]
                     and e.get("involvedObject", {}).get("kind") == "Node"]
        text = printers.describe(obj, mine, show_events=show_events, **extra)
        if prefix:
            print(text)
        else:
            print(("\n\n" if i else "") + text, end="")
    for e in errors:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
    if not objs and not errors:
        print("No resources found" if args.all_namespaces
              else f"No resources found in {args.namespace or 'default'} namespace.", file=sys.stderr)
    return 1 if errors else 0
