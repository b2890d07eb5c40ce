#!/usr/bin/env python3
"""Regenerate knet/api/fielddocs.py: upstream's descriptions, enum values and
required fields for every struct of knet/api/schema.py, for the OpenAPI
documents (what `kubectl explain` prints).

The descriptions are the Go doc comments of the types, rendered as
kube-openapi's openapi-gen renders them (markers dropped, lines joined,
paragraphs and indented lines kept, an `+enum` type's constants listed as
"Possible enum values"), so explain prints what it prints against kube-apiserver. Sources (Apache-2.0), as checkouts:

    .venv/bin/python scripts/gen_fielddocs.py K8S_API APIMACHINERY NETWORK_POLICY_API

K8S_API is k8s.io/api (core/v1/types.go, ...), APIMACHINERY k8s.io/apimachinery
(pkg/apis/meta/v1/types.go), NETWORK_POLICY_API kubernetes-sigs/network-policy-api
(apis/v1alpha1/*.go). Required fields come from the `kubernetes` Python
client's models (generated from upstream's OpenAPI), and for network-policy-api
from the Go rule (no `+optional`, no omitempty).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kubernetes.client.models as models  # noqa: E402

from knet.api import openapi, schema  # noqa: E402

# Python client class names that are not "V1" + the Go name.
CLASSES = {"Event": "CoreV1Event", "EventSeries": "CoreV1EventSeries", "EndpointPort": "DiscoveryV1EndpointPort",
           "ResourceClaim": "CoreV1ResourceClaim", "EventSource": "V1EventSource"}


class Package:
    """The doc comments of one Go package: structs (and their inline
    members), fields, and the values of its +enum string types."""

    def __init__(self, files: list[str]):
        self.structs: dict[str, str] = {}  # struct -> doc
        self.fields: dict[str, dict[str, tuple[str, str, list[str]]]] = {}  # struct -> json -> (doc, type, markers)
        self.inline: dict[str, list[str]] = {}  # struct -> embedded inline structs
        self.enums: set[str] = set()
        self.consts: dict[str, list[tuple[str, str]]] = {}  # type -> [(value, doc)]
        for f in files:
            self._parse(open(f).read().split("\n"))

    def _parse(self, lines: list[str]) -> None:
        comments: list[str] = []
        struct = None
        in_const = False
        for raw in lines:
            s = raw.strip()
            if s.startswith("//"):
                text = s[2:]
                comments.append(text[1:] if text.startswith(" ") else text)
                continue
            if m := re.match(r"type (\w+) struct\s*\{", s):
                self.structs[m.group(1)] = _text(comments)
                self.fields.setdefault(m.group(1), {})
                struct = None if s.endswith("}") else m.group(1)
            elif m := re.match(r"type (\w+) string\b", s):
                if any(c.strip() == "+enum" for c in comments):
                    self.enums.add(m.group(1))
            elif struct and s == "}":
                struct = None
            elif s.startswith("const ("):
                in_const = True
            elif in_const and s == ")":
                in_const = False
            elif (in_const or s.startswith("const ")) and (
                    m := re.match(r'(?:const\s+)?(\w+)\s+(\w+)\s*=\s*"([^"]*)"', s)):
                self.consts.setdefault(m.group(2), []).append((m.group(3), _text(comments), m.group(1)))
            elif struct and (m := re.search(r"`(.*)`", s)):
                tags = dict(re.findall(r'(\w+):"([^"]*)"', m.group(1)))
                parts = tags.get("json", "").split(",")
                go = s[:m.start()].split()
                if parts[0] and parts[0] != "-":
                    self.fields[struct][parts[0]] = (_text(comments), go[-1] if len(go) > 1 else "",
                                                     [c.strip() for c in comments if c.strip().startswith("+")])
                elif len(go) == 1:  # an embedded struct: its fields are this one's
                    self.inline.setdefault(struct, []).append(go[0].lstrip("*").split(".")[-1])
            comments = []

    def field(self, struct: str, name: str) -> tuple[str, str] | None:
        """(doc, Go type) of a field, looking through inline members."""
        if name in self.fields.get(struct, {}):
            doc, t, _ = self.fields[struct][name]
            return doc, t
        for member in self.inline.get(struct, ()):
            found = self.field(member, name) or (META.field(member, name) if self is not META else None)
            if found:
                return found
        return None

    def enum_lines(self, go_type: str) -> list[str]:
        t = go_type.lstrip("*").split(".")[-1]
        if t not in self.enums or t not in self.consts:
            return []
        out = ["Possible enum values:"]
        for value, doc, const in sorted(self.consts[t]):
            comment = re.sub(r"\s+", " ", doc.strip().removeprefix(const).strip())
            out.append(f' - `"{value}"` {comment}')
        return [out[0], *sorted(out[1:])]

    def enum_values(self, go_type: str) -> list[str]:
        t = go_type.lstrip("*").split(".")[-1]
        return sorted(v for v, _, _ in self.consts.get(t, ())) if t in self.enums else []


def _text(comments: list[str]) -> str:
    """go/ast's CommentGroup.Text: leading and trailing blank lines dropped,
    runs of blank lines made one, trailing spaces trimmed."""
    lines = []
    for c in comments:
        c = c.rstrip()
        if c or (lines and lines[-1]):
            lines.append(c)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def fmt_raw_doc(raw: str) -> str:
    """kube-openapi's generateDescription, as the text lands in the OpenAPI
    document: lines joined by spaces, a blank line a paragraph break, an
    indented line on its own, markers and TODOs dropped, nothing after `---`."""
    out = ""
    for line in raw.split("\n"):
        if line == "---":
            break
        line = line.rstrip(" ")
        leading = line.lstrip(" ")
        if not line:
            out = out[:-1] + "\n\n"
        elif leading.startswith("TODO") or leading.startswith("+"):
            continue
        elif line.startswith(" ") or line.startswith("\t"):
            out = out[:-1] + "\n" + line + "\n"
        else:
            out += line + " "
    return out.strip()


def crd_doc(raw: str) -> str:
    """controller-gen's description of a CRD field: the comment's lines as
    they are, markers dropped."""
    lines = [line for line in raw.split("\n") if not line.lstrip().startswith("+")]
    return _text(lines).strip()


def main() -> None:
    api, machinery, npa = sys.argv[1:4]
    global META
    META = Package([os.path.join(machinery, "pkg/apis/meta/v1/types.go")])
    packages: dict[str, Package] = {"io.k8s.apimachinery.pkg.apis.meta.v1.": META}
    for path in sorted(glob.glob(os.path.join(api, "*/*/types.go"))):
        group, version = path.split(os.sep)[-3:-1]
        packages[f"io.k8s.api.{group}.{version}."] = Package([path])
    packages["io.k8s.networking.policy.v1alpha1."] = Package(sorted(glob.glob(os.path.join(npa, "apis/v1alpha1/*.go"))))
    names = openapi.definition_names()
    descriptions: dict[str, dict[str, str]] = {}
    enums: dict[str, dict[str, list[str]]] = {}
    required: dict[str, list[str]] = {}
    for struct, fields in schema.STRUCTS.items():
        prefix = names[struct][:-len(struct)]
        pkg = packages.get(prefix)
        if pkg is None or struct not in pkg.structs:
            print(f"no Go source for {names[struct]}", file=sys.stderr)
            continue
        out = {"": fmt_raw_doc(pkg.structs[struct])}
        for name in fields:
            found = pkg.field(struct, name)
            if found is None:
                print(f"no Go field {struct}.{name}", file=sys.stderr)
                continue
            doc, go_type = found
            crd = struct in schema.V1ALPHA1  # controller-gen's text: no enum lines
            lines = pkg.enum_lines(go_type)
            if crd and pkg.enum_values(go_type):
                enums.setdefault(struct, {})[name] = pkg.enum_values(go_type)
            elif lines:
                doc = doc + "\n\n" + "\n".join(lines)  # the enum's lines, as openapi-gen adds them
                enums.setdefault(struct, {})[name] = pkg.enum_values(go_type)
            if doc:
                out[name] = crd_doc(doc) if crd else fmt_raw_doc(doc)
        if struct in schema.V1ALPHA1:
            out[""] = crd_doc(pkg.structs[struct])
        descriptions[struct] = {k: v for k, v in out.items() if v}
        req = _required(struct, fields, pkg)
        if req:
            required[struct] = req
    _write(descriptions, enums, required)


def _required(struct: str, fields: dict, pkg: Package) -> list[str]:
    if struct in schema.V1ALPHA1:
        out = []
        for name in fields:
            entry = pkg.fields.get(struct, {}).get(name)
            if entry and "+optional" not in entry[2]:
                out.append(name)
        return [n for n in out if n not in ("kind", "apiVersion")]
    cls = getattr(models, CLASSES.get(struct, "V1" + struct), None)
    if cls is None:
        return []
    by_json = {(f.serialization_alias or f.alias or n): f for n, f in cls.model_fields.items()}
    return [n for n in fields if n in by_json and by_json[n].is_required()]


def _write_nested(f, table: dict[str, dict], show) -> None:
    """One struct -> {field: value} table's entries, a line a field, each value as show() prints it."""
    for struct, out in table.items():
        f.write(f"    {struct!r}: {{\n")
        for k, v in out.items():
            f.write(f"        {k!r}: {show(v)},\n")
        f.write("    },\n")


