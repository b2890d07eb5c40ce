"""kubectl's JSONPath templates (`-o jsonpath=`, custom-columns' cells), as
k8s.io/client-go/util/jsonpath parses and runs them.

It is not RFC 9535 JSONPath: kubectl's dialect has `{...}` actions between
plain text, `range`/`end`, quoted strings with Go escapes, `[?()]` filters
compared with Go template rules, slices whose bounds are errors, `..` that
yields every container, and it prints results the Go way (maps and lists as
compact JSON, numbers with fmt's %v, several results joined by a space). People
paste templates from Kubernetes docs and Stack Overflow answers, so the same
template has to print the same bytes here; this is a port of the behaviour
(upstream's quirks included), written for Python values decoded from JSON.

Two differences are deliberate: Go visits a map's keys in random order (for
`.*` and `..`); here they come sorted, one of the orders kubectl may print.
Pure and standard-library only (Go's float printing is knet.api.gofmt's): it runs on `knet get`'s start-up path.
"""

from __future__ import annotations

import json
import re

from knet.api.gofmt import go_float, json_float

__all__ = ["JSONPath", "JSONPathError", "go_json", "go_json_indent", "go_quote", "go_sharp_v", "go_text"]


class JSONPathError(Exception):
    """A template that does not parse, or fails on the data (upstream's wording)."""


# A reflect.Value that is not valid: what Go's jsonpath walks after `range` over
# a null element (value.Interface() is nil). Printed as "<no value>".
_INVALID = object()


# ------------------------------------------------------------------ Go formatting


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML = re.compile("[<>&\u2028\u2029]")


def _json_string(s: str) -> str:
    return _HTML.sub(lambda m: _HTML_ESCAPES[m.group()], json.dumps(s, ensure_ascii=False))


