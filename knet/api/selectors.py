"""Label and field selectors, parsed and matched the way apimachinery does.

Three ways to build a label `Selector`, because Kubernetes gives "empty" three
different meanings depending on where the selector comes from:

* `parse_label_selector(text)` -- the `?labelSelector=` / `kubectl -l` text form.
  An empty string selects everything (a plain `kubectl get pods`).
* `selector_from_label_selector(sel)` -- the API `LabelSelector` object
  (`matchLabels` + `matchExpressions`), as metav1.LabelSelectorAsSelector reads
  it: `{}` selects everything, `None` selects nothing. Used for workload
  `spec.selector` (Deployment/ReplicaSet/DaemonSet/StatefulSet) and for
  NetworkPolicy `podSelector` / `namespaceSelector`, where `podSelector: {}`
  means "all pods in the namespace" and an absent peer selector means "no pods".
* `selector_from_map(d)` -- a plain `{key: value}` map such as Service
  `spec.selector`: an empty or missing map selects nothing, because a Service
  without a selector has its endpoints managed by hand, never "every pod".
  Pod `spec.nodeSelector` is the other plain map, where empty means every node:
  pass `match_all_if_empty=True` there.

Field selectors (`?fieldSelector=`) only support `=`, `==` and `!=`;
`FieldSelector.requirements` exposes them so a store can push an exact
`spec.nodeName=X` down instead of scanning every pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from knet.api.errors import bad_request

# -- label key / value syntax (shared with validation) ---------------------------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, byte for byte (including its double space
    before ' or ' when there are several examples)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def is_dns1123_subdomain(value: str) -> list[str]:
    """Messages for a string that is not an RFC 1123 subdomain (empty list if it is)."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")


def is_qualified_name(value: str) -> list[str]:
    """Label keys and annotation keys: an optional DNS subdomain prefix and '/',
    then a name part of at most 63 characters."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                                                  "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    """Label values: empty, or at most 63 characters of the qualified-name charset."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character",
            _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# -- label selectors -------------------------------------------------------------

_EQUALITY_OPS = ("=", "!=")
_SET_OPS = ("in", "notin")
_UNARY_OPS = ("exists", "!")
_NUMERIC_OPS = ("gt", "lt")
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