def _write(descriptions: dict, enums: dict, required: dict) -> None:
    target = Path(__file__).resolve().parent.parent / "knet/api/fielddocs.py"
    with open(target, "w") as f:
        f.write('"""Upstream\'s descriptions, enum values and required fields of the structs\n'
                "in knet/api/schema.py, as kube-apiserver publishes them in OpenAPI (what\n"
                "`kubectl explain` prints). Generated by scripts/gen_fielddocs.py from the Go\n"
                "doc comments of k8s.io/api, k8s.io/apimachinery and network-policy-api (all\n"
                'Apache-2.0); do not edit by hand."""\n\n')
        f.write("# struct -> {field: description}; \"\" is the struct's own description.\n")
        f.write("DESCRIPTIONS: dict[str, dict[str, str]] = {\n")
        _write_nested(f, descriptions, repr)
        f.write("}\n\n# struct -> {field: the values of its +enum type}.\n")
        f.write("ENUMS: dict[str, dict[str, tuple[str, ...]]] = {\n")
        _write_nested(f, enums, lambda values: repr(tuple(values)))
        f.write("}\n\n# struct -> the fields OpenAPI lists as required.\n")
        f.write("REQUIRED: dict[str, tuple[str, ...]] = {\n")
        for struct, req in required.items():
            f.write(f"    {struct!r}: {tuple(req)!r},\n")
        f.write("}\n")


META: Package

if __name__ == "__main__":
    main()