def go_json(value: object) -> str:
    """encoding/json.Marshal of a value decoded into interface{}: compact, map keys
    sorted, HTML characters escaped, floats in Go's form (4.0 is `4`)."""
    if value is None or value is _INVALID:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(str(k))}:{go_json(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _json_string(str(value))


def _whole_floats(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats(v) for v in value]
    return value


def go_json_indent(value: object) -> str:
    """encoding/json.MarshalIndent(value, "", "    ") (kubectl's -o json): keys
    sorted, <>& escaped, whole floats as integers. Through the C encoder, for
    thousands of objects; a fractional float keeps Python's exponent form."""
    text = json.dumps(_whole_floats(value), indent=4, sort_keys=True, ensure_ascii=False)
    return _HTML.sub(lambda m: _HTML_ESCAPES[m.group()], text) if _HTML.search(text) else text


def go_text(value: object) -> str:
    """fmt.Fprint of a scalar result, as jsonpath's evalToText prints it."""
    if value is _INVALID:
        return "<no value>"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_quote(s: str) -> str:
    """strconv.Quote: Go's double-quoted string literal."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_sharp_v(value: object) -> str:
    """fmt's %#v of an unstructured object (map[string]interface {}{...}):
    what kubectl prints as "object given to jsonpath engine was"."""
    def inner(v: object) -> str:
        if v is None:
            return "interface {}(nil)"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, float):
            return go_float(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return go_quote(v)
        if isinstance(v, dict):
            return "map[string]interface {}{" + ", ".join(
                f"{go_quote(str(k))}:{inner(v[k])}" for k in sorted(v)) + "}"
        if isinstance(v, (list, tuple)):
            return "[]interface {}{" + ", ".join(inner(x) for x in v) + "}"
        return go_quote(str(v))
    return inner(value)


def _go_type(value: object) -> str:
    """reflect.Type's name, for error messages."""
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "interface {}"


def _go_v(value: object) -> str:
    """fmt's %v of a value (maps as map[k:v ...])."""
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return go_text(value)


# ------------------------------------------------------------------ parser
#
# Nodes are tuples: ("list", [nodes]), ("text", s), ("field", name), ("array", params),
# ("filter", left_list, right_list, op), ("int", n), ("float", f), ("bool", b),
# ("wildcard",), ("recursive",), ("union", [lists]), ("identifier", name).
# Array params: three [known, value, derived] triples (start, end, step).

_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?[\d]*)(:-?[\d]*)?(:-?[\d]*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.S)
_EOF = ""


def _is_terminator(r: str) -> bool:
    return r in (_EOF, " ", "\t", "\r", "\n", ".", ",", "[", "]", "$", "@", "{", "}")


def _is_alnum(r: str) -> bool:
    return r == "_" or r.isalpha() or r.isdecimal()


def _rune_name(r: str) -> str:
    """Go's %#U: U+002A '*'."""
    return f"U+{ord(r):04X} '{r}'" if r.isprintable() else f"U+{ord(r):04X}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.root: list = []

    # -- scanning (one character at a time, as the Go lexer does)

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.input[self.pos - 1]

    def peek(self) -> str:
        r = self.next()
        self.backup()
        return r

    def backup(self) -> None:
        self.pos -= self.width

    def consume(self) -> str:
        value = self.input[self.start:self.pos]
        self.start = self.pos
        return value

    # -- grammar (iterative where Go recurses per token, so long templates cannot overflow)

    def parse(self) -> list:
        cur = None  # the action being parsed, or None between actions
        while True:
            if cur is None:
                at = self.input.find("{", self.pos)
                if at < 0:
                    self.pos = len(self.input)
                    if self.pos > self.start:
                        self.root.append(("text", self.consume()))
                    return self.root
                self.pos = at
                if self.pos > self.start:
                    self.root.append(("text", self.consume()))
                self.pos += 1
                self.consume()
                cur = []
                self.root.append(("list", cur))
            if not self.inside(cur):
                cur = None

    def inside(self, cur: list) -> bool:
        """Parse one token of an action into cur; False once the action closed."""
        rest = self.input[self.pos:]
        if rest.startswith("}"):
            self.pos += 1
            self.consume()
            return False
        if rest.startswith("[?("):
            self.filter(cur)
            return True
        if rest.startswith(".."):
            if cur and cur[-1][0] == "recursive":
                raise JSONPathError("invalid multiple recursive descent")
            self.pos += 2
            self.consume()
            cur.append(("recursive",))
            if _is_alnum(self.peek()):
                self.field(cur)
            return True
        r = self.next()
        if r == _EOF or r in "\r\n":
            raise JSONPathError("unclosed action")
        if r in (" ", "@", "$"):
            self.consume()
        elif r == "[":
            self.array(cur)
        elif r in ('"', "'"):
            self.quote(cur, r)
        elif r == ".":
            self.field(cur)
        elif r in "+-" or r.isdecimal():
            self.backup()
            self.number(cur)
        elif _is_alnum(r):
            self.backup()
            self.identifier(cur)
        else:
            raise JSONPathError(f"unrecognized character in action: {_rune_name(r)}")
        return True

    def identifier(self, cur: list) -> None:
        while not _is_terminator(self.next()):
            pass
        self.backup()
        value = self.consume()
        cur.append(("bool", value == "true") if value in ("true", "false") else ("identifier", value))

    def number(self, cur: list) -> None:
        if self.peek() in "+-":
            self.next()
        while True:
            r = self.next()
            if r != "." and not r.isdecimal():
                self.backup()
                break
        value = self.consume()
        if re.fullmatch(r"[+-]?\d+", value):
            cur.append(("int", int(value)))
            return
        try:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
                raise ValueError
            cur.append(("float", float(value)))
        except ValueError:
            raise JSONPathError(f"cannot parse number {value}") from None

    def array(self, cur: list) -> None:
        while True:
            r = self.next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated array")
            if r == "]":
                break
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            cur.append(("union", [_action(f"[{p.strip(' ')}]") for p in parts]))
            return
        m = _DICT_KEY.match(text)
        if m:
            cur.extend(_action(f".{m.group(1)}")[1])
            return
        m = _SLICE.match(text)
        if not m:
            raise JSONPathError(f"invalid array index {text}")
        params = [[False, 0, False], [False, 0, False], [False, 0, False]]
        for i, raw in enumerate(m.groups()):
            raw = raw or ""
            if raw:
                if i > 0:
                    raw = raw[1:]
                if i > 0 and raw == "":
                    params[i][0] = False
                else:
                    try:
                        params[i] = [True, int(raw), False]
                    except ValueError:
                        raise JSONPathError(f"array index {raw} is not a number") from None
            elif i == 1:
                params[i] = [True, params[0][1] + 1, True]
        cur.append(("array", params))

    def filter(self, cur: list) -> None:
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            r = self.next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated filter")
            if r in ('"', "'"):
                if not begin:
                    begin, pair = True, r
                    continue
                if self.input[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")" and begin == end:
                break
        if self.next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self.consume()[:-2]
        m = _FILTER.match(text)
        if m is None:
            cur.append(("filter", _action(text), ("list", []), "exists"))
        else:
            cur.append(("filter", _action(m.group(1)), _action(m.group(3)), m.group(2)))

    def quote(self, cur: list, end: str) -> None:
        while True:
            r = self.next()
            if r in (_EOF, "\n"):
                raise JSONPathError("unterminated quoted string")
            if r == end and self.input[self.pos - 2] != "\\":
                break
        value = self.consume()
        try:
            cur.append(("text", _unquote(value)))
        except ValueError as e:
            raise JSONPathError(f"unquote string {value} error {e}") from None

    def field(self, cur: list) -> None:
        self.consume()
        while True:
            r = self.next()
            if r == "\\":
                self.next()
            elif _is_terminator(r):
                self.backup()
                break
        value = self.consume()
        cur.append(("wildcard",) if value == "*" else ("field", value.replace("\\", "")))


def _action(text: str) -> tuple:
    """parseAction: one action's text parsed as `{text}`, its list node."""
    root = _Parser("{" + text + "}").parse()
    return root[0]


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(s: str) -> str:
    """UnquoteExtend: a Go string literal in double or single quotes."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in "\"'":
        raise ValueError("invalid syntax")
    quote, body = s[0], s[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise ValueError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e in "'\"":
            if e != quote:
                raise ValueError("invalid syntax")
            out.append(e)
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + n]
            if len(digits) != n or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if e == "x":
                out.append(chr(code))  # a byte; as text, its code point
            else:
                if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                    raise ValueError("invalid syntax")
                out.append(chr(code))
            i += n
        elif e in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


# ------------------------------------------------------------------ evaluation


def _children(value: object) -> list:
    """What `.*` and `..` step into: a map's values (keys sorted), a list's
    elements, a string's bytes (Go indexes strings bytewise)."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return list(value.encode())
    return []


def _kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    raise JSONPathError("invalid type for comparison")


def _less(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        raise JSONPathError("incompatible types for comparison")
    if ka == "bool":
        raise JSONPathError("invalid type for comparison")
    return a < b  # type: ignore[operator]


def _equal(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        raise JSONPathError("incompatible types for comparison")
    return a == b


def _compare(op: str, a: object, b: object) -> bool:
    if op == "<":
        return _less(a, b)
    if op == ">":
        return not (_less(a, b) or _equal(a, b))
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op == "<=":
        return _less(a, b) or _equal(a, b)
    if op == ">=":
        return not _less(a, b)
    raise JSONPathError(f"unrecognized filter operator {op}")


class JSONPath:
    """A parsed template. `execute(data)` gives the text kubectl prints for one
    object; missing keys print nothing unless allow_missing_keys is False
    (kubectl's --allow-missing-template-keys, true by default)."""

    def __init__(self, template: str, allow_missing_keys: bool = True, output_json: bool = False) -> None:
        self.template = template
        self.nodes = _Parser(template).parse()
        self.allow_missing_keys = allow_missing_keys
        self.output_json = output_json  # -o jsonpath-as-json

    def execute(self, data: object) -> str:
        self._begin = self._in = self._end = 0
        self._last_end: int | None = None
        return "".join(self._print(results) for results in self._find(data, 0))

    def results(self, data: object) -> list[list]:
        """The values of each action, without printing (custom-columns' cells)."""
        self._begin = self._in = self._end = 0
        self._last_end = None
        return self._find(data, 0)

    # FindResults: the top-level nodes from `start`, each walked from the root;
    # `range` runs the nodes up to its `end` once per value, with that value as root.
    def _find(self, data: object, start: int) -> list[list]:
        nodes = self.nodes
        cur = [data]
        full: list[list] = []
        i = start
        while i < len(nodes):
            results = self._walk(cur, nodes[i])
            if self._end > 0 and self._end <= self._in:
                self._end -= 1
                self._last_end = i
                break
            if self._begin > 0:
                self._begin -= 1
                self._in += 1
                if results:
                    for value in results:
                        full.extend(self._find(_INVALID if value is None else value, i + 1))
                else:
                    self._find(_INVALID, i + 1)
                self._in -= 1
                for k in range(i + 1, len(nodes)):
                    if k == self._last_end:
                        i = k
                        break
                i += 1
                continue
            full.append(results)
            i += 1
        return full

    def _print(self, results: list) -> str:
        if self.output_json:
            return go_json_indent([None if r is _INVALID else r for r in results]) + "\n"
        return " ".join(go_json(r) if isinstance(r, (dict, list, tuple)) else go_text(r) for r in results)

    def _walk(self, values: list, node: tuple) -> list:
        kind = node[0]
        if kind == "list":
            for child in node[1]:
                values = self._walk(values, child)
            return values
        if kind == "text":
            return [node[1]]
        if kind == "field":
            return self._field(values, node[1])
        if kind == "array":
            return self._array(values, node[1])
        if kind == "filter":
            return self._filter(values, node)
        if kind in ("int", "float", "bool"):
            return [node[1] for _ in values]
        if kind == "wildcard":
            return [c for v in values if v is not None and v is not _INVALID for c in _children(v)]
        if kind == "recursive":
            return self._recursive(values)
        if kind == "union":
            out: list = []
            for member in node[1]:
                out.extend(self._walk(values, member))
            return out
        if kind == "identifier":
            name = node[1]
            if name == "range":
                self._begin += 1
                return values
            if name == "end":
                if self._in > 0:
                    self._end += 1
                    return []
                raise JSONPathError("not in range, nothing to end")
            raise JSONPathError(f"unrecognized identifier {name}")
        raise JSONPathError(f"unexpected Node {node}")

    def _field(self, values: list, name: str) -> list:
        if not values:
            return []
        out = [v[name] for v in values if isinstance(v, dict) and name in v]
        if not out and not self.allow_missing_keys:
            raise JSONPathError(f"{name} is not found")
        return out

    def _array(self, values: list, params: list) -> list:
        out: list = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                raise JSONPathError(f"{_go_type(value)} is not array or slice")
            length = len(value)
            (k0, start, _), (k1, stop, derived), (k2, step, _) = params
            start = start if k0 else 0
            if start < 0:
                start += length
            if not k1:
                stop = length
            if stop < 0 or (stop == 0 and derived):
                stop += length
            if stop == start:
                return out  # zero elements asked for: allowed, whatever the bounds
            if start >= length or start < 0:
                raise JSONPathError(f"array index out of bounds: index {start}, length {length}")
            if stop > length or stop < 0:
                raise JSONPathError(f"array index out of bounds: index {stop - 1}, length {length}")
            if start > stop:
                raise JSONPathError(f"starting index {start} is greater than ending index {stop}")
            if k2 and step <= 0:
                raise JSONPathError("step must be > 0")
            out.extend(value[start:stop:step if k2 else 1])
        return out

    def _recursive(self, values: list) -> list:
        out: list = []
        for value in values:
            if value is None or value is _INVALID:
                continue
            children = _children(value)
            if children:
                out.append(value)
                out.extend(self._recursive(children))
        return out

    def _filter(self, values: list, node: tuple) -> list:
        _, left, right, op = node
        out: list = []
        for value in values:
            if not isinstance(value, (list, tuple)):
                raise JSONPathError(f"{_go_v(value)} is not array or slice and cannot be filtered")
            for item in value:
                try:
                    lefts = self._walk([item], left)
                    error = None
                except JSONPathError as e:
                    lefts, error = [], e
                if op == "exists":
                    if lefts:
                        out.append(item)
                    continue
                if error is not None:
                    raise error
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise JSONPathError("can only compare one element at a time")
                rights = self._walk([item], right)
                if not rights:
                    continue
                if len(rights) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if _compare(op, lefts[0], rights[0]):
                    out.append(item)
        return out