@dataclass(frozen=True)
class Requirement:
    """One term of a selector. `op` is canonical: '=', '!=', 'in', 'notin',
    'exists', '!' (does not exist), 'gt' or 'lt'; `values` are sorted."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        # gt / lt compare integers; a missing or non-numeric label never matches.
        try:
            have, want = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == "gt" else have < want

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in _SET_OPS:
            return f"{self.key} {self.op} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(self.op, self.op)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. `nothing=True` is labels.Nothing(): it
    matches no object (what a nil LabelSelector or an empty Service selector means)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True for the match-everything selector (as labels.Selector.Empty())."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        # As in apimachinery, Nothing() prints as "" too: it has no text form.
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _invalid_text(value: str, msgs: list[str]) -> str:
    return f'Invalid value: "{value}": ' + "; ".join(msgs)


def make_requirement(key: str, op: str, values: list[str] | tuple[str, ...] = ()) -> Requirement:
    """Build a validated requirement (apimachinery's labels.NewRequirement).

    Raises a ValueError with apimachinery's wording; callers turn it into the
    API error that fits their context."""
    if op not in _EQUALITY_OPS + _SET_OPS + _UNARY_OPS + _NUMERIC_OPS:
        raise ValueError(f"operator '{op}' is not recognized")
    msgs = is_qualified_name(key)
    if msgs:
        raise ValueError(_invalid_text(key, msgs))
    values = tuple(sorted(set(values)))
    if op in _SET_OPS and not values:
        raise ValueError("for 'in', 'notin' operators, values set can't be empty")
    if op in _EQUALITY_OPS and len(values) != 1:
        raise ValueError("exact-match compatibility requires one single value")
    if op in _UNARY_OPS and values:
        raise ValueError("values set must be empty for exists and does not exist")
    if op in _NUMERIC_OPS:
        if len(values) != 1:
            raise ValueError("for 'Gt', 'Lt' operators, exactly one value is required")
        if not re.fullmatch(r"[-+]?[0-9]+", values[0]):
            raise ValueError("for 'Gt', 'Lt' operators, the value must be an integer")
        return Requirement(key, op, values)
    for v in values:
        msgs = is_label_value(v)
        if msgs:
            raise ValueError(_invalid_text(v, msgs))
    return Requirement(key, op, values)


def _selector(reqs: list[Requirement]) -> Selector:
    return Selector(tuple(sorted(reqs, key=lambda r: (r.key, r.op, r.values))))


_SPECIALS = ("!=", "==", "!", "=", "(", ")", ",", ">", "<")
_TOKEN_RE = re.compile(r"\s*(!=|==|[!=(),<>]|[^\s!=(),<>]+)")


class _Lexer:
    """Tokens as apimachinery's lexer makes them: special symbols, or identifiers
    (any run of characters that are neither whitespace nor special)."""

    def __init__(self, text: str):
        self.tokens: list[str] = []
        pos = 0
        while True:
            m = _TOKEN_RE.match(text, pos)
            if not m:
                break
            self.tokens.append(m.group(1))
            pos = m.end()
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def next(self) -> str:
        tok = self.peek()
        self.pos += 1
        return tok

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def peek_is_identifier(self) -> bool:
        return not self.at_end() and self.peek() not in _SPECIALS


class _LabelParser:
    def __init__(self, text: str):
        self.lex = _Lexer(text)

    def parse(self) -> Selector:
        reqs: list[Requirement] = []
        lex = self.lex
        while not lex.at_end():
            if not (lex.peek_is_identifier() or lex.peek() == "!"):
                raise ValueError(f"found '{lex.peek()}', expected: !, identifier, or 'end of string'")
            reqs.append(self.requirement())
            if lex.at_end():
                break
            tok = lex.next()
            if tok != ",":
                raise ValueError(f"found '{tok}', expected: ',' or 'end of string'")
            if not (lex.peek_is_identifier() or lex.peek() == "!"):
                raise ValueError(f"found '{lex.peek()}', expected: identifier after ','")
        return _selector(reqs)

    def requirement(self) -> Requirement:
        lex = self.lex
        negated = lex.peek() == "!"
        if negated:
            lex.next()
        if not lex.peek_is_identifier():
            raise ValueError(f"found '{lex.peek()}', expected: identifier")
        key = lex.next()
        if negated or lex.at_end() or lex.peek() == ",":
            return make_requirement(key, "!" if negated else "exists")
        op = self.operator()
        values = self.value_list() if op in _SET_OPS else self.exact_value()
        return make_requirement(key, op, values)

    def operator(self) -> str:
        tok = self.lex.next()
        ops = {"in": "in", "notin": "notin", "=": "=", "==": "=", "!=": "!=", ">": "gt", "<": "lt"}
        if tok not in ops:
            raise ValueError(f"found '{tok}', expected: {_BINARY_OPERATORS}")
        return ops[tok]

    def exact_value(self) -> list[str]:
        lex = self.lex
        if lex.at_end() or lex.peek() == ",":
            return [""]
        tok = lex.next()
        if tok in _SPECIALS:
            raise ValueError(f"found '{tok}', expected: identifier")
        return [tok]

    def value_list(self) -> list[str]:
        """`(a,b)`; as in apimachinery, empty entries such as `()` or `(a,)` mean ""."""
        lex = self.lex
        tok = lex.next()
        if tok != "(":
            raise ValueError(f"found '{tok}' expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            tok = lex.next()
            if tok == ")":
                if expect_value:
                    values.append("")
                return values
            if tok == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif tok and tok not in _SPECIALS and expect_value:
                values.append(tok)
                expect_value = False
            elif not tok:
                raise ValueError("found '', expected: ',' or ')'")
            else:
                raise ValueError(f"found '{tok}', expected: ',', ')' or identifier")


def parse_label_selector(text: str) -> Selector:
    """Parse kubectl `-l` syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    `a notin (x)`, `a` (exists), `!a` (does not exist), `a>1`, `a<1`, joined
    by commas. Raises a 400 ApiError on bad syntax."""
    try:
        return _LabelParser(text or "").parse()
    except ValueError as e:
        raise bad_request(f"unable to parse requirement: {e}") from None


_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_label_selector(sel: dict | None) -> Selector:
    """The API LabelSelector form. None selects nothing; `{}` selects everything.

    Raises a 400 ApiError for an invalid selector (validation normally rejects
    those first, with field paths)."""
    if sel is None:
        return NOTHING
    if not isinstance(sel, dict):
        raise bad_request(f"invalid label selector: {sel!r}")
    try:
        reqs = [make_requirement(str(k), "=", [str(v)])
                for k, v in (sel.get("matchLabels") or {}).items()]
        for expr in sel.get("matchExpressions") or []:
            op = expr.get("operator")
            if not isinstance(op, str) or op not in _EXPRESSION_OPS:
                raise ValueError(f'"{op}" is not a valid label selector operator')
            reqs.append(make_requirement(str(expr.get("key", "")), _EXPRESSION_OPS[op],
                                         [str(v) for v in expr.get("values") or []]))
    except (ValueError, AttributeError, TypeError) as e:
        raise bad_request(f"invalid label selector: {e}") from None
    return _selector(reqs)


def selector_from_map(d: Mapping[str, str] | None, *, match_all_if_empty: bool = False) -> Selector:
    """A plain label map, as in Service `spec.selector`: empty or None selects
    nothing (pass `match_all_if_empty=True` for Pod `spec.nodeSelector`)."""
    if not d:
        return EVERYTHING if match_all_if_empty else NOTHING
    try:
        return _selector([make_requirement(str(k), "=", [str(v)]) for k, v in d.items()])
    except ValueError as e:
        raise bad_request(f"invalid label selector: {e}") from None


# -- field selectors -------------------------------------------------------------

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

#: The field labels each kind serves, as the Kubernetes API server does; any
#: other label is a 400 "field label not supported".
SUPPORTED_FIELDS: dict[str, frozenset[str]] = {
    "Pod": _COMMON_FIELDS | {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
        "status.nominatedNodeName"},
    "Node": _COMMON_FIELDS | {"spec.unschedulable"},
    "Namespace": _COMMON_FIELDS | {"status.phase"},
    "ReplicaSet": _COMMON_FIELDS | {"status.replicas"},
    "Event": _COMMON_FIELDS | {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
}

# Field labels whose value is not at the same path in the object, and the text
# Go prints for an unset bool/int.
_FIELD_PATHS = {"source": "source.component"}
_FIELD_DEFAULTS = {"spec.hostNetwork": "false", "spec.unschedulable": "false", "status.replicas": "0"}


class FieldRequirement(NamedTuple):
    path: str
    op: str  # "=" or "!="
    value: str


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in _FIELD_PATHS.get(path, path).split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    if cur is None:
        return _FIELD_DEFAULTS.get(path, "")
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, list):  # status.podIPs: [{ip: ...}, ...]
        return ",".join(str(x.get("ip", "")) if isinstance(x, Mapping) else str(x) for x in cur)
    return str(cur)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, op, value in self.requirements:
            if (_field_value(obj, path) == value) != (op == "="):
                return False
        return True

    def exact(self, path: str) -> str | None:
        """The value `path` must equal, if the selector pins it (for push-down)."""
        for p, op, value in self.requirements:
            if p == path and op == "=":
                return value
        return None

    def __str__(self) -> str:
        return ",".join(f"{p}{op}{_escape(v)}" for p, op, v in self.requirements)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        cur.append("\\")
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise bad_request(f"invalid field selector: unescaped character '{ch}' in value")
        else:
            out.append(ch)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], "=" if op == "==" else op, term[i + len(op):]
    return None


def parse_field_selector(text: str, kind: str | None = None) -> FieldSelector:
    """Parse `path=value`, `path==value`, `path!=value`, comma-separated.

    With `kind`, reject field labels that kind does not serve, as the Kubernetes
    API server does (`field label not supported: ...`). Terms are sorted, as
    apimachinery sorts them, so the text form is canonical."""
    reqs = []
    for term in sorted(_split_unescaped(text or "", ",")):
        if not term:
            continue
        split = _split_term(term)
        if split is None or not split[0]:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, raw = split
        if kind and path not in SUPPORTED_FIELDS.get(kind, _COMMON_FIELDS):
            raise bad_request(f"field label not supported: {path}")
        reqs.append(FieldRequirement(path, op, _unescape(raw)))
    return FieldSelector(tuple(reqs))

