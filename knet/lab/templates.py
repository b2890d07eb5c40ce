"""Values a check learns from the cluster: `{{ pod/b .status.podIP }}`.

A lab cannot know a pod's IP or a Service's ClusterIP when it is written, yet "the server saw
the client's own address" is the lesson of the IP-per-pod model. So a check's strings may name
an object's field, `{{ [NAMESPACE/]KIND/NAME JSONPATH }}` (the JSONPath as kubectl's relaxed
form, `.status.podIP`), replaced when the check runs. In a regex the value is escaped: it is
matched as it is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TEMPLATE_RE = re.compile(r"\{\{\s*(\S+)\s+([^{}]+?)\s*\}\}")


class TemplateError(ValueError):
    pass


def has(text: str) -> bool:
    return "{{" in text


def _ref(obj: str) -> tuple[str | None, str, str]:
    parts = obj.split("/")
    if len(parts) == 2:
        return None, parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise TemplateError(f"{obj!r}: expected KIND/NAME or NAMESPACE/KIND/NAME")


def check(text: str, path: str) -> None:
    """Every `{{` in `text` starts a template that names a known kind and a
    JSONPath that parses; else a field error at `path`."""
    from knet.api.resources import lookup
    from knet.cli.jsonpath import JSONPath, JSONPathError
    from knet.lab.model import invalid

    rest = TEMPLATE_RE.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise invalid(path, text, "a template is {{ KIND/NAME JSONPATH }}, such as {{ pod/web .status.podIP }}")
    for m in TEMPLATE_RE.finditer(text):
        try:
            _, kind, name = _ref(m[1])
        except TemplateError as e:
            raise invalid(path, text, str(e)) from None
        if lookup(kind) is None or not name:
            raise invalid(path, text, f'the server doesn\'t have a resource type "{kind}"' if name
                          else f"{m[1]!r}: no name")
        try:
            JSONPath("{" + m[2] + "}")
        except JSONPathError as e:
            raise invalid(path, text, f"{m[2]!r}: not a JSONPath: {e}") from None


def blank(text: str) -> str:
    """The text with each template replaced by a plain word (to compile a regex before the values exist)."""
    return TEMPLATE_RE.sub("x", text)


Resolve = Callable[[str | None, str, str, str], str]


def render(text: str, resolve: Resolve, *, regex: bool = False) -> str:
    """The text with each template's value from resolve(namespace|None, kind, name, jsonpath)."""
    def one(m: re.Match) -> str:
        ns, kind, name = _ref(m[1])
        value = resolve(ns, kind, name, "{" + m[2] + "}")
        return re.escape(value) if regex else value
    return TEMPLATE_RE.sub(one, text)
