"""Reading manifests: files, directories and stdin; multi-document YAML and
`kind: List`, exactly what `kubectl apply -f` accepts, and refused as kubectl
refuses it when it is not a manifest.

Untrusted input is bounded before it is expanded. PyYAML builds one shared
Python object for an anchor and all its aliases, so a 664-byte "billion
laughs" loads in no time and then explodes when it is walked or serialized
(json.dumps took the CLI to 17 GB). So the event stream is checked first, in
one iterative pass that decodes nothing: go-yaml's own rule for alias
expansion (the decoder kubectl and sigs.k8s.io/yaml use), a nesting limit (the
C composer recurses per level: 100,000 levels crash it), a size limit per input,
and anchors that contain themselves. Only then is the text loaded.
"""

from __future__ import annotations

import json
import os
import sys

MAX_INPUT_BYTES = 32 * 1024 * 1024
"""Per file (or stdin). kubectl has no such limit, but nothing bigger can be
sent: the API server takes 3 MiB per request. Big enough for the 17 MiB
object that the server must be left to refuse with its 413."""

MAX_DEPTH = 500
"""Levels of mappings and lists. go-yaml allows 10,000, but the CLI's and the
API server's JSON code recurse per level (Python's limit is ~1,000 frames);
real manifests nest ~15 deep, and the server refuses over 100 with a 400."""

# go-yaml's allowedAliasRatio (decode.go, the fix of CVE-2019-11253): up to
# 400,000 decoded nodes 99% may come from alias expansion, from 4,000,000 on
# only 10%, scaling linearly between: a document expands to at most ~400,000
# nodes more than it has.
_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000


class ManifestError(ValueError):
    pass


def allowed_alias_ratio(decoded: int) -> float:
    """The share of decoded nodes that may come from alias expansion (go-yaml's rule)."""
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def excessive_aliasing(decoded: int, aliased: int) -> bool:
    """go-yaml's test, made at each decoded node: `decoded` nodes so far in the
    document, `aliased` of them reached through an alias."""
    return aliased > 100 and decoded > 1000 and aliased > decoded * allowed_alias_ratio(decoded)


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def check_yaml_bounds(text: str, source: str, loader) -> None:
    """Refuse `text` before any node is built if a document nests deeper than
    MAX_DEPTH, holds an anchor that contains itself, expands through its
    aliases beyond go-yaml's bound, or repeats a key in a mapping (PyYAML
    would keep the last silently; kubectl's strict YAML decoding refuses it,
    and the server could not see it in the JSON sent). Counts as go-yaml's
    decoder does: each node once where it is written, and again (as aliased)
    each time an alias brings in the anchored node with everything under it."""
    import yaml
    import yaml.events as ev

    ScalarEvent, AliasEvent, DocumentStartEvent = ev.ScalarEvent, ev.AliasEvent, ev.DocumentStartEvent
    MappingStartEvent, SequenceStartEvent = ev.MappingStartEvent, ev.SequenceStartEvent
    MappingEndEvent, SequenceEndEvent = ev.MappingEndEvent, ev.SequenceEndEvent

    doc = 0
    decoded = aliased = 0
    anchors: dict[str, list] = {}  # anchor -> [its expanded size, None while it is still open]
    # per open collection: [its anchor's box, `decoded` before it, a mapping's keys so far, its nodes so far]
    stack: list[list] = []
    try:
        for event in yaml.parse(text, Loader=loader):
            kind = type(event)
            if stack and (top := stack[-1])[2] is not None and kind is not MappingEndEvent:
                if not top[3] & 1 and kind is ScalarEvent and event.value != "<<":  # a key
                    if event.value in top[2]:
                        raise ManifestError(f"error parsing {source}: yaml: {_where(event.start_mark)}"
                                            f"key {json.dumps(event.value)} already set in map")
                    top[2].add(event.value)
                top[3] += 1
            if kind is ScalarEvent:
                decoded += 1
                if event.anchor is not None:
                    anchors[event.anchor] = [1]
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise ManifestError(f"error parsing {source}: yaml: {_where(event.start_mark)}"
                                        f"exceeded max depth of {MAX_DEPTH}")
                box = None
                if event.anchor is not None:
                    box = anchors[event.anchor] = [None]
                stack.append([box, decoded, set() if kind is MappingStartEvent else None, 0])
                decoded += 1
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                box, before, _, _ = stack.pop()
                if box is not None:
                    box[0] = decoded - before
            elif kind is AliasEvent:
                box = anchors.get(event.anchor)
                if box is None:
                    raise ManifestError(f"error parsing {source}: yaml: {_where(event.start_mark)}"
                                        f"unknown anchor '{event.anchor}' referenced")
                if box[0] is None:
                    raise ManifestError(f"error parsing {source}: yaml: {_where(event.start_mark)}"
                                        f"anchor '{event.anchor}' value contains itself")
                decoded += 1 + box[0]
                aliased += box[0]
            elif kind is DocumentStartEvent:
                doc += 1
                decoded = aliased = 0
                anchors.clear()
                continue
            else:
                continue
            if aliased > 100 and excessive_aliasing(decoded, aliased):
                raise ManifestError(
                    f"error parsing {source}: yaml: document contains excessive aliasing (document {doc}: "
                    f"{aliased:,} of {decoded:,} nodes would come from aliases, over the "
                    f"{allowed_alias_ratio(decoded):.0%} allowed)")
    except yaml.YAMLError as e:
        raise ManifestError(_yaml_error(e, source)) from None


