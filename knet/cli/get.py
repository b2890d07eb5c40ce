"""knet get and describe: objects as kubectl shows them (tables, -o
json/yaml/name, one object in detail with its events). The most frequent
command: this module and what it imports are the start-up cost of `knet get`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, label

if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.api.resources import Resource


def _dump(obj: dict, fmt: str) -> str:
    """kubectl's -o json (json.MarshalIndent: keys sorted, <>& escaped) or -o yaml."""
    if fmt == "json":
        from knet.cli.jsonpath import go_json_indent

        return go_json_indent(obj)
    import yaml

    return yaml.dump(obj, Dumper=_go_yaml_dumper(yaml), default_flow_style=False, sort_keys=True,
                     allow_unicode=True)


def _go_yaml_dumper(yaml):  # noqa: ANN001, ANN202 (yaml is imported by the caller, only for YAML output)
    """PyYAML's SafeDumper choosing a string's style as go-yaml (sigs.k8s.io/yaml)
    does: one that would read back as another type ("5", "true", a timestamp)
    double-quoted, one with line breaks as a literal block, the rest plain or,
    where plain is not allowed, single-quoted."""
    class GoDumper(yaml.SafeDumper):
        def choose_scalar_style(self):  # noqa: ANN202
            style = super().choose_scalar_style()
            event = self.event
            if isinstance(event, yaml.ScalarEvent) and event.tag == "tag:yaml.org,2002:str" and event.style is None:
                if not event.implicit[0]:
                    return '"'
                if "\n" in event.value and self.analysis.allow_block:
                    return "|"
            return style
    return GoDumper


def _without_managed_fields(data: object) -> object:
    """kubectl's OmitManagedFieldsPrinter: -o json/yaml leave metadata.managedFields
    out (of an object, or of each item of a List) unless --show-managed-fields."""
    def strip(obj: object) -> object:
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and "managedFields" in obj["metadata"]:
            obj = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}
        return obj
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return {**data, "items": [strip(o) for o in data["items"]]}
    return strip(data)


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


_ALLOWED = "custom-columns,custom-columns-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,wide,yaml"
_EVENT_TYPES = {"ADDED": "ADDED   ", "MODIFIED": "MODIFIED", "DELETED": "DELETED ", "ERROR": "ERROR   "}


