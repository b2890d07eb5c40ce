"""kubectl's `-o custom-columns=HEADER:PATH,...` and `-o custom-columns-file=`
(kubectl/pkg/cmd/get/customcolumn.go): a column per JSONPath, cells printed
with Go's %v (a map is `map[k:v]`, several results joined by commas, nothing
found is `<none>`), aligned as kubectl's table writer aligns them.

Pure and standard-library only (plus knet.cli.jsonpath): on `knet get`'s
start-up path."""

from __future__ import annotations

import re

from knet.cli.jsonpath import JSONPath, JSONPathError, go_text

__all__ = ["CustomColumns", "ColumnsError", "from_file", "from_spec", "relaxed_path"]


class ColumnsError(Exception):
    """A spec kubectl refuses, in kubectl's words."""


_RELAXED = re.compile(r"^\{\.?([^{}]+)\}$|^\.?([^{}]+)$", re.S)


def relaxed_path(path: str) -> str:
    """RelaxedJSONPathExpression: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean `{.a.b}`."""
    if not path:
        return path
    m = _RELAXED.match(path)
    if m is None:
        raise ColumnsError("unexpected path string, expected a 'name1.name2' or '.name1.name2' or "
                           "'{name1.name2}' or '{.name1.name2}'")
    return "{.%s}" % (m.group(1) or m.group(2))


def from_spec(spec: str, no_headers: bool = False) -> CustomColumns:
    if not spec:
        raise ColumnsError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep:
            raise ColumnsError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append((header, relaxed_path(path)))
    return CustomColumns(columns, no_headers)


def from_file(text: str) -> CustomColumns:
    """The file form: a line of headers, a line of paths, split on whitespace
    (the file's other lines are not read, as kubectl reads only two)."""
    lines = text.splitlines()
    if not lines:
        raise ColumnsError("invalid template, missing header line. Expected format is one line of space "
                           "separated headers, one line of space separated column specs.")
    if len(lines) < 2:
        raise ColumnsError("invalid template, missing spec line. Expected format is one line of space "
                           "separated headers, one line of space separated column specs.")
    headers, specs = lines[0].split(), lines[1].split()
    if len(headers) != len(specs):
        raise ColumnsError(f"number of headers ({len(headers)}) and field specifications ({len(specs)}) don't match")
    return CustomColumns([(h, relaxed_path(s)) for h, s in zip(headers, specs, strict=True)], False)


def _cell_text(value: object) -> str:
    """fmt.Sprint of one result, terminal escapes made harmless (EscapeTerminal)."""
    if isinstance(value, dict):
        text = "map[" + " ".join(f"{k}:{_cell_text(value[k])}" for k in sorted(value)) + "]"
    elif isinstance(value, list):
        text = "[" + " ".join(_cell_text(v) for v in value) + "]"
    elif value is None:
        text = "<nil>"
    else:
        text = go_text(value)
    return text.replace("\x1b", "^[").replace("\r", "\\r")


class CustomColumns:
    """The printer: header once (unless no_headers), then a row per object."""

    def __init__(self, columns: list[tuple[str, str]], no_headers: bool = False) -> None:
        self.columns = columns
        self.no_headers = no_headers
        try:
            self._paths = [JSONPath(path) for _, path in columns]
        except JSONPathError as e:
            raise ColumnsError(str(e)) from None
        self.printed_header = False

    def header(self) -> list[str]:
        return [h for h, _ in self.columns]

    def row(self, obj: dict) -> list[str]:
        cells = []
        for path in self._paths:
            try:
                results = path.results(obj)
            except JSONPathError as e:
                raise ColumnsError(str(e)) from None
            texts = [] if results and results[0] else ["<none>"]  # kubectl looks only at the first action
            texts.extend(_cell_text(v) for rs in results for v in rs)
            cells.append(",".join(texts))
        return cells

    def lines(self, objects: list[dict]) -> list[list[str]]:
        """The header (the first time, unless no_headers) and a row per object."""
        out = []
        if not self.no_headers and not self.printed_header:
            out.append(self.header())
            self.printed_header = True
        out.extend(self.row(o) for o in objects)
        return out