def _yaml_error(e, source: str) -> str:
    """One line with the line and column, where PyYAML spreads an error over several."""
    problem = getattr(e, "problem", None)
    if problem is not None and problem.startswith("exceeded maximum nesting depth"):
        # libyaml 0.2.5+ (PyYAML's wheels) stops at 1,000 flow levels while
        # scanning, before the parser hands us the events our own limit counts.
        return f"error parsing {source}: yaml: {_where(getattr(e, 'problem_mark', None))}exceeded max depth of {MAX_DEPTH}"
    if problem is None:
        return f"error parsing {source}: yaml: {' '.join(str(e).split())}"
    text = _where(getattr(e, "problem_mark", None)) + problem
    if context := getattr(e, "context", None):
        mark = getattr(e, "context_mark", None)
        text += f" ({context}{' at ' + _where(mark)[:-2] if mark is not None else ''})"
    return f"error parsing {source}: yaml: {text}"


def check_depth(value: object, source: str) -> None:
    """Nesting of decoded JSON, walked without recursion."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ManifestError(f"error parsing {source}: exceeded max depth of {MAX_DEPTH}")
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


_LOADER = None


def _loader():
    """libyaml's parser where PyYAML has it (several times faster on big files),
    constructing what YAML-to-JSON gives kubectl: a timestamp stays the text it
    was (PyYAML would make a datetime, which no JSON can hold), !!binary its
    base64 text, a !!set a mapping to nulls, and a whole-number float
    (`port: 80.0`) the integer Go's encoder writes for it (80), so the server's
    typed decoding sees what it would get from kubectl."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
            pass

        def text(loader, node):
            return loader.construct_scalar(node)

        def as_set(loader, node):
            return {k: None for k in loader.construct_mapping(node)}

        def number(loader, node):
            value = loader.construct_yaml_float(node)
            return int(value) if value.is_integer() and abs(value) < 1e21 else value

        Loader.add_constructor("tag:yaml.org,2002:timestamp", text)
        Loader.add_constructor("tag:yaml.org,2002:binary", text)
        Loader.add_constructor("tag:yaml.org,2002:set", as_set)
        Loader.add_constructor("tag:yaml.org,2002:float", number)
        _LOADER = Loader
    return _LOADER


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def parse(text: str, source: str) -> list[dict]:
    """The objects in one manifest text: `source` names it in errors."""
    docs = None
    if text.lstrip().startswith("{"):  # JSON needs no YAML parser (whose import is most of a quick apply)
        def no_repeats(pairs: list) -> dict:
            out = dict(pairs)
            if len(out) != len(pairs):
                seen: set = set()
                key = next(k for k, _ in pairs if k in seen or seen.add(k))
                raise ManifestError(f"error parsing {source}: key {json.dumps(key)} already set in map")
            return out

        try:
            docs = [json.loads(text, object_pairs_hook=no_repeats)]
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{", and so does a stream of JSON objects
        except RecursionError:
            raise ManifestError(f"error parsing {source}: exceeded max depth of {MAX_DEPTH}") from None
        else:
            check_depth(docs[0], source)
    if docs is None:
        import yaml

        loader = _loader()
        check_yaml_bounds(text, source, loader)
        try:
            docs = list(yaml.load_all(text, Loader=loader))
        except yaml.YAMLError as e:
            raise ManifestError(_yaml_error(e, source)) from None
    return objects_of(docs, source)


def objects_of(docs: list, source: str) -> list[dict]:
    """kubectl's client-side checks of decoded documents: each is an object
    with apiVersion and kind (or a List of such), and Lists are flattened."""
    def invalid(what: str) -> ManifestError:
        return ManifestError(f'error validating "{source}": error validating data: {what}')

    out: list[dict] = []
    several = sum(d is not None for d in docs) > 1
    for i, doc in enumerate(docs):
        if doc is None:
            continue  # an empty document, as between two `---`
        where = f"document {i + 1}: " if several else ""
        if not isinstance(doc, dict):
            raise invalid(f"{where}the document is {'an' if _kind_of(doc)[0] in 'ao' else 'a'} {_kind_of(doc)}, "
                          "not an object with apiVersion and kind")
        pending = [(doc, where)]  # a stack, items pushed in reverse: the file's order is kept
        while pending:
            obj, at = pending.pop()
            missing = [f"{k} not set" for k in ("apiVersion", "kind") if obj.get(k) in (None, "")]
            if missing:
                raise invalid(at + (f"[{', '.join(missing)}]" if len(missing) > 1 else missing[0]))
            for k in ("apiVersion", "kind"):
                if not isinstance(obj[k], str):
                    raise invalid(f'{at}{k}: got {_kind_of(obj[k])}, expected string')
            if "metadata" in obj and obj["metadata"] is None:
                del obj["metadata"]  # `metadata:` with nothing under it is no metadata, as in Go
            if not isinstance(obj.get("metadata", {}), dict):
                raise invalid(f'{at}metadata: got {_kind_of(obj["metadata"])}, expected object')
            if obj["kind"].endswith("List") and "items" in obj:
                items = obj["items"]
                if items is None:
                    continue
                if not isinstance(items, list):
                    raise invalid(f"{at}items: got {_kind_of(items)}, expected array")
                for n, item in enumerate(items):
                    if not isinstance(item, dict):
                        raise invalid(f"{at}items[{n}]: got {_kind_of(item)}, expected object")
                pending += reversed([(item, f"{at}items[{n}]: ") for n, item in enumerate(items)])
                continue
            out.append(obj)
    return out


def _read(path: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(f'the path "{path}" does not exist') from None
    except IsADirectoryError:
        raise ManifestError(f'error reading "{path}": is a directory') from None
    except PermissionError:
        raise ManifestError(f'error reading "{path}": permission denied') from None
    except OSError as e:
        raise ManifestError(f'error reading "{path}": {e.strerror or e}') from None
    if len(data) > MAX_INPUT_BYTES:
        raise ManifestError(f"error reading {'stdin' if path == '-' else path}: over "
                            f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB, the limit for one manifest input "
                            "(the API server takes at most 3 MiB per object)")
    return data


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"error parsing {source}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                            f"{e.start}): is it a manifest?") from None


def load_with_sources(paths: list[str]) -> list[tuple[str, dict]]:
    """(source, object) pairs from each path: `-` is stdin, a directory is its
    .yaml/.yml/.json files (not its subdirectories, as without kubectl's -R)."""
    out: list[tuple[str, dict]] = []
    for path in paths:
        if "://" in path:
            raise ManifestError(f'unable to read URL "{path}": knet reads only files and stdin '
                                "(download it first, or pipe it: curl -sL URL | knet apply -f -)")
        if path != "-" and os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                raise ManifestError(f'error reading "{path}": {e.strerror or e}') from None
            files = [os.path.join(path, n) for n in names if n.endswith((".yaml", ".yml", ".json"))]
        else:
            files = [path]
        for full in files:
            source = "stdin" if full == "-" else full
            out += [(source, obj) for obj in parse(_decode(_read(full), source), source)]
    return out


def read_yaml(path: str) -> object:
    """The one YAML document of a file that is not a manifest (a cluster file),
    with the same bounds and one-line errors as manifests."""
    import yaml

    text = _decode(_read(path), path)
    loader = _loader()
    check_yaml_bounds(text, path, loader)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        raise ManifestError(_yaml_error(e, path)) from None
    if len(docs) > 1:
        raise ManifestError(f"error parsing {path}: {len(docs)} documents, expected one")
    return docs[0] if docs else None


def load(paths: list[str]) -> list[dict]:
    """Objects from each path: `-` is stdin, a directory is its .yaml/.yml/.json files."""
    return [obj for _, obj in load_with_sources(paths)]