class _Output:
    """One `-o` format, printing objects as kubectl's printer for it does,
    call after call: the table's header once and its column widths remembered
    (a watch adds a row per event), YAML documents separated by `---`."""

    def __init__(self, args: argparse.Namespace) -> None:
        fmt = args.output or ""
        self.events = bool(getattr(args, "output_watch_events", False))
        self.no_headers = args.no_headers
        self.managed_fields = args.show_managed_fields
        self.widths: list[int] = []
        self.header_done = False
        self.printed = 0
        self.jsonpath = self.columns = None
        self.all_namespaces = args.all_namespaces
        name, sep, template = fmt.partition("=")
        if name in ("jsonpath", "jsonpath-file", "jsonpath-as-json"):
            from knet.cli.jsonpath import JSONPath, JSONPathError

            if not sep and args.template:  # -o jsonpath --template='{...}'
                template = args.template
            if not template:
                raise CliError("template format specified but no template given")
            if name == "jsonpath-file":
                try:
                    with open(template) as f:
                        template = f.read()
                except OSError as e:
                    raise CliError(f"error reading --template {template}, {e}") from None
            try:
                self.jsonpath = JSONPath(template, allow_missing_keys=args.allow_missing_template_keys,
                                         output_json=name == "jsonpath-as-json")
            except JSONPathError as e:
                raise CliError(f"error parsing jsonpath {template}, {e}") from None
            self.kind = "jsonpath"
        elif name in ("custom-columns", "custom-columns-file"):
            from knet.cli import columns

            try:
                if name == "custom-columns-file":
                    try:
                        with open(template) as f:
                            text = f.read()
                    except OSError as e:
                        raise CliError(f"error reading template {template}, {e}") from None
                    self.columns = columns.from_file(text)
                else:
                    self.columns = columns.from_spec(template, self.no_headers)
            except columns.ColumnsError as e:
                raise CliError(str(e)) from None
            self.kind = "columns"
        elif fmt in ("json", "yaml", "name"):
            self.kind = fmt
        elif fmt in ("", "wide"):
            self.kind = "table"
            self.wide = fmt == "wide"
        else:
            raise CliError(f'unable to match a printer suitable for the output format "{fmt}", '
                           f"allowed formats are: {_ALLOWED}")

    def _jsonpath(self, data: object) -> str:
        from knet.cli.jsonpath import JSONPathError

        try:
            return self.jsonpath.execute(data)
        except JSONPathError as e:
            from knet.cli.jsonpath import go_quote, go_sharp_v

            template = self.jsonpath.template
            raise CliError(
                f"error executing jsonpath {go_quote(template)}: Error executing template: {e}. Printing more "
                f"information for debugging the template:\n\ttemplate was:\n\t\t{template}\n\tobject given to "
                f"jsonpath engine was:\n\t\t{go_sharp_v(data)}\n\n") from None

    def whole(self, data: dict, objects: list[dict]) -> str:
        """One get's answer: `data` is the object or the List kubectl prints
        (json, yaml, jsonpath); `objects` are its items (the other formats)."""
        if self.kind in ("json", "yaml"):
            text = _dump(data if self.managed_fields else _without_managed_fields(data), self.kind)
            return text if self.kind == "yaml" else text + "\n"
        if self.kind == "jsonpath":
            return self._jsonpath(data)
        if self.kind == "columns":
            from knet import printers

            return printers.tabwrite(self.columns.lines(objects), self.widths)
        raise AssertionError(self.kind)

    def events_text(self, res: Resource, events: list[tuple[str, dict]], extra: list | None = None) -> str:
        """Watch output: each (type, object) as kubectl -w prints it, in order."""
        if not events:
            return ""
        if self.kind == "table":
            from knet import printers

            cells = printers.table_cells(res.kind, [o for _, o in events], wide=self.wide,
                                         all_namespaces=self.all_namespaces, extra=extra or [])
            if self.events:
                cells = [["EVENT"] + cells[0]] + [[_EVENT_TYPES.get(t, t)] + row
                                                  for (t, _), row in zip(events, cells[1:], strict=True)]
            if self.header_done or self.no_headers:
                cells = cells[1:]
            self.header_done = True
            return printers.tabwrite(cells, self.widths)
        out = []
        rows: list[list[str]] = []  # custom-columns: one flush of the tabwriter per call, as kubectl's
        for kind, obj in events:
            if self.kind in ("json", "yaml") and not self.managed_fields and not self.events:
                obj = _without_managed_fields(obj)  # (kubectl's printer leaves a WatchEvent's object whole)
            data = {"type": kind, "object": obj} if self.events else obj
            if self.kind == "json":
                # metav1.WatchEvent is a struct: "type" comes before "object"
                out.append((f'{{"type":{_compact(kind)},"object":{_compact(obj)}}}' if self.events
                            else _dump(data, "json")) + "\n")
            elif self.kind == "yaml":
                out.append(("---\n" if self.printed else "") + _dump(data, "yaml"))
            elif self.kind == "name":
                out.append(label(res, obj["metadata"]["name"]) + "\n")
            elif self.kind == "jsonpath":
                out.append(self._jsonpath(data))
            elif self.kind == "columns":
                rows.extend(self.columns.lines([data]))
            self.printed += 1
        if rows:
            from knet import printers

            out.append(printers.tabwrite(rows, self.widths))
        return "".join(out)


def _compact(data: object) -> str:
    """json.Marshal: compact, keys sorted, <>& escaped (a watch event per line)."""
    from knet.cli.jsonpath import go_json

    return go_json(data)


def _typed(res: Resource, items: list[dict]) -> list[dict]:
    """List items carry their apiVersion and kind, as kubectl's unstructured items do."""
    for o in items:
        o.setdefault("apiVersion", res.api_version)
        o.setdefault("kind", res.kind)
    return items


