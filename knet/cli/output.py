"""kubectl's output formats for `knet get`, object after object: tables
(header once, column widths remembered across a watch's events, as kubectl's
tabwriter remembers them), -o json and yaml as Go's encoders write them,
name, jsonpath, custom-columns, and watch events (--output-watch-events).
On `knet get`'s start-up path: standard library only at the top; YAML,
jsonpath and custom-columns are imported by the formats that use them."""

from __future__ import annotations

from knet.cli.common import CliError, label

TYPE_CHECKING = False  # not typing's: importing typing is 4 ms of every `knet get`
if TYPE_CHECKING:
    import argparse

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


_ALLOWED = "custom-columns,custom-columns-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,wide,yaml"
_EVENT_TYPES = {"ADDED": "ADDED   ", "MODIFIED": "MODIFIED", "DELETED": "DELETED ", "ERROR": "ERROR   "}


class Output:
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