def cmd_get(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.resources import lookup

    watching = args.watch or args.watch_only
    if args.output_watch_events and not watching:
        raise CliError("--output-watch-events option can only be used with --watch or --watch-only")
    output = _Output(args)
    if args.show_labels and output.kind != "table":
        raise CliError(f"--show-labels option cannot be used with {args.output} printer")
    if args.label_columns and output.kind == "columns":
        raise CliError(f"--label-columns option cannot be used with {args.output} printer")
    kinds = args.kind.split(",")
    resources = []
    for k in kinds:
        res = lookup(k)
        if res is None:
            raise CliError(f'the server doesn\'t have a resource type "{k}"')
        resources.append(res)
    if watching and len(resources) > 1:
        raise CliError("you may only specify a single resource type")
    if watching and len(args.name) > 1:
        raise CliError(f"watch is only supported on individual resources and resource collections, but "
                       f"{len(args.name)} resources were found")
    client = connect()
    ns = None if args.all_namespaces else (args.namespace or "default")
    if watching:
        return _watch(args, client, resources[0], None if not resources[0].namespaced else ns, output)
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


def _print_got(args: argparse.Namespace, client: Client, output: _Output, resources: list[Resource],
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


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _watch(args: argparse.Namespace, client: Client, res: Resource, ns: str | None, output: _Output) -> int:
    """kubectl get -w: the current objects (unless --watch-only), then a row
    per change, from the list's resourceVersion. Beyond kubectl, which ends
    when the server closes the watch, it goes on: a closed or broken watch is
    resumed from the last resourceVersion seen, and a 410 Gone lists again and
    prints what changed meanwhile (as client-go's reflector would see it).
    Ctrl-C ends it quietly with exit 0, as kubectl's interrupt handler does."""
    import time

    from knet.api.client import ProtocolError

    field_selector = args.field_selector
    if args.name:
        try:
            client.get(res, ns, args.name[0])  # NotFound is kubectl's error, before anything is printed
        except ApiError as e:
            if e.code == 404 and args.ignore_not_found:
                return 0
            raise
        field_selector = ",".join(f for f in (f"metadata.name={args.name[0]}", field_selector) if f)

    def wide_extra(objs: list[dict]) -> list:
        return _label_columns(args) + (_pod_policy_columns(client, objs) if output.kind == "table" and output.wide
                                       and res.kind == "Pod" else [])

    def emit(events: list[tuple[str, dict]]) -> None:
        text = output.events_text(res, events, wide_extra([o for _, o in events]))
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def listing() -> tuple[str, dict[tuple[str, str], dict]]:
        answer = client.list(res, ns, args.selector, field_selector)
        return answer["metadata"]["resourceVersion"], {_key(o): o for o in _typed(res, answer["items"])}

    if args.sort_by:
        which = "--watch-only" if args.watch_only else "--watch"
        print(f"warning: {which} requested, --sort-by will be ignored"
              + (" for watch events received" if not args.watch_only else ""), file=sys.stderr)
    try:
        listed, known = listing()
        rv: str | None = listed
        if not args.watch_only:
            initial = list(known.values())
            if args.sort_by and output.kind == "table" and len(initial) > 1:  # the listing's table is sorted
                initial = [o for _, o in _sorted([(res, o) for o in initial], args.sort_by, table=True)]
            emit([("ADDED", o) for o in initial])
        while True:
            began = time.monotonic()
            try:
                if rv is None:  # after 410 Gone: list again, and print what changed meanwhile
                    rv, fresh = listing()
                    changes = [("ADDED" if k not in known else "MODIFIED", o) for k, o in fresh.items()
                               if k not in known or known[k]["metadata"].get("resourceVersion")
                               != o["metadata"].get("resourceVersion")]
                    changes += [("DELETED", o) for k, o in known.items() if k not in fresh]
                    known = fresh
                    emit(changes)
                for ev in client.watch(res, ns, rv, args.selector, field_selector):
                    kind, obj = ev.get("type"), ev.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError.from_status(obj)
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if kind == "BOOKMARK":
                        continue
                    _typed(res, [obj])
                    if kind == "DELETED":
                        known.pop(_key(obj), None)
                    else:
                        known[_key(obj)] = obj
                    emit([(kind, obj)])
            except ApiError as e:
                if e.code != 410:
                    raise
                rv = None
            except (ConnectionError, ProtocolError):
                time.sleep(1)  # the API server restarting: resume from rv once it answers
            if time.monotonic() - began < 1:
                time.sleep(0.5)  # a server closing every watch at once is not polled in a tight loop
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while leaving is not an error either
        return 0


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
